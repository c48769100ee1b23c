"""Sandbox Visio: La Suite Meet's External API under /meet/external-api/v1.0/, as shared/contracts/visio-meet.md says.

Section 8 of the contract is the checklist, and the sandbox refuses what the strictest supported version refuses:

- `POST …/application/token/` with a JSON body; by default as release v1.27.0 (`MeetOptions.version`): JSON and
  multipart accepted, a form body 415 `Unsupported media type "application/x-www-form-urlencoded" in request.`;
  `version="main"` accepts form and JSON and refuses multipart (415) as main after the tag does. The checks of
  section 2 in Meet's order (applications disabled first: the feature flag wraps the view), each with its observed
  status and body, 401s with `WWW-Authenticate: Session`; an HS256 JWT with the documented claims, living
  `token_lifetime_seconds` (3600). An empty body is `{}` and a body without a Content-Type is 415 (DRF's parsing).
- Applications and their allowed domains (exact, case-insensitive; no row = any domain). By default one
  application, SANDBOX_CLIENT_ID / SANDBOX_CLIENT_SECRET, allowed for the ministry's domains only
  (`manifest.tenant.domains`): not the legacy alias domain nor the unrouted one, since ProConnect asserts primary
  addresses and a token for an alias would own rooms nobody logs in to.
- Users: the directory's addresses (`directory.ldif`, `mail`), a deterministic share of them (`logged_in_share`, by
  a hash of seed and address) having logged in before (`sub` set); an address several entries share gives several
  users, so the generator's VISIO_EMAIL_COLLISION cases answer 400 when picked. Unknown addresses do not exist
  until pre-created (the three switches of section 1, all needed) or until a simulated first login (section 5).
- Rooms: JSON bodies only (a form or multipart body 415, every version); create (random 3-4-3 names, `name`
  ignored, access level, `configuration` validated by a pydantic model that forbids extra keys — its errors are
  pydantic error objects `{"type", "loc", "msg", "input", "url"}`, lax on types as observed (`"yes"` is a boolean,
  stored verbatim), `null` refused "This field may not be null." —, `url` from a base URL, a telephony block with a
  unique PIN; the 201 carries `Location`: the room's `url`, as DRF's CreateModelMixin does, so none without a base
  URL), list (rooms where the user has a role, by name, pages of 20 with `page`, `page=last` too), retrieve by UUID
  matched case-insensitively (any form `uuid.UUID` reads, answered in canonical form; 403 across users, a slug gives
  404); PUT/PATCH/DELETE 405 after authentication, as DRF does.
- Django's APPEND_SLASH: a path without its trailing slash gets 301 to the slashed path (query kept), except
  POST/PUT/PATCH with DEBUG on (`MeetOptions.debug`, the default), which get Django's 500 page.
- Every answer of Meet's DRF views carries `Allow` (the view's methods, 401/403/404/415 included); Django's own
  pages (the unknown-path 404, APPEND_SLASH, the SuspiciousOperation 400) do not.
- 401/403 bodies as observed or as the code raises them; no rate limit (none is documented).
- Room ids, slugs, PINs and the ids of users created at runtime are random, as Meet's uuid4 ids and random slugs
  are: a sandbox restarted on the same ministry never hands out an id or a slug it gave before (bascule keeps the
  rooms it recorded; a repeated id would be another room under a known name). Directory users keep ids derived
  from the seed, so that a restart finds the same users.
- Deliberate bugs for the listing bound (`SandboxConfig.broken`): `repeat_page_token` (page 2 and later hand out
  their own URL as `next`) and `endless_pages` (a `next` on every page, pages past the end repeat the last one);
  and for a Meet that repeats itself: `reuse_room_id:<uuid>` and `reuse_room_slug:<slug>` (the next room created
  takes that id or slug, once).

Sandbox-only routes, outside Meet's namespace and never faulted: `GET /_sandbox/meet/rooms` (every room with its
owner's e-mail and user id), `GET|POST /_sandbox/meet/users` (inspect; seed a user, e.g. a duplicate e-mail),
`POST /_sandbox/meet/login` (a first ProConnect login, section 5), `GET|POST /_sandbox/meet/settings` (the
switches at runtime). In-process tests reach the same through `state_of(sandbox)`.

State lives in memory under one lock: rooms created in a run are few, users are loaded from the directory on the
first request that needs them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import random
import re
import string
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import Sandbox, SystemMount

PREFIX = "/meet"
API = "/external-api/v1.0"
TOKEN_PATH = f"{API}/application/token/"
ROOMS_PATH = f"{API}/rooms/"
INSPECTION = "/_sandbox/meet"
PAGE_SIZE = 20
JWT_ISSUER = "lasuite-meet"
APPLICATION_SCOPES = ("rooms:create", "rooms:list", "rooms:retrieve")
ACCESS_LEVELS = ("public", "trusted", "restricted")
VERSIONS = ("v1.27.0", "main")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# What each version's token view parses (the rooms endpoints parse JSON only, in every version).
TOKEN_MEDIA = {"v1.27.0": (JSON, MULTIPART), "main": (JSON, FORM)}
# The Allow header of each DRF view (its methods, HEAD added to GET, OPTIONS always).
ALLOW_TOKEN = "POST, OPTIONS"  # noqa: S105 — a method list, not a secret
ALLOW_ROOMS = "GET, POST, HEAD, OPTIONS"
ALLOW_ROOM = "GET, HEAD, OPTIONS"

# The default application (40-character id, 128-character secret, like Meet's); published on purpose.
SANDBOX_CLIENT_ID = "bascule-sandbox-visio-application-000001"
SANDBOX_CLIENT_SECRET = ("sandbox-visio-secret-" + "0123456789abcdef" * 7)[:128]
SANDBOX_JWT_SECRET = "sandbox-visio-jwt-signing-key"  # noqa: S105
SANDBOX_JWT_AUDIENCE = "visio-sandbox-external-api"

_ROOM_ID = re.compile(r"^[^/]+$")
# Django's EmailValidator, simplified: dot-atom local part, LDH labels, an alphabetic or punycode TLD.
_EMAIL = re.compile(r"^[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*"
                    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))$")
_MAX_EMAIL = 320


@dataclass(frozen=True, slots=True)
class MeetApplication:
    """An Application row and its ApplicationDomain rows (None: the ministry's domains; (): any domain)."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = APPLICATION_SCOPES
    active: bool = True
    domains: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class MeetOptions:
    """The instance settings of section 1 and the sandbox's own knobs; tests build the mount with these."""

    applications: tuple[MeetApplication, ...] | None = None  # None: one application (SANDBOX_CLIENT_ID) only
    applications_enabled: bool = True          # APPLICATION_ENABLED
    jwt_secret: str = field(default=SANDBOX_JWT_SECRET, repr=False)
    jwt_audience: str = SANDBOX_JWT_AUDIENCE   # APPLICATION_JWT_AUDIENCE
    token_lifetime_seconds: int = 3600         # APPLICATION_JWT_EXPIRATION_SECONDS
    base_url: str | None = "{origin}/visio"    # APPLICATION_BASE_URL; {origin}: the request's; None: no `url`
    default_access_level: str = "trusted"      # EXTERNAL_API_DEFAULT_ACCESS_LEVEL
    allow_public: bool = False                 # EXTERNAL_API_ALLOW_PUBLIC_ACCESS
    telephony: bool = True                     # ROOM_TELEPHONY_ENABLED
    telephony_phone_number: str = "+33100000000"
    telephony_country: str = "FR"              # ROOM_TELEPHONY_DEFAULT_COUNTRY (Meet's default is US)
    pin_length: int = 10                       # ROOM_TELEPHONY_PIN_LENGTH
    allow_user_creation: bool = False          # APPLICATION_ALLOW_USER_CREATION
    fallback_to_email: bool = False            # OIDC_FALLBACK_TO_EMAIL_FOR_IDENTIFICATION
    sub_immutable: bool = True                 # OIDC_USER_SUB_FIELD_IMMUTABLE
    create_user_on_login: bool = True          # OIDC_CREATE_USER
    logged_in_share: float = 0.6               # directory addresses whose owner logged in to Visio before
    duplicate_emails: tuple[str, ...] = ()     # one more user (logged in, own sub) for each of these addresses
    debug: bool = True                         # DEBUG: Django's debug pages (SuspiciousOperation, POST without slash)
    version: str = "v1.27.0"                   # "v1.27.0": form bodies refused on the token endpoint; "main": multipart
    inactive_users: tuple[str, ...] = ()       # these addresses' users are deactivated (a logged-in one if none)
    seed: int | None = None                    # None: the ministry's seed

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {', '.join(VERSIONS)}")

    @property
    def precreates_users(self) -> bool:
        """All three switches are needed to pre-create a host who never logged in (section 1)."""
        return self.allow_user_creation and self.fallback_to_email and not self.sub_immutable


# Switches POST /_sandbox/meet/settings may change at runtime, with their types.
RUNTIME_SETTINGS: dict[str, type] = {
    "applications_enabled": bool, "allow_public": bool, "telephony": bool, "allow_user_creation": bool,
    "fallback_to_email": bool, "sub_immutable": bool, "create_user_on_login": bool, "debug": bool,
    "default_access_level": str, "token_lifetime_seconds": int, "version": str}


@dataclass(slots=True)
class MeetUser:
    """A row of Meet's user table (sub NULL: a provisional user created for an application)."""

    id: str
    email: str
    sub: str | None
    origin: str                      # "directory", "provisional", "login", "seeded"
    full_name: str | None = None
    short_name: str | None = None
    is_active: bool = True


@dataclass(slots=True)
class MeetRoom:
    """A room and its accesses (user id → role)."""

    id: str
    slug: str
    access_level: str
    configuration: dict[str, Any]
    pin_code: str | None
    accesses: dict[str, str]
    created_at: datetime
    client_id: str


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """What a first ProConnect login did (section 5): the user it landed on, or why it was refused."""

    user_id: str | None
    created: bool = False
    claimed_provisional: bool = False
    refused: str | None = None


_STATES: weakref.WeakKeyDictionary[Sandbox, MeetState] = weakref.WeakKeyDictionary()


def mount(sandbox: Sandbox, options: MeetOptions | None = None) -> SystemMount:
    """The Meet stand-in, mounted under /meet, with its inspection routes under /_sandbox/meet."""
    state = MeetState(sandbox, options or MeetOptions())
    _STATES[sandbox] = state
    api = _MeetApi(state)
    return SystemMount(name="meet", prefix=PREFIX, app=api.app(), throttled=_throttled, server_error=_server_error,
                       root_routes=api.inspection_routes())


def state_of(sandbox: Sandbox) -> MeetState:
    """The Meet state of a running sandbox (for tests and simulations in the same process)."""
    return _STATES[sandbox]


# ----------------------------------------------------------------------------------------------- responses

def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


def _detail(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """DRF's error body: `{"detail": "…"}`."""
    return _json({"detail": message}, status, headers)


def _unauthorized(message: str) -> Response:
    # DRF sends the first authenticator's header (ApplicationJWTAuthentication: "Bearer").
    return _detail(401, message, {"WWW-Authenticate": "Bearer"})


def _token_unauthorized(message: str) -> Response:
    # The token view keeps DRF's default authenticators: the first one is SessionAuthentication [OBS].
    return _detail(401, message, {"WWW-Authenticate": "Session"})


def _not_allowed(method: str, allow: str) -> Response:
    return _detail(405, f'Method "{method}" not allowed.', {"Allow": allow})


def _throttled(retry_after: int) -> Response:
    # DRF's throttled body; Meet documents no throttling, so this shape is unconfirmed (injected faults only).
    seconds = max(1, int(retry_after))
    unit = "second" if seconds == 1 else "seconds"
    return _detail(429, f"Request was throttled. Expected available in {seconds} {unit}.",
                   {"Retry-After": str(seconds)})


def _server_error() -> Response:
    # Unconfirmed: Django's own 500 is an HTML page; a JSON body keeps the fault visible to tests.
    return _detail(500, "A server error occurred.")


def _suspicious(path: str, message: str, *, debug: bool) -> Response:
    """Django's answer to a SuspiciousOperation: 400 with its debug page (DEBUG) or its plain 400 page."""
    if not debug:
        return Response("<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n"
                        "<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n", status_code=400,
                        media_type="text/html; charset=utf-8")
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <title>SuspiciousOperation at {path}</title>\n</head>\n"
            f"<body>\n<div id=\"summary\">\n  <h1>SuspiciousOperation at {path}</h1>\n"
            f"  <pre class=\"exception_value\">{message}</pre>\n</div>\n</body>\n</html>\n")
    return Response(page, status_code=400, media_type="text/html; charset=utf-8")


def _django_not_found() -> Response:
    return Response("<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n"
                    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n"
                    "</html>\n", status_code=404, media_type="text/html; charset=utf-8")


# ----------------------------------------------------------------------------------------------- JWT (HS256)

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(payload: Mapping[str, object], secret: str) -> str:
    """An HS256 JWT (what APPLICATION_JWT_ALG defaults to)."""
    signing = f"{_b64url(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{_b64url(orjson.dumps(payload))}"
    signature = hmac.new(secret.encode(), signing.encode("ascii"), hashlib.sha256).digest()
    return f"{signing}.{_b64url(signature)}"


class _TokenExpired(Exception):
    pass


class _TokenInvalid(Exception):
    pass


def _decode_jwt(token: str, *, secret: str, audience: str, now: float) -> dict[str, Any] | None:
    """The payload; None when it is not a token of ours (Meet then defers to the resource-server backend)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = orjson.loads(_unb64url(parts[0]))
        payload = orjson.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return None
    exp = payload.get("exp")
    if not isinstance(exp, int | float):
        return None
    if exp <= now:  # PyJWT: expired when exp <= now (no leeway)
        raise _TokenExpired
    if payload.get("aud") != audience or payload.get("iss") != JWT_ISSUER:
        raise _TokenInvalid
    return payload


# ----------------------------------------------------------------------------------------------- directory

def directory_mails(path: Path) -> Iterator[str]:
    """The `mail` values of an LDIF export, one per entry that has one (folded lines and base64 handled)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        current = b""
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b" "):
                current += line[1:]
                continue
            if current:
                mail = _mail_value(current)
                if mail is not None:
                    yield mail
            current = line
        if current:
            mail = _mail_value(current)
            if mail is not None:
                yield mail


def _mail_value(line: bytes) -> str | None:
    name, sep, value = line.partition(b":")
    if not sep or name.lower() != b"mail":
        return None
    try:
        if value.startswith(b":"):
            return base64.b64decode(value[1:].strip(), validate=True).decode("utf-8").strip() or None
        if value.startswith(b"<"):
            return None
        return value.strip().decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# ----------------------------------------------------------------------------------------------- state

class MeetState:
    """Applications, users and rooms of the Meet stand-in, behind one lock; the hooks tests and flows call."""

    def __init__(self, sandbox: Sandbox, options: MeetOptions) -> None:
        self.sandbox = sandbox
        self._options = options
        self._lock = threading.RLock()
        self.seed = options.seed if options.seed is not None else int(sandbox.manifest["generator"]["seed"])
        self.ministry_domains = tuple(str(domain).lower() for domain in sandbox.manifest["tenant"]["domains"])
        applications = options.applications or (MeetApplication(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),)
        self._applications = {app.client_id: app for app in applications}
        self._users: dict[str, MeetUser] = {}
        self._by_email: dict[str, list[str]] = {}
        self._by_sub: dict[str, str] = {}
        self._loaded = False
        self._rooms: dict[str, MeetRoom] = {}
        self._slugs: set[str] = set()
        self._pins: set[str] = set()
        self._races: dict[str, int] = {}
        self._clock_offset = timedelta(0)
        # Not seeded: a restart on the same ministry must not repeat a room id or slug it handed out before.
        self._random = random.SystemRandom()

    # ------------------------------------------------------------------------------------------ settings

    @property
    def options(self) -> MeetOptions:
        return self._options

    def configure(self, **changes: Any) -> MeetOptions:
        """Change instance switches at runtime (e.g. pre-creation on); returns the new options."""
        with self._lock:
            self._options = dataclasses.replace(self._options, **changes)
            return self._options

    def now(self) -> datetime:
        """The instance clock: the sandbox's, plus any advance a test asked for."""
        return self.sandbox.now() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move Meet's clock forward (tokens expire without the test sleeping)."""
        with self._lock:
            self._clock_offset += timedelta(seconds=seconds)

    def application(self, client_id: str) -> MeetApplication | None:
        return self._applications.get(client_id)

    def set_application(self, client_id: str, *, active: bool | None = None, domains: tuple[str, ...] | None = None,
                        scopes: tuple[str, ...] | None = None) -> MeetApplication:
        """Deactivate an application, change its domains or scopes (None leaves a value as it is); the old row."""
        with self._lock:
            app = self._applications[client_id]
            self._applications[client_id] = dataclasses.replace(
                app, active=app.active if active is None else active,
                domains=app.domains if domains is None else domains, scopes=app.scopes if scopes is None else scopes)
            return app

    def restore_application(self, app: MeetApplication) -> None:
        """Put an application row back as it was."""
        with self._lock:
            self._applications[app.client_id] = app

    def allowed_domains(self, app: MeetApplication) -> tuple[str, ...]:
        return self.ministry_domains if app.domains is None else tuple(d.lower() for d in app.domains)

    def can_delegate(self, app: MeetApplication, email: str) -> bool:
        """Application.can_delegate_email: no domain row means any domain; else an exact, case-insensitive match."""
        domains = self.allowed_domains(app)
        return not domains or email.rpartition("@")[2].lower() in domains

    # ------------------------------------------------------------------------------------------ users

    def _load(self) -> None:
        """Users from the directory, on first need: each picked address becomes one user per entry carrying it."""
        if self._loaded:
            return
        self._loaded = True
        share = self._options.logged_in_share
        occurrences: dict[str, int] = {}
        for mail in directory_mails(self.sandbox.data_dir / "directory.ldif"):
            key = mail.lower()
            if not _EMAIL.match(mail) or _fraction(self.seed, "logged-in", key) >= share:
                continue
            index = occurrences.get(key, 0)
            occurrences[key] = index + 1
            self._insert(MeetUser(id=self._user_id("directory", key, index), email=mail,
                                  sub=self.sub_for(key, index), origin="directory"))
        for mail in self._options.duplicate_emails:
            key = mail.lower()
            index = occurrences.get(key, 0) + 1
            occurrences[key] = index
            self._insert(MeetUser(id=self._user_id("duplicate", key, index), email=mail,
                                  sub=self.sub_for(key, index), origin="seeded"))
        for mail in self._options.inactive_users:
            key = mail.lower()
            if key not in self._by_email:
                self._insert(MeetUser(id=self._user_id("inactive", key), email=mail, sub=self.sub_for(key),
                                      origin="seeded"))
            for user_id in self._by_email[key]:
                self._users[user_id].is_active = False

    def _user_id(self, *parts: object) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join(["meet", str(self.seed), *map(str, parts)])))

    def sub_for(self, email: str, index: int = 0) -> str:
        """The ProConnect `sub` the sandbox gives a directory person (index: which entry sharing the address)."""
        return hashlib.sha256(f"proconnect:{self.seed}:{email.lower()}:{index}".encode()).hexdigest()

    def _insert(self, user: MeetUser) -> None:
        self._users[user.id] = user
        self._by_email.setdefault(user.email.lower(), []).append(user.id)
        if user.sub is not None:
            self._by_sub[user.sub] = user.id

    def _reindex_email(self, user: MeetUser, new_email: str) -> None:
        ids = self._by_email.get(user.email.lower(), [])
        if user.id in ids:
            ids.remove(user.id)
        user.email = new_email
        self._by_email.setdefault(new_email.lower(), []).append(user.id)

    def users_with_email(self, email: str) -> list[MeetUser]:
        """Users whose e-mail matches case-insensitively (Meet's `email__iexact`); copies."""
        with self._lock:
            self._load()
            return [dataclasses.replace(self._users[i]) for i in self._by_email.get(email.lower(), [])]

    def user(self, user_id: str) -> MeetUser | None:
        with self._lock:
            self._load()
            found = self._users.get(user_id)
            return dataclasses.replace(found) if found else None

    def users(self) -> list[MeetUser]:
        with self._lock:
            self._load()
            return [dataclasses.replace(user) for user in self._users.values()]

    def add_user(self, email: str, *, sub: str | None = None, full_name: str | None = None) -> MeetUser:
        """Seed a user as it is, duplicates included (sub None: a provisional row)."""
        with self._lock:
            self._load()
            user = MeetUser(id=self._user_id("seeded", email.lower(), len(self._users)), email=email, sub=sub,
                            origin="seeded", full_name=full_name)
            self._insert(user)
            return dataclasses.replace(user)

    def set_user_active(self, user_id: str, active: bool) -> None:
        with self._lock:
            self._load()
            self._users[user_id].is_active = active

    def simulate_creation_race(self, email: str, times: int = 1) -> None:
        """The next `times` pre-creations for this address lose a race (409)."""
        with self._lock:
            self._races[email.lower()] = times

    def token_user(self, email: str) -> MeetUser | str:
        """The user a token for `email` acts for, created provisionally when allowed; else why not (a code)."""
        with self._lock:
            self._load()
            ids = self._by_email.get(email.lower(), [])
            if len(ids) > 1:
                return "duplicate"
            if ids:
                return dataclasses.replace(self._users[ids[0]])
            if not self._options.precreates_users:
                return "not_found"
            pending = self._races.get(email.lower(), 0)
            if pending:
                self._races[email.lower()] = pending - 1
                return "race"
            user = MeetUser(id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)), email=email, sub=None,
                            origin="provisional")
            self._insert(user)
            self.sandbox.count("meet:users:provisional")
            return dataclasses.replace(user)

    def first_login(self, email: str, *, sub: str | None = None, given_name: str | None = None,
                    usual_name: str | None = None) -> LoginOutcome:
        """A first ProConnect login, as django-lasuite handles it (section 5 of the contract).

        By `sub`; else, with the e-mail fallback on, by e-mail (several → refused; a NULL `sub` is filled, another
        one replaced only when `sub` is mutable); else a new user when OIDC_CREATE_USER. `sub` defaults to the one
        the sandbox gives this address.
        """
        sub = sub or self.sub_for(email)
        full_name = " ".join(part for part in (given_name, usual_name) if part) or None
        with self._lock:
            self._load()
            options = self._options
            user_id = self._by_sub.get(sub)
            claimed = False
            if user_id is None and options.fallback_to_email:
                ids = self._by_email.get(email.lower(), [])
                if len(ids) > 1:
                    return LoginOutcome(None, refused="Multiple user accounts share a common email.")
                if ids:
                    user_id = ids[0]
                    found = self._users[user_id]
                    if found.sub is None or not options.sub_immutable:
                        claimed = found.sub is None
                        if found.sub is not None:
                            self._by_sub.pop(found.sub, None)
                        found.sub = sub
                        self._by_sub[sub] = found.id
            if user_id is None:
                if not options.create_user_on_login:
                    return LoginOutcome(None, refused="User creation is disabled.")
                user = MeetUser(id=str(uuid.UUID(int=self._random.getrandbits(128), version=4)), email=email,
                                sub=sub, origin="login", full_name=full_name, short_name=given_name)
                self._insert(user)
                self.sandbox.count("meet:users:created_at_login")
                return LoginOutcome(user.id, created=True)
            user = self._users[user_id]
            if user.email != email:
                self._reindex_email(user, email)
            if full_name:
                user.full_name, user.short_name = full_name, given_name
            return LoginOutcome(user.id, claimed_provisional=claimed)

    # ------------------------------------------------------------------------------------------ rooms

    def create_room(self, owner: MeetUser, *, client_id: str, access_level: str,
                    configuration: dict[str, Any]) -> MeetRoom:
        with self._lock:
            slug = self._reused("reuse_room_slug") or self._slug()
            pin = self._pin() if self._options.telephony else None
            reused = self._reused("reuse_room_id")
            room_id = str(uuid.UUID(reused) if reused else uuid.UUID(int=self._random.getrandbits(128), version=4))
            room = MeetRoom(id=room_id, slug=slug,
                            access_level=access_level, configuration=configuration, pin_code=pin,
                            accesses={owner.id: "owner"}, created_at=self.now(), client_id=client_id)
            self._rooms[room.id] = room
            self.sandbox.count("meet:rooms:created")
            return room

    def _reused(self, bug: str) -> str | None:
        """The value a `bug:<value>` deliberate bug hands out once (a Meet repeating an id or a slug), if on."""
        for entry in sorted(self.sandbox.bugs_snapshot()):
            name, _, value = entry.partition(":")
            if name == bug and value:
                self.sandbox.set_bugs(remove=[entry])
                self._slugs.add(value)
                return value
        return None

    def _slug(self) -> str:
        letters = string.ascii_lowercase
        while True:
            slug = "-".join("".join(self._random.choice(letters) for _ in range(size)) for size in (3, 4, 3))
            if slug not in self._slugs:
                self._slugs.add(slug)
                return slug

    def _pin(self) -> str:
        while True:
            pin = "".join(self._random.choice(string.digits) for _ in range(self._options.pin_length))
            if pin not in self._pins:
                self._pins.add(pin)
                return pin

    def room(self, room_id: str) -> MeetRoom | None:
        """A room by its id, in any form `uuid.UUID` reads (Django's UUIDField: case does not matter)."""
        try:
            key = str(uuid.UUID(room_id))
        except ValueError:
            return None
        with self._lock:
            return self._rooms.get(key)

    def rooms_of(self, user_id: str) -> list[MeetRoom]:
        """Rooms where the user has any role, ordered by name (the slug)."""
        with self._lock:
            return sorted((room for room in self._rooms.values() if user_id in room.accesses),
                          key=lambda room: room.slug)

    def rooms(self) -> list[MeetRoom]:
        """Every room, in creation order."""
        with self._lock:
            return list(self._rooms.values())


# ----------------------------------------------------------------------------------------------- the API

Handler = Callable[[Request], Awaitable[Response]]


class _MeetApi:
    """Routes of the Meet stand-in over one MeetState."""

    def __init__(self, state: MeetState) -> None:
        self.state = state
        self.sandbox = state.sandbox

    def app(self) -> Starlette:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self.dispatch, methods=methods)])

    def inspection_routes(self) -> list[Route]:
        return [Route(f"{INSPECTION}/rooms", self.inspect_rooms, methods=["GET"]),
                Route(f"{INSPECTION}/users", self.inspect_users, methods=["GET", "POST"]),
                Route(f"{INSPECTION}/login", self.simulate_login, methods=["POST"]),
                Route(f"{INSPECTION}/settings", self.settings, methods=["GET", "POST"])]

    # ------------------------------------------------------------------------------------------ routing

    async def dispatch(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except ClientDisconnect:
            # The client went away before its body was read: nothing was done, nobody listens.
            self.sandbox.count("meet:client_disconnected")
            return Response(b"", status_code=499)

    async def _route(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        method = request.method
        if path == TOKEN_PATH:
            return _allow(await self.token(request) if method == "POST" else _not_allowed(method, ALLOW_TOKEN),
                          ALLOW_TOKEN)
        if path == ROOMS_PATH:
            return _allow(await self._rooms_list_route(request), ALLOW_ROOMS)
        if path.startswith(ROOMS_PATH) and path.endswith("/") and _ROOM_ID.match(path[len(ROOMS_PATH):-1]):
            return _allow(await self._room_detail_route(request, path[len(ROOMS_PATH):-1]), ALLOW_ROOM)
        if not path.endswith("/") and (path + "/" == TOKEN_PATH or path + "/" == ROOMS_PATH
                                       or (path.startswith(ROOMS_PATH) and _ROOM_ID.match(path[len(ROOMS_PATH):]))):
            return self._append_slash(request)
        return _django_not_found()

    def _append_slash(self, request: Request) -> Response:
        """Django's APPEND_SLASH: a permanent redirect, but an error page for POST/PUT/PATCH in DEBUG.

        Without DEBUG (production) a POST is redirected too, and a client that follows the 301 re-sends it as a GET
        without its body: the room is never created.
        """
        if request.method not in ("POST", "PUT", "PATCH") or not self.state.options.debug:
            location = request.url.path + "/" + (f"?{request.url.query}" if request.url.query else "")
            return Response(b"", status_code=301, headers={"Location": location})
        message = (f"You called this URL via {request.method}, but the URL doesn't end in a slash and you have "
                   "APPEND_SLASH set. Django can't redirect to the slash URL while maintaining "
                   f"{request.method} data. Change your form to point to {request.url.path}/ (note the trailing "
                   "slash), or set APPEND_SLASH=False in your Django settings.")
        return Response(f"RuntimeError at {request.url.path}\n{message}\n", status_code=500,
                        media_type="text/plain; charset=utf-8")

    async def _rooms_list_route(self, request: Request) -> Response:
        auth = self._authenticate(request)
        if isinstance(auth, Response):
            return auth
        if request.method == "GET":
            return self._require(auth, "rooms:list") or self.list_rooms(request, auth[0])
        if request.method == "POST":
            return self._require(auth, "rooms:create") or await self.create_room(request, auth)
        return _not_allowed(request.method, ALLOW_ROOMS)

    async def _room_detail_route(self, request: Request, room_id: str) -> Response:
        auth = self._authenticate(request)
        if isinstance(auth, Response):
            return auth
        if request.method == "GET":
            return self._require(auth, "rooms:retrieve") or self.retrieve_room(request, auth[0], room_id)
        return _not_allowed(request.method, ALLOW_ROOM)

    # ------------------------------------------------------------------------------------------ token

    async def token(self, request: Request) -> Response:
        """POST …/application/token/: client credentials, scope = the e-mail of the user to act for."""
        state = self.state
        options = state.options
        if not options.applications_enabled:
            return _detail(404, "Not found.")
        data = await _request_data(request, accepted=TOKEN_MEDIA[options.version])
        if isinstance(data, Response):
            return data
        errors = _token_field_errors(data)
        if errors:
            self.sandbox.count("meet:token:refused")
            return _json(errors, 400)
        client_id, secret, email = str(data["client_id"]), str(data["client_secret"]), str(data["scope"])
        app = state.application(client_id)
        if app is None or not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            self.sandbox.count("meet:token:refused")
            return _token_unauthorized("Invalid credentials")
        if not app.active:
            self.sandbox.count("meet:token:refused")
            return _token_unauthorized("Application is inactive")
        if len(email) > _MAX_EMAIL or not _EMAIL.match(email):
            self.sandbox.count("meet:token:refused")
            return _json({"error": "Scope should be a valid email address."}, 400)
        if not state.can_delegate(app, email):
            self.sandbox.count("meet:token:refused")
            return _json({"error": "This application is not authorized for this email domain."}, 403)
        user = state.token_user(email)
        if isinstance(user, str):
            self.sandbox.count("meet:token:refused")
            if user == "duplicate":
                return _suspicious(request.url.path, "Multiple user accounts share a common email.",
                                   debug=options.debug)
            if user == "race":
                return _json({"error": "Failed to create or retrieve provisional user."}, 409)
            return _detail(404, "User not found.")
        issued = int(state.now().timestamp())
        lifetime = options.token_lifetime_seconds
        scope = " ".join(app.scopes)
        payload = {"client_id": app.client_id, "delegated": True, "iat": issued, "exp": issued + lifetime,
                   "user_id": user.id, "iss": JWT_ISSUER, "aud": options.jwt_audience, "scope": scope}
        self.sandbox.count("meet:token:issued")
        return _json({"access_token": encode_jwt(payload, options.jwt_secret), "token_type": "Bearer",
                      "expires_in": lifetime, "scope": scope})

    # ------------------------------------------------------------------------------------------ auth

    def _authenticate(self, request: Request) -> tuple[MeetUser, dict[str, Any]] | Response:
        """ApplicationJWTAuthentication, then the resource-server backend (which this instance cannot use)."""
        header = request.headers.get("authorization", "")
        parts = header.split()
        if not parts or parts[0].lower() != "bearer":
            return _unauthorized("Authentication credentials were not provided.")
        if len(parts) != 2:
            return _unauthorized("Invalid token header.")
        state = self.state
        options = state.options
        payload: dict[str, Any] | None = None
        if options.applications_enabled:
            try:
                payload = _decode_jwt(parts[1], secret=options.jwt_secret, audience=options.jwt_audience,
                                      now=state.now().timestamp())
            except _TokenExpired:
                self.sandbox.count("meet:auth:expired")
                return _unauthorized("Token expired.")
            except _TokenInvalid:
                return _unauthorized("Invalid token.")
        if payload is None:
            self.sandbox.count("meet:auth:invalid")
            return _unauthorized("Resource Server is improperly configured")
        client_id = payload.get("client_id")
        if not client_id:
            return _unauthorized("Invalid token claims.")
        app = state.application(str(client_id))
        if app is None:
            return _unauthorized("Application not found.")
        if not app.active:
            return _unauthorized("Application is disabled.")
        if payload.get("delegated") is not True:
            return _unauthorized("Invalid token type.")
        user_id = payload.get("user_id")
        if not user_id:
            return _unauthorized("Invalid token claims.")
        user = state.user(str(user_id))
        if user is None:
            return _unauthorized("User not found.")
        if not user.is_active:
            return _unauthorized("User account is disabled.")
        return user, payload

    @staticmethod
    def _require(auth: tuple[MeetUser, dict[str, Any]], scope: str) -> Response | None:
        scopes = str(auth[1].get("scope") or "").split()
        if scope not in scopes:
            return _detail(403, f"Insufficient permissions. Required scope: {scope}")
        return None

    # ------------------------------------------------------------------------------------------ rooms

    def _room_body(self, request: Request, room: MeetRoom) -> dict[str, object]:
        options = self.state.options
        body: dict[str, object] = {"id": room.id, "name": room.slug, "slug": room.slug,
                                   "access_level": room.access_level, "configuration": room.configuration}
        if options.base_url is not None:
            body["url"] = f"{options.base_url.replace('{origin}', _origin(request))}/{room.slug}"
        if options.telephony:
            body["telephony"] = {"enabled": True, "phone_number": options.telephony_phone_number,
                                 "pin_code": room.pin_code, "default_country": options.telephony_country}
        return body

    async def create_room(self, request: Request, auth: tuple[MeetUser, dict[str, Any]]) -> Response:
        data = await _request_data(request, accepted=(JSON,))
        if isinstance(data, Response):
            return data
        options = self.state.options
        errors: dict[str, list[Any]] = {}
        level = data.get("access_level", options.default_access_level)
        if level not in ACCESS_LEVELS:
            shown = "null" if level is None else str(level)
            errors["access_level"] = ["This field may not be null." if level is None
                                      else f'"{shown}" is not a valid choice.']
        elif level == "public" and not options.allow_public and options.default_access_level != "public":
            errors["access_level"] = ["Public rooms are disabled for the external API."]
        configuration = data.get("configuration", {})
        if configuration is None:
            errors["configuration"] = ["This field may not be null."]
        elif problems := _configuration_errors(configuration):
            errors["configuration"] = problems
        if errors:
            self.sandbox.count("meet:rooms:refused")
            return _json(errors, 400)
        room = self.state.create_room(auth[0], client_id=str(auth[1]["client_id"]), access_level=str(level),
                                      configuration=dict(configuration))
        body = self._room_body(request, room)
        # DRF's CreateModelMixin: Location is the serializer's `url` field (the room's link), when there is one.
        location = {"Location": str(body["url"])} if "url" in body else {}
        return _json(body, 201, location)

    def list_rooms(self, request: Request, user: MeetUser) -> Response:
        rooms = self.state.rooms_of(user.id)
        text = request.query_params.get("page", "1")
        pages = max(1, -(-len(rooms) // PAGE_SIZE))
        try:
            page = pages if text == "last" else int(text)  # DRF's PageNumberPagination.last_page_strings
        except ValueError:
            page = 0
        endless = self.sandbox.broken("endless_pages")
        if page < 1 or (page > pages and not endless):
            return _detail(404, "Invalid page.")
        shown = min(page, pages)
        chunk = rooms[(shown - 1) * PAGE_SIZE: shown * PAGE_SIZE]
        following = str(request.url.include_query_params(page=page + 1)) if page < pages or endless else None
        if page >= 2 and self.sandbox.broken("repeat_page_token"):
            following = str(request.url)
        if page <= 1:
            previous = None
        elif page == 2:
            previous = str(request.url.remove_query_params("page"))
        else:
            previous = str(request.url.include_query_params(page=page - 1))
        return _json({"count": len(rooms), "next": following, "previous": previous,
                      "results": [self._room_body(request, room) for room in chunk]})

    def retrieve_room(self, request: Request, user: MeetUser, room_id: str) -> Response:
        try:
            uuid.UUID(room_id)  # Django's UUIDField: any case, with or without hyphens or braces
        except ValueError:
            return _detail(404, "Not found.")  # a slug is not a primary key (DRF's get_object_or_404)
        room = self.state.room(room_id)
        if room is None:
            return _detail(404, "No Room matches the given query.")
        if user.id not in room.accesses:
            return _detail(403, "You do not have permission to perform this action.")
        return _json(self._room_body(request, room))

    # ------------------------------------------------------------------------------------------ sandbox-only

    async def inspect_rooms(self, request: Request) -> Response:
        """Every room with its owners' e-mails and user ids (filter: ?owner=<e-mail>)."""
        wanted = request.query_params.get("owner", "").lower()
        items = []
        for room in self.state.rooms():
            owners = [user for user_id, role in room.accesses.items() if role == "owner"
                      if (user := self.state.user(user_id)) is not None]
            if wanted and not any(owner.email.lower() == wanted for owner in owners):
                continue
            owner = owners[0] if owners else None
            items.append({**self._room_body(request, room), "pin_code": room.pin_code,
                          "owner_email": owner.email if owner else None, "owner_user_id": owner.id if owner else None,
                          "owner_sub": owner.sub if owner else None, "client_id": room.client_id,
                          "created_at": room.created_at.isoformat(),
                          "accesses": [{"user_id": user_id, "role": role} for user_id, role in room.accesses.items()]})
        return _json({"count": len(items), "rooms": items})

    async def inspect_users(self, request: Request) -> Response:
        """GET: users (filter ?email=, case-insensitive); POST {"email", "sub"?, "full_name"?}: seed one."""
        if request.method == "POST":
            body = await _json_object(request)
            if not isinstance(body, dict) or not isinstance(body.get("email"), str):
                return _json({"error": "a JSON object with an e-mail is expected"}, 400)
            sub = body.get("sub")
            user = self.state.add_user(body["email"], sub=str(sub) if sub else None,
                                       full_name=str(body["full_name"]) if body.get("full_name") else None)
            return _json(_user_body(user), 201)
        email = request.query_params.get("email")
        users = self.state.users_with_email(email) if email else self.state.users()
        return _json({"count": len(users), "users": [_user_body(user) for user in users]})

    async def simulate_login(self, request: Request) -> Response:
        """POST {"email", "sub"?, "given_name"?, "usual_name"?}: a first ProConnect login (contract section 5)."""
        body = await _json_object(request)
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            return _json({"error": "a JSON object with an e-mail is expected"}, 400)
        outcome = self.state.first_login(body["email"], sub=_text(body.get("sub")),
                                         given_name=_text(body.get("given_name")),
                                         usual_name=_text(body.get("usual_name")))
        return _json(dataclasses.asdict(outcome), 400 if outcome.refused else 200)

    async def settings(self, request: Request) -> Response:
        """GET: the runtime switches; POST {switch: value}: change some (RUNTIME_SETTINGS)."""
        if request.method == "POST":
            body = await _json_object(request)
            if not isinstance(body, dict):
                return _json({"error": "a JSON object is expected"}, 400)
            wrong = [name for name, value in body.items()
                     if name not in RUNTIME_SETTINGS or type(value) is not RUNTIME_SETTINGS[name]
                     or (name == "version" and value not in VERSIONS)]
            if wrong:
                return _json({"error": f"unknown setting or wrong type: {', '.join(sorted(wrong))}"}, 400)
            self.state.configure(**body)
        options = self.state.options
        return _json({name: getattr(options, name) for name in RUNTIME_SETTINGS}
                     | {"precreates_users": options.precreates_users})


# ----------------------------------------------------------------------------------------------- parsing

def _allow(response: Response, methods: str) -> Response:
    """DRF's finalize_response: every answer of an API view carries Allow; Django's own HTML pages do not."""
    if not (response.media_type or "").startswith("text/html"):
        response.headers.setdefault("Allow", methods)
    return response


async def _request_data(request: Request, *, accepted: tuple[str, ...]) -> dict[str, Any] | Response:
    """The body as DRF parses it with the view's parsers (`accepted` media types; last value wins in forms).

    An empty body is `{}` whatever its type (DRF does not parse it); any other media type — none at all
    included — is 415 with DRF's message quoting the Content-Type as sent.
    """
    raw = await request.body()
    header = request.headers.get("content-type", "")
    media = header.split(";")[0].strip().lower()
    if not raw:
        return {}
    if media not in accepted:
        return _detail(415, f'Unsupported media type "{header}" in request.')
    if media == JSON:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _detail(400, f"JSON parse error - {exc}")
        if not isinstance(data, dict):
            kind = type(data).__name__
            return _json({"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}, 400)
        return data
    if media == FORM:
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    fields = _multipart_fields(header, raw)
    if fields is None:
        return _detail(400, "Multipart form parse error - Invalid boundary in multipart: None")
    return fields


def _multipart_fields(header: str, raw: bytes) -> dict[str, str] | None:
    """The text fields of a multipart/form-data body (files are not expected here); None when unreadable."""
    if "boundary=" not in header:
        return None
    message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + header.encode("latin-1") + b"\r\n\r\n"
                                                         + raw)
    if not message.is_multipart():
        return None
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


async def _json_object(request: Request) -> object:
    try:
        return orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return None


def _token_field_errors(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The token serializer's field errors (client_id, client_secret, grant_type, scope), in field order."""
    errors: dict[str, list[str]] = {}
    for name in ("client_id", "client_secret", "grant_type", "scope"):
        value = data.get(name)
        if name not in data:
            errors[name] = ["This field is required."]
        elif value is None:
            errors[name] = ["This field may not be null."]
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            errors[name] = ["Not a valid string."]
        elif name == "grant_type" and str(value) != "client_credentials":
            errors[name] = [f'"{value}" is not a valid choice.']
        elif not str(value).strip():
            errors[name] = ["This field may not be blank."]
    return errors


class RoomConfiguration(BaseModel):
    """The model Meet validates `configuration` with: extra keys forbidden, pydantic's lax types (section 3)."""

    model_config = ConfigDict(extra="forbid")

    can_publish_sources: list[Literal["camera", "microphone", "screen_share", "screen_share_audio"]] | None = None
    everyone_can_mute: bool | None = None


def _configuration_errors(configuration: object) -> list[dict[str, Any]]:
    """Pydantic's error objects for a configuration (`type`, `loc`, `msg`, `input`, `url`); [] when it is valid."""
    try:
        RoomConfiguration.model_validate(configuration)
    except ValidationError as exc:
        return [dict(error) for error in exc.errors(include_context=False)]
    return []


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _text(value: object) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _user_body(user: MeetUser) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "sub": user.sub, "origin": user.origin, "full_name": user.full_name,
            "is_active": user.is_active}
