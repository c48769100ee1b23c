"""Webex: people, the licence catalogue and hosts' meeting series, over the REST API with httpx.

Why httpx and not webexpythonsdk (shared/contracts/webex.md section 2): the SDK's default waits out 429s forever
(and its `wait_on_rate_limit=False` leaves the loop to us anyway), it needs a base URL ending in `/`, it re-adds
original query parameters to next-page URLs **without encoding** (`hostEmail=a+b@…` becomes a space, an offset in
`from` breaks), it has no PATCH helper, and its results are immutable wrappers around the raw dicts we parse
ourselves. The API surface bascule needs is four GETs: httpx gives RFC 5988 `Link` parsing (`response.links`),
explicit timeouts, connection pooling and `MockTransport` as a test seam, and every call goes through the one
retry layer (connectors.retry, bounded) and the account's throttle.

Wire choices:
- every listing follows `Link: rel="next"` verbatim (the URL repeats the parameters, encoded, plus an opaque
  cursor); a repeated next URL, or a listing running past its hard cap (Webex announces no totals), stops it
  (connectors.paging.ListingBound); a next URL on another origin is refused (the bearer token never leaves the
  configured API host); a page whose `items` is not a list is LISTING_MALFORMED;
- meetings are listed per host with `hostEmail`, `meetingType=meetingSeries`, `current=false` (so `start` is the
  first occurrence, the DTSTART of the RRULE), and always both `from` (today 00:00Z) and `to` (+window_days),
  in UTC with `Z`; the host's IANA zone (People API, batched `id=` lookups) goes in the `timezone` header so the
  rule is expanded in the zone it was scheduled in;
- a 429 waits `Retry-After` (15 s when absent, like the SDK; configurable) within the retry policy's bounds.

Cursors:
- accounts: `{"next": <next-page URL>, "delivered": <records delivered so far>}`. When a resumed next URL is
  refused (a 4xx other than 401/403/429: Webex cursors are short-lived), the listing restarts from the first
  page and skips the records already delivered (the org listing's order is stable), at most three times;
- meetings: the external id of the last host fully listed (the MeetingSource contract). A cursor that is not
  among `hosts` means the caller already dropped the hosts done: listing starts at the first host given.

A host whose meeting listing fails (a 4xx, a listing that never ends, a malformed page) is quarantined with the
reason and named in `Page.incomplete`; the other hosts go on. A series whose invitees cannot be listed is
quarantined (LISTING_REFUSED) rather than migrated without them. A record whose fields have unexpected types is
quarantined (MALFORMED_RECORD, connectors.wire); a series listed twice is reported (DUPLICATE_SOURCE_ID).

Meetings that are not the host's own: a `hostEmail` listing includes series where the user is only an invitee;
they are dropped and counted in `Page.skipped`. A series with an empty `hostEmail` is quarantined
(MEETING_WITHOUT_HOST) under the host whose listing returned it when its `hostUserId` names that host, or when it
has no `hostUserId` at all (then every listing that returns it reports the same record key); a headless series
whose `hostUserId` names someone else is an invitee's view and is skipped like the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from connectors.errors import (
    ConnectorAuthError,
    NotFound,
    PermanentConnectorError,
    RateLimited,
    TransientConnectorError,
    Unreachable,
    origin_of,
)
from connectors.paging import ListingBound, ListingFailed, failed_listing
from connectors.retry import RetryPolicy, RetryStats, call_with_retries, parse_retry_after
from connectors.roles import HostRef
from connectors.throttle import Throttle
from connectors.wire import parse_record, record_key
from core import (
    AccountStatus,
    EmailAddress,
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
from core.licences import ReleaseRefusal, ReleaseResult, RestoreResult
from core.links import JoinLink, parse_join_url, parse_meeting_reference
from core.readiness import AccessCheck
from core.recurrence import Unparseable, classify_meeting, last_occurrence, recurrence_from_webex

SYSTEM = "webex"
MEETING_LICENCE_PREFIX = "Meeting - "
PEOPLE_IDS_PER_LOOKUP = 85   # GET /people?id= accepts up to 85 ids
MAX_PAGE_SIZE = 100          # people, meetings and invitees all stop at 100
_RESTARTS = 3
# Webex announces no totals: hard caps per listing (a host with 20,000 series or a series with 100,000
# invitees is not a real listing).
MAX_HOST_MEETING_PAGES = 200
MAX_INVITEE_PAGES = 1_000
logger = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebexConfig:
    """One Webex organisation as bascule reaches it (a service-app or admin access token)."""

    api_url: str                         # with its trailing slash: https://webexapis.com/v1/
    org_id: str
    access_token: str = field(repr=False)
    page_size: int = 100                 # max= of every listing (the API stops at 100)
    timeout_seconds: float = 30.0        # per request
    window_days: int = 400               # meetings are listed from today 00:00Z to today + window_days
    internal_domains: tuple[str, ...] = ()
    hosts_per_page: int = 25             # a meetings page holds at most this many hosts (and ~page_size items)
    default_retry_after_seconds: float = 15.0  # a 429 without Retry-After (webexpythonsdk waits 15 s too)

    def __post_init__(self) -> None:
        if not self.api_url.endswith("/"):
            raise ValueError("api_url must end with '/' (relative paths are joined to it)")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if not 1 <= self.hosts_per_page <= PEOPLE_IDS_PER_LOOKUP:
            raise ValueError(f"hosts_per_page must be between 1 and {PEOPLE_IDS_PER_LOOKUP}")
        if self.window_days < 1:
            raise ValueError("window_days must be positive")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WebexClient:
    """The HTTP layer: auth header, throttle, bounded retries, error mapping, verbatim next links."""

    def __init__(self, config: WebexConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._sleep = sleep
        self._origin = _origin(config.api_url)
        self._http = httpx.Client(base_url=config.api_url, timeout=config.timeout_seconds, transport=transport,
                                  headers={"Authorization": f"Bearer {config.access_token}",
                                           "Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def get(self, url: str, *, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> tuple[Json, str | None]:
        """GET a path under api_url (with params) or an absolute next URL (verbatim); the body and the next URL."""
        if url.startswith(("http://", "https://")) and _origin(url) != self._origin:
            raise PermanentConnectorError(SYSTEM, "a next-page link points outside the API host")

        def attempt() -> tuple[Json, str | None]:
            response = self._send("GET", url, params=params, headers=headers)
            body = self._checked(response)
            next_url = response.links.get("next", {}).get("url")
            return body, next_url

        return call_with_retries(attempt, self._retry, stats=self._stats, sleep=self._sleep)

    def patch(self, path: str, body: Mapping[str, Any]) -> tuple[int, Json]:
        """PATCH a path under api_url with a JSON body (idempotent writes only: retried like a GET); the status
        (200, or 206 when Webex applied part of it) and the body."""
        def attempt() -> tuple[int, Json]:
            response = self._send("PATCH", path, json=dict(body))
            return response.status_code, self._checked(response, ok=(200, 206))

        return call_with_retries(attempt, self._retry, stats=self._stats, sleep=self._sleep)

    def _send(self, method: str, url: str, **request: Any) -> httpx.Response:
        """One request under the organisation's throttle; transport failures mapped to the connector errors."""
        self._throttle.acquire(f"{SYSTEM}:{self.config.org_id}")
        try:
            return self._http.request(method, url, **request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(SYSTEM, origin_of(self.config.api_url), type(exc).__name__) from exc
        except httpx.TimeoutException as exc:
            raise TransientConnectorError(SYSTEM, f"{method} {_path(url)}: timed out") from exc
        except httpx.TransportError as exc:
            raise TransientConnectorError(SYSTEM, f"{method} {_path(url)}: {type(exc).__name__}") from exc

    def _checked(self, response: httpx.Response, *, ok: tuple[int, ...] = (200,)) -> Json:
        status = response.status_code
        where = f"{response.request.method} {_path(str(response.request.url))}"
        tracking = response.headers.get("TrackingID") or "-"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise RateLimited(SYSTEM, f"{where}: throttled (tracking {tracking})",
                              retry_after=self.config.default_retry_after_seconds if retry_after is None
                              else retry_after)
        if status in (401, 403):
            reason = "token refused" if status == 401 else "missing scope or not an administrator"
            raise ConnectorAuthError(SYSTEM, f"{where}: HTTP {status}, {reason} (tracking {tracking})")
        if status == 404:
            raise NotFound(SYSTEM, f"{where}: HTTP 404 (tracking {tracking})")
        if status >= 500:
            raise TransientConnectorError(SYSTEM, f"{where}: HTTP {status} (tracking {tracking})")
        if status not in ok:
            raise PermanentConnectorError(SYSTEM, f"{where}: HTTP {status} (tracking {tracking})")
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise TransientConnectorError(SYSTEM, f"{where}: truncated or invalid JSON body") from exc
        if not isinstance(body, dict):
            raise TransientConnectorError(SYSTEM, f"{where}: the body is not a JSON object")
        return body


class _WebexBase:
    """What every Webex role shares: the client, the clock, the licence catalogue (fetched once)."""

    platform = Platform.WEBEX

    def __init__(self, config: WebexConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime] = _utc_now, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._client = WebexClient(config, throttle=throttle, retry=retry, stats=stats, transport=transport,
                                   sleep=sleep)
        self._clock = clock
        self._catalogue: list[LicenceSku] | None = None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> _WebexBase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def fetch_licences(self) -> list[LicenceSku]:
        """Every licence of the organisation with its seats (one listing, followed through any next links)."""
        skus: list[LicenceSku] = []
        bound = ListingBound(SYSTEM, "licenses", max_pages=100)
        url: str | None = "licenses"
        params: dict[str, str] | None = {"orgId": self.config.org_id}
        while url is not None:
            body, next_url = self._client.get(url, params=params)
            items = _items(body, "licenses")
            bound.page(len(items))
            skus.extend(sku for item in items if isinstance(item, dict) and (sku := _licence(item)) is not None)
            bound.check(next_url)
            url, params = next_url, None
        self._catalogue = skus
        return list(skus)

    def _meeting_licences(self) -> frozenset[str]:
        if self._catalogue is None:
            self.fetch_licences()
        assert self._catalogue is not None
        return frozenset(sku.sku_key for sku in self._catalogue if sku.includes_meetings)


# ------------------------------------------------------------------------------------------------ accounts

class WebexAccountSource(_WebexBase):
    """The organisation's people as an administrator lists them, page by page."""

    def iter_accounts(self, cursor: str | None = None) -> Iterator[Page[SourceAccount | Quarantined | Removed]]:
        meeting_licences = self._meeting_licences()
        first = ("people", {"max": str(self.config.page_size)})
        resumed = _AccountCursor.parse(cursor) if cursor else None
        url: str | None = resumed.next if resumed else first[0]
        params: dict[str, str] | None = None if resumed else first[1]
        delivered = resumed.delivered if resumed else 0
        skip = 0
        restarts = 0
        bound = ListingBound(SYSTEM, "people")
        while url is not None:
            try:
                body, next_url = self._client.get(url, params=params)
            except ConnectorAuthError:
                raise
            except PermanentConnectorError:
                if params is not None or restarts >= _RESTARTS:
                    raise
                # A refused next URL (an expired or foreign cursor): start again, skip what was delivered.
                restarts += 1
                logger.warning("webex people: a next-page link was refused; restarting and skipping %d records",
                               delivered)
                url, params, skip = first[0], dict(first[1]), delivered
                bound = ListingBound(SYSTEM, "people")
                continue
            items = _items(body, "people")
            bound.page(len(items))
            if skip:
                dropped = min(skip, len(items))
                items, skip = items[dropped:], skip - dropped
            accounts = tuple(self._account(item, meeting_licences) for item in items)
            delivered += len(accounts)
            bound.check(next_url)
            if skip and next_url is None:
                raise PermanentConnectorError(SYSTEM, "people: the restarted listing is shorter than the one resumed")
            yield Page(accounts, next_cursor=_AccountCursor(next_url, delivered).render() if next_url else None)
            url, params = next_url, None

    def _account(self, person: object, meeting_licences: frozenset[str]) -> SourceAccount | Quarantined:
        if not isinstance(person, dict):
            return Quarantined(ReasonCode.MALFORMED_RECORD, f"webex:user:({type(person).__name__} item)",
                               "a listed person is not a JSON object")
        raw_id = person.get("id")
        person_id = raw_id if isinstance(raw_id, str) else ""
        if "licenses" not in person and person_id:
            # Administrative fields are missing when the listing was made with ?id=: the person has them.
            person = self._client.get(f"people/{person_id}")[0]
        return map_person(person, meeting_licences)


@dataclass(frozen=True, slots=True)
class _AccountCursor:
    next: str
    delivered: int

    def render(self) -> str:
        return json.dumps({"next": self.next, "delivered": self.delivered}, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> _AccountCursor:
        try:
            data = json.loads(text)
            return cls(str(data["next"]), int(data["delivered"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentConnectorError(SYSTEM, "people: unreadable cursor") from exc


def parse_flag(value: object, *, default: bool) -> bool:
    """`invitePending`/`loginEnabled`: the spec says "true"/"false" strings, the service also sends booleans."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return default


def account_status(person: Mapping[str, object]) -> AccountStatus:
    """Account state from the flags; `status` is presence (webex.md section 3) and is never used."""
    if parse_flag(person.get("invitePending"), default=False):
        return AccountStatus.PENDING
    if not parse_flag(person.get("loginEnabled"), default=True):
        return AccountStatus.INACTIVE
    return AccountStatus.ACTIVE


def map_person(person: Json, meeting_licences: frozenset[str]) -> SourceAccount | Quarantined:
    """A Webex person as a SourceAccount, or quarantined when its primary e-mail is not an address."""
    return parse_record(lambda: record_key("webex:user", person.get("id")),
                        lambda: _map_person(person, meeting_licences))


def _map_person(person: Json, meeting_licences: frozenset[str]) -> SourceAccount | Quarantined:
    raw_id = person.get("id")
    if raw_id is not None and not isinstance(raw_id, str):
        return Quarantined(ReasonCode.MALFORMED_RECORD, record_key("webex:user", raw_id), "id is not a string")
    person_id = raw_id or ""
    key = f"webex:user:{person_id}"
    raw_emails = person.get("emails") or []
    if not isinstance(raw_emails, list):
        raise TypeError("emails is not a list")
    emails = [value for value in raw_emails if isinstance(value, str)]
    if not person_id:
        return Quarantined(ReasonCode.MALFORMED_RECORD, "webex:user:", "a person without an id")
    if not emails:
        return Quarantined(ReasonCode.MISSING_MAIL, key, "no e-mail address", {"id": person_id})
    parsed = parse_email(emails[0])
    if not isinstance(parsed, EmailAddress):
        return Quarantined(ReasonCode.INVALID_EMAIL, key, f"primary e-mail is not an address ({parsed.reason})",
                           {"id": person_id, "value": emails[0]})
    licences = tuple(_strings(person.get("licenses"), "licenses"))
    roles = _strings(person.get("roles"), "roles")
    return SourceAccount(
        platform=Platform.WEBEX, external_id=person_id, email=emails[0], status=account_status(person),
        licences=licences, licensed=any(value in meeting_licences for value in licences),
        display_name=_text(person.get("displayName")), given_name=_text(person.get("firstName")),
        surname=_text(person.get("lastName")), aliases=tuple(emails[1:]), role=",".join(roles) or None,
        account_type=_text(person.get("type")), department=_text(person.get("department")),
        last_activity=_instant(person.get("lastActivity")))


# ------------------------------------------------------------------------------------------------ licences

class WebexLicenceSource(_WebexBase):
    """The licence catalogue (fetch_licences, from the shared base)."""


def _licence(item: Json) -> LicenceSku | None:
    licence_id = item.get("id")
    if not isinstance(licence_id, str) or not licence_id:
        return None
    name = str(item.get("name") or "")
    return LicenceSku(platform=Platform.WEBEX, sku_key=licence_id, name=name,
                      includes_meetings=name.startswith(MEETING_LICENCE_PREFIX),
                      prepaid_units=_int(item.get("totalUnits")), consumed_units=_int(item.get("consumedUnits")),
                      site_url=_text(item.get("siteUrl")))


# ------------------------------------------------------------------------------------------------ meetings

class WebexLicenceRelease(_WebexBase):
    """Removes one licence from a person with `PATCH /licenses/users` (webex.md section 4.3, option B).

    A 206 means Webex applied part of the request: only what the person, read again, no longer holds counts as
    released. The person is read before (a licence already gone is released without a call) and after.
    """

    def release(self, account_external_id: str, sku_key: str) -> ReleaseResult:
        """The LicenceReleaser role (the SKU key is the licence id)."""
        return self.remove_licence(account_external_id, sku_key)

    def remove_licence(self, person_id: str, licence_id: str) -> ReleaseResult:
        before = self._licences_of(person_id)
        if isinstance(before, ReleaseResult):
            return before
        sku = f"webex:licence:{licence_id}"
        if licence_id not in before:
            return ReleaseResult(person_id, released=True)
        try:
            status, _body = self._client.patch("licenses/users", {
                "personId": person_id, "orgId": self.config.org_id,
                "licenses": [{"id": licence_id, "operation": "remove"}]})
        except NotFound:
            return ReleaseResult(person_id, released=False, before=sku, refusal=ReleaseRefusal.NOT_FOUND)
        except PermanentConnectorError as refused:
            return ReleaseResult(person_id, released=False, before=sku, refusal=ReleaseRefusal.REFUSED,
                                 detail=str(refused))
        after = self._licences_of(person_id)
        if isinstance(after, ReleaseResult):
            return after
        if licence_id in after:
            return ReleaseResult(person_id, released=False, before=sku, after=sku,
                                 refusal=ReleaseRefusal.NOT_APPLIED,
                                 detail=f"HTTP {status}: the person reads back with the licence")
        return ReleaseResult(person_id, released=True, before=sku, detail="HTTP 206, partly applied"
                             if status == 206 else None)

    def restore(self, account_external_id: str, sku_key: str) -> RestoreResult:
        """Give the licence back (`operation: add`); a 206 counts only if the person, read again, holds it."""
        person_id, licence_id = account_external_id, sku_key
        sku = f"webex:licence:{licence_id}"
        before = self._licences_of(person_id)
        if isinstance(before, ReleaseResult):
            return RestoreResult(person_id, restored=False, refusal=before.refusal)
        if licence_id in before:
            return RestoreResult(person_id, restored=True, after=sku)
        try:
            status, _body = self._client.patch("licenses/users", {
                "personId": person_id, "orgId": self.config.org_id,
                "licenses": [{"id": licence_id, "operation": "add"}]})
        except NotFound:
            return RestoreResult(person_id, restored=False, refusal=ReleaseRefusal.NOT_FOUND)
        except PermanentConnectorError as refused:
            return RestoreResult(person_id, restored=False, refusal=ReleaseRefusal.REFUSED, detail=str(refused))
        after = self._licences_of(person_id)
        if isinstance(after, ReleaseResult):
            return RestoreResult(person_id, restored=False, refusal=after.refusal)
        if licence_id not in after:
            return RestoreResult(person_id, restored=False, refusal=ReleaseRefusal.NOT_APPLIED,
                                 detail=f"HTTP {status}: the person reads back without the licence")
        return RestoreResult(person_id, restored=True, after=sku)

    def _licences_of(self, person_id: str) -> list[str] | ReleaseResult:
        try:
            person, _next = self._client.get(f"people/{person_id}")
        except NotFound:
            return ReleaseResult(person_id, released=False, refusal=ReleaseRefusal.NOT_FOUND)
        licences = person.get("licenses") if isinstance(person, dict) else None
        return [str(item) for item in licences] if isinstance(licences, list) else []


class WebexMeetingSource(_WebexBase):
    """Each host's meeting series (host-only, with invitees), a page per batch of hosts."""

    def iter_meetings(self, hosts: Sequence[HostRef],
                      cursor: str | None = None) -> Iterator[Page[Meeting | Quarantined]]:
        start = 0
        if cursor is not None:
            done = next((index for index, host in enumerate(hosts) if host.external_id == cursor), None)
            start = 0 if done is None else done + 1
        remaining = list(hosts[start:])
        if not remaining:
            return
        today = self._clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        window = (_utc_z(today), _utc_z(today + timedelta(days=self.config.window_days)))
        items: list[Meeting | Quarantined] = []
        incomplete: list[str] = []
        skipped = 0
        for chunk_start in range(0, len(remaining), self.config.hosts_per_page):
            chunk = remaining[chunk_start:chunk_start + self.config.hosts_per_page]
            zones = self._host_zones(chunk)
            for index, host in enumerate(chunk):
                try:
                    found, passed_over = self._host_meetings(host, zones.get(host.external_id, "UTC"), window)
                except ConnectorAuthError:
                    raise
                except PermanentConnectorError as error:
                    found = [failed_listing(SYSTEM, f"host:{host.external_id}:meetings", error)]
                    passed_over = 0
                    incomplete.append(host.external_id)
                items.extend(found)
                skipped += passed_over
                last = chunk_start + index == len(remaining) - 1
                if last or index == len(chunk) - 1 or len(items) >= self.config.page_size:
                    yield Page(tuple(items), next_cursor=None if last else host.external_id, skipped=skipped,
                               incomplete=tuple(incomplete))
                    items, skipped, incomplete = [], 0, []

    def _host_zones(self, hosts: Sequence[HostRef]) -> dict[str, str]:
        """Each host's IANA zone (their meetings are expanded in it); UTC when unknown."""
        body, _next = self._client.get("people", params={"id": ",".join(h.external_id for h in hosts),
                                                         "max": str(MAX_PAGE_SIZE), "excludeStatus": "true"})
        zones: dict[str, str] = {}
        for person in _items(body, "people"):
            zone = person.get("timezone") if isinstance(person, dict) else None
            if isinstance(zone, str) and _valid_zone(zone) and isinstance(person.get("id"), str):
                zones[person["id"]] = zone
        return zones

    def _host_meetings(self, host: HostRef, zone: str,
                       window: tuple[str, str]) -> tuple[list[Meeting | Quarantined], int]:
        host_email = host.email.strip()
        params: dict[str, str] | None = {
            "hostEmail": host_email, "meetingType": "meetingSeries", "current": "false",
            "from": window[0], "to": window[1], "max": str(self.config.page_size)}
        bound = ListingBound(SYSTEM, f"meetings of host {host.external_id}", max_pages=MAX_HOST_MEETING_PAGES)
        url: str | None = "meetings"
        found: list[Meeting | Quarantined] = []
        seen: set[str] = set()
        skipped = 0
        while url is not None:
            try:
                body, next_url = self._client.get(url, params=params, headers={"timezone": zone})
            except NotFound:
                if params is None:  # a next page that vanished is not a host that vanished
                    raise
                logger.warning("webex meetings: host %s is no longer known to Webex; nothing listed",
                               host.external_id)
                return [], 0
            items = _items(body, "meetings")
            bound.page(len(items))
            for item in items:
                raw_id = item.get("id") if isinstance(item, dict) else None
                if not isinstance(raw_id, str) or not raw_id:
                    found.append(Quarantined(ReasonCode.MALFORMED_RECORD, record_key("webex:meeting", raw_id),
                                             "a listed series without a string id"))
                    continue
                series_id = raw_id
                if series_id in seen:
                    found.append(Quarantined(ReasonCode.DUPLICATE_SOURCE_ID, f"webex:meeting:{series_id}#duplicate",
                                             "the host's listing returned this series more than once: the first "
                                             "one is kept"))
                    continue
                seen.add(series_id)
                verdict = _ownership(item, host)
                if verdict == "other":
                    skipped += 1
                elif verdict == "headless":
                    found.append(Quarantined(ReasonCode.MEETING_WITHOUT_HOST, f"webex:meeting:{series_id}",
                                             "the series has no host e-mail",
                                             {"id": series_id, "listed_for": host.external_id}))
                else:
                    found.append(self._meeting(item, host, zone))
            bound.check(next_url)
            url, params = next_url, None
        return found, skipped

    def _meeting(self, item: Json, host: HostRef, zone: str) -> Meeting | Quarantined:
        series_id = str(item["id"])
        invitees: list[Json] = []
        if item.get("scheduledType") != "personalRoomMeeting":  # the invitee API refuses personal-room ids
            try:
                invitees = self._invitees(series_id, host)
            except ConnectorAuthError:
                raise
            except PermanentConnectorError as error:
                return failed_listing(SYSTEM, f"meeting:{series_id}", error, what="invitees")
        return map_meeting(item, host=host, invitees=invitees, now=self._clock(), fallback_zone=zone,
                           internal_domains=self.config.internal_domains)

    def _invitees(self, series_id: str, host: HostRef) -> list[Json]:
        params: dict[str, str] | None = {"meetingId": series_id, "hostEmail": host.email.strip(),
                                         "max": str(MAX_PAGE_SIZE)}
        bound = ListingBound(SYSTEM, f"invitees of series {series_id}", max_pages=MAX_INVITEE_PAGES)
        url: str | None = "meetingInvitees"
        invitees: list[Json] = []
        while url is not None:
            body, next_url = self._client.get(url, params=params)
            items = _items(body, "meetingInvitees")
            bound.page(len(items))
            invitees.extend(item for item in items if isinstance(item, dict))
            bound.check(next_url)
            url, params = next_url, None
        return invitees


def _ownership(item: Json, host: HostRef) -> str:
    """"own", "other" (the host is only invited) or "headless" (no host e-mail, attributed to this host)."""
    host_email = str(item.get("hostEmail") or "").strip()
    if host_email:
        return "own" if _same_address(host_email, host.email) else "other"
    host_id = item.get("hostUserId")
    if isinstance(host_id, str) and host_id and host_id != host.external_id:
        return "other"
    return "headless"


def map_meeting(item: Json, *, host: HostRef, invitees: Sequence[Json], now: datetime, fallback_zone: str = "UTC",
                internal_domains: Sequence[str] = ()) -> Meeting | Quarantined:
    """A Webex meeting series (listed with current=false) as a Meeting, or quarantined."""
    return parse_record(lambda: record_key("webex:meeting", item.get("id")),
                        lambda: _map_meeting(item, host=host, invitees=invitees, now=now, fallback_zone=fallback_zone,
                                             internal_domains=internal_domains))


def _map_meeting(item: Json, *, host: HostRef, invitees: Sequence[Json], now: datetime, fallback_zone: str,
                 internal_domains: Sequence[str]) -> Meeting | Quarantined:
    series_id = str(item["id"])
    key = f"webex:meeting:{series_id}"
    zone = _text(item.get("timezone")) or fallback_zone
    if not _valid_zone(zone):
        zone = fallback_zone
    start = _instant(item.get("start"))
    end = _instant(item.get("end"))
    if start is None:
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, "the series has no readable start", {"id": series_id})
    start = start.astimezone(ZoneInfo(zone))
    rule_text = _text(item.get("recurrence"))
    recurrence: Recurrence | None = None
    if rule_text:
        parsed = recurrence_from_webex(rule_text, start=start, timezone=zone)
        if isinstance(parsed, Unparseable):
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, key, parsed.reason,
                               {"id": series_id, "recurrence": rule_text})
        recurrence = parsed
    web_link = _text(item.get("webLink")) or ""
    link = parse_join_url(web_link) if web_link else None
    if not isinstance(link, JoinLink) and item.get("sipAddress"):
        link = parse_join_url(str(item["sipAddress"]))
    link_key = str(link) if isinstance(link, JoinLink) else key
    # The invitation shows the meeting number and the SIP address carries it: the helpdesk is given either.
    number = parse_meeting_reference(str(item.get("meetingNumber") or ""), platform=Platform.WEBEX)
    number_key = number.key if isinstance(number, JoinLink) and number.key != link_key else None
    personal_room = item.get("scheduledType") == "personalRoomMeeting" or link_key.startswith("webex:room:")
    kind = classify_meeting(recurrence=recurrence, start=start, now=now, personal_room=personal_room,
                            ended=item.get("state") == "expired")
    ends_at = last_occurrence(recurrence, start) if recurrence is not None else start
    addresses = [str(invitee.get("email") or "").strip() for invitee in invitees]
    addresses = [address for address in addresses if address]
    co_hosts = tuple(str(invitee.get("email")).strip() for invitee in invitees
                     if invitee.get("coHost") is True and invitee.get("email"))
    telephony = item.get("telephony")
    if telephony is not None and not isinstance(telephony, dict):
        raise TypeError("telephony is not an object")
    call_in = telephony.get("callInNumbers") if telephony else None
    return Meeting(
        platform=Platform.WEBEX, external_id=series_id, host_account_id=host.external_id,
        host_email=str(item.get("hostEmail") or host.email).strip(), topic=str(item.get("title") or ""),
        kind=kind, timezone=zone, join_url=web_link, link_key=link_key, start=start,
        duration_minutes=int((end - start).total_seconds() // 60) if end is not None else None,
        recurrence=recurrence, ends_at=ends_at,
        waiting_room=item.get("unlockedMeetingJoinSecurity") == "allowJoinWithLobby",
        passcode=bool(item.get("password")), alternative_hosts=co_hosts, invitees=tuple(addresses),
        external_invitees=sum(1 for address in addresses if not _internal(address, internal_domains)),
        webinar=item.get("scheduledType") == "webinar", dial_in=bool(call_in),
        registration=bool(item.get("registration")) or item.get("hasRegistration") is True, number_key=number_key)


# ------------------------------------------------------------------------------------------------ parsing

def _items(body: Json, stream: str) -> list[Any]:
    """A page's `items` as listed (callers quarantine the items that are not objects)."""
    items = body.get("items")
    if not isinstance(items, list):
        raise ListingFailed(SYSTEM, f"{stream}: the page has no items list", reason=ReasonCode.LISTING_MALFORMED)
    return items


def _strings(value: object, name: str) -> list[str]:
    """A list of strings (absent: empty); a field of another shape makes the record malformed."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{name} is not a list of strings")
    return value



def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    return None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _same_address(left: str, right: str) -> bool:
    parsed_left, parsed_right = parse_email(left), parse_email(right)
    if isinstance(parsed_left, EmailAddress) and isinstance(parsed_right, EmailAddress):
        return parsed_left == parsed_right
    return left.strip().casefold() == right.strip().casefold()


def _internal(address: str, domains: Sequence[str]) -> bool:
    parsed = parse_email(address)
    if not isinstance(parsed, EmailAddress):
        return False
    wanted = {domain.strip().lower().lstrip("@") for domain in domains}
    return parsed.domain in wanted


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _path(url: str) -> str:
    """The URL's path only: query strings carry e-mail addresses and never reach a message."""
    return urlsplit(url).path or url.split("?", 1)[0]


__all__ = [
    "WebexAccountSource",
    "WebexClient",
    "WebexConfig",
    "WebexLicenceSource",
    "WebexMeetingSource",
    "account_status",
    "check_access",
    "map_meeting",
    "map_person",
    "parse_flag",
]


# ------------------------------------------------------------------------------------------------ onboarding probe

PEOPLE_READ = "spark-admin:people_read"
LICENCES_READ = "spark-admin:licenses_read"
ADMIN_SCHEDULE_READ = "meeting:admin_schedule_read"
PEOPLE_WRITE = "spark-admin:people_write"
PROBE_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=30.0)


def check_access(config: WebexConfig, *, host_email: str | None = None,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy = PROBE_RETRY,
                 sleep: Callable[[float], None] = time.sleep) -> AccessCheck:
    """Which scopes the token carries, found by one read-only call per read scope (Webex has no introspection).

    200 proves a scope and 403 shows it missing; the admin meeting listing is probed for one host (`host_email`,
    else the first person the people probe returned) and a 404 for that host still proves the scope (the scope is
    checked first). A write scope cannot be proved without writing: `spark-admin:people_write` stays unverified.
    A 401 is refused credentials (a value); timeouts, 429 and 5xx are retried a little, then raise.
    """
    headers = {"Authorization": f"Bearer {config.access_token}", "Accept": "application/json"}
    granted: set[str] = set()
    refused: set[str] = set()
    unverified: set[str] = {PEOPLE_WRITE}
    with httpx.Client(base_url=config.api_url, timeout=config.timeout_seconds, transport=transport,
                      headers=headers) as http:

        def probe(path: str, params: Mapping[str, str]) -> tuple[int, Json]:
            def attempt() -> tuple[int, Json]:
                try:
                    response = http.get(path, params=params)
                except httpx.TimeoutException as exc:
                    raise TransientConnectorError(SYSTEM, f"GET {path}: timed out") from exc
                except httpx.TransportError as exc:
                    raise TransientConnectorError(SYSTEM, f"GET {path}: {type(exc).__name__}") from exc
                status = response.status_code
                if status == 429:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    raise RateLimited(SYSTEM, f"GET {path}: throttled", retry_after=(
                        config.default_retry_after_seconds if retry_after is None else retry_after))
                if status >= 500:
                    raise TransientConnectorError(SYSTEM, f"GET {path}: HTTP {status}")
                try:
                    body = response.json() if status == 200 else {}
                except (ValueError, UnicodeDecodeError):
                    body = {}
                return status, body if isinstance(body, dict) else {}

            return call_with_retries(attempt, retry, stats=RetryStats(), sleep=sleep)

        def classify(scope: str, status: int, *, proves: frozenset[int] = frozenset({200})) -> None:
            if status in proves:
                granted.add(scope)
            elif status == 403:
                refused.add(scope)
            else:
                unverified.add(scope)

        status, people = probe("people", {"max": "1"})
        if status == 401:
            return AccessCheck(authenticated=False, detail="HTTP 401, the access token is invalid or expired")
        classify(PEOPLE_READ, status)
        status, _body = probe("licenses", {"max": "1"})
        classify(LICENCES_READ, status)
        email = host_email or next((str(address) for person in _items(people, "people")
                                    for address in person.get("emails") or [] if isinstance(address, str)), None)
        if email is None:
            unverified.add(ADMIN_SCHEDULE_READ)
        else:
            status, _body = probe("meetings", {"hostEmail": email, "meetingType": "meetingSeries", "max": "1"})
            classify(ADMIN_SCHEDULE_READ, status, proves=frozenset({200, 404}))
    return AccessCheck(authenticated=True, granted=frozenset(granted), refused=frozenset(refused),
                       unverified=frozenset(unverified))
