"""The web application: `create_app(settings, services)` builds everything (engine, templates, the ProConnect
client, routers) — nothing is built at import. One router per area, each route declaring the role it needs
(web.auth.requires_role); the JSON API under /api with its OpenAPI document at /api/openapi.json.

    /                     home: the areas the agent may open (public: the login button)
    /login /logout …      ProConnect (web.auth)
    /finance              the savings dashboard and its CSV exports       role finance
    /helpdesk             old link → Visio link, resend an invitation     role helpdesk
    /console              tenants, waves, failures, identity conflicts    role migration
    /api/…                the same data as JSON                           the same roles
    /l/{key}              public: an old link's key → its Visio room, or a page explaining why not
    /accessibilite …      the statement pages the footer links to (public)
    /static/…             the DSFR (pinned, SRI) and the app's own CSS
    mounts                e.g. the LiveKit webhook receiver of a tenant (web.adoption), given by the CLI
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.mail import SmtpInvitationSender
from db.engine import make_engine, make_session_factory
from web import api, console, finance, helpdesk, public
from web.assets import STATIC_DIR
from web.auth import LoginRequired, NotAllowed, ProConnect, login_router
from web.pages import build_templates, render
from web.settings import WebSettings

__all__ = ["WebServices", "create_app", "route_table"]

log = logging.getLogger(__name__)

API_PREFIX = "/api"


@dataclass(frozen=True)
class WebServices:
    """What the composition root (the CLI) gives the app beyond the database: each tenant's mail sender (resend)
    and extra ASGI apps to mount (the LiveKit webhook receivers)."""

    senders: Mapping[str, SmtpInvitationSender] = field(default_factory=dict)
    mounts: Sequence[tuple[str, ASGIApp]] = ()


class _SecurityHeaders:
    """CSP (scripts and styles from this site only; forms may lead to ProConnect), no framing, no sniffing."""

    def __init__(self, app: ASGIApp, settings: WebSettings) -> None:
        self.app = app
        form_action = " ".join(filter(None, ["'self'", settings.provider_origin]))
        self.headers = [
            (b"content-security-policy", (f"default-src 'self'; img-src 'self' data:; style-src 'self' "
                                          f"'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'self'; "
                                          f"frame-ancestors 'none'; form-action {form_action}").encode()),
            (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: WebSettings, services: WebServices | None = None) -> FastAPI:
    """The application over the state database `settings.database_url`."""
    services = services or WebServices()
    engine = make_engine(settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(title="bascule", summary="Savings, helpdesk and migration console of the move to Visio.",
                  version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json")
    app.state.settings = settings
    app.state.services = services
    app.state.engine = engine
    app.state.sessions = make_session_factory(engine)
    app.state.templates = build_templates()
    app.state.proconnect = ProConnect(settings)

    app.include_router(public.router())
    app.include_router(login_router())
    app.include_router(finance.router(), prefix="/finance")
    app.include_router(helpdesk.router(), prefix="/helpdesk")
    app.include_router(console.router(), prefix="/console")
    app.include_router(api.router(), prefix=API_PREFIX)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for prefix, mounted in services.mounts:
        app.mount(prefix, mounted)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith(API_PREFIX + "/")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _error: LoginRequired) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": "log in with ProConnect first"}, status_code=401,
                                headers={"WWW-Authenticate": "Session"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, error: NotAllowed) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": f"this needs the {error.role.value} role for the tenant"},
                                status_code=403)
        return render(request, "message.html", {
            "title": "Accès refusé", "message": f"Cette page demande le rôle « {error.role.value} » pour "
            "l'organisation concernée. Demandez-le à l'administrateur de bascule (bascule access grant)."},
            status_code=403)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": error.detail}, status_code=error.status_code,
                                headers=getattr(error, "headers", None))
        titles = {403: "Accès refusé", 404: "Page introuvable", 429: "Trop de demandes"}
        return render(request, "message.html", {"title": titles.get(error.status_code, "Erreur"),
                                                "message": str(error.detail)}, status_code=error.status_code)

    app.add_middleware(SessionMiddleware, secret_key=settings.session_secret.get_secret_value(),
                       session_cookie="bascule_session", max_age=settings.session_max_age, same_site="lax",
                       https_only=settings.cookies_secure)
    app.add_middleware(_SecurityHeaders, settings=settings)
    return app


def route_table(routes: Sequence[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every API route of the app with its full path (FastAPI ≥ 0.150 keeps included routers as branches)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router") and hasattr(route, "include_context"):
            found += route_table(route.original_router.routes, prefix + route.include_context.prefix)
    return found
