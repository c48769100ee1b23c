"""Sandbox Webex: people, licences, meeting series and invitees under /webex/v1/, as an admin token sees them.

Follows shared/contracts/webex.md (section 8 is the checklist) and the official Admin and Meetings OpenAPI documents:

- Bearer token auth (the configured token, else 401 with Webex's error body); scopes from the configuration (403);
  a `TrackingID` header on every response, `trackingId` in every error body.
- `Link: <absolute URL>; rel="next"` paging whose URL repeats every original query parameter, percent-encoded,
  plus an opaque `cursor` (`next` for licence assignees). webexpythonsdk re-adds missing parameters unencoded, so
  all of them must be there. A cursor names an offset and the parameters it was issued for; anything else is 400.
- People: the whole organisation for an admin (`max` default 100, at most 100, 50 with `locationId`), `email`,
  `displayName`, `id` (≤ 85, no admin or presence fields) filters; `invitePending`/`loginEnabled` as the generated
  file has them (strings mostly, booleans for some); fields with no value are absent, never null.
- Licences with `consumedUnits` that follow writes; `includeAssignedTo=user` with `limit` ≤ 300 and `next` paging.
- Meetings: `meetingType` defaults to `meetingSeries`; a series is listed when its span overlaps `[from, to)`, with
  the ±7-day defaults around the sandbox clock; the series where the user is host **or invitee** are listed;
  `hostEmail` (admin listing on behalf of a user; without it the caller is the service app, which hosts nothing),
  `siteUrl`, `state`, `scheduledType`, `meetingSeriesId` and `meetingNumber`/`webLink` lookups; `max` ≤ 100,
  default 10; `current` (default true) gives a series the times of its upcoming or ongoing occurrence, `false` those
  of the first; the `timezone` header (IANA, default UTC) sets the zone of `start`/`end` and the `timezone` field.
  Ids in the three formats: series (32 hex), scheduled occurrences `{series}_{YYYYMMDDTHHMMSSZ}`, ended instances
  `{series}_I_{n}`. A recurrence the sandbox cannot expand (the generator writes a few on purpose) is treated as
  never ending. Monthly/yearly rules honour only their first BYMONTHDAY/BYDAY value, like Webex.
- Writes later reads show: `PUT /people/{id}` (full person, `displayName` required, licences replaced, 200 with the
  person; dropping the implicitly assigned licence is a 400 that still applies the other fields, as Webex warns a
  failed PUT may), `PATCH /licenses/users` (200, or 206 when a licence or site could not be applied).
- 429 with an integer `Retry-After` per token when `rate_limits` and `webex_rate_per_second` are set.

Memory stays bounded: records are read from the JSON Lines files through offset indexes; only groupings (people
by e-mail and licence, series by host and invitee) and what clients changed are kept.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice, takewhile
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from dateutil.rrule import rrule, rrulestr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.limits import RateLimiter
from sandbox.server import Sandbox, SystemMount
from sandbox.store import JsonlStore, Record, public

JSON = "application/json"
MEETINGS_JSON = "application/json;charset=UTF-8"
PEOPLE_MAX = 100
PEOPLE_MAX_WITH_LOCATION = 50
PEOPLE_IDS_MAX = 85
MEETINGS_MAX = 100
MEETINGS_DEFAULT = 10
LICENCE_USERS_MAX = 300
IMPLICIT_LICENCE_NAMES = frozenset({"Messaging"})  # assigned by the system to everyone; cannot be removed
_EXPANSION_CAP = 5000  # occurrences expanded at most to find a series' end; beyond it the series is open-ended
_PERSON_WRITABLE = ("emails", "phoneNumbers", "extension", "locationId", "displayName", "firstName", "lastName",
                    "avatar", "orgId", "roles", "licenses", "department", "manager", "managerId", "title",
                    "addresses", "siteUrls", "loginEnabled")
_ADMIN_FIELDS = ("licenses", "roles")
_PRESENCE_FIELDS = ("status", "lastActivity")


# ------------------------------------------------------------------------------------------------ responses

def _tracking_id() -> str:
    return f"ROUTER_{uuid.uuid4().hex.upper()}"


def _json(body: Any, status: int = 200, *, media: str = JSON, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media, headers=headers)


def _error(request: Request | None, status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    """Webex's error body: message, errors[].description, trackingId (also in the TrackingID header)."""
    tracking = (request.scope.get("webex_tracking_id") if request is not None else None) or _tracking_id()
    return _json({"message": message, "errors": [{"description": message}], "trackingId": tracking}, status,
                 headers={"TrackingID": tracking, **(headers or {})})


class _BadRequest(Exception):
    """A request the API refuses (400 unless said otherwise)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _TrackingIds:
    """Every response carries a TrackingID header; handlers find the id in the scope for their error bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        tracking = _tracking_id()
        scope["webex_tracking_id"] = tracking

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"trackingid" for name, _ in headers):
                    headers.append((b"trackingid", tracking.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, tagged)


# ------------------------------------------------------------------------------------------------ parameters

def _flag(value: str | None, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise _BadRequest(f"Invalid value for {name}.")
    return lowered == "true"


def _count(value: str | None, name: str, *, default: int, cap: int) -> int:
    """`max`/`limit`: a positive number, silently capped like the service does."""
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise _BadRequest(f"Invalid value for {name}.") from exc
    if number < 1 or number != int(number):
        raise _BadRequest(f"Invalid value for {name}.")
    return min(int(number), cap)


def _instant(value: str, name: str) -> datetime:
    """Any ISO 8601 date or date-time; a date is midnight UTC, a time without offset is UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise _BadRequest(f"Invalid {name}: not an ISO 8601 date and time.") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _BadRequest("Invalid timezone.") from exc


def _render_time(moment: datetime, zone: ZoneInfo) -> str:
    if zone.key == "UTC":
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    return moment.astimezone(zone).isoformat(timespec="seconds")


def _fold(email: str) -> str:
    return email.strip().casefold()


def _clean(record: Record) -> Record:
    """What the API shows: no sandbox bookkeeping, no member without a value."""
    return {key: value for key, value in public(record).items() if value is not None}


# ------------------------------------------------------------------------------------------------ paging

@dataclass(frozen=True, slots=True)
class _Pager:
    """Offset paging behind an opaque cursor bound to the listing's other parameters."""

    request: Request
    param: str = "cursor"
    repeat_forever: bool = False  # the deliberately broken sandbox: the next URL always names the same cursor

    def _others(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.request.query_params.multi_items() if k != self.param]

    def _digest(self) -> str:
        return hashlib.sha256(orjson.dumps(sorted(self._others()))).hexdigest()[:12]

    def offset(self) -> int:
        token = self.request.query_params.get(self.param)
        if token is None:
            return 0
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            offset_text, _, digest = raw.partition(":")
            offset = int(offset_text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest("Invalid cursor.") from exc
        if digest != self._digest() or offset < 0:
            raise _BadRequest("Invalid cursor: it does not belong to this listing.")
        return offset

    def link(self, next_offset: int, *, first_next: int) -> str:
        offset = first_next if self.repeat_forever else next_offset
        cursor = base64.urlsafe_b64encode(f"{offset}:{self._digest()}".encode()).decode("ascii").rstrip("=")
        query = urlencode([*self._others(), (self.param, cursor)], quote_via=quote, safe="")
        url = self.request.url.replace(query=query)
        return f'<{url}>; rel="next"'

    def page(self, items: list[Any], size: int) -> tuple[list[Any], dict[str, str]]:
        """The slice this request asks for, and the Link header when more follow."""
        start = self.offset()
        chunk = items[start:start + size]
        headers = {"Link": self.link(start + size, first_next=size)} if start + size < len(items) else {}
        return chunk, headers


# ------------------------------------------------------------------------------------------------ recurrence

@dataclass(frozen=True, slots=True)
class _Span:
    """A series' schedule as the sandbox expands it."""

    first: datetime
    duration: timedelta
    rule: rrule | None           # None: a single occurrence, or a rule the sandbox cannot expand
    last: datetime | None        # start of the last occurrence; None: open-ended
    expandable: bool

    def end(self) -> datetime | None:
        return None if self.last is None else self.last + self.duration

    def ended_by(self, now: datetime) -> datetime:
        """When a series the service marks `expired` really ended: its last occurrence finished before `now`."""
        end = self.end()
        if end is not None and end <= now:
            return end
        if self.rule is None:
            return min(self.first + self.duration, now)
        before = self.rule.before(now - self.duration, inc=True)
        return (before or self.first) + self.duration

    def occurrences(self, after: datetime, before: datetime, *, cap: int = 1000) -> list[datetime]:
        """Starts of the occurrences overlapping (after, before)."""
        if self.rule is None:
            return [self.first] if self.first < before and self.first + self.duration > after else []
        upcoming = takewhile(lambda moment: moment < before, self.rule.xafter(after - self.duration, inc=False))
        return list(islice(upcoming, cap))

    def current(self, now: datetime) -> datetime:
        """The upcoming or ongoing occurrence (the last one once the series is over)."""
        if self.rule is None:
            return self.first
        upcoming = self.rule.after(now - self.duration, inc=False)
        if upcoming is not None:
            return upcoming
        return self.last or self.first


def _webex_rule_text(text: str) -> str:
    """Webex honours only the first day or date of a monthly/yearly rule."""
    parts = [part for part in text.strip().split(";") if part]
    freq = next((p.split("=", 1)[1].upper() for p in parts if p.upper().startswith("FREQ=")), "")
    if freq not in ("MONTHLY", "YEARLY"):
        return ";".join(parts)
    kept = []
    for part in parts:
        name, _, value = part.partition("=")
        if name.upper() in ("BYMONTHDAY", "BYDAY"):
            value = value.split(",")[0]
        kept.append(f"{name}={value}")
    return ";".join(kept)


@functools.lru_cache(maxsize=8192)
def _span(recurrence: str | None, start: str, end: str, timezone: str) -> _Span:
    first = datetime.fromisoformat(start)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    first = first.astimezone(zone)
    duration = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    if not recurrence:
        return _Span(first, duration, None, first, True)
    try:
        rule = rrulestr(_webex_rule_text(recurrence), dtstart=first)
        if not isinstance(rule, rrule):
            raise ValueError("not a single rule")
        bounded = any(key in recurrence.upper() for key in ("COUNT=", "UNTIL="))
        last: datetime | None = None
        if bounded:
            expanded = list(islice(iter(rule), _EXPANSION_CAP + 1))
            last = expanded[-1] if expanded and len(expanded) <= _EXPANSION_CAP else None
            if not expanded:
                last = first
    except (ValueError, TypeError, KeyError, IndexError):
        return _Span(first, duration, None, None, False)
    return _Span(first, duration, rule, last, True)


def _span_of(record: Record) -> _Span:
    return _span(record.get("recurrence"), str(record["start"]), str(record["end"]), str(record.get("timezone")))


def _series_end(record: Record, now: datetime) -> datetime | None:
    """The end of a series' last occurrence (None: open-ended). A series the service marks `expired` is over,
    whatever its rule says (the generator writes some never-ending multi-BYMONTHDAY rules on expired series)."""
    span = _span_of(record)
    return span.ended_by(now) if record.get("state") == "expired" else span.end()


# ------------------------------------------------------------------------------------------------ state

class WebexState:
    """The organisation's people, licences and meetings, with what clients changed since the start."""

    def __init__(self, sandbox: Sandbox) -> None:
        root = sandbox.data_dir / "webex"
        self.sandbox = sandbox
        self.org_id: str = sandbox.manifest["tenant"]["webex_org_id"]
        self.sites: list[str] = list(sandbox.manifest["tenant"].get("webex_sites", []))
        self.people = JsonlStore(root / "people.jsonl", key=lambda r: str(r["id"]),
                                 groups={"email": lambda r: [_fold(e) for e in r.get("emails") or []],
                                         "licence": lambda r: list(r.get("licenses") or [])})
        self.meetings = JsonlStore(root / "meetings.jsonl", key=lambda r: str(r["id"]),
                                   groups={"host": lambda r: [str(r.get("_host") or "")],
                                           "invitee": lambda r: [_fold(i["email"]) for i in r.get("_invitees", [])]})
        licences_path = root / "licenses.json"
        catalogue = orjson.loads(licences_path.read_bytes())["items"] if licences_path.exists() else []
        self.licences: dict[str, Record] = {str(item["id"]): item for item in catalogue}  # a handful
        # Writes change e-mails and licence holders; the groupings above are from the files, these are the changes.
        self._email_changes: dict[str, str | None] = {}   # folded e-mail → person id (None: no longer used)
        self._licence_added: dict[str, list[str]] = {}
        self._licence_removed: dict[str, set[str]] = {}
        self.limiter = RateLimiter({"api": sandbox.config.webex_rate_per_second}
                                   if sandbox.config.webex_rate_per_second else {},
                                   enabled=sandbox.config.rate_limits)

    # -- people

    def person_by_email(self, email: str) -> Record | None:
        folded = _fold(email)
        if folded in self._email_changes:
            person_id = self._email_changes[folded]
            return self.people.get(person_id) if person_id else None
        for key in self.people.group("email", folded):
            person = self.people.get(key)
            if person is not None and folded in (_fold(e) for e in person.get("emails") or []):
                return person
        return None

    def licence_holders(self, licence_id: str) -> list[str]:
        removed = self._licence_removed.get(licence_id, set())
        base = [key for key in self.people.group("licence", licence_id) if key not in removed]
        return base + [key for key in self._licence_added.get(licence_id, []) if key not in removed]

    def save_person(self, before: Record, after: Record) -> None:
        person_id = str(after["id"])
        for email in before.get("emails") or []:
            self._email_changes[_fold(email)] = None
        for email in after.get("emails") or []:
            self._email_changes[_fold(email)] = person_id
        old = list(dict.fromkeys(before.get("licenses") or []))
        new = list(dict.fromkeys(after.get("licenses") or []))
        for licence_id in old:
            if licence_id not in new:
                self._adjust(licence_id, -1)
                self._licence_removed.setdefault(licence_id, set()).add(person_id)
        for licence_id in new:
            if licence_id not in old:
                self._adjust(licence_id, +1)
                self._licence_removed.get(licence_id, set()).discard(person_id)
                if person_id not in self.people.group("licence", licence_id):
                    self._licence_added.setdefault(licence_id, []).append(person_id)
        after["lastModified"] = _render_time(self.sandbox.now(), ZoneInfo("UTC"))
        self.people.put(person_id, after)

    def _adjust(self, licence_id: str, delta: int) -> None:
        licence = self.licences[licence_id]
        licence["consumedUnits"] = int(licence.get("consumedUnits", 0)) + delta
        licence["consumedByUsers"] = int(licence.get("consumedByUsers", 0)) + delta

    def seat_available(self, licence_id: str) -> bool:
        licence = self.licences[licence_id]
        return int(licence.get("consumedUnits", 0)) < int(licence.get("totalUnits", 0))

    def implicit(self, licence_id: str) -> bool:
        return str(self.licences.get(licence_id, {}).get("name")) in IMPLICIT_LICENCE_NAMES

    # -- meetings

    def series_of(self, person: Record | None) -> list[str]:
        """Series where the person is host or invitee, hosted ones first, each group in file order."""
        if person is None:
            return []
        keys = dict.fromkeys(self.meetings.group("host", str(person["id"])))
        for email in person.get("emails") or []:
            keys.update(dict.fromkeys(self.meetings.group("invitee", _fold(email))))
        return list(keys)


# ------------------------------------------------------------------------------------------------ the API

Handler = Callable[[Request], Awaitable[Response]]


class WebexApi:
    """The /v1 endpoints bascule uses, and a few neighbours a careful client meets."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.state = WebexState(sandbox)

    # -- plumbing

    def _guard(self, handler: Callable[[Request], Awaitable[Response]],
               scopes: Callable[[Request], tuple[str, ...]]) -> Handler:
        """Token, scope and rate limit, then the handler; _BadRequest becomes Webex's error body."""
        credentials = self.sandbox.config.credentials

        async def endpoint(request: Request) -> Response:
            kind, _, token = request.headers.get("authorization", "").partition(" ")
            if kind.lower() != "bearer" or token.strip() != credentials.webex_access_token:
                return _error(request, 401, "The request requires a valid access token set in the Authorization "
                                            "request header.")
            needed = scopes(request)
            if needed and not any(scope in credentials.webex_scopes for scope in needed):
                return _error(request, 403, "The server understood the request, but refused to fulfill it because "
                                            "the access token is missing required scopes.")
            token_key = hashlib.sha256(token.encode()).hexdigest()[:16]
            wait = self.state.limiter.take(f"webex:{token_key}", "api")
            if wait is not None:
                self.sandbox.count("webex:rate_limited")
                return _error(request, 429, "Too many requests have been sent in a given amount of time and the "
                                            "request has been rate limited.",
                              headers={"Retry-After": str(max(1, math.ceil(wait)))})
            try:
                return await handler(request)
            except _BadRequest as refused:
                return _error(request, refused.status, refused.message)

        return endpoint

    def _pager(self, request: Request, param: str = "cursor") -> _Pager:
        return _Pager(request, param, repeat_forever=self.sandbox.broken("repeat_page_token"))

    async def _body(self, request: Request) -> Record:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise _BadRequest("The request body is not valid JSON.") from exc
        if not isinstance(body, dict):
            raise _BadRequest("The request body must be a JSON object.")
        return body

    def _org(self, request: Request) -> None:
        org = request.query_params.get("orgId")
        if org and org != self.state.org_id:
            raise _BadRequest("Only partner administrators may list another organization.", 403)

    # -- people

    async def list_people(self, request: Request) -> Response:
        params = request.query_params
        self._org(request)
        location = params.get("locationId")
        size = _count(params.get("max"), "max", default=PEOPLE_MAX,
                      cap=PEOPLE_MAX_WITH_LOCATION if location else PEOPLE_MAX)
        _flag(params.get("callingData"), "callingData", False)
        exclude_status = _flag(params.get("excludeStatus"), "excludeStatus", False)
        state = self.state
        body: Record = {}
        by_id = params.get("id")
        if by_id is not None:
            ids = [value for value in by_id.split(",") if value]
            if len(ids) > PEOPLE_IDS_MAX:
                raise _BadRequest(f"At most {PEOPLE_IDS_MAX} ids may be given.")
            keys = [value for value in ids if value in state.people]
            body["notFoundIds"] = [value for value in ids if value not in state.people]
        elif params.get("email"):
            found = state.person_by_email(params["email"])
            keys = [str(found["id"])] if found else []
        else:
            keys = state.people.keys()
        name_prefix = params.get("displayName")
        roles = {value for value in params.get("roles", "").split(",") if value}
        if name_prefix or roles or location:
            keys = [key for key in keys if self._person_matches(key, name_prefix, roles, location)]
        chunk, headers = self._pager(request).page(keys, size)
        items = []
        for key in chunk:
            person = state.people.get(key)
            if person is None:
                continue
            shown = _clean(person)
            if by_id is not None:
                for name in (*_ADMIN_FIELDS, *_PRESENCE_FIELDS):
                    shown.pop(name, None)
            if exclude_status:
                shown.pop("status", None)
            items.append(shown)
        return _json({"items": items, **body}, headers=headers)

    def _person_matches(self, key: str, name_prefix: str | None, roles: set[str], location: str | None) -> bool:
        """The filters that need the record (a scan: admins rarely use them on a whole organisation)."""
        person = self.state.people.get(key)
        if person is None:
            return False
        if name_prefix and not str(person.get("displayName", "")).casefold().startswith(name_prefix.casefold()):
            return False
        if location and person.get("locationId") != location:
            return False
        return not roles or bool(roles & set(person.get("roles") or []))

    async def get_person(self, request: Request) -> Response:
        _flag(request.query_params.get("callingData"), "callingData", False)
        person = self.state.people.get(request.path_params["person_id"])
        if person is None:
            raise _BadRequest("Person not found.", 404)
        return _json(_clean(person))

    async def put_person(self, request: Request) -> Response:
        params = request.query_params
        _flag(params.get("callingData"), "callingData", False)
        _flag(params.get("showAllTypes"), "showAllTypes", False)
        minimal = _flag(params.get("minResponse"), "minResponse", False)
        state = self.state
        before = state.people.get(request.path_params["person_id"])
        if before is None:
            raise _BadRequest("Person not found.", 404)
        body = await self._body(request)
        display = body.get("displayName")
        if not isinstance(display, str) or not display.strip():
            raise _BadRequest("displayName is required.")
        emails = body.get("emails")
        if emails is not None and (not isinstance(emails, list) or not emails
                                   or not all(isinstance(e, str) and "@" in e for e in emails)):
            raise _BadRequest("emails must be a non-empty list of addresses.")
        for email in emails or []:
            owner = state.person_by_email(email)
            if owner is not None and owner["id"] != before["id"]:
                raise _BadRequest("An e-mail address is already used by another person.", 409)
        licences = body.get("licenses") or []
        if not isinstance(licences, list) or not all(isinstance(value, str) for value in licences):
            raise _BadRequest("licenses must be a list of licence ids.")
        unknown = [value for value in licences if value not in state.licences]
        if unknown:
            raise _BadRequest("Unknown licence id.")
        org = body.get("orgId")
        if org is not None and org != state.org_id:
            raise _BadRequest("orgId does not match the person's organization.")
        # The PUT replaces the person: a writable member left out is cleared, except the e-mails (a person keeps one).
        after = {key: value for key, value in before.items() if key not in _PERSON_WRITABLE or key == "emails"}
        for name in _PERSON_WRITABLE:
            if name in body and body[name] is not None:
                after[name] = body[name]
        if isinstance(after.get("loginEnabled"), str | bool):
            after["loginEnabled"] = _same_kind(after["loginEnabled"], before.get("invitePending"))
        after["nickName"] = after.get("firstName") or before.get("nickName")  # not writable: reset from firstName
        held = list(dict.fromkeys(before.get("licenses") or []))
        implicit_dropped = [value for value in held if state.implicit(value) and value not in licences]
        if implicit_dropped:
            after["licenses"] = held
            state.save_person(before, after)  # the other microservices already applied their part
            raise _BadRequest("An implicitly assigned license cannot be removed; include it in the request.")
        granted = [value for value in dict.fromkeys(licences)
                   if value in held or state.seat_available(value)]  # unavailable licences are skipped
        after["licenses"] = granted
        state.save_person(before, after)
        if minimal:
            return Response(status_code=204)
        saved = state.people.get(str(before["id"]))
        assert saved is not None
        return _json(_clean(saved))

    # -- licences

    async def list_licences(self, request: Request) -> Response:
        self._org(request)
        return _json({"items": [dict(item) for item in self.state.licences.values()]})

    async def get_licence(self, request: Request) -> Response:
        params = request.query_params
        licence = self.state.licences.get(request.path_params["licence_id"])
        if licence is None:
            raise _BadRequest("License not found.", 404)
        body = dict(licence)
        assigned = params.get("includeAssignedTo")
        if assigned is None:
            return _json(body)
        if assigned != "user":
            raise _BadRequest("includeAssignedTo must be 'user'.")
        size = _count(params.get("limit"), "limit", default=LICENCE_USERS_MAX, cap=LICENCE_USERS_MAX)
        chunk, headers = self._pager(request, "next").page(self.state.licence_holders(str(licence["id"])), size)
        users = []
        for key in chunk:
            person = self.state.people.get(key)
            if person is not None:
                emails = person.get("emails") or [""]
                users.append({"id": person["id"], "type": "INTERNAL", "displayName": person.get("displayName", ""),
                              "email": emails[0]})
        body["users"] = users
        return _json(body, headers=headers)

    async def patch_licences(self, request: Request) -> Response:
        state = self.state
        body = await self._body(request)
        person: Record | None = None
        if isinstance(body.get("personId"), str):
            person = state.people.get(body["personId"])
        elif isinstance(body.get("email"), str):
            person = state.person_by_email(body["email"])
        else:
            raise _BadRequest("personId or email is required.")
        if person is None:
            raise _BadRequest("Person not found.", 404)
        if body.get("orgId") not in (None, state.org_id):
            raise _BadRequest("orgId does not match the person's organization.")
        operations = body.get("licenses") or []
        site_operations = body.get("siteUrls") or []
        if not isinstance(operations, list) or not isinstance(site_operations, list) or not (
                operations or site_operations):
            raise _BadRequest("licenses or siteUrls is required.")
        licences = list(dict.fromkeys(person.get("licenses") or []))
        sites = list(person.get("siteUrls") or [])
        partial = False
        for operation in operations:
            if not isinstance(operation, dict) or not isinstance(operation.get("id"), str):
                raise _BadRequest("Each licence needs an id.")
            licence_id, verb = operation["id"], operation.get("operation", "add")
            if verb not in ("add", "remove"):
                raise _BadRequest("operation must be add or remove.")
            if licence_id not in state.licences:
                partial = True
            elif verb == "add" and licence_id not in licences:
                if state.seat_available(licence_id):
                    licences.append(licence_id)
                else:
                    partial = True
            elif verb == "remove" and licence_id in licences:
                if state.implicit(licence_id):
                    partial = True
                else:
                    licences.remove(licence_id)
        for operation in site_operations:
            if not isinstance(operation, dict) or operation.get("accountType") != "attendee":
                raise _BadRequest("siteUrls entries need siteUrl and accountType attendee.")
            site, verb = str(operation.get("siteUrl", "")), operation.get("operation", "add")
            entry = f"{site}#attendee"
            if site not in state.sites:
                partial = True
            elif verb == "add" and entry not in sites:
                sites.append(entry)
            elif verb == "remove" and entry in sites:
                sites.remove(entry)
        after = {**person, "licenses": licences, "siteUrls": sites}
        state.save_person(person, after)
        self.sandbox.count("webex:write:patch_licences")
        emails = person.get("emails") or [""]
        response = {"orgId": state.org_id, "personId": person["id"], "email": emails[0], "licenses": licences,
                    "siteUrls": [{"siteUrl": s.split("#")[0], "accountType": "attendee" if "#" in s else "host"}
                                 for s in sites]}
        return _json(response, 206 if partial else 200)

    # -- meetings

    def _caller(self, request: Request) -> Record | None:
        """The user the call acts for: hostEmail's person (admin listing), else the service app (None)."""
        host_email = request.query_params.get("hostEmail")
        if not host_email:
            return None
        person = self.state.person_by_email(host_email)
        if person is None:
            raise _BadRequest("The hostEmail user was not found in a site the caller manages.", 404)
        return person

    async def list_meetings(self, request: Request) -> Response:
        params = request.query_params
        now = self.sandbox.now()
        zone = _zone(request.headers.get("timezone"))
        caller = self._caller(request)
        size = _count(params.get("max"), "max", default=MEETINGS_DEFAULT, cap=MEETINGS_MAX)
        meeting_type = params.get("meetingType") or "meetingSeries"
        if meeting_type not in ("meetingSeries", "scheduledMeeting", "meeting"):
            raise _BadRequest("Invalid meetingType.")
        current = _flag(params.get("current"), "current", True)
        lookups = [name for name in ("meetingNumber", "webLink", "roomId") if params.get(name)]
        if len(lookups) > 1:
            raise _BadRequest("meetingNumber, webLink and roomId are mutually exclusive.")
        window = self._window(params.get("from"), params.get("to"), meeting_type, now)
        keys = self.state.series_of(caller)
        series_id = params.get("meetingSeriesId")
        items: list[Record] = []
        if lookups:
            name = lookups[0]
            for record in self.state.meetings.records(keys):
                if name != "roomId" and str(record.get(name)) == params[name]:
                    items.append(self._series_item(record, zone, now, current=current))
        elif series_id is not None:
            series = self.state.meetings.get(series_id) if series_id in keys else None
            if series is not None:
                kinds = ([meeting_type] if params.get("meetingType") else ["meeting", "scheduledMeeting"])
                for kind in kinds:
                    items.extend(self._occurrence_items(series, kind, window, zone, now))
        else:
            for record in self.state.meetings.records(keys):
                if not self._selected(record, params):
                    continue
                if meeting_type == "meetingSeries":
                    end = _series_end(record, now)
                    if _span_of(record).first < window[1] and (end is None or end > window[0]):
                        items.append(self._series_item(record, zone, now, current=current))
                else:
                    items.extend(self._occurrence_items(record, meeting_type, window, zone, now))
        state_filter = params.get("state")
        if state_filter:
            items = [item for item in items if item.get("state") == state_filter]
        chunk, headers = self._pager(request).page(items, size)
        return _json({"items": chunk}, media=MEETINGS_JSON, headers=headers)

    @staticmethod
    def _window(start: str | None, end: str | None, meeting_type: str, now: datetime) -> tuple[datetime, datetime]:
        week = timedelta(days=7)
        begin = _instant(start, "from") if start else None
        until = _instant(end, "to") if end else None
        if begin is None and until is None:
            begin, until = (now - week, now) if meeting_type == "meeting" else (now, now + week)
        elif begin is None:
            assert until is not None
            begin = until - week
        elif until is None:
            until = begin + week
        if begin > until:
            raise _BadRequest("from cannot be after to.")
        return begin, until

    @staticmethod
    def _selected(record: Record, params: Any) -> bool:
        site = params.get("siteUrl")
        if site and record.get("siteUrl") != site:
            return False
        scheduled_type = params.get("scheduledType")
        return not (scheduled_type and record.get("scheduledType") != scheduled_type)

    def _series_item(self, record: Record, zone: ZoneInfo, now: datetime, *, current: bool) -> Record:
        span = _span_of(record)
        item = _clean(record)
        start = span.current(now) if current else span.first
        item["start"] = _render_time(start, zone)
        item["end"] = _render_time(start + span.duration, zone)
        item["timezone"] = zone.key
        end = _series_end(record, now)
        if end is not None and end <= now:
            item["state"] = "expired"
        return item

    def _occurrence_items(self, record: Record, kind: str, window: tuple[datetime, datetime], zone: ZoneInfo,
                          now: datetime) -> Iterator[Record]:
        """Scheduled meetings (`{series}_{start}`) or ended instances (`{series}_I_{n}`) of a series."""
        span = _span_of(record)
        series = _clean(record)
        series.pop("recurrence", None)
        for start in span.occurrences(window[0], window[1]):
            end = start + span.duration
            stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            if kind == "scheduledMeeting":
                if end <= now:
                    continue
                meeting_id = f"{record['id']}_{stamp}"
                ready = start - timedelta(minutes=15) <= now
                extra: Record = {"meetingType": "scheduledMeeting", "scheduledMeetingId": meeting_id,
                                 "state": "ready" if ready else "scheduled", "isModified": False}
            else:
                if end > now:
                    continue
                meeting_id = f"{record['id']}_I_{int(start.timestamp())}"
                extra = {"meetingType": "meeting", "state": "ended", "hostDidJoin": True, "attendeeDidJoin": True}
            yield {**series, **extra, "id": meeting_id, "meetingSeriesId": record["id"],
                   "start": _render_time(start, zone), "end": _render_time(end, zone), "timezone": zone.key}

    def _find_meeting(self, meeting_id: str, caller: Record | None) -> tuple[Record, str | None, str | None]:
        """The series behind an id of any of the three formats, if the caller hosts it or is invited."""
        series_id, _, rest = meeting_id.partition("_")
        record = self.state.meetings.get(series_id)
        if record is None or series_id not in self.state.series_of(caller):
            raise _BadRequest("Meeting not found.", 404)
        if not rest:
            return record, None, None
        if rest.startswith("I_"):
            return record, "meeting", rest[2:]
        return record, "scheduledMeeting", rest

    async def get_meeting(self, request: Request) -> Response:
        params = request.query_params
        now = self.sandbox.now()
        zone = _zone(request.headers.get("timezone"))
        current = _flag(params.get("current"), "current", False)
        record, kind, suffix = self._find_meeting(request.path_params["meeting_id"], self._caller(request))
        if kind is None:
            # The Get schema of a series declares neither: the spec keeps hasRegistration for occurrences and
            # meetingSeriesId for occurrences and instances (list items carry both).
            series = self._series_item(record, zone, now, current=current)
            series.pop("hasRegistration", None)
            series.pop("meetingSeriesId", None)
            return _json(series, media=MEETINGS_JSON)
        try:
            if kind == "meeting":
                start = datetime.fromtimestamp(int(str(suffix)), UTC)
            else:
                start = datetime.strptime(str(suffix), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _BadRequest("Meeting not found.", 404) from exc
        instant = (start - timedelta(seconds=1), start + timedelta(seconds=1))
        for item in self._occurrence_items(record, kind, instant, zone, now):
            if item["id"] == request.path_params["meeting_id"]:
                return _json(item, media=MEETINGS_JSON)
        raise _BadRequest("Meeting not found.", 404)

    async def list_invitees(self, request: Request) -> Response:
        params = request.query_params
        meeting_id = params.get("meetingId")
        if not meeting_id:
            raise _BadRequest("meetingId is required.")
        size = _count(params.get("max"), "max", default=MEETINGS_DEFAULT, cap=MEETINGS_MAX)
        caller = self._caller(request)
        record, _kind, _suffix = self._find_meeting(meeting_id, caller)
        if caller is None or record.get("_host") != caller["id"]:
            raise _BadRequest("Meeting not found.", 404)  # invitees are shown to the host only
        if record.get("scheduledType") == "personalRoomMeeting":
            raise _BadRequest("The meeting ID of a scheduled personal room meeting is not supported.")
        invitees = record.get("_invitees", [])
        chunk, headers = self._pager(request).page(list(enumerate(invitees)), size)
        items = [{"id": f"{meeting_id}_{2_628_957 + index}", "email": invitee["email"],
                  "displayName": invitee.get("displayName") or invitee["email"], "coHost": bool(invitee.get("coHost")),
                  "panelist": False, "meetingId": meeting_id} for index, invitee in chunk]
        return _json({"items": items}, media=MEETINGS_JSON, headers=headers)

    # -- routes

    def routes(self) -> list[Route]:
        def fixed(*scopes: str) -> Callable[[Request], tuple[str, ...]]:
            return lambda _request: scopes

        def meeting_scopes(request: Request) -> tuple[str, ...]:
            if request.query_params.get("hostEmail"):
                return ("meeting:admin_schedule_read",)
            return ("meeting:schedules_read", "meeting:admin_schedule_read")

        people_read = fixed("spark-admin:people_read")
        write = fixed("spark-admin:people_write")
        licences_read = fixed("spark-admin:licenses_read")
        return [
            Route("/v1/people", self._guard(self.list_people, people_read), methods=["GET"]),
            Route("/v1/people/{person_id}", self._guard(self.get_person, people_read), methods=["GET"]),
            Route("/v1/people/{person_id}", self._guard(self.put_person, write), methods=["PUT"]),
            Route("/v1/licenses", self._guard(self.list_licences, licences_read), methods=["GET"]),
            Route("/v1/licenses/users", self._guard(self.patch_licences, write), methods=["PATCH"]),
            Route("/v1/licenses/{licence_id}", self._guard(self.get_licence, licences_read), methods=["GET"]),
            Route("/v1/meetings", self._guard(self.list_meetings, meeting_scopes), methods=["GET"]),
            Route("/v1/meetings/{meeting_id}", self._guard(self.get_meeting, meeting_scopes), methods=["GET"]),
            Route("/v1/meetingInvitees", self._guard(self.list_invitees, meeting_scopes), methods=["GET"]),
        ]


def _same_kind(value: str | bool, example: object) -> str | bool:
    """A flag written back the way this person's flags are stored (string or boolean)."""
    flag = value if isinstance(value, bool) else value.strip().lower() == "true"
    return flag if isinstance(example, bool) else ("true" if flag else "false")


def _not_found(request: Request, _exc: Exception) -> Response:
    return _error(request, 404, "The requested resource could not be found.")


def _not_allowed(request: Request, _exc: Exception) -> Response:
    return _error(request, 405, "The request method is not supported for this resource.")


def mount(sandbox: Sandbox) -> SystemMount:
    api = WebexApi(sandbox)
    app = Starlette(routes=api.routes(), exception_handlers={404: _not_found, 405: _not_allowed})

    def throttled(retry_after: int) -> Response:
        return _error(None, 429, "Too many requests have been sent in a given amount of time and the request has "
                                 "been rate limited.", headers={"Retry-After": str(int(retry_after))})

    def server_error() -> Response:
        return _error(None, 503, "The server is currently unable to handle the request due to a temporary "
                                 "overloading or maintenance.")

    return SystemMount(name="webex", prefix="/webex", app=_TrackingIds(app), throttled=throttled,
                       server_error=server_error)


__all__ = ["WebexApi", "WebexState", "mount"]
