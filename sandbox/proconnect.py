"""Sandbox ProConnect: the State's agent login federation as a relying party sees it, under /proconnect/api/v2, as
shared/contracts/proconnect-login.md says (section 9 is the checklist; claims from proconnect.md section 1).

- Discovery at `/proconnect/api/v2/.well-known/openid-configuration`; the issuer is the request's origin +
  `/proconnect/api/v2` (any port, TLS too); what it advertises is the federation's (ACR values, HS256/ES256/RS256,
  `client_secret_post` and `private_key_jwt`, PKCE S256, no `offline_access`).
- Authorize (GET or POST): `response_type=code` only; a known client and a redirect URI matching a registered one
  exactly (trailing slash included) — until both are known, errors are a 400 page, never a redirect; then errors go
  back to the redirect URI with `error`, `error_description` and `state`. `openid` required; only the claim scopes
  (`given_name usual_name email uid siret idp_id roles organization_label`) and those granted to the client
  (`organizational_unit`, `phone`…: "requested scope is not allowed" otherwise); `state` and `nonce` required, at
  least 32 characters in strict mode (nonce optional otherwise, as the federation's code since 2024-06);
  `code_challenge_method` S256 only; `prompt=none` → `login_required` (no SSO session here); `claims` parsed, an
  essential `acr` the agent cannot get (anything but eidas1) → `access_denied`; `acr_values` accepted.
- The login page (the FIA1 test IdP's role): the directory's agents, `agents_on_page` per page, each a button
  `form#agents button[data-email=…]`; or any address in `#free-email` (`#free-login-submit`): a directory address,
  or a `…@test.proconnect.gouv.fr` one (a synthetic FIA1 identity); anything else is refused on the page. Tests may
  set the next identity instead (`/_sandbox/proconnect/next-identity`): the next authorize then skips the page.
- Codes: random, single-use, bound to the client, redirect URI, nonce and challenge, living `code_ttl_seconds` on
  the stand-in's clock (60 s as documented; the federation's code uses 600 s). A replayed code is `invalid_grant`
  and revokes the tokens it gave, as oidc-provider does.
- Token: a form POST with `client_secret_post` only — HTTP Basic is 401 `invalid_client`, as for the federation's
  clients (no auth-method field in partner records); the redirect URI must be the code's; PKCE verified (a verifier
  without a challenge, or none with one, is `invalid_grant`). Answer: access token (1 h), `token_type` Bearer,
  `expires_in` 3600, ID token, refresh token, scope.
- ID token signed with the client's alg (RS256 by default, ES256, or HS256 with the client secret), `kid` in the
  header, keys at `/jwks` (RSA and EC; `rotate()` adds a generation and signs with it, older kids stay published).
  Claims: only `iss aud exp iat sub nonce acr auth_time sid at_hash` (+ `amr` when asked in `claims`): no e-mail,
  no names, as oidc-provider's conformIdTokenClaims.
- Userinfo (GET or POST, Bearer): the scope claims + `iss aud iat exp`, as a JWS (`application/jwt;
  charset=utf-8`) with the client's userinfo alg, or JSON for a client registered without one. Unknown or expired
  token: 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
- End-session: `id_token_hint` (verified, its `aud` names the client) or `client_id`; `post_logout_redirect_uri`
  must be a registered logout URI exactly ("post_logout_redirect_uri not registered" page otherwise); `state`
  echoed; 303.
- Identities: the generated ministry's directory (`directory.ldif`), read once into an index of byte offsets, an
  entry parsed when needed. `sub` is the formula of sandbox.meet (`sub_for`), so Visio and ProConnect agree; the
  SIRET is the ministry's, `idp_id` the ministry IdP's, `idp_acr` eidas1, `roles` ["agent_public"].
- Deliberate bugs (`SandboxConfig.broken`, `POST /_sandbox/broken`), for the relying party's security tests:
  `proconnect_wrong_nonce`, `proconnect_tampered_id_token`, `proconnect_tampered_userinfo`,
  `proconnect_userinfo_other_sub`, `proconnect_userinfo_wrong_audience`, `proconnect_wrong_issuer`.

Sandbox-only routes, never faulted: `GET|POST /_sandbox/proconnect/clients`, `POST /_sandbox/proconnect/next-identity`,
`POST /_sandbox/proconnect/keys` (rotate), `GET|POST /_sandbox/proconnect/clock` (`{"advance_seconds": n}`),
`GET /_sandbox/proconnect/agents?limit=&offset=`. In-process tests reach the same through `provider_of(sandbox)`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.server import Sandbox, SystemMount

__all__ = ["DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "ProConnectAgent", "ProConnectClient", "ProConnectOptions",
           "ProConnectProvider", "mount", "provider_of"]

PREFIX = "/proconnect"
API = "/api/v2"
CONTROL = "/_sandbox/proconnect"
DEFAULT_CLIENT_ID = "sandbox-proconnect-client"
DEFAULT_CLIENT_SECRET = "sandbox-proconnect-secret"  # noqa: S105 — published, like every sandbox credential
CLAIM_SCOPES = ("given_name", "usual_name", "email", "uid", "siret", "idp_id", "roles", "organization_label")
GRANTED_SCOPES = ("phone", "custom", "organizational_unit", "belonging_population", "chorusdt")
ACR_VALUES = ("eidas0", "eidas0-mfa", "eidas1", "eidas1-mfa", "eidas2", "eidas3",
              "https://proconnect.gouv.fr/assurance/certification-dirigeant")
ACR = "eidas1"
FIA1_DOMAIN = "test.proconnect.gouv.fr"
TOKEN_SECONDS = 3600
MIN_RANDOM = 32          # state and nonce, strict mode (the documentation's minimum)


@dataclass(frozen=True, slots=True)
class ProConnectClient:
    """A relying party registered in the partner space."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    id_token_alg: str = "RS256"  # noqa: S105 — RS256 (partner-space default), ES256 or HS256 (client secret)
    userinfo_alg: str | None = "RS256"        # None: plain application/json userinfo
    extra_scopes: tuple[str, ...] = ()        # scopes released only when granted (organizational_unit, phone, …)


def _default_client() -> ProConnectClient:
    web = ("http://127.0.0.1:8080", "http://localhost:8080")   # `bascule web serve`'s default address
    return ProConnectClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, tuple(f"{base}/login/callback" for base in web),
                            tuple(f"{base}/logout/callback" for base in web), extra_scopes=("organizational_unit",))


@dataclass(frozen=True, slots=True)
class ProConnectOptions:
    """How the stand-in behaves."""

    strict: bool = True                        # state and nonce required, ≥ 32 characters
    code_ttl_seconds: int = 60
    clients: tuple[ProConnectClient, ...] = field(default_factory=lambda: (_default_client(),))
    clock: Callable[[], float] | None = None   # seconds since the epoch; default time.time
    agents_on_page: int = 20
    seed: int | None = None                    # default: the generated ministry's (sub values agree with Visio's)


@dataclass(frozen=True, slots=True)
class ProConnectAgent:
    """An identity ProConnect asserts (the claims of proconnect.md section 1 that bascule asks for)."""

    sub: str
    email: str
    given_name: str
    usual_name: str
    uid: str
    siret: str
    idp_id: str
    organizational_unit: str | None
    organization_label: str

    def claims(self, scopes: frozenset[str]) -> dict[str, Any]:
        every: dict[str, Any] = {"given_name": self.given_name, "usual_name": self.usual_name, "email": self.email,
                                 "uid": self.uid, "siret": self.siret, "idp_id": self.idp_id,
                                 "roles": ["agent_public"], "organization_label": self.organization_label,
                                 "organizational_unit": self.organizational_unit}
        released = {name: value for name, value in every.items() if name in scopes and value is not None}
        if "idp_id" in scopes:
            released["idp_acr"] = ACR
        return {"sub": self.sub, **released}


@dataclass(slots=True)
class _Pending:
    """An authorization request waiting for the agent to be chosen on the login page."""

    client: ProConnectClient
    redirect_uri: str
    scopes: frozenset[str]
    state: str | None
    nonce: str | None
    challenge: str | None
    want_amr: bool


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    scopes: frozenset[str]
    agent: ProConnectAgent
    want_amr: bool
    issued_at: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Token:
    client_id: str
    agent: ProConnectAgent
    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False


class OidcError(Exception):
    """An OAuth error: where the relying party's redirect URI is known it goes back there, else a 400 page."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


# ------------------------------------------------------------------------------------------------ directory


class _Directory:
    """The ministry's people with a `mail`, indexed by byte offset in directory.ldif (an entry is parsed when a
    login needs it: a 200,000-agent directory is never held in memory as objects)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.offsets: list[int] = []
        self.by_mail: dict[str, int] = {}
        if path.exists():
            for offset, entry in _entries(path):
                mail = _first(entry, "mail")
                if mail and "@" in mail and (_first(entry, "sn") or _first(entry, "givenname")):
                    key = mail.lower()
                    if key not in self.by_mail:
                        self.by_mail[key] = offset
                        self.offsets.append(offset)

    def entry(self, offset: int) -> dict[str, list[str]]:
        with self._path.open("rb") as handle:
            handle.seek(offset)
            return next(_parse(handle, offset))[1]


def _entries(path: Path) -> Iterator[tuple[int, dict[str, list[str]]]]:
    with path.open("rb") as handle:
        yield from _parse(handle, 0)


def _parse(handle: Any, start: int) -> Iterator[tuple[int, dict[str, list[str]]]]:
    """(offset, attributes lower-cased → values) per LDIF entry from `start`: folded lines joined, `::` base64."""
    offset, position = start, start
    lines: list[bytes] = []
    for raw in handle:
        line = raw.rstrip(b"\r\n")
        if not line:
            if lines:
                yield offset, _attributes(lines)
                lines = []
            position += len(raw)
            offset = position
            continue
        if line.startswith(b" ") and lines:
            lines[-1] += line[1:]
        elif not line.startswith(b"#"):
            lines.append(line)
        position += len(raw)
    if lines:
        yield offset, _attributes(lines)


def _attributes(lines: list[bytes]) -> dict[str, list[str]]:
    entry: dict[str, list[str]] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        if value.startswith(b":"):
            try:
                text = base64.b64decode(value[1:].strip(), validate=True).decode("utf-8", "replace")
            except binascii.Error:   # the generator plants broken entries; the directory loader quarantines them
                continue
        else:
            text = value.strip().decode("utf-8", "replace")
        entry.setdefault(name.decode("ascii", "replace").lower(), []).append(text)
    return entry


def _first(entry: dict[str, list[str]], *names: str) -> str:
    for name in names:
        values = entry.get(name.lower())
        if values and values[0].strip():
            return values[0].strip()
    return ""


# ------------------------------------------------------------------------------------------------ provider


class ProConnectProvider:
    """The stand-in's state: clients, keys, pending requests, codes, tokens; one lock."""

    def __init__(self, sandbox: Sandbox, options: ProConnectOptions) -> None:
        self.sandbox = sandbox
        self.options = options
        manifest = sandbox.manifest
        self.seed = options.seed if options.seed is not None else int(manifest["generator"]["seed"])
        tenant = manifest.get("tenant", {})
        self.siret = str(tenant.get("siret") or "11004601800013")
        self.organization_label = str(tenant.get("name") or "Ministère (bac à sable)")
        self.idp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"proconnect-idp:{self.seed}"))
        self._lock = threading.Lock()
        self._clients = {client.client_id: client for client in options.clients}
        self._keys: list[tuple[RSAKey, ECKey]] = []
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._next_identity: str | None = None
        self._offset = 0.0
        self._directory: _Directory | None = None
        self.rotate()

    # -- time, clients, keys

    def now(self) -> float:
        return (self.options.clock or time.time)() + self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
            return self._offset

    def register_client(self, client: ProConnectClient) -> None:
        with self._lock:
            self._clients[client.client_id] = client

    def clients(self) -> list[ProConnectClient]:
        with self._lock:
            return list(self._clients.values())

    def client(self, client_id: str | None) -> ProConnectClient | None:
        with self._lock:
            return self._clients.get(client_id or "")

    def rotate(self) -> str:
        """A new generation of signing keys (RSA and EC); the older ones stay published. Returns the new kid."""
        generation = len(self._keys) + 1
        rsa = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{generation}", "use": "sig", "alg": "RS256"})
        ec = ECKey.generate_key("P-256", parameters={"kid": f"ec-{generation}", "use": "sig", "alg": "ES256"})
        with self._lock:
            self._keys.append((rsa, ec))
        return f"rsa-{generation}"

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = [key for pair in self._keys for key in pair]
        return {"keys": [key.as_dict(private=False) for key in keys]}

    def _sign(self, claims: dict[str, Any], alg: str, client: ProConnectClient) -> str:
        with self._lock:
            rsa, ec = self._keys[-1]
        if alg == "HS256":
            return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(client.client_secret))
        key = ec if alg == "ES256" else rsa
        return jwt.encode({"alg": alg, "kid": str(key.kid), "typ": "JWT"}, claims, key)

    def _verify(self, token: str, client: ProConnectClient | None) -> dict[str, Any] | None:
        """The claims of an ID token this provider signed (expired ones too: a logout hint may be old)."""
        with self._lock:
            keys: list[Any] = [key for pair in self._keys for key in pair]
        if client is not None:
            keys.append(OctKey.import_key(client.client_secret))
        try:
            return dict(jwt.decode(token, KeySet(keys), algorithms=["RS256", "ES256", "HS256"]).claims)
        except (JoseError, ValueError):
            return None

    # -- identities

    def _index(self) -> _Directory:
        with self._lock:
            if self._directory is None:
                self._directory = _Directory(self.sandbox.data_dir / "directory.ldif")
            return self._directory

    def sub_for(self, email: str, index: int = 0) -> str:
        """sandbox.meet's formula: Visio's users and ProConnect's identities agree on `sub`."""
        return hashlib.sha256(f"proconnect:{self.seed}:{email.lower()}:{index}".encode()).hexdigest()

    def agent(self, email: str) -> ProConnectAgent | None:
        """The identity ProConnect asserts for `email`: a directory agent, a FIA1 test address, or None."""
        key = email.strip().lower()
        directory = self._index()
        offset = directory.by_mail.get(key)
        if offset is not None:
            return self._agent_of(directory.entry(offset))
        local, _, domain = key.partition("@")
        if domain == FIA1_DOMAIN and local:
            first, _, last = local.partition(".")
            return ProConnectAgent(self.sub_for(key), key, first.title() or "Agent", last.title() or "Test", local,
                                   self.siret, self.idp_id, None, self.organization_label)
        return None

    def _agent_of(self, entry: dict[str, list[str]]) -> ProConnectAgent:
        email = _first(entry, "mail").lower()
        unit = _first(entry, "department", "supannEntiteAffectationPrincipale", "ou") or None
        return ProConnectAgent(self.sub_for(email), email, _first(entry, "givenName") or email.split("@")[0],
                               _first(entry, "sn") or "-", _first(entry, "uid", "sAMAccountName", "employeeNumber")
                               or email.split("@")[0], self.siret, self.idp_id, unit, self.organization_label)

    def agents(self, limit: int = 20, offset: int = 0) -> list[ProConnectAgent]:
        """The directory's agents in directory order (the login page's list)."""
        directory = self._index()
        return [self._agent_of(directory.entry(at)) for at in directory.offsets[offset:offset + limit]]

    def agent_count(self) -> int:
        return len(self._index().offsets)

    def set_next_identity(self, email: str | None) -> None:
        with self._lock:
            self._next_identity = email

    def issued_tokens(self) -> list[dict[str, Any]]:
        """The access tokens given so far (for tests: revocation after a replayed code)."""
        with self._lock:
            return [{"access_token": value, "client_id": t.client_id, "sub": t.agent.sub, "revoked": t.revoked,
                     "expires_at": t.expires_at} for value, t in self._tokens.items()]

    # -- the protocol

    def authorize(self, params: dict[str, str]) -> tuple[str, _Pending]:
        """Check an authorization request; returns (pending id, request). OidcError with `redirect` set once the
        redirect URI is known to be registered."""
        client = self.client(params.get("client_id"))
        if client is None:
            raise OidcError("invalid_client", "client is invalid")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OidcError("invalid_redirect_uri", "redirect_uri did not match any of the client's registered "
                                                    "redirect_uris (Y030031)")
        state = params.get("state")
        try:
            pending = self._checked(client, redirect_uri, params)
        except OidcError as error:
            raise _Redirectable(error, redirect_uri, state) from None
        pending_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[pending_id] = pending
        return pending_id, pending

    def _checked(self, client: ProConnectClient, redirect_uri: str, params: dict[str, str]) -> _Pending:
        strict = self.options.strict
        if params.get("response_type") != "code":
            raise OidcError("unsupported_response_type", "unsupported response_type requested")
        scopes = frozenset(params.get("scope", "").split())
        if "openid" not in scopes:
            raise OidcError("invalid_request", "openid scope must be requested when using the authorization "
                                               "code flow")
        refused = scopes - {"openid", *CLAIM_SCOPES, *client.extra_scopes}
        if refused:
            raise OidcError("invalid_scope", f"requested scope is not allowed: {' '.join(sorted(refused))}")
        state, nonce = params.get("state"), params.get("nonce")
        if strict and (not state or len(state) < MIN_RANDOM):
            raise OidcError("invalid_request", f"state must be at least {MIN_RANDOM} characters")
        if nonce is not None and not 1 <= len(nonce) <= 512:
            raise OidcError("invalid_request", "nonce must be 1 to 512 characters")
        if strict and (not nonce or len(nonce) < MIN_RANDOM):
            raise OidcError("invalid_request", f"nonce must be at least {MIN_RANDOM} characters")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if (method is not None and method != "S256") or (challenge and method is None):
            raise OidcError("invalid_request", "not supported value of code_challenge_method (S256 only)")
        if challenge is not None and not 43 <= len(challenge) <= 128:
            raise OidcError("invalid_request", "code_challenge must be a string with a minimum length of 43 "
                                               "characters")
        want_amr = False
        if "claims" in params:
            try:
                requested = json.loads(params["claims"])
                acr = requested.get("id_token", {}).get("acr") or {}
                want_amr = "amr" in requested.get("id_token", {})
            except (ValueError, AttributeError):
                raise OidcError("invalid_request", "could not parse the claims parameter JSON") from None
            if isinstance(acr, dict) and acr.get("essential"):
                allowed = acr.get("values") or ([acr["value"]] if "value" in acr else [])
                if allowed and ACR not in allowed:
                    raise OidcError("access_denied", "none of the requested ACRs could be obtained (Y020032)")
        if params.get("prompt") == "none":
            raise OidcError("login_required", "End-User authentication is required")
        return _Pending(client, redirect_uri, scopes, state, nonce, challenge, want_amr)

    def take_next_identity(self) -> str | None:
        with self._lock:
            email, self._next_identity = self._next_identity, None
            return email

    def pending(self, pending_id: str) -> _Pending | None:
        with self._lock:
            return self._pending.get(pending_id)

    def log_in(self, pending_id: str, email: str) -> str:
        """The agent chosen for a pending request: the redirect back to the relying party with a fresh code."""
        with self._lock:
            pending = self._pending.pop(pending_id, None)
        if pending is None:
            raise OidcError("invalid_request", "this login request expired or was already used")
        agent = self.agent(email)
        if agent is None:
            with self._lock:
                self._pending[pending_id] = pending
            raise OidcError("unknown_agent", "no agent with this address at this identity provider")
        return self.code_redirect(pending, agent)

    def code_redirect(self, pending: _Pending, agent: ProConnectAgent) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(pending.client.client_id, pending.redirect_uri, pending.nonce,
                                      pending.challenge, pending.scopes, agent, pending.want_amr, self.now())
        return _with_query(pending.redirect_uri, {"code": code, "state": pending.state})

    def token(self, form: dict[str, str], authorization: str | None, issuer: str) -> dict[str, Any]:
        if authorization and authorization.lower().startswith("basic "):
            raise OidcError("invalid_client", "client authentication method client_secret_basic is not allowed "
                                              "for this client (client_secret_post)", 401)
        client = self.client(form.get("client_id"))
        secret = form.get("client_secret", "")
        if client is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise OidcError("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            raise OidcError("unsupported_grant_type", "unsupported grant_type requested")
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is None:
                raise OidcError("invalid_grant", "grant request is invalid")
            if code.used:                       # a replay: the tokens this code gave are revoked
                for token in code.tokens:
                    self._tokens[token].revoked = True
                raise OidcError("invalid_grant", "grant request is invalid (authorization code already consumed)")
            code.used = True
        if self.now() - code.issued_at > self.options.code_ttl_seconds:
            raise OidcError("invalid_grant", "grant request is invalid (authorization code is expired)")
        if code.client_id != client.client_id:
            raise OidcError("invalid_grant", "grant request is invalid (client mismatch)")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OidcError("invalid_grant", "grant request is invalid (redirect_uri mismatch)")
        verifier = form.get("code_verifier")
        if code.challenge is None and verifier is not None:
            raise OidcError("invalid_grant", "grant request is invalid (code_verifier without code_challenge)")
        if code.challenge is not None and (verifier is None or _s256(verifier) != code.challenge):
            raise OidcError("invalid_grant", "grant request is invalid (PKCE verification failed)")
        now = self.now()
        access = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access] = _Token(client.client_id, code.agent, code.scopes, now + TOKEN_SECONDS)
            code.tokens.append(access)
        nonce = code.nonce
        if self.sandbox.broken("proconnect_wrong_nonce"):
            nonce = secrets.token_urlsafe(32)
        claims: dict[str, Any] = {
            "iss": self._issuer(issuer), "aud": client.client_id, "sub": code.agent.sub, "iat": int(now),
            "exp": int(now) + TOKEN_SECONDS, "auth_time": int(code.issued_at), "acr": ACR,
            "sid": str(uuid.uuid4()), "at_hash": _at_hash(access)}
        if nonce is not None:
            claims["nonce"] = nonce
        if code.want_amr:
            claims["amr"] = ["pwd"]
        id_token = self._sign(claims, client.id_token_alg, client)
        if self.sandbox.broken("proconnect_tampered_id_token"):
            id_token = _tampered(id_token)
        return {"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_SECONDS, "id_token": id_token,
                "refresh_token": secrets.token_urlsafe(32), "scope": " ".join(sorted(code.scopes))}

    def userinfo(self, authorization: str | None, issuer: str) -> Response:
        token = (authorization or "")[7:].strip() if (authorization or "").lower().startswith("bearer ") else ""
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found.revoked or found.expires_at < self.now():
            return Response(status_code=401, headers={
                "WWW-Authenticate": 'Bearer realm="proconnect", error="invalid_token", '
                                    'error_description="invalid token provided"'})
        client = self.client(found.client_id)
        assert client is not None
        claims = found.agent.claims(found.scopes)
        if self.sandbox.broken("proconnect_userinfo_other_sub"):
            claims["sub"] = self.sub_for("someone.else@" + FIA1_DOMAIN)
        if client.userinfo_alg is None:
            return JSONResponse(claims)
        now = int(self.now())
        audience = "another-client" if self.sandbox.broken("proconnect_userinfo_wrong_audience") else client.client_id
        body = self._sign({**claims, "iss": self._issuer(issuer), "aud": audience, "iat": now,
                           "exp": int(found.expires_at)}, client.userinfo_alg, client)
        if self.sandbox.broken("proconnect_tampered_userinfo"):
            body = _tampered(body)
        return Response(body, media_type="application/jwt; charset=utf-8")

    def end_session(self, params: dict[str, str]) -> str:
        hint = params.get("id_token_hint")
        client = self.client(params.get("client_id")) if params.get("client_id") else None
        if hint:
            claims = self._verify(hint, client) or self._verify_any_client(hint)
            if claims is None:
                raise OidcError("invalid_request", "could not validate id_token_hint")
            client = self.client(str(claims.get("aud")))
        if client is None:
            raise OidcError("invalid_request", "id_token_hint or client_id is required")
        target = params.get("post_logout_redirect_uri")
        if target is None:
            return ""
        if target not in client.post_logout_redirect_uris:
            raise OidcError("invalid_request", "post_logout_redirect_uri not registered (Y030111)")
        return _with_query(target, {"state": params.get("state")})

    def _verify_any_client(self, token: str) -> dict[str, Any] | None:
        """An HS256 hint: tried with each client's secret (its `aud` is only known once verified)."""
        for client in self.clients():
            claims = self._verify(token, client)
            if claims is not None:
                return claims
        return None

    def _issuer(self, issuer: str) -> str:
        return issuer + "/other" if self.sandbox.broken("proconnect_wrong_issuer") else issuer


class _Redirectable(Exception):
    """An OidcError to send back to a registered redirect URI."""

    def __init__(self, error: OidcError, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.description)
        self.error, self.redirect_uri, self.state = error, redirect_uri, state

    def location(self) -> str:
        return _with_query(self.redirect_uri, {"error": self.error.error,
                                               "error_description": self.error.description, "state": self.state})


def _with_query(url: str, params: dict[str, str | None]) -> str:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _at_hash(access_token: str) -> str:
    """The left half of the access token's SHA-256 (the hash of RS256, ES256 and HS256 alike)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _tampered(compact: str) -> str:
    """The same JWS with one claim changed and the signature kept: what a forger would send."""
    head, payload, signature = compact.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "forged-" + str(claims.get("sub", ""))[:24]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


# ------------------------------------------------------------------------------------------------ HTTP

_PROVIDERS: weakref.WeakKeyDictionary[Sandbox, ProConnectProvider] = weakref.WeakKeyDictionary()


def provider_of(sandbox: Sandbox) -> ProConnectProvider:
    """The ProConnect stand-in of a running sandbox (for tests and the demo in the same process)."""
    return _PROVIDERS[sandbox]


def _issuer_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{PREFIX}{API}"


async def _params(request: Request) -> dict[str, str]:
    if request.method == "POST":
        form = await request.form()
        return {key: str(value) for key, value in form.items()}
    return dict(request.query_params)


def _oauth_error(error: OidcError) -> JSONResponse:
    return JSONResponse({"error": error.error, "error_description": error.description}, status_code=error.status,
                        headers={"Cache-Control": "no-store"})


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{html.escape(title)} — ProConnect (bac à sable)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
button{{margin:.15rem 0;padding:.3rem .6rem}} li{{list-style:none}}</style></head>
<body><header><p><strong>ProConnect</strong> — bac à sable de bascule (fournisseur d'identité de test)</p></header>
<main><h1>{html.escape(title)}</h1>{body}</main></body></html>""", status_code=status)


def _login_page(provider: ProConnectProvider, pending_id: str, page: int, problem: str = "") -> HTMLResponse:
    size = provider.options.agents_on_page
    agents = provider.agents(limit=size, offset=page * size)
    total = provider.agent_count()
    hidden = f'<input type="hidden" name="pending" value="{html.escape(pending_id)}">'
    buttons = "".join(
        f'<li><button type="submit" name="email" value="{html.escape(a.email)}" data-email="{html.escape(a.email)}">'
        f'{html.escape(a.given_name)} {html.escape(a.usual_name)} — {html.escape(a.email)}</button></li>'
        for a in agents)
    action = f"{PREFIX}{API}/interaction/{pending_id}/login"
    pages = []
    if page > 0:
        pages.append(f'<a href="{PREFIX}{API}/interaction/{pending_id}?page={page - 1}">Page précédente</a>')
    if (page + 1) * size < total:
        pages.append(f'<a href="{PREFIX}{API}/interaction/{pending_id}?page={page + 1}" id="next-page">'
                     'Page suivante</a>')
    alert = f'<p role="alert" id="problem">{html.escape(problem)}</p>' if problem else ""
    return _page("Choisir un agent", f"""{alert}
<p>Agents de l'annuaire du ministère ({total}), page {page + 1} :</p>
<form id="agents" method="post" action="{action}">{hidden}<ul>{buttons}</ul></form>
<nav aria-label="Pages">{' '.join(pages)}</nav>
<h2>Autre adresse</h2>
<form id="free" method="post" action="{action}">{hidden}
<label for="free-email">Adresse e-mail professionnelle (annuaire, ou …@{FIA1_DOMAIN})</label>
<input id="free-email" name="email" type="email" required>
<button type="submit" id="free-login-submit">Se connecter</button></form>""",
                 400 if problem else 200)


def mount(sandbox: Sandbox, options: ProConnectOptions | None = None) -> SystemMount:
    """The ProConnect stand-in under /proconnect, its control routes under /_sandbox/proconnect."""
    provider = ProConnectProvider(sandbox, options or ProConnectOptions())
    _PROVIDERS[sandbox] = provider

    async def discovery(request: Request) -> Response:
        issuer = _issuer_of(request)
        return JSONResponse({
            "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
            "userinfo_endpoint": f"{issuer}/userinfo", "end_session_endpoint": f"{issuer}/session/end",
            "jwks_uri": f"{issuer}/jwks", "introspection_endpoint": f"{issuer}/token/introspection",
            "revocation_endpoint": f"{issuer}/token/revocation",
            "scopes_supported": ["openid", *CLAIM_SCOPES, *GRANTED_SCOPES],
            "response_types_supported": ["code"], "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"], "acr_values_supported": list(ACR_VALUES),
            "claims_parameter_supported": True, "request_parameter_supported": False,
            "id_token_signing_alg_values_supported": ["HS256", "ES256", "RS256"],
            "userinfo_signing_alg_values_supported": ["HS256", "ES256", "RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"], "prompt_values_supported": ["none", "login", "consent"],
            "end_session_endpoint_methods": ["GET"], "frontchannel_logout_supported": False,
            "backchannel_logout_supported": False,
            "claims_supported": ["sub", "given_name", "usual_name", "email", "uid", "siret", "idp_id", "idp_acr",
                                 "roles", "organization_label", "organizational_unit", "acr", "amr", "auth_time",
                                 "nonce", "sid", "at_hash", "iss", "aud", "exp", "iat"]})

    async def authorize(request: Request) -> Response:
        params = await _params(request)
        try:
            pending_id, _pending = provider.authorize(params)
        except _Redirectable as error:
            return RedirectResponse(error.location(), status_code=303)
        except OidcError as error:
            return _page("Erreur", f'<p role="alert" id="problem">{html.escape(error.error)} : '
                                   f'{html.escape(error.description)}</p>', 400)
        email = provider.take_next_identity()
        if email is not None:
            agent = provider.agent(email)
            if agent is not None:
                return RedirectResponse(provider.log_in(pending_id, email), status_code=303)
        return RedirectResponse(f"{PREFIX}{API}/interaction/{pending_id}", status_code=303)

    async def interaction(request: Request) -> Response:
        pending_id = request.path_params["pending"]
        if provider.pending(pending_id) is None:
            return _page("Erreur", '<p role="alert" id="problem">Cette demande de connexion a expiré.</p>', 400)
        try:
            page = max(0, int(request.query_params.get("page", "0")))
        except ValueError:
            page = 0
        return _login_page(provider, pending_id, page)

    async def login(request: Request) -> Response:
        form = await request.form()
        pending_id = request.path_params["pending"]
        try:
            target = provider.log_in(pending_id, str(form.get("email", "")))
        except OidcError as error:
            if provider.pending(pending_id) is None:
                return _page("Erreur", f'<p role="alert" id="problem">{html.escape(error.description)}</p>', 400)
            return _login_page(provider, pending_id, 0, error.description)
        return RedirectResponse(target, status_code=303)

    async def token(request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error(OidcError("invalid_request", "only application/x-www-form-urlencoded content-type "
                                                             "bodies are supported on POST /token"))
        form = {key: str(value) for key, value in (await request.form()).items()}
        try:
            answer = provider.token(form, request.headers.get("authorization"), _issuer_of(request))
        except OidcError as error:
            return _oauth_error(error)
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def userinfo(request: Request) -> Response:
        return provider.userinfo(request.headers.get("authorization"), _issuer_of(request))

    async def jwks(_request: Request) -> Response:
        return JSONResponse(provider.jwks(), media_type="application/jwk-set+json")

    async def end_session(request: Request) -> Response:
        try:
            target = provider.end_session(await _params(request))
        except OidcError as error:
            return _page("Erreur", f'<p role="alert" id="problem">{html.escape(error.description)}</p>', 400)
        if not target:
            return _page("Déconnexion", "<p>Vous êtes déconnecté de ProConnect.</p>")
        return RedirectResponse(target, status_code=303)

    api = f"{API}"
    app = Starlette(routes=[
        Route(f"{api}/.well-known/openid-configuration", discovery),
        Route(f"{api}/authorize", authorize, methods=["GET", "POST"]),
        Route(f"{api}/interaction/{{pending}}", interaction),
        Route(f"{api}/interaction/{{pending}}/login", login, methods=["POST"]),
        Route(f"{api}/token", token, methods=["POST"]),
        Route(f"{api}/userinfo", userinfo, methods=["GET", "POST"]),
        Route(f"{api}/jwks", jwks),
        Route(f"{api}/session/end", end_session, methods=["GET", "POST"]),
    ])
    return SystemMount(name="proconnect", prefix=PREFIX, app=app,
                       throttled=lambda _seconds: JSONResponse({"error": "server_error"}, status_code=429),
                       server_error=lambda: JSONResponse({"error": "server_error"}, status_code=500),
                       fault_exempt=lambda _path: True, root_routes=_control_routes(provider))


def _control_routes(provider: ProConnectProvider) -> list[Route]:
    async def clients(request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            client = ProConnectClient(
                str(body["client_id"]), str(body["client_secret"]), tuple(body.get("redirect_uris", ())),
                tuple(body.get("post_logout_redirect_uris", ())), str(body.get("id_token_alg", "RS256")),
                body.get("userinfo_alg", "RS256"), tuple(body.get("extra_scopes", ())))
            provider.register_client(client)
            return JSONResponse({"client_id": client.client_id}, status_code=201)
        return JSONResponse({"clients": [{**dataclasses.asdict(client), "client_secret": "***"}
                                         for client in provider.clients()]})

    async def next_identity(request: Request) -> Response:
        email = (await request.json()).get("email")
        if email is not None and provider.agent(str(email)) is None:
            return JSONResponse({"error": "unknown agent"}, status_code=404)
        provider.set_next_identity(None if email is None else str(email))
        return JSONResponse({"next_identity": email})

    async def keys(_request: Request) -> Response:
        return JSONResponse({"kid": provider.rotate()}, status_code=201)

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            provider.advance(float((await request.json()).get("advance_seconds", 0)))
        return JSONResponse({"now": provider.now()})

    async def agents(request: Request) -> Response:
        limit = min(int(request.query_params.get("limit", "20")), 1000)
        offset = int(request.query_params.get("offset", "0"))
        return JSONResponse({"total": provider.agent_count(), "agents": [
            {"email": a.email, "sub": a.sub, "given_name": a.given_name, "usual_name": a.usual_name}
            for a in provider.agents(limit, offset)]})

    return [Route(f"{CONTROL}/clients", clients, methods=["GET", "POST"]),
            Route(f"{CONTROL}/next-identity", next_identity, methods=["POST"]),
            Route(f"{CONTROL}/keys", keys, methods=["POST"]),
            Route(f"{CONTROL}/clock", clock, methods=["GET", "POST"]),
            Route(f"{CONTROL}/agents", agents)]

