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

import requests
from zoomus import ZoomClient

from connectors.errors import (
    ConnectorAuthError,
    NotFound,
    PermanentConnectorError,
    RateLimited,
    TransientConnectorError,
)
from connectors.paging import CursorGuard
from connectors.retry import RetryPolicy, RetryStats, call_with_retries, parse_retry_after
from connectors.throttle import Throttle
from core import (
    AccountStatus,
    HostRef,
    LicenceSku,
    Meeting,
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

    @staticmethod
    def _send(send: Callable[[Any], requests.Response], client: Any, what: str) -> requests.Response:
        try:
            return send(client)
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

    def pages(self, label: str, what: str, items: str, guard: CursorGuard, token: str,
              send: Callable[[Any, dict[str, object]], requests.Response]) -> Iterator[tuple[list[Any], str]]:
        """Pages of a next_page_token listing from `token` ("" = the start): (items, token of the next page)."""
        while True:
            params: dict[str, object] = {"page_size": self.config.page_size}
            if token:
                params["next_page_token"] = token
            body = self.call(label, what, _bind(send, params))
            following = str((body or {}).get("next_page_token") or "")
            guard.check(following)
            found = (body or {}).get(items) or []
            yield (found if isinstance(found, list) else []), following
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

    def _user_pages(self, status: str, token: str, guard: CursorGuard) -> Iterator[tuple[list[Any], str]]:
        def send(client: Any, params: dict[str, object]) -> requests.Response:
            return client.user.list(status=status, **params)  # type: ignore[no-any-return]

        return self._session.pages(MEDIUM, f"list users ({status})", "users", guard, token, send)


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
        guard = CursorGuard(SYSTEM, f"users:{status}")
        guard.check(start.token)
        pages = self._user_pages(status, start.token, guard)
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
                guard = CursorGuard(SYSTEM, f"users:{status}")
                pages = self._user_pages(status, "", guard)
                continue
            users = [user for user in users if isinstance(user, dict)]
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
                yield Page(tuple(map_user(user) for user in users), next_cursor)


def _fingerprint(user: Mapping[str, Any]) -> str:
    """The last delivered user, as a cursor keeps it: a digest (a pending user's id is its e-mail)."""
    return hashlib.sha256(_user_external_id(user).encode()).hexdigest()[:16]


def _user_external_id(user: Mapping[str, Any]) -> str:
    if user.get("id"):
        return str(user["id"])
    email = str(user.get("email") or "")
    parsed = parse_email(email)
    return "pending:" + (str(parsed) if isinstance(parsed, EmailAddress) else email.strip().lower())


def map_user(user: Mapping[str, Any]) -> SourceAccount | Quarantined:
    """A Zoom user (API JSON) as a SourceAccount; pending users without id are keyed by their e-mail."""
    external_id = _user_external_id(user)
    key = f"zoom:user:{external_id}"
    email = user.get("email")
    if not isinstance(email, str) or not isinstance(parse_email(email), EmailAddress):
        return Quarantined(ReasonCode.INVALID_EMAIL, key, detail="the user's e-mail is not an address")
    try:
        status = AccountStatus(str(user.get("status") or "active"))
        user_type = int(user["type"])
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
            for users, _token in self._user_pages(status, "", CursorGuard(SYSTEM, f"licences:{status}")):
                for user in users:
                    user_type = user.get("type") if isinstance(user, dict) else None
                    if isinstance(user_type, int):
                        counts[user_type] += 1
        return [LicenceSku(platform=Platform.ZOOM, sku_key=f"zoom:type:{user_type}",
                           name=LICENCE_NAMES.get(user_type, f"Type {user_type}"), includes_meetings=user_type == 2,
                           prepaid_units=None, consumed_units=count)
                for user_type, count in sorted(counts.items())]


# ----------------------------------------------------------------------------------------------- meetings

@dataclass(frozen=True, slots=True)
class _Listed:
    """A meeting or webinar id seen in a host's listing."""

    identifier: int
    webinar: bool


@dataclass
class _HostWork:
    """A host's listing, with the GETs it started (in listing order)."""

    fetches: list[Future[Meeting | Quarantined | None]]
    missing: bool = False


class ZoomMeetingSource(_ZoomConnector):
    """Scheduled meetings and webinars of the given hosts: each host's listing, then every meeting in full.

    A page holds the meetings of `hosts_per_page` hosts; its cursor is the external id of the page's last host.
    Listings (Medium) and GETs (Light) run in two small thread pools paced by the throttle, a few pages ahead
    of the consumer, so that request latency does not starve the account's rate; results keep the hosts' order
    and each host's listing order. A meeting gone between listing and GET, or a host gone, is skipped and counted
    in `Page.skipped`.
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
                skipped = 0
                for work_future in submitted[index]:
                    work = work_future.result()
                    skipped += work.missing
                    for fetch in work.fetches:
                        found = fetch.result()
                        if found is None:
                            skipped += 1
                        else:
                            items.append(found)
                submitted[index] = []
                last = index == len(batches) - 1
                yield Page(tuple(items), None if last else batch[-1].external_id, skipped=skipped)
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
        return _HostWork([fetchers.submit(self._fetch, host, item) for item in listed])

    def _listed(self, host: HostRef, *, webinar: bool) -> list[_Listed]:
        noun = "webinars" if webinar else "meetings"

        def send(client: Any, params: dict[str, object]) -> requests.Response:
            component = client.webinar if webinar else client.meeting
            return component.list(user_id=host.external_id, type="scheduled", **params)  # type: ignore[no-any-return]

        guard = CursorGuard(SYSTEM, f"{noun}:{host.external_id}")
        found: list[_Listed] = []
        try:
            for items, _token in self._session.pages(MEDIUM, f"list {noun} of host {host.external_id}", noun,
                                                     guard, "", send):
                found.extend(_Listed(int(item["id"]), webinar) for item in items
                             if isinstance(item, dict) and isinstance(item.get("id"), int))
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

        try:
            body = self._session.call(LIGHT, f"get {noun} {item.identifier}", send)
        except NotFound:
            log.info("zoom %s %s disappeared between listing and GET", noun, item.identifier)
            return None
        if body is None:
            return Quarantined(ReasonCode.MALFORMED_RECORD, f"zoom:{noun}:{item.identifier}", detail="empty body")
        return meeting_from_zoom(body, host=host, webinar=item.webinar, now=self._clock(),
                                 internal_domains=self.config.internal_domains)


def meeting_from_zoom(body: Mapping[str, Any], *, host: HostRef, webinar: bool, now: datetime,
                      internal_domains: frozenset[str]) -> Meeting | Quarantined:
    """A full `GET /meetings/{id}` (or `/webinars/{id}`) body as a Meeting; `start_url` is never read."""
    identifier = body.get("id")
    key = f"zoom:{'webinar' if webinar else 'meeting'}:{identifier}"
    if not isinstance(identifier, int):
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="no numeric id")
    settings = body.get("settings") if isinstance(body.get("settings"), dict) else {}
    assert isinstance(settings, dict)
    meeting_type = body.get("type")
    timezone = _text(body.get("timezone")) or "UTC"
    start = _instant(body.get("start_time"))
    personal_room = bool(settings.get("use_pmi")) or meeting_type == _PMI_TYPE
    no_fixed_time = meeting_type in _NO_FIXED_TIME_TYPES and not personal_room
    recurrence: Recurrence | None = None
    ends_at: datetime | None = start
    if meeting_type in _RECURRING_TYPES:
        raw = body.get("recurrence")
        if not isinstance(raw, dict) or start is None:
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, f"zoom:meeting:{identifier}",
                               detail="a fixed-time series without recurrence or start_time")
        parsed = recurrence_from_zoom(raw, start=start, timezone=timezone)
        if isinstance(parsed, Unparseable):
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, f"zoom:meeting:{identifier}",
                               detail=parsed.reason)
        recurrence = parsed
        ends_at = last_occurrence(recurrence, start)
    kind = classify_meeting(recurrence=recurrence, start=start, now=now, no_fixed_time=no_fixed_time,
                            personal_room=personal_room)
    join_url = _text(body.get("join_url")) or ""
    link = parse_join_url(join_url) if join_url else None
    invitees = tuple(str(entry["email"]) for entry in settings.get("meeting_invitees") or ()
                     if isinstance(entry, dict) and isinstance(entry.get("email"), str))
    domains = {domain.lower() for domain in internal_domains}
    dial_in_numbers = settings.get("global_dial_in_numbers")
    duration = body.get("duration")
    return Meeting(
        platform=Platform.ZOOM, external_id=str(identifier),
        host_account_id=host.external_id, host_email=_text(body.get("host_email")) or host.email,
        topic=_text(body.get("topic")) or "", kind=kind, timezone=timezone, join_url=join_url,
        link_key=str(link) if isinstance(link, JoinLink) else f"zoom:{identifier}",
        start=start, duration_minutes=duration if isinstance(duration, int) else None,
        recurrence=recurrence, ends_at=ends_at,
        waiting_room=bool(settings.get("waiting_room")), passcode=bool(body.get("password")),
        alternative_hosts=tuple(part.strip() for part in str(settings.get("alternative_hosts") or "").split(";")
                                if part.strip()),
        invitees=invitees, external_invitees=sum(1 for email in invitees if _domain(email) not in domains),
        webinar=webinar,
        dial_in=settings.get("audio") in ("both", "telephony") and bool(dial_in_numbers),
        registration=settings.get("approval_type") in (0, 1))


# ----------------------------------------------------------------------------------------------- values

def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


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
    `grant_type` and `account_id` in the query string as Zoom documents. Refused credentials (401, or a 400 for an
    unknown account) are a value; an unreachable endpoint, a 429 or a 5xx raise TransientConnectorError.
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
