"""Zoom through zoomus 1.2.1: users in their three statuses, the licence types they hold, scheduled meetings in full.

zoomus is thin and has sharp edges (shared/contracts/zoom.md section 2); this module compensates:

- `ZoomClient(...)` fetches a token inside its constructor: the client is built lazily, on the first call.
- The token helper never checks the status (a refused token is `None`) and has no timeout: a `None` token is
  reported as ConnectorAuthError at once, without sending `Bearer None`.
- No refresh: the token is renewed proactively before `token_lifetime_seconds` run out (10 % margin, at most five
  minutes), and once on a 401 (code 124), after which the request is sent once more. A token refused on its first
  use, a few seconds after it was issued, is a credential problem (ConnectorAuthError), not a reason to loop.
- No retry, raw `requests.Response`: statuses are mapped here to the connector error tree and every call runs
  under connectors.retry (Retry-After in seconds or, for the daily limit, an ISO timestamp).
- Components ignore `ZoomClient(timeout=…)` (they keep their own 15 s, and the setter truncates to an integer):
  the configured timeout is set on each component used.

Every HTTP call first takes a slot from the throttle under `zoom:<account>:<label>` (Light / Medium, the labels of
the official document), since Zoom counts limits per account and per label, whichever app calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import requests
from zoomus import ZoomClient

from connectors.errors import (
    ConnectorAuthError,
    NotFound,
    PermanentConnectorError,
    RateLimited,
    TransientConnectorError,
    UnexpectedResponse,
    Unreachable,
    origin_of,
)
from connectors.paging import ListingBound, ListingFailed, failed_listing
from connectors.retry import RetryPolicy, RetryStats, call_with_retries, parse_retry_after
from connectors.throttle import Throttle
from connectors.wire import parse_record, record_key
from core import (
    AccountStatus,
    HostRef,
    LicenceSku,
    Meeting,
    OccurrenceChange,
    Page,
    Platform,
    Quarantined,
    ReasonCode,
    Recurrence,
    Removed,
    SourceAccount,
    parse_email,
)
from core.emails import EmailAddress
from core.licences import ReleaseRefusal, ReleaseResult, RestoreResult
from core.links import JoinLink, parse_join_url
from core.readiness import AccessCheck
from core.recurrence import Unparseable, classify_meeting, last_occurrence, recurrence_from_zoom

__all__ = ["LICENCE_NAMES", "PLAN_RATES", "ZoomAccountSource", "ZoomConfig", "ZoomLicenceSource",
           "ZoomMeetingSource", "check_access", "meeting_from_zoom", "throttle_rates"]

log = logging.getLogger(__name__)

SYSTEM = "zoom"
STATUSES = ("active", "inactive", "pending")
# Requests per second per account and label (zoom.md section 7).
PLAN_RATES: dict[str, dict[str, float]] = {
    "free": {"Light": 4, "Medium": 2, "Heavy": 1},
    "pro": {"Light": 30, "Medium": 20, "Heavy": 10},
    "business": {"Light": 80, "Medium": 60, "Heavy": 40},
}
LICENCE_NAMES = {1: "Basic", 2: "Licensed", 3: "On-prem", 4: "No Meetings License", 99: "None"}
LIGHT = "Light"
MEDIUM = "Medium"
_TOKEN_MARGIN_MAX = 300.0
_FRESH_TOKEN_SECONDS = 60.0
_SCOPE_CODES = frozenset({4700, 4702, 4711})   # "Invalid access token, does not contain scopes"
_PAGE_TOKEN_CODE = 300                        # "The next page token is invalid or expired."
_NO_WEBINAR_PLAN_CODE = 200                    # webinar listing on an account without the add-on
_RECURRING_TYPES = frozenset({8, 9})           # meeting 8, webinar 9: fixed-time series
_NO_FIXED_TIME_TYPES = frozenset({3, 6})       # meeting 3, webinar 6
_PMI_TYPE = 4


def throttle_rates(account_id: str, plan: str, *, share: float = 0.97) -> dict[str, float]:
    """LocalThrottle rules for one Zoom account: `zoom:<account>:<label>` → requests per second.

    `share` keeps a little headroom below the plan's rate: the account's budget is counted by Zoom when requests
    arrive, and network jitter bunches arrivals that left evenly spaced.
    """
    rates = PLAN_RATES.get(plan, PLAN_RATES["pro"])
    return {f"zoom:{account_id}:{label}": rate * share for label, rate in rates.items()}


@dataclass(frozen=True, slots=True)
class ZoomConfig:
    """One Zoom account reached through a Server-to-Server OAuth app."""

    api_url: str                   # https://api.zoom.us/v2
    oauth_url: str                 # https://zoom.us/oauth/token
    account_id: str
    client_id: str
    client_secret: str = field(repr=False)
    plan: Literal["free", "pro", "business"] = "pro"
    page_size: int = 300
    timeout_seconds: float = 15.0
    token_lifetime_seconds: int = 3599
    internal_domains: frozenset[str] = frozenset()
    hosts_per_page: int = 10       # a page of meetings is the meetings of this many hosts
    listing_workers: int = 8       # concurrent host listings (Medium): rate × latency, with room
    fetch_workers: int = 16        # concurrent meeting GETs (Light): 80/s × 100 ms needs 8 in flight
    list_webinars: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 300:
            raise ValueError("Zoom page_size must be between 1 and 300")
        if self.hosts_per_page < 1 or self.listing_workers < 1 or self.fetch_workers < 1:
            raise ValueError("hosts_per_page and worker counts must be positive")


class _BadRequest(PermanentConnectorError):
    """HTTP 400 with Zoom's error code (kept to tell an expired page token from a real error)."""

    def __init__(self, message: str, *, code: int | None) -> None:
        super().__init__(SYSTEM, message)
        self.code = code


# ----------------------------------------------------------------------------------------------- the session

class _ZoomSession:
    """One zoomus client shared by the threads of a connector: token life, throttle, retries, error mapping."""

    def __init__(self, config: ZoomConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._clock = clock
        self._monotonic = monotonic
        self._client: Any = None
        self._lock = threading.Lock()
        self._generation = 0
        self._obtained = 0.0
        self._accepted = False
        self.tokens_fetched = 0

    # ------------------------------------------------------------------------------------------ tokens

    def _fetch_token(self) -> None:
        """A new token (building the client the first time); the caller holds the lock."""
        config = self.config
        try:
            if self._client is None:
                self._client = ZoomClient(config.client_id, config.client_secret, config.account_id,
                                          timeout=max(1, int(config.timeout_seconds)), base_uri=config.api_url,
                                          oauth_uri=config.oauth_url)
                for component in (self._client.user, self._client.meeting, self._client.webinar):
                    component._timeout = config.timeout_seconds
            else:
                self._client.refresh_token()
        except requests.ConnectionError as error:
            raise Unreachable(SYSTEM, origin_of(config.oauth_url), type(error).__name__) from error
        except (requests.RequestException, ValueError) as error:
            raise TransientConnectorError(SYSTEM, f"token request failed ({type(error).__name__})") from error
        self.tokens_fetched += 1
        self._generation += 1
        self._obtained = self._monotonic()
        self._accepted = False
        if not self._client.config.get("token"):
            raise ConnectorAuthError(SYSTEM, f"the token endpoint refused the credentials of account "
                                             f"{config.account_id}")

    def _expiring(self) -> bool:
        lifetime = float(self.config.token_lifetime_seconds)
        margin = min(_TOKEN_MARGIN_MAX, lifetime * 0.1)
        return self._monotonic() - self._obtained >= lifetime - margin

    def _current(self) -> tuple[Any, int]:
        with self._lock:
            if self._client is None or not self._client.config.get("token") or self._expiring():
                self._fetch_token()
            return self._client, self._generation

    def _renew_after_401(self, generation: int) -> bool:
        """Renew the token a 401 refused; False when that token was brand new (the credentials are wrong)."""
        with self._lock:
            if generation != self._generation:
                return True  # another thread renewed it already
            fresh = self._monotonic() - self._obtained < min(_FRESH_TOKEN_SECONDS,
                                                             self.config.token_lifetime_seconds / 2)
            if not self._accepted and fresh:
                return False
            self._fetch_token()
            return True

    def _accept(self, generation: int) -> None:
        if generation == self._generation and not self._accepted:
            with self._lock:
                if generation == self._generation:
                    self._accepted = True

    # ------------------------------------------------------------------------------------------ calls

    def call(self, label: str, what: str, send: Callable[[Any], requests.Response]) -> dict[str, Any] | None:
        """One API call under the throttle and the retry policy; the JSON object of a 2xx (None for 204)."""
        key = f"zoom:{self.config.account_id}:{label}"

        def attempt() -> dict[str, Any] | None:
            self._throttle.acquire(key)
            client, generation = self._current()
            response = self._send(send, client, what)
            if response.status_code == 401:
                if not self._renew_after_401(generation):
                    raise ConnectorAuthError(SYSTEM, f"{what}: a new access token was refused "
                                                     f"(HTTP 401, code {_error_code(response)})")
                self._throttle.acquire(key)
                client, generation = self._current()
                response = self._send(send, client, what)
                if response.status_code == 401:
                    raise ConnectorAuthError(SYSTEM, f"{what}: refused after a token refresh "
                                                     f"(HTTP 401, code {_error_code(response)})")
            self._accept(generation)
            return self._read(response, what)

        return call_with_retries(attempt, self._retry, stats=self._stats)

    def _send(self, send: Callable[[Any], requests.Response], client: Any, what: str) -> requests.Response:
        try:
            return send(client)
        except requests.ConnectionError as error:
            raise Unreachable(SYSTEM, origin_of(self.config.api_url), type(error).__name__) from error
        except requests.RequestException as error:
            raise TransientConnectorError(SYSTEM, f"{what}: {type(error).__name__}") from error

    def _read(self, response: requests.Response, what: str) -> dict[str, Any] | None:
        status = response.status_code
        if 200 <= status < 300:
            if status == 204 or not response.content:
                return None
            try:
                body = response.json()
            except ValueError as error:
                raise TransientConnectorError(SYSTEM, f"{what}: truncated or invalid JSON") from error
            if not isinstance(body, dict):
                raise TransientConnectorError(SYSTEM, f"{what}: the body is not a JSON object")
            return body
        code = _error_code(response)
        detail = f"{what}: HTTP {status}, code {code}"
        if status == 429:
            kind = response.headers.get("X-RateLimit-Type", "")
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
            raise RateLimited(SYSTEM, f"{detail} ({kind or 'rate limit'})", retry_after=retry_after)
        if status >= 500:
            raise TransientConnectorError(SYSTEM, detail)
        if status in (401, 403) or (status == 400 and code in _SCOPE_CODES):
            raise ConnectorAuthError(SYSTEM, detail)
        if status == 404:
            raise NotFound(SYSTEM, detail)
        if status == 400:
            raise _BadRequest(detail, code=code)
        raise PermanentConnectorError(SYSTEM, detail)

    # ------------------------------------------------------------------------------------------ listings

    def pages(self, label: str, what: str, items: str, bound: ListingBound, token: str,
              send: Callable[[Any, dict[str, object]], requests.Response], *,
              by_number: bool = False) -> Iterator[tuple[list[Any], str]]:
        """Pages of a listing from `token` ("" = the start): (items, token of the next page, "" after the last).

        Paged by `next_page_token`, or by `page_number` where that is all the operation declares (webinars). Every
        page is checked against what the listing announces (`total_records`, `page_count`): a listing that runs
        past it, repeats a token or returns something else than the documented envelope raises ListingFailed.
        """
        number = 1
        while True:
            params: dict[str, object] = {"page_size": self.config.page_size}
            if by_number:
                params["page_number"] = number
            elif token:
                params["next_page_token"] = token
            body = self.call(label, what, _bind(send, params))
            found = body.get(items, []) if isinstance(body, dict) else None
            if not isinstance(found, list):
                raise ListingFailed(SYSTEM, f"{what}: page {bound.pages + 1} is not a listing of {items}",
                                    reason=ReasonCode.LISTING_MALFORMED)
            assert isinstance(body, dict)
            bound.announce(total=body.get("total_records"), page_count=body.get("page_count"),
                           page_size=body.get("page_size"))
            bound.page(len(found))
            if by_number:
                page_count = body.get("page_count")
                more = (number < page_count if isinstance(page_count, int) and not isinstance(page_count, bool)
                        else len(found) >= self.config.page_size)
                following = str(number + 1) if more and found else ""
                number += 1
            else:
                token_value = body.get("next_page_token")
                following = token_value if isinstance(token_value, str) else ""
                bound.check(following)
            yield found, following
            if not following:
                return
            token = following


def _bind(send: Callable[[Any, dict[str, object]], requests.Response],
          params: dict[str, object]) -> Callable[[Any], requests.Response]:
    return lambda client: send(client, params)


def _error_code(response: requests.Response) -> int | None:
    """Zoom's `code` from an error body, when there is one (error bodies are parsed defensively)."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


class _ZoomConnector:
    """What every Zoom role shares: the configuration and one session."""

    platform = Platform.ZOOM

    def __init__(self, config: ZoomConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._session = _ZoomSession(config, throttle=throttle, retry=retry, stats=stats, clock=clock,
                                     monotonic=monotonic)

    @property
    def tokens_fetched(self) -> int:
        """How many access tokens this connector asked for (the first one and every renewal)."""
        return self._session.tokens_fetched

    def _user_pages(self, status: str, token: str, bound: ListingBound) -> Iterator[tuple[list[Any], str]]:
        def send(client: Any, params: dict[str, object]) -> requests.Response:
            return client.user.list(status=status, **params)  # type: ignore[no-any-return]

        return self._session.pages(MEDIUM, f"list users ({status})", "users", bound, token, send)


# ----------------------------------------------------------------------------------------------- users

@dataclass(frozen=True, slots=True)
class _UserCursor:
    """Where a user listing stands: the status being listed, Zoom's page token, what was already delivered
    (a count, and a digest of the last user's id: no e-mail address in a stored cursor)."""

    status: str
    token: str = ""
    delivered: int = 0
    last: str | None = None

    def encode(self) -> str:
        text = json.dumps({"v": 1, "s": self.status, "t": self.token, "n": self.delivered, "k": self.last},
                          separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> _UserCursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            parsed = cls(str(data["s"]), str(data["t"]), int(data["n"]), data["k"])
        except (binascii.Error, ValueError, KeyError, TypeError) as error:
            raise ValueError("not a Zoom user cursor") from error
        if data.get("v") != 1 or parsed.status not in STATUSES:
            raise ValueError("not a Zoom user cursor")
        return parsed


class ZoomAccountSource(_ZoomConnector):
    """Zoom users of the three statuses (active, inactive, pending) as SourceAccount records, page by page.

    The cursor is opaque (base64 of the status, Zoom's page token, how many users of that status were delivered,
    and a digest of the last one's id). Zoom page tokens expire after 15 minutes: when a resumed token is refused, that
    status is listed again from its start and the users already delivered are passed over by count (the listing
    order is stable; the last delivered id is checked and a mismatch is logged — the next pass, which compares
    content hashes, reconciles a listing that changed while the cursor waited).
    """

    def iter_accounts(self, cursor: str | None = None) -> Iterator[Page[SourceAccount | Quarantined | Removed]]:
        position = _UserCursor.decode(cursor) if cursor else _UserCursor(STATUSES[0])
        for index in range(STATUSES.index(position.status), len(STATUSES)):
            status = STATUSES[index]
            following = _UserCursor(STATUSES[index + 1]).encode() if index + 1 < len(STATUSES) else None
            start = position if status == position.status else _UserCursor(status)
            yield from self._status_pages(start, following)

    def _status_pages(self, start: _UserCursor,
                      following: str | None) -> Iterator[Page[SourceAccount | Quarantined | Removed]]:
        status, delivered, last = start.status, start.delivered, start.last
        bound = ListingBound(SYSTEM, f"users:{status}")
        bound.check(start.token)
        pages = self._user_pages(status, start.token, bound)
        skip = 0
        restarted = False
        while True:
            try:
                users, token = next(pages)
            except StopIteration:
                return
            except _BadRequest as error:
                if error.code != _PAGE_TOKEN_CODE or not start.token or restarted:
                    raise
                log.info("zoom users (%s): the page token was refused; listing again, passing over %d users",
                         status, delivered)
                restarted, skip = True, delivered
                bound = ListingBound(SYSTEM, f"users:{status}")
                pages = self._user_pages(status, "", bound)
                continue
            if skip:
                passed, users = users[:skip], users[skip:]
                skip -= len(passed)
                if not skip and last is not None and _fingerprint(passed[-1]) != last:
                    log.warning("zoom users (%s): the listing changed while the cursor waited", status)
                if skip and not token:
                    log.warning("zoom users (%s): fewer users than were already delivered", status)
            delivered += len(users)
            if users:
                last = _fingerprint(users[-1])
            if users or not token:
                next_cursor = _UserCursor(status, token, delivered, last).encode() if token else following
                yield Page(tuple(map_user(user, listed_as=status) for user in users), next_cursor)


def _fingerprint(user: object) -> str:
    """The last delivered user, as a cursor keeps it: a digest (a pending user's id is its e-mail)."""
    text = _user_external_id(user) if isinstance(user, Mapping) else repr(user)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _user_external_id(user: Mapping[str, Any]) -> str:
    identifier = user.get("id")
    if identifier and isinstance(identifier, str | int) and not isinstance(identifier, bool):
        return str(identifier)
    email = user.get("email")
    email = email if isinstance(email, str) else ""
    parsed = parse_email(email)
    return "pending:" + (str(parsed) if isinstance(parsed, EmailAddress) else email.strip().lower())


def map_user(user: object, *, listed_as: str = "active") -> SourceAccount | Quarantined:
    """A Zoom user (API JSON) as a SourceAccount; pending users without id are keyed by their e-mail.

    `listed_as` is the `status` the listing asked for: a user without a `status` of its own takes it.
    """
    if not isinstance(user, Mapping):
        return Quarantined(ReasonCode.MALFORMED_RECORD, f"zoom:user:({type(user).__name__} item)",
                           detail="a listed user is not a JSON object")
    return parse_record(lambda: f"zoom:user:{_user_external_id(user)}",
                        lambda: _map_user(user, listed_as=listed_as))


def _map_user(user: Mapping[str, Any], *, listed_as: str) -> SourceAccount | Quarantined:
    external_id = _user_external_id(user)
    key = f"zoom:user:{external_id}"
    identifier = user.get("id")
    if identifier is not None and (not isinstance(identifier, str | int) or isinstance(identifier, bool)):
        return Quarantined(ReasonCode.MALFORMED_RECORD, record_key("zoom:user", identifier),
                           detail="id is not a string")
    email = user.get("email")
    if not isinstance(email, str) or not isinstance(parse_email(email), EmailAddress):
        return Quarantined(ReasonCode.INVALID_EMAIL, key, detail="the user's e-mail is not an address")
    try:
        raw_status = user.get("status") or listed_as
        if not isinstance(raw_status, str):
            raise ValueError("status is not a string")
        status = AccountStatus(raw_status)
        user_type = _integer(user["type"])
    except (KeyError, TypeError, ValueError):
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="status or type missing or unknown")
    first = _text(user.get("first_name"))
    last = _text(user.get("last_name"))
    display = _text(user.get("display_name")) or " ".join(part for part in (first, last) if part) or None
    return SourceAccount(
        platform=Platform.ZOOM, external_id=external_id, email=email, status=status,
        licences=(f"zoom:type:{user_type}",), licensed=user_type == 2, display_name=display, given_name=first,
        surname=last, employee_id=_text(user.get("employee_unique_id")), role=_text(user.get("role_id")),
        account_type=str(user_type), department=_text(user.get("dept")),
        last_activity=_instant(user.get("last_login_time")))


# ----------------------------------------------------------------------------------------------- licences

class ZoomLicenceSource(_ZoomConnector):
    """The licence types Zoom users hold, counted over every user of the three statuses.

    The Meeting API shows a user's `type` only; the plan's seat counts (`prepaid_units`) live in the Accounts /
    Billing API (`GET /v2/accounts/{accountId}/plans/usage`), which is neither in the Meeting API document nor
    wrapped by zoomus, so they are left unknown here.
    """

    def fetch_licences(self) -> list[LicenceSku]:
        counts: Counter[int] = Counter()
        for status in STATUSES:
            for users, _token in self._user_pages(status, "", ListingBound(SYSTEM, f"licences:{status}")):
                for user in users:
                    user_type = user.get("type") if isinstance(user, dict) else None
                    if isinstance(user_type, int):
                        counts[user_type] += 1
        return [LicenceSku(platform=Platform.ZOOM, sku_key=f"zoom:type:{user_type}",
                           name=LICENCE_NAMES.get(user_type, f"Type {user_type}"), includes_meetings=user_type == 2,
                           prepaid_units=None, consumed_units=count)
                for user_type, count in sorted(counts.items())]


# ----------------------------------------------------------------------------------------------- licence release

# Zoom's error codes on PATCH /users/{userId} (zoom.md section 5) → why the seat stays paid.
_RELEASE_REFUSALS = {200: ReleaseRefusal.ROOM_OR_ADMIN, 300: ReleaseRefusal.UPCOMING_EVENTS,
                     1108: ReleaseRefusal.NOT_PERMITTED, 1120: ReleaseRefusal.PENDING_USER,
                     2033: ReleaseRefusal.BASIC_USER_CAP, 3412: ReleaseRefusal.BASIC_USER_CAP}
BASIC = 1


class ZoomLicenceRelease(_ZoomConnector):
    """Frees a user's paid seat by a downgrade to Basic, then reads the user back (zoom.md section 5).

    The request body is exactly `{"type": 1}`: zoomus' `user.update` would put the user id in the body too, so the
    PATCH goes through its generic `patch_request`. A documented refusal is a ReleaseResult with its reason; a
    downgrade Zoom accepted but the re-read does not show is NOT_APPLIED, never counted as released.
    """

    def release(self, account_external_id: str, sku_key: str) -> ReleaseResult:
        """The LicenceReleaser role: a paid Zoom type (`zoom:type:2`…) is released by the downgrade to Basic."""
        if sku_key == _sku(BASIC):
            return ReleaseResult(account_external_id, released=True, before=sku_key, after=sku_key)
        return self.downgrade_to_basic(account_external_id)

    def restore(self, account_external_id: str, sku_key: str) -> RestoreResult:
        """Give the paid type back (`PATCH /users/{id}` with exactly `{"type": N}`, N from `zoom:type:N`)."""
        wanted = _type_from_sku(sku_key)
        if wanted is None:
            return RestoreResult(account_external_id, restored=False, refusal=ReleaseRefusal.REFUSED,
                                 detail=f"{sku_key!r} is not a Zoom user type")
        user_id = account_external_id
        path = f"users/{quote(user_id, safe='@')}"
        before = self._type_of(path, user_id)
        if isinstance(before, ReleaseResult):
            return RestoreResult(user_id, restored=False, refusal=before.refusal)
        if before == wanted:
            return RestoreResult(user_id, restored=True, after=sku_key)

        def send(client: Any) -> requests.Response:
            return client.user.patch_request(f"/{path}", data={"type": wanted})  # type: ignore[no-any-return]

        try:
            self._session.call(LIGHT, f"restore user {user_id}", send)
        except NotFound:
            return RestoreResult(user_id, restored=False, refusal=ReleaseRefusal.NOT_FOUND)
        except _BadRequest as refused:
            return RestoreResult(user_id, restored=False,
                                 refusal=_RELEASE_REFUSALS.get(refused.code or 0, ReleaseRefusal.REFUSED),
                                 detail=f"code {refused.code}")
        after = self._type_of(path, user_id)
        if isinstance(after, ReleaseResult):
            return RestoreResult(user_id, restored=False, refusal=after.refusal)
        if after != wanted:
            return RestoreResult(user_id, restored=False, after=_sku(after), refusal=ReleaseRefusal.NOT_APPLIED,
                                 detail="the user reads back unchanged")
        return RestoreResult(user_id, restored=True, after=_sku(after))

    def downgrade_to_basic(self, user_id: str) -> ReleaseResult:
        path = f"users/{quote(user_id, safe='@')}"
        before = self._type_of(path, user_id)
        if isinstance(before, ReleaseResult):
            return before
        if before == BASIC:  # already free: nothing to send
            return ReleaseResult(user_id, released=True, before=_sku(before), after=_sku(before))

        def send(client: Any) -> requests.Response:
            return client.user.patch_request(f"/{path}", data={"type": BASIC})  # type: ignore[no-any-return]

        try:
            self._session.call(LIGHT, f"downgrade user {user_id}", send)
        except NotFound:
            return ReleaseResult(user_id, released=False, before=_sku(before), refusal=ReleaseRefusal.NOT_FOUND)
        except _BadRequest as refused:
            return ReleaseResult(user_id, released=False, before=_sku(before),
                                 refusal=_RELEASE_REFUSALS.get(refused.code or 0, ReleaseRefusal.REFUSED),
                                 detail=f"code {refused.code}")
        after = self._type_of(path, user_id)
        if isinstance(after, ReleaseResult):
            return after
        if after != BASIC:
            return ReleaseResult(user_id, released=False, before=_sku(before), after=_sku(after),
                                 refusal=ReleaseRefusal.NOT_APPLIED, detail="the user reads back unchanged")
        return ReleaseResult(user_id, released=True, before=_sku(before), after=_sku(after))

    def _type_of(self, path: str, user_id: str) -> int | ReleaseResult | None:
        def send(client: Any) -> requests.Response:
            return client.user.get_request(f"/{path}")  # type: ignore[no-any-return]

        try:
            user = self._session.call(LIGHT, f"get user {user_id}", send)
        except NotFound:
            return ReleaseResult(user_id, released=False, refusal=ReleaseRefusal.NOT_FOUND)
        found = user.get("type") if isinstance(user, dict) else None
        return found if isinstance(found, int) else None


def _sku(user_type: int | None) -> str | None:
    return f"zoom:type:{user_type}" if user_type is not None else None


def _type_from_sku(sku_key: str) -> int | None:
    prefix, _, number = sku_key.rpartition(":")
    return int(number) if prefix == "zoom:type" and number.isdigit() else None


# ----------------------------------------------------------------------------------------------- meetings

@dataclass(frozen=True, slots=True)
class _Listed:
    """A meeting or webinar id seen in a host's listing."""

    identifier: int
    webinar: bool


@dataclass
class _HostWork:
    """A host's listing, with the GETs it started (in listing order), or why the listing failed."""

    fetches: list[Future[Meeting | Quarantined | None]]
    found: list[Quarantined] = field(default_factory=list)   # listed items that are not meetings
    missing: bool = False
    failure: Quarantined | None = None


class ZoomMeetingSource(_ZoomConnector):
    """Scheduled meetings and webinars of the given hosts: each host's listing, then every meeting in full.

    A page holds the meetings of `hosts_per_page` hosts; its cursor is the external id of the page's last host.
    Listings (Medium) and GETs (Light) run in two small thread pools paced by the throttle, a few pages ahead
    of the consumer, so that request latency does not starve the account's rate; results keep the hosts' order
    and each host's listing order. A meeting gone between listing and GET, or a host gone, is skipped and counted
    in `Page.skipped`. A host whose listing fails (a 400, a listing that never ends, a page that is not a listing)
    is quarantined with the reason and named in `Page.incomplete`; the other hosts go on. Webinars are paged by
    `page_number`, the only paging their operation declares.
    """

    def iter_meetings(self, hosts: Sequence[HostRef],
                      cursor: str | None = None) -> Iterator[Page[Meeting | Quarantined]]:
        start = 0
        if cursor is not None:
            ids = [host.external_id for host in hosts]
            if cursor not in ids:
                raise ValueError("the meeting cursor names a host that is not in the list")
            start = ids.index(cursor) + 1
        remaining = list(hosts[start:])
        size = self.config.hosts_per_page
        batches = [remaining[i:i + size] for i in range(0, len(remaining), size)]
        if not batches:
            return
        listers = ThreadPoolExecutor(self.config.listing_workers, thread_name_prefix="zoom-list")
        fetchers = ThreadPoolExecutor(self.config.fetch_workers, thread_name_prefix="zoom-get")
        submitted: list[list[Future[_HostWork]]] = []
        try:
            for index, batch in enumerate(batches):
                while len(submitted) < min(len(batches), index + 3):  # this batch and two ahead
                    ahead = batches[len(submitted)]
                    submitted.append([listers.submit(self._list_host, host, fetchers) for host in ahead])
                items: list[Meeting | Quarantined] = []
                incomplete: list[str] = []
                skipped = 0
                for host, work_future in zip(batch, submitted[index], strict=True):
                    work = work_future.result()
                    skipped += work.missing
                    if work.failure is not None:
                        items.append(work.failure)
                        incomplete.append(host.external_id)
                    items.extend(work.found)
                    for fetch in work.fetches:
                        found = fetch.result()
                        if found is None:
                            skipped += 1
                        else:
                            items.append(found)
                submitted[index] = []
                last = index == len(batches) - 1
                yield Page(tuple(items), None if last else batch[-1].external_id, skipped=skipped,
                           incomplete=tuple(incomplete))
        finally:
            for pending in submitted:
                for work_future in pending:
                    work_future.cancel()
            listers.shutdown(wait=True, cancel_futures=True)
            fetchers.shutdown(wait=True, cancel_futures=True)

    def _list_host(self, host: HostRef, fetchers: ThreadPoolExecutor) -> _HostWork:
        """List a host's meetings (then webinars) and start a GET for each, in listing order."""
        try:
            listed = self._listed(host, webinar=False)
            if self.config.list_webinars:
                listed += self._listed(host, webinar=True)
        except NotFound:
            log.info("zoom host %s no longer exists: its meetings are skipped", host.external_id)
            return _HostWork([], missing=True)
        except ConnectorAuthError:
            raise
        except PermanentConnectorError as error:
            return _HostWork([], failure=failed_listing(SYSTEM, f"host:{host.external_id}:meetings", error))
        return _HostWork([fetchers.submit(self._fetch, host, item) for item in listed if isinstance(item, _Listed)],
                         found=[item for item in listed if isinstance(item, Quarantined)])

    def _listed(self, host: HostRef, *, webinar: bool) -> list[_Listed | Quarantined]:
        noun = "webinars" if webinar else "meetings"

        def send(client: Any, params: dict[str, object]) -> requests.Response:
            component = client.webinar if webinar else client.meeting
            return component.list(user_id=host.external_id, type="scheduled", **params)  # type: ignore[no-any-return]

        bound = ListingBound(SYSTEM, f"{noun} of host {host.external_id}")
        found: list[_Listed | Quarantined] = []
        try:
            for items, _token in self._session.pages(MEDIUM, f"list {noun} of host {host.external_id}", noun,
                                                     bound, "", send, by_number=webinar):
                found.extend(_listed_item(item, webinar) for item in items)
        except _BadRequest as error:
            if webinar and error.code == _NO_WEBINAR_PLAN_CODE:
                return []  # no webinar add-on on this account or user
            raise
        return found

    def _fetch(self, host: HostRef, item: _Listed) -> Meeting | Quarantined | None:
        noun = "webinar" if item.webinar else "meeting"

        def send(client: Any) -> requests.Response:
            component = client.webinar if item.webinar else client.meeting
            return component.get(id=item.identifier)  # type: ignore[no-any-return]

        key = f"zoom:{noun}:{item.identifier}"
        try:
            body = self._session.call(LIGHT, f"get {noun} {item.identifier}", send)
        except NotFound:
            log.info("zoom %s %s disappeared between listing and GET", noun, item.identifier)
            return None
        except ConnectorAuthError:
            raise
        except PermanentConnectorError as error:
            return Quarantined(ReasonCode.LISTING_REFUSED, key, detail=_bare(error))
        if body is None:
            return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="empty body")
        return meeting_from_zoom(body, host=host, webinar=item.webinar, now=self._clock(),
                                 internal_domains=self.config.internal_domains)


def _listed_item(item: object, webinar: bool) -> _Listed | Quarantined:
    noun = "webinar" if webinar else "meeting"
    identifier = item.get("id") if isinstance(item, dict) else None
    if isinstance(identifier, int) and not isinstance(identifier, bool):
        return _Listed(identifier, webinar)
    return Quarantined(ReasonCode.MALFORMED_RECORD, record_key(f"zoom:{noun}", identifier),
                       detail="a listed item without a numeric id")


def _bare(error: BaseException) -> str:
    text = str(error)
    return text.removeprefix(f"{SYSTEM}: ")


# Meeting and webinar types (zoom.md 4.3): the kinds bascule knows; anything else is inferred or quarantined.
_SINGLE_TYPES = frozenset({1, 2, 5})               # instant, scheduled meeting, webinar
_KNOWN_TYPES = _SINGLE_TYPES | _RECURRING_TYPES | _NO_FIXED_TIME_TYPES | {_PMI_TYPE}


def meeting_from_zoom(body: Mapping[str, Any], *, host: HostRef, webinar: bool, now: datetime,
                      internal_domains: frozenset[str]) -> Meeting | Quarantined:
    """A full `GET /meetings/{id}` (or `/webinars/{id}`) body as a Meeting; `start_url` is never read.

    A `type` that is missing or unknown is inferred from the body when it says enough (a `recurrence` object: a
    fixed-time series), else the meeting is quarantined (MEETING_TYPE_UNKNOWN) — never taken for a one-off.
    `occurrences[]` gives the series' exceptions: a `deleted` occurrence is an exclusion, one whose start or
    duration differs from what the rule gives is an exception (`occurrence_id` is its original start, in epoch
    milliseconds). `settings.meeting_invitees` is read when present (the spec declares it on writes only, and a
    meeting scheduled from a calendar has none): without it the invitees are unknown, not none.
    """
    return parse_record(lambda: record_key(f"zoom:{'webinar' if webinar else 'meeting'}", body.get("id")),
                        lambda: _meeting_from_zoom(body, host=host, webinar=webinar, now=now,
                                                   internal_domains=internal_domains))


def _meeting_from_zoom(body: Mapping[str, Any], *, host: HostRef, webinar: bool, now: datetime,
                       internal_domains: frozenset[str]) -> Meeting | Quarantined:
    identifier = body.get("id")
    key = record_key(f"zoom:{'webinar' if webinar else 'meeting'}", identifier)
    if not isinstance(identifier, int) or isinstance(identifier, bool):
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="no numeric id")
    raw_settings = body.get("settings")
    if raw_settings is not None and not isinstance(raw_settings, dict):
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="settings is not an object")
    settings: Mapping[str, Any] = raw_settings or {}
    meeting_type = _meeting_type(body, webinar=webinar)
    if meeting_type is None:
        return Quarantined(ReasonCode.MEETING_TYPE_UNKNOWN, key,
                           detail=f"type {_shown_type(body.get('type'))} is not a Zoom meeting type and the body "
                                  "has no recurrence to infer one from")
    timezone = _text(body.get("timezone")) or "UTC"
    start = _instant(body.get("start_time"))
    personal_room = bool(settings.get("use_pmi")) or meeting_type == _PMI_TYPE
    no_fixed_time = meeting_type in _NO_FIXED_TIME_TYPES and not personal_room
    duration = body.get("duration")
    duration = duration if isinstance(duration, int) and not isinstance(duration, bool) else None
    recurrence: Recurrence | None = None
    ends_at: datetime | None = start
    exclusions: tuple[datetime, ...] = ()
    exceptions: tuple[OccurrenceChange, ...] = ()
    if meeting_type in _RECURRING_TYPES:
        raw = body.get("recurrence")
        if not isinstance(raw, dict) or start is None:
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, key,
                               detail="a fixed-time series without recurrence or start_time")
        parsed = recurrence_from_zoom(raw, start=start, timezone=timezone)
        if isinstance(parsed, Unparseable):
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, key, detail=parsed.reason)
        recurrence = parsed
        ends_at = last_occurrence(recurrence, start)
        changes = _occurrence_changes(body.get("occurrences"), duration=duration)
        if isinstance(changes, str):
            return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail=changes)
        exclusions, exceptions = changes
    kind = classify_meeting(recurrence=recurrence, start=start, now=now, no_fixed_time=no_fixed_time,
                            personal_room=personal_room)
    join_url = _text(body.get("join_url")) or ""
    link = parse_join_url(join_url) if join_url else None
    raw_invitees = settings.get("meeting_invitees")
    invitees_known = isinstance(raw_invitees, list)
    invitees = tuple(str(entry["email"]) for entry in raw_invitees or ()
                     if isinstance(entry, dict) and isinstance(entry.get("email"), str)) if invitees_known else ()
    domains = {domain.lower() for domain in internal_domains}
    dial_in_numbers = settings.get("global_dial_in_numbers")
    alternative_hosts = settings.get("alternative_hosts")
    return Meeting(
        platform=Platform.ZOOM, external_id=str(identifier),
        host_account_id=host.external_id, host_email=_text(body.get("host_email")) or host.email,
        topic=_text(body.get("topic")) or "", kind=kind, timezone=timezone, join_url=join_url,
        link_key=str(link) if isinstance(link, JoinLink) else f"zoom:{identifier}",
        start=start, duration_minutes=duration, recurrence=recurrence, ends_at=ends_at,
        waiting_room=settings.get("waiting_room") is True, passcode=bool(_text(body.get("password"))),
        alternative_hosts=tuple(part.strip() for part in (alternative_hosts or "").split(";") if part.strip())
        if isinstance(alternative_hosts, str) else (),
        invitees=invitees, external_invitees=sum(1 for email in invitees if _domain(email) not in domains),
        webinar=webinar,
        dial_in=settings.get("audio") in ("both", "telephony") and bool(dial_in_numbers),
        registration=settings.get("approval_type") in (0, 1) and not isinstance(settings.get("approval_type"), bool),
        exclusions=exclusions, exceptions=exceptions, invitees_known=invitees_known)


def _meeting_type(body: Mapping[str, Any], *, webinar: bool) -> int | None:
    """The body's `type` when bascule knows it; a fixed-time series when it has a recurrence; else None."""
    value = body.get("type")
    if isinstance(value, int) and not isinstance(value, bool) and value in _KNOWN_TYPES:
        return value
    if isinstance(body.get("recurrence"), dict) and body["recurrence"]:
        return 9 if webinar else 8
    return None


def _shown_type(value: object) -> str:
    return "(missing)" if value is None else (repr(value) if isinstance(value, int | str) else type(value).__name__)


def _occurrence_changes(raw: object, *, duration: int | None
                        ) -> tuple[tuple[datetime, ...], tuple[OccurrenceChange, ...]] | str:
    """Deleted occurrences (exclusions) and moved or resized ones (exceptions) from `occurrences[]`, or why not."""
    if raw is None:
        return (), ()
    if not isinstance(raw, list):
        return "occurrences is not a list"
    exclusions: list[datetime] = []
    exceptions: list[OccurrenceChange] = []
    for entry in raw:
        if not isinstance(entry, dict):
            return "an occurrence is not an object"
        identifier = entry.get("occurrence_id")
        if not isinstance(identifier, str | int) or isinstance(identifier, bool) or not str(identifier).isdigit():
            return "an occurrence without a numeric occurrence_id"
        original = datetime.fromtimestamp(int(identifier) / 1000, tz=UTC)
        if entry.get("status") == "deleted":
            exclusions.append(original)
            continue
        start = _instant(entry.get("start_time")) or original
        length = entry.get("duration")
        length = length if isinstance(length, int) and not isinstance(length, bool) else None
        resized = length is not None and duration is not None and length != duration
        if start != original or resized:
            exceptions.append(OccurrenceChange(original=original, start=start,
                                               duration_minutes=length if resized else None))
    return tuple(sorted(exclusions)), tuple(sorted(exceptions, key=lambda change: change.original))


# ----------------------------------------------------------------------------------------------- values

def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _integer(value: object) -> int:
    """An integer field (a digit string is tolerated); ValueError for anything else, booleans included."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError("not an integer")


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _domain(email: str) -> str:
    parsed = parse_email(email)
    if isinstance(parsed, EmailAddress):
        return parsed.domain
    return email.rpartition("@")[2].strip().lower()


# ----------------------------------------------------------------------------------------------- onboarding probe

def check_access(config: ZoomConfig, *, session: requests.Session | None = None) -> AccessCheck:
    """Ask the token endpoint once and read the scopes the token carries (zoom.md section 1); no API call.

    zoomus drops the token response (and its `scope`), so the request is sent here: Basic client auth,
    `grant_type` and `account_id` in the query string as Zoom documents. Refused credentials (401 or 403, or a 400
    for an unknown account) are a value; an unreachable endpoint, a 429 or a 5xx raise TransientConnectorError; any
    other status (a wrong oauth_url answering 404, a redirect) raises UnexpectedResponse.
    """
    http = session or requests.Session()
    try:
        response = http.post(config.oauth_url, params={"grant_type": "account_credentials",
                                                       "account_id": config.account_id},
                             auth=(config.client_id, config.client_secret), timeout=config.timeout_seconds)
    except requests.RequestException as error:
        raise TransientConnectorError(SYSTEM, f"token request failed ({type(error).__name__})") from error
    finally:
        if session is None:
            http.close()
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientConnectorError(SYSTEM, f"the token endpoint answered HTTP {status}")
    if status not in (200, 400, 401, 403):  # a wrong oauth_url, a proxy, a redirect: not a credential refusal
        raise UnexpectedResponse(SYSTEM, "POST oauth/token", status=status, body=response.text)
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if status != 200:
        oauth_error = body.get("error")
        code = f", {oauth_error}" if isinstance(oauth_error, str) and oauth_error.replace("_", "").isalnum() else ""
        return AccessCheck(authenticated=False, detail=f"HTTP {status}{code}")
    if not body.get("access_token"):
        return AccessCheck(authenticated=False, detail="no access token in the answer")
    scope = body.get("scope")
    return AccessCheck(authenticated=True, granted=frozenset(scope.split()) if isinstance(scope, str) else None)
