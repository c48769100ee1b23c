"""Who is calling: ProConnect login (OIDC code flow with state, nonce and PKCE, through authlib), the agent in the
signed session cookie, the role guards every route declares, and CSRF tokens for forms.

- `/login?next=/finance` → ProConnect's authorize endpoint (state and nonce: 32 random bytes each, PKCE S256,
  `client_secret_post` — authlib would send HTTP Basic otherwise, which ProConnect refuses).
- `/login/callback` → authlib checks the state, redeems the code with the verifier and validates the ID token
  (signature by `kid` from /jwks, iss, aud, exp, nonce); then userinfo is read by hand, because ProConnect signs it
  (`application/jwt`): verified against the same keys, iss/aud/exp checked, its `sub` must be the ID token's.
  Plain JSON userinfo is accepted too (a client registered without a userinfo alg).
- The session (Starlette's signed cookie, HttpOnly, SameSite=Lax, Secure behind https) keeps the agent's sub,
  e-mail and name, the raw ID token (for logout), the login time (the session ends after `session_max_age`) and
  the CSRF token. Roles are read from the database on every request, so a revocation takes effect at once.
- `/logout` (a form POST) → ProConnect's end-session endpoint with `id_token_hint`, `post_logout_redirect_uri` and
  a state; `/logout/callback` checks the state, then the session is cleared.
- `next` is only ever a local path (`/…`, never `//…` nor a scheme): no open redirect.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Depends, HTTPException, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from starlette.responses import RedirectResponse, Response

from core.access import Role, allows
from db.access import AccessRepository
from web.pages import render
from web.settings import WebSettings

__all__ = ["AREAS", "AdminCaller", "Agent", "Area", "Caller", "FinanceCaller", "HelpdeskCaller", "LoginRequired",
           "MigrationCaller", "NotAllowed", "ProConnect", "checked_csrf", "csrf_token", "current_agent",
           "local_path", "login_router", "requires_role", "role_of", "session_agent",
           "visible_areas"]

log = logging.getLogger(__name__)

SESSION_AGENT = "agent"
USERINFO_ALGS = ["RS256", "ES256"]


@dataclass(frozen=True, slots=True)
class Agent:
    """A State agent logged in with ProConnect."""

    sub: str
    email: str
    name: str
    siret: str | None = None
    idp_id: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """An agent allowed on a route, with the tenant the page is about and every role they hold there."""

    agent: Agent
    tenant_id: str
    roles: frozenset[Role]
    tenants: tuple[str, ...]          # every tenant where the agent holds the route's role


class LoginRequired(Exception):
    """No agent in the session (or the session expired)."""


class NotAllowed(Exception):
    """The agent holds no role that opens this route (for any tenant, or for the tenant asked)."""

    def __init__(self, role: Role) -> None:
        super().__init__(role.value)
        self.role = role


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path of this site, else `default` (never `//host`, `/\\host`, a scheme)."""
    if not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return default
    if any(ord(char) < 0x21 for char in candidate) or "\\" in candidate:
        return default
    return candidate


def current_agent(request: Request) -> Agent | None:
    """The agent of the session, None when nobody is logged in or the session is older than allowed."""
    data = request.session.get(SESSION_AGENT)
    if not isinstance(data, dict):
        return None
    settings: WebSettings = request.app.state.settings
    if time.time() - float(data.get("at", 0)) > settings.session_max_age:
        request.session.clear()
        return None
    return Agent(str(data["sub"]), str(data["email"]), str(data.get("name") or data["email"]),
                 data.get("siret"), data.get("idp_id"))


def session_agent(request: Request) -> Agent | None:
    """The agent as a dependency (tests override this one, and only this one)."""
    return current_agent(request)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made once per session); forms carry it in `csrf_token`."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_csrf(request: Request) -> None:
    """Refuse a form whose csrf_token is not the session's (403)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(status_code=403, detail="Le formulaire a expiré ou ne vient pas de ce site : "
                                                    "rechargez la page et recommencez.")


@dataclass(frozen=True, slots=True)
class Area:
    """A part of the application and the role that opens it."""

    key: str
    path: str
    role: Role
    label: str
    summary: str


AREAS = (
    Area("finance", "/finance", Role.FINANCE, "Économies",
         "Ce que coûte et ce que rapporte le passage à Visio : chiffres, contrats, échéances, prévisions."),
    Area("helpdesk", "/helpdesk", Role.HELPDESK, "Assistance",
         "Retrouver le lien Visio d'une ancienne réunion Zoom, Teams ou Webex ; renvoyer l'invitation."),
    Area("console", "/console", Role.MIGRATION, "Pilotage de la migration",
         "Organisations, vagues, échecs par motif, conflits d'identité, exécutions Prefect."),
)


def roles_held(request: Request, agent: Agent) -> dict[str, frozenset[Role]]:
    """The agent's roles per tenant, read once per request (revocations apply at the next request)."""
    cached = getattr(request.state, "roles", None)
    if cached is None:
        with request.app.state.sessions() as session:
            cached = AccessRepository(session).roles_of(agent.email)
        request.state.roles = cached
    return dict(cached)


def visible_areas(request: Request, agent: Agent) -> list[Area]:
    """The areas the agent may open for at least one tenant."""
    held = roles_held(request, agent)
    return [area for area in AREAS if any(allows(roles, area.role) for roles in held.values())]


def requires_role(role: Role) -> Callable[[Request, Agent | None], Caller]:
    """The guard of a route: an agent holding `role` (or admin) for the tenant asked (`?tenant=`, else the first
    tenant where they hold it). Anonymous: LoginRequired; without the role: NotAllowed."""

    def guard(request: Request, agent: Annotated[Agent | None, Depends(session_agent)]) -> Caller:
        if agent is None:
            raise LoginRequired
        request.state.agent = agent
        held = roles_held(request, agent)
        tenants = tuple(sorted(tenant for tenant, roles in held.items() if allows(roles, role)))
        wanted = request.query_params.get("tenant") or (tenants[0] if tenants else "")
        if wanted not in tenants:
            log.info("agent %s refused %s on tenant %s", agent.sub[:12], role.value, wanted[:64] or "-")
            raise NotAllowed(role)
        return Caller(agent, wanted, held[wanted], tenants)

    guard.role = role  # type: ignore[attr-defined]  # read by the route-table test and the home page
    return guard


def role_of(dependency: Any) -> Role | None:
    """The role a guard checks (None for any other dependency)."""
    role = getattr(dependency, "role", None)
    return role if isinstance(role, Role) else None


# ----------------------------------------------------------------------------------------------- ProConnect


class ProConnect:
    """The OIDC client of one deployment (authlib's Starlette integration), built by create_app."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.oauth = OAuth()
        if settings.login_enabled:
            assert settings.oidc_client_secret is not None
            self.oauth.register(
                "proconnect", client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret.get_secret_value(),
                server_metadata_url=settings.oidc_discovery_url,
                client_kwargs={"scope": settings.oidc_scopes, "token_endpoint_auth_method": "client_secret_post",
                               "code_challenge_method": "S256"})

    @property
    def client(self) -> Any:
        return self.oauth.create_client("proconnect")

    async def userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        """The userinfo claims, verified: a JWT is checked against the provider's keys (or the client secret for
        HS256) with iss, aud and exp; its sub must be the ID token's."""
        client = self.client
        metadata = await client.load_server_metadata()
        response = await client.get(metadata["userinfo_endpoint"], token=token)
        response.raise_for_status()
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/jwt":
            claims = await self._verified_jwt(response.text.strip(), metadata)
        else:
            claims = dict(response.json())
        if claims.get("sub") != token["userinfo"]["sub"]:
            raise OAuthError(error="invalid_userinfo", description="userinfo sub differs from the ID token's")
        return claims

    async def _verified_jwt(self, text: str, metadata: dict[str, Any]) -> dict[str, Any]:
        settings = self.settings
        keys: Any = KeySet.import_key_set(await self.client.fetch_jwk_set())
        algorithms = list(USERINFO_ALGS)
        alg = _alg_of(text)
        if alg == "HS256":
            assert settings.oidc_client_secret is not None
            keys = OctKey.import_key(settings.oidc_client_secret.get_secret_value())
            algorithms = ["HS256"]
        try:
            decoded = jwt.decode(text, keys, algorithms=algorithms)
            registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": metadata["issuer"]},
                                             aud={"essential": True, "value": settings.oidc_client_id or ""},
                                             exp={"essential": True}, sub={"essential": True})
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as error:
            raise OAuthError(error="invalid_userinfo", description=f"userinfo JWT refused ({type(error).__name__})"
                             ) from None
        return dict(decoded.claims)


def _alg_of(compact: str) -> str:
    """The `alg` of a compact JWS header ("" when unreadable: the verification then fails)."""
    head = compact.split(".", 1)[0]
    try:
        return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"])
    except (ValueError, KeyError, TypeError):
        return ""


def login_router() -> APIRouter:
    """/login, /login/callback, /logout, /logout/callback."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    async def login(request: Request, next: str | None = None) -> Response:
        proconnect: ProConnect = request.app.state.proconnect
        if not proconnect.settings.login_enabled:
            return render(request, "message.html", {
                "title": "Connexion indisponible", "message": "ProConnect n'est pas configuré pour ce service "
                "(BASCULE_WEB_OIDC_DISCOVERY_URL, _CLIENT_ID, _CLIENT_SECRET)."}, status_code=503)
        request.session["next"] = local_path(next)
        response: Response = await proconnect.client.authorize_redirect(
            request, proconnect.settings.redirect_uri, state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32))
        return response

    @router.get("/login/callback")
    async def callback(request: Request) -> Response:
        proconnect: ProConnect = request.app.state.proconnect
        if not proconnect.settings.login_enabled:
            raise HTTPException(status_code=404)
        try:
            token = await proconnect.client.authorize_access_token(request)
            claims = await proconnect.userinfo(token)
        except (OAuthError, JoseError, ValueError, KeyError) as error:
            code = getattr(error, "error", None) or type(error).__name__
            log.warning("login refused: %s", code)
            return render(request, "message.html", {
                "title": "Connexion refusée", "message": "La connexion avec ProConnect n'a pas abouti "
                f"({code}). Recommencez depuis la page d'accueil."}, status_code=400)
        email = str(claims.get("email") or "").strip().lower()
        if not email:
            return render(request, "message.html", {
                "title": "Connexion refusée", "message": "ProConnect n'a pas transmis d'adresse e-mail."},
                status_code=400)
        name = " ".join(str(claims.get(key) or "") for key in ("given_name", "usual_name")).strip() or email
        target = local_path(request.session.get("next"))
        request.session.clear()   # nothing of the anonymous session survives the login (fixation)
        request.session[SESSION_AGENT] = {"sub": str(claims["sub"]), "email": email, "name": name,
                                          "siret": claims.get("siret"), "idp_id": claims.get("idp_id"),
                                          "at": time.time()}
        request.session["id_token"] = token.get("id_token")
        csrf_token(request)
        log.info("agent %s logged in (acr %s)", str(claims["sub"])[:12], token["userinfo"].get("acr"))
        return RedirectResponse(target, status_code=303)

    @router.post("/logout", dependencies=[Depends(checked_csrf)])
    async def logout(request: Request) -> Response:
        proconnect: ProConnect = request.app.state.proconnect
        id_token = request.session.get("id_token")
        request.session.pop(SESSION_AGENT, None)
        if not proconnect.settings.login_enabled or not id_token:
            request.session.clear()
            return RedirectResponse("/", status_code=303)
        response: Response = await proconnect.client.logout_redirect(
            request, post_logout_redirect_uri=proconnect.settings.logout_redirect_uri, id_token_hint=id_token,
            state=secrets.token_urlsafe(32))
        response.status_code = 303
        return response

    @router.get("/logout/callback")
    async def logout_callback(request: Request) -> Response:
        proconnect: ProConnect = request.app.state.proconnect
        try:
            await proconnect.client.validate_logout_response(request)
        except OAuthError:
            log.warning("logout callback with an unknown state")
        request.session.clear()
        return RedirectResponse("/?logged_out=1", status_code=303)

    return router


# The guards as parameter types: `caller: FinanceCaller` on a route declares the role it needs.
FinanceCaller = Annotated[Caller, Depends(requires_role(Role.FINANCE))]
HelpdeskCaller = Annotated[Caller, Depends(requires_role(Role.HELPDESK))]
MigrationCaller = Annotated[Caller, Depends(requires_role(Role.MIGRATION))]
AdminCaller = Annotated[Caller, Depends(requires_role(Role.ADMIN))]
