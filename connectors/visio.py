"""Visio (La Suite Meet's External API) over httpx: a token per host, rooms created, read back and listed.

Why httpx: Meet publishes no maintained SDK for its External API (only OpenAPI documents in its repository), and
the surface bascule needs is one token endpoint and three room calls. httpx gives explicit timeouts, connection
pooling, `MockTransport` as a test seam, and every call goes through the one retry layer (connectors.retry,
bounded) and the throttle. shared/contracts/visio-meet.md is the reference.

Tokens (section 2 of the contract): client credentials with `scope=<host e-mail>`, sent as a JSON body — the only
encoding every Meet version accepts (release v1.27.0 answers 415 to a form body, later versions 415 to multipart);
one token per host e-mail (lower-cased key), cached until shortly before it expires — the lifetime is `expires_in`
measured on our clock from the moment the request left, so a skew between Meet's clock and ours does not matter.
The JWT is decoded without verification (we do not hold Meet's signing key) to learn `user_id`, the host's Meet
user UUID, which is the only way the External API tells it. A room call answered 401 "Token expired." fetches a
new token once.

Rooms (section 3): JSON bodies only (a form gets 415 on every version); every path keeps its trailing slash (Meet
answers 301 to a GET without it, and 500 or 301 to a POST — a redirect would drop the body) and no redirect is
followed; a 201's `Location` is the room's frontend `url`, not an API address, and is not read; rooms are
retrieved by their UUID as Meet gave it (Meet matches ids case-insensitively and answers with the canonical form).
`iter_rooms` follows the absolute `next` links (same host only) under a `connectors.paging.ListingBound`: Meet
announces `count` and serves pages of 20, so a listing that repeats a `next` (LISTING_CURSOR_REPEATED) or runs
past the announced count plus a margin (LISTING_UNBOUNDED) stops with `ListingFailed`.

Outcomes:
- every failure the contract documents (bad credentials, inactive application, domain not allowed, user not
  found, duplicate users, public refused, a room of another user…) is a `core.visio.VisioRefusal` with its reason:
  the cutover reports it per action and goes on. `iter_rooms` cannot return a value, so it raises `VisioRefused`
  (a PermanentConnectorError carrying the refusal); a configuration refused by Meet's pydantic model (a list of
  error objects `{"type", "loc", "msg", "input", "url"}`) is INVALID_CONFIGURATION, its detail "loc: msg";
- 429, 5xx, transport errors and truncated JSON are TransientConnectorError / RateLimited, retried by
  connectors.retry within its bounds; any status the contract does not document (a redirect, a 405, a 415…) is
  `connectors.errors.UnexpectedResponse` (permanent) with the status and a short redacted excerpt of the body, so
  that onboarding can say what Meet answered rather than blame the network;
- creating a room is not idempotent (Meet has no idempotency key): only failures that certainly created nothing
  are retried here (429, 503, a connection never made). A timeout after sending, another 5xx or a truncated 201
  raises `RoomCreationUncertain` (transient) without retrying: the caller lists the host's rooms (`iter_rooms`)
  and reconciles before creating again (contract section 7).

Logs and errors carry Meet user and room ids only: never e-mails, tokens or secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from connectors.errors import (
    PermanentConnectorError,
    RateLimited,
    TransientConnectorError,
    UnexpectedResponse,
    Unreachable,
    origin_of,
)
from connectors.paging import ListingBound
from connectors.retry import RetryPolicy, RetryStats, call_with_retries, parse_retry_after
from connectors.throttle import Throttle
from core.records import JsonValue
from core.visio import (
    AccessLevel,
    DomainCheck,
    RoomTelephony,
    VisioRefusal,
    VisioRefusalReason,
    VisioRoom,
    domain_check_from,
    email_domain,
)

__all__ = ["RoomCreationUncertain", "VisioConfig", "VisioRefused", "VisioRoomTarget", "VisioToken"]

SYSTEM = "visio"
API_SUFFIX = "/external-api/v1.0/"
TOKEN_EXPIRED = "Token expired."  # noqa: S105 — Meet's message, not a secret
PAGE_SIZE = 20  # Meet's fixed page size (`page_size` is ignored)
_EMAIL_LIKE = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+")
_DETAIL_CHARS = 200
log = logging.getLogger(__name__)

Reply = tuple[int, Any, str]  # status, parsed JSON body (None when not JSON), raw text


@dataclass(frozen=True, slots=True)
class VisioConfig:
    """The Visio instance's External API and the application bascule acts as."""

    api_url: str                          # https://visio.numerique.gouv.fr/external-api/v1.0/
    client_id: str
    client_secret: str = field(repr=False)
    timeout_seconds: float = 15.0
    token_margin_seconds: float = 60.0    # renew this long before expiry (at most a tenth of the lifetime)
    token_cache_size: int = 10_000        # hosts whose token is kept (least recently used dropped first)

    def __post_init__(self) -> None:
        if not self.api_url.endswith(API_SUFFIX):
            raise ValueError(f"api_url must end with {API_SUFFIX!r} (Meet needs the trailing slash)")
        if self.timeout_seconds <= 0 or self.token_margin_seconds < 0 or self.token_cache_size < 1:
            raise ValueError("timeout, margin and cache size must be positive")


@dataclass(frozen=True, slots=True)
class VisioToken:
    """A delegated token for one host: the JWT, its user (Meet UUID), scopes, and until when we use it."""

    access_token: str = field(repr=False)
    user_id: str
    scopes: tuple[str, ...]
    expires_at: datetime     # on our clock: sent + lifetime
    renew_after: datetime    # expires_at minus the margin


class RoomCreationUncertain(TransientConnectorError):
    """A room creation failed in a way that may have created the room: reconcile with iter_rooms first."""


class VisioRefused(PermanentConnectorError):
    """A documented refusal where only an exception can carry it (iter_rooms)."""

    def __init__(self, refusal: VisioRefusal) -> None:
        super().__init__(SYSTEM, f"refused: {refusal.reason} ({refusal.detail})")
        self.refusal = refusal


class _Uncertain(Exception):
    """Raised inside a creation attempt so that the retry layer lets it through (it is not transient for it)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VisioRoomTarget:
    """Rooms in Visio, created and read on behalf of each host through the application's delegated tokens."""

    def __init__(self, config: VisioConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime] = _utc_now, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._origin = _origin(config.api_url)
        self._throttle_key = f"{SYSTEM}:{urlsplit(config.api_url).netloc}"
        self._tokens: OrderedDict[str, VisioToken] = OrderedDict()
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=config.api_url, timeout=config.timeout_seconds, transport=transport,
                                  follow_redirects=False, headers={"Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VisioRoomTarget:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ tokens

    def token_for(self, email: str) -> VisioToken | VisioRefusal:
        """A token acting for the host with this e-mail: from the cache while fresh, else a new one."""
        key = email.strip().lower()
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.renew_after:
                self._tokens.move_to_end(key)
                return cached
        return self._fetch_token(email.strip())

    def forget_token(self, email: str) -> None:
        """Drop the cached token of a host (the next call asks for a new one)."""
        with self._lock:
            self._tokens.pop(email.strip().lower(), None)

    def _fetch_token(self, email: str) -> VisioToken | VisioRefusal:
        credentials = {"client_id": self.config.client_id, "client_secret": self.config.client_secret,
                       "grant_type": "client_credentials", "scope": email}
        for attempt in range(2):
            sent = self._clock()
            status, body, text = self._send("POST", "application/token/", json_body=credentials)
            if status == 409 and attempt == 0:
                continue  # a concurrent pre-creation of the same user: it exists now
            break
        if status != 200:
            refusal = _token_refusal(status, body, text)
            log.info("visio: token refused (%s, HTTP %d)", refusal.reason, status)
            return refusal
        token = _parse_token(body, sent=sent, margin=self.config.token_margin_seconds)
        with self._lock:
            self._tokens[email.lower()] = token
            self._tokens.move_to_end(email.lower())
            while len(self._tokens) > self.config.token_cache_size:
                self._tokens.popitem(last=False)
        log.debug("visio: token issued for user %s", token.user_id)
        return token

    def check_domain(self, email: str) -> DomainCheck:
        """Onboarding: does the application accept this agent's domain? Always asks Meet (a token request).

        Use an agent who will be migrated anyway: the request pre-creates their Visio user when they never logged
        in and the instance pre-creates users (the check says it may have).
        """
        outcome = self._fetch_token(email.strip())
        return domain_check_from(email_domain(email), outcome if isinstance(outcome, VisioRefusal)
                                 else outcome.user_id)

    # ------------------------------------------------------------------------------------------ rooms

    def create_room(self, owner_email: str, *, access_level: AccessLevel,
                    configuration: Mapping[str, JsonValue] | None = None) -> VisioRoom | VisioRefusal:
        """A new room owned by the host (Meet draws its name and slug); RoomCreationUncertain: reconcile first."""
        payload: dict[str, object] = {"access_level": str(access_level)}
        if configuration is not None:
            payload["configuration"] = dict(configuration)
        answer = self._as_host(owner_email, lambda token: self._send("POST", "rooms/", token=token, json_body=payload,
                                                                     creating=True))
        if isinstance(answer, VisioRefusal):
            return answer
        (status, body, text), token = answer
        if status != 201:
            return _room_refusal(status, body, text, "POST rooms/", access_level=access_level)
        try:
            room = _parse_room(body, owner_email=owner_email.strip(), owner_user_id=token.user_id)
        except PermanentConnectorError as exc:
            raise RoomCreationUncertain(SYSTEM, f"POST rooms/: 201 with an unreadable room ({exc})") from exc
        log.info("visio: room %s created for user %s", room.id, token.user_id)
        return room

    def retrieve_room(self, owner_email: str, room_id: str) -> VisioRoom | VisioRefusal:
        """A room by its UUID, read with the host's token (403 FORBIDDEN when the host has no role on it)."""
        path = f"rooms/{quote(room_id, safe='')}/"
        answer = self._as_host(owner_email, lambda token: self._send("GET", path, token=token))
        if isinstance(answer, VisioRefusal):
            return answer
        (status, body, text), token = answer
        if status != 200:
            return _room_refusal(status, body, text, "GET rooms/{id}/")
        return _parse_room(body, owner_email=owner_email.strip(), owner_user_id=token.user_id)

    def iter_rooms(self, owner_email: str) -> Iterator[VisioRoom]:
        """Every room where the host has a role, page by page (`next` followed); VisioRefused on a refusal.

        ListingFailed (LISTING_CURSOR_REPEATED, LISTING_UNBOUNDED) when the pages do not end as Meet announced.
        """
        url = "rooms/"
        bound = ListingBound(SYSTEM, "rooms")
        bound.check(str(self._http.base_url.join(url)))
        while True:
            answer = self._as_host(owner_email, self._getter(url))
            if isinstance(answer, VisioRefusal):
                raise VisioRefused(answer)
            (status, body, text), token = answer
            if status != 200:
                raise VisioRefused(_room_refusal(status, body, text, "GET rooms/"))
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise PermanentConnectorError(SYSTEM, "GET rooms/: not a paginated list")
            results: list[Any] = body["results"]
            bound.announce(total=body.get("count"), page_size=PAGE_SIZE)
            bound.page(len(results))
            for item in results:
                yield _parse_room(item, owner_email=owner_email.strip(), owner_user_id=token.user_id)
            following = body.get("next")
            if not following:
                return
            if not isinstance(following, str) or _origin(following) != self._origin:
                raise PermanentConnectorError(SYSTEM, "GET rooms/: a next-page link points outside the API host")
            bound.check(following)
            url = following

    # ------------------------------------------------------------------------------------------ HTTP

    def _getter(self, url: str) -> Callable[[str], Reply]:
        return lambda token: self._send("GET", url, token=token)

    def _as_host(self, email: str,
                 call: Callable[[str], Reply]) -> tuple[Reply, VisioToken] | VisioRefusal:
        """Run `call` with the host's token; on 401 "Token expired." renew the token once and run it again."""
        token = self.token_for(email)
        if isinstance(token, VisioRefusal):
            return token
        reply = call(token.access_token)
        if reply[0] == 401 and _message(reply[1]) == TOKEN_EXPIRED:
            log.info("visio: token of user %s expired before its time; renewing once", token.user_id)
            self.forget_token(email)
            token = self._fetch_token(email.strip())
            if isinstance(token, VisioRefusal):
                return token
            reply = call(token.access_token)
        return reply, token

    def _send(self, method: str, url: str, *, token: str | None = None, json_body: object = None,
              creating: bool = False) -> Reply:
        """One call under the throttle and the retry layer; returns status and body for every non-transient status.

        Bodies are JSON only: Meet refuses form bodies (415) on rooms/ always and on the token endpoint in v1.27.0.
        """
        where = f"{method} {_path(url)}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = json.dumps(json_body).encode() if json_body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"

        def attempt() -> Reply:
            self._throttle.acquire(self._throttle_key)
            try:
                response = self._http.request(method, url, content=content, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise Unreachable(SYSTEM, origin_of(self.config.api_url), type(exc).__name__) from exc
            except httpx.PoolTimeout as exc:
                raise TransientConnectorError(SYSTEM, f"{where}: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                if creating:
                    raise _Uncertain(f"{where}: {type(exc).__name__} after sending") from exc
                raise TransientConnectorError(SYSTEM, f"{where}: {type(exc).__name__}") from exc
            status = response.status_code
            if status == 429:
                raise RateLimited(SYSTEM, f"{where}: throttled",
                                  retry_after=parse_retry_after(response.headers.get("Retry-After")))
            if status >= 500:
                if creating and status != 503:
                    raise _Uncertain(f"{where}: HTTP {status}")
                raise TransientConnectorError(SYSTEM, f"{where}: HTTP {status}")
            if "json" not in response.headers.get("content-type", ""):
                return status, None, response.text
            try:
                return status, response.json(), response.text
            except (ValueError, UnicodeDecodeError) as exc:
                if creating and 200 <= status < 300:
                    raise _Uncertain(f"{where}: truncated or invalid JSON body (HTTP {status})") from exc
                raise TransientConnectorError(SYSTEM, f"{where}: truncated or invalid JSON body") from exc

        try:
            return call_with_retries(attempt, self._retry, stats=self._stats, sleep=self._sleep)
        except _Uncertain as exc:
            raise RoomCreationUncertain(SYSTEM, str(exc)) from exc


# ----------------------------------------------------------------------------------------------- parsing

def _parse_token(body: Any, *, sent: datetime, margin: float) -> VisioToken:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise PermanentConnectorError(SYSTEM, "token: 200 without an access_token")
    access_token = body["access_token"]
    claims = _jwt_claims(access_token)
    user_id = claims.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise PermanentConnectorError(SYSTEM, "token: the JWT carries no user_id")
    lifetime: float | None = None
    if isinstance(body.get("expires_in"), int | float) and not isinstance(body.get("expires_in"), bool):
        lifetime = float(body["expires_in"])
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and isinstance(iat, int | float):
        lifetime = min(lifetime, float(exp - iat)) if lifetime is not None else float(exp - iat)
    if lifetime is None or lifetime <= 0:
        raise PermanentConnectorError(SYSTEM, "token: no usable lifetime (expires_in, exp - iat)")
    scopes = tuple(str(body.get("scope") or claims.get("scope") or "").split())
    expires_at = sent + timedelta(seconds=lifetime)
    renew_after = expires_at - timedelta(seconds=min(margin, lifetime / 10))
    return VisioToken(access_token, user_id=user_id, scopes=scopes, expires_at=expires_at, renew_after=renew_after)


def _jwt_claims(token: str) -> dict[str, Any]:
    """The JWT's payload, read without verifying the signature (the key is Meet's)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise PermanentConnectorError(SYSTEM, "token: not a JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise PermanentConnectorError(SYSTEM, "token: unreadable JWT payload") from exc
    if not isinstance(claims, dict):
        raise PermanentConnectorError(SYSTEM, "token: the JWT payload is not an object")
    return claims


def _parse_room(body: Any, *, owner_email: str, owner_user_id: str) -> VisioRoom:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("slug"), str):
        raise PermanentConnectorError(SYSTEM, "room: a body without id or slug")
    try:
        level = AccessLevel(str(body.get("access_level")))
    except ValueError as exc:
        raise PermanentConnectorError(SYSTEM, f"room {body['id']}: unknown access level") from exc
    telephony = None
    block = body.get("telephony")
    if isinstance(block, dict) and block.get("enabled") and isinstance(block.get("pin_code"), str):
        telephony = RoomTelephony(pin_code=block["pin_code"], phone_number=_text(block.get("phone_number")),
                                  default_country=_text(block.get("default_country")))
    configuration = body.get("configuration")
    return VisioRoom(id=body["id"], slug=body["slug"], name=str(body.get("name") or body["slug"]),
                     url=_text(body.get("url")), access_level=level, owner_email=owner_email,
                     owner_user_id=owner_user_id, telephony=telephony,
                     configuration=dict(configuration) if isinstance(configuration, dict) else {})


def _token_refusal(status: int, body: Any, text: str) -> VisioRefusal:
    """The token endpoint's documented answers (contract section 2) as refusals; anything else is raised."""
    message = _message(body)
    reason: VisioRefusalReason
    if status == 400:
        if body is None:
            # The only non-JSON 400: Django's SuspiciousOperation page (debug page or plain "Bad Request").
            return VisioRefusal(VisioRefusalReason.DUPLICATE_USERS, "several Visio users share this e-mail", 400)
        reason = (VisioRefusalReason.INVALID_SCOPE if isinstance(body, dict) and "error" in body
                  else VisioRefusalReason.INVALID_REQUEST)
    elif status == 401:
        reason = (VisioRefusalReason.APPLICATION_INACTIVE if message == "Application is inactive"
                  else VisioRefusalReason.INVALID_CREDENTIALS)
    elif status == 403:
        reason = VisioRefusalReason.DOMAIN_NOT_ALLOWED
    elif status == 404:
        if message == "User not found.":
            reason = VisioRefusalReason.USER_NOT_FOUND
        else:
            return VisioRefusal(VisioRefusalReason.APPLICATIONS_DISABLED,
                                "no token endpoint here: applications disabled, External API off or a wrong api_url",
                                404)
    elif status == 409:
        reason = VisioRefusalReason.USER_CREATION_RACE
    else:
        raise UnexpectedResponse(SYSTEM, "POST application/token/", status=status, body=message or text)
    return VisioRefusal(reason, message or _summary(body, text), status)


def _room_refusal(status: int, body: Any, text: str, where: str, *,
                  access_level: AccessLevel | None = None) -> VisioRefusal:
    """The room endpoints' documented answers (contract section 3) as refusals; anything else is raised."""
    message = _message(body)
    reason: VisioRefusalReason
    if status == 400 and isinstance(body, dict):
        if "configuration" in body:
            reason = VisioRefusalReason.INVALID_CONFIGURATION
        elif "access_level" in body and access_level is AccessLevel.PUBLIC:
            reason = VisioRefusalReason.PUBLIC_NOT_ALLOWED
        else:
            reason = VisioRefusalReason.INVALID_REQUEST
    elif status == 401:
        reason = {TOKEN_EXPIRED: VisioRefusalReason.TOKEN_EXPIRED,
                  "Application is disabled.": VisioRefusalReason.APPLICATION_INACTIVE,
                  "Application not found.": VisioRefusalReason.INVALID_CREDENTIALS,
                  "User account is disabled.": VisioRefusalReason.USER_INACTIVE,
                  }.get(message or "", VisioRefusalReason.INVALID_TOKEN)
    elif status == 403:
        reason = (VisioRefusalReason.MISSING_SCOPE if (message or "").startswith("Insufficient permissions")
                  else VisioRefusalReason.FORBIDDEN)
    elif status == 404:
        reason = VisioRefusalReason.NOT_FOUND
    else:
        raise UnexpectedResponse(SYSTEM, where, status=status, body=message or text)
    return VisioRefusal(reason, message or _summary(body, text), status)


def _message(body: Any) -> str | None:
    """DRF's `detail` or Meet's `error` text, when the body has one."""
    if isinstance(body, dict):
        for key in ("detail", "error"):
            if isinstance(body.get(key), str):
                return _redacted(body[key])
    return None


def _summary(body: Any, text: str) -> str:
    """Field errors or a text body, shortened and without addresses.

    DRF field errors are lists of strings; Meet's configuration errors are pydantic error objects, shown as
    "loc: msg" (their `input` may quote what was sent and is left out).
    """
    if isinstance(body, dict):
        parts = [f"{key}: {' '.join(map(_error_text, value)) if isinstance(value, list) else value}"
                 for key, value in body.items()]
        return _redacted("; ".join(parts))
    return _redacted(" ".join(text.split()))


def _error_text(error: object) -> str:
    if isinstance(error, dict) and isinstance(error.get("msg"), str):
        where = ".".join(str(part) for part in error.get("loc") or ()) if isinstance(error.get("loc"), list) else ""
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(error)


def _redacted(text: str) -> str:
    return _EMAIL_LIKE.sub("<e-mail>", text)[:_DETAIL_CHARS]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _path(url: str) -> str:
    """A URL or relative path without its query string (page numbers are harmless, but logs stay uniform)."""
    return urlsplit(url).path or url
