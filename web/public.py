"""Pages anyone may open: the home page (the login button, or the agent's areas), the public redirect of an old
link's key to its Visio room, the statement pages the footer links to, and /health."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from db.helpdesk import redirect_target
from web.pages import render

__all__ = ["PUBLIC_PATHS", "router"]

STATEMENTS = {
    "accessibilite": ("Accessibilité", "accessibility.html"),
    "mentions-legales": ("Mentions légales", "legal.html"),
    "donnees-personnelles": ("Données personnelles", "privacy.html"),
    "cookies": ("Gestion des cookies", "cookies.html"),
}
# Routes without a role guard, on purpose (the route-table test checks every other route has one).
PUBLIC_PATHS = frozenset({"/", "/health", "/l/{key:path}", "/login", "/login/callback", "/logout",
                          "/logout/callback", *(f"/{name}" for name in STATEMENTS)})


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/")
    def home(request: Request) -> Response:
        return render(request, "home.html", {"title": "Accueil",
                                             "logged_out": request.query_params.get("logged_out") == "1"})

    @routes.get("/health")
    def health() -> Response:
        return JSONResponse({"status": "ok"})

    @routes.get("/l/{key:path}")
    def redirect(request: Request, key: str) -> Response:
        """An old meeting link's key → its Visio room (303), or a page saying why not (404). The target is only
        ever a room URL bascule stored, never anything the request carries."""
        with request.app.state.sessions() as session:
            url, why = redirect_target(session, key[:255])
        if url is not None:
            return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
        return render(request, "redirect_unknown.html", {"title": "Réunion non déplacée", "why": why},
                      status_code=404)

    for name, (title, template) in STATEMENTS.items():
        def statement(request: Request, _title: str = title, _template: str = template) -> Response:
            return render(request, _template, {"title": _title})

        routes.add_api_route(f"/{name}", statement, methods=["GET"], name=name)
    return routes
