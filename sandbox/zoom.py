"""Sandbox Zoom: API v2 and the Server-to-Server OAuth token endpoint over a generated ministry.

Follows shared/contracts/zoom.md (section 8 is the checklist) and the official OpenAPI document:

- `POST /zoom/oauth/token`: Basic client auth, `grant_type=account_credentials` and `account_id` in the query string
  or in a form body (zoomus sends a form); opaque tokens living `token_lifetime_seconds`; no refresh token.
- `GET /zoom/v2/users` (three statuses, pending users without `id`), `GET|PATCH /zoom/v2/users/{userId}` (id or
  e-mail, raw `@` or `%40`), `PUT /zoom/v2/users/{userId}/status`, `GET /zoom/v2/users/{userId}/meetings` (thin
  items, unexpired only), `GET /zoom/v2/meetings/{meetingId}` (full body, occurrences computed from the recurrence),
  `GET /zoom/v2/users/{userId}/webinars`, `GET /zoom/v2/webinars/{webinarId}`, and
  `DELETE /zoom/v2/meetings/{meetingId}` (bascule never deletes; tests remove a meeting between list and GET).
- Page tokens are opaque, signed, bound to their listing and expire after 15 minutes of the sandbox clock.
- Rate limits per account and per label (Light / Medium) at the plan's per-second rates, and the daily caps of the
  plan; both 429 variants carry Zoom's headers. Injected faults use the same renderers.
- Unknown query parameters are ignored (zoomus sends `user_id=` and `id=`), so is an `id` key in a PATCH body.

Records are read from the generated JSON Lines files on demand (sandbox.store); writes live in the store's overlay.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import itertools
import math
import secrets
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from dateutil import rrule
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox.limits import RateLimiter
from sandbox.server import Sandbox, SystemMount
from sandbox.store import JsonlStore, Record, public

PREFIX = "/zoom"
TOKEN_PATH = "/oauth/token"  # noqa: S105 — a path, not a secret

# Requests per second per account and label (zoom.md section 7); Heavy is listed for completeness.
LABEL_RATES: dict[str, dict[str, float]] = {
    "free": {"Light": 4, "Medium": 2, "Heavy": 1},
    "pro": {"Light": 30, "Medium": 20, "Heavy": 10},
    "business": {"Light": 80, "Medium": 60, "Heavy": 40},
}
# Daily caps per account and label, as published; a label absent here has no daily cap.
DAILY_LIMITS: dict[str, dict[str, int]] = {
    "free": {"Light": 6000, "Medium": 2000, "Heavy": 1000},
    "pro": {"Heavy": 30000},
    "business": {"Heavy": 60000},
}

PAGE_SIZE_DEFAULT = 30
PAGE_SIZE_MAX = 300
PAGE_TOKEN_LIFETIME = timedelta(minutes=15)
LIST_AGENDA_CHARS = 250
MAX_OCCURRENCES = 50
# A single (non-recurring) meeting stays listed 30 days after its scheduled date (Zoom's meeting-ID expiry).
SINGLE_MEETING_GRACE = timedelta(days=30)

# The list schemas of the official document: list items are these fields of the stored GET body, in this order.
USER_LIST_FIELDS = ("id", "first_name", "last_name", "email", "type", "pmi", "timezone", "verified", "dept",
                    "created_at", "last_login_time", "last_client_version", "status",
                    "role_id", "employee_unique_id", "group_ids", "im_group_ids", "plan_united_type",
                    "custom_attributes")
MEETING_LIST_FIELDS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone", "agenda",
                       "created_at", "join_url", "pmi")
WEBINAR_LIST_FIELDS = ("uuid", "id", "host_id", "topic", "type", "start_time", "duration", "timezone", "agenda",
                       "created_at", "join_url", "is_simulive")
# Fields PATCH /users/{userId} changes in the sandbox; anything else in the body is accepted and ignored.
PATCHABLE_USER_FIELDS = ("type", "plan_united_type", "zoom_one_type", "first_name", "last_name", "dept", "timezone",
                         "language", "job_title", "company", "location", "pronouns")
ADMIN_ROLE_IDS = ("0", "1")
ZOOM_ROOM_PREFIX = "zoomroom"  # sandbox convention: accounts named zoomroom-… are Zoom Room users

_ZOOM_WEEKDAYS = (rrule.SU, rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA)  # "1" = Sunday
_FREQUENCIES: dict[int, Literal[0, 1, 2, 3, 4, 5, 6]] = {1: rrule.DAILY, 2: rrule.WEEKLY, 3: rrule.MONTHLY}
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_BYTES = 4 + 8 + 10  # offset, issued (epoch seconds), truncated HMAC
_TOKEN_CHARS = 30
_BROKEN_ISSUED = 0  # a looping server's token never changes and never expires


@dataclass(frozen=True, slots=True)
class ZoomOptions:
    """Behaviour of the Zoom stand-in beyond SandboxConfig (tests build the mount with these directly)."""

    daily_limits: Mapping[str, int] | None = None  # label → requests per UTC day; None: the plan's published caps
    basic_user_cap: int | None = None              # PATCH to type 1 refused with code 3412 beyond this many Basic users


_APIS: weakref.WeakKeyDictionary[Sandbox, _ZoomApi] = weakref.WeakKeyDictionary()


def mount(sandbox: Sandbox, options: ZoomOptions | None = None) -> SystemMount:
    """The Zoom stand-in, mounted under /zoom."""
    api = _ZoomApi(sandbox, options or ZoomOptions())
    _APIS[sandbox] = api
    return SystemMount(name="zoom", prefix=PREFIX, app=api.app(), throttled=api.injected_throttle,
                       server_error=api.server_error, fault_exempt=lambda path: path == TOKEN_PATH)


def schedule_meeting(sandbox: Sandbox, host_id: str, like: str, *, meeting_id: int, topic: str) -> None:
    """A host schedules a new meeting in Zoom's own web portal (what the policy's HOSTS_ON_SOURCE watches for):
    a copy of their meeting `like` under a new id and topic, listed from now on. For tests and the demo."""
    api = _APIS[sandbox]
    model = api.meetings.get(like)
    if model is None:
        raise KeyError(f"no Zoom meeting {like}")
    created = _utc_z(sandbox.now())
    join_url = str(model.get("join_url", "")).replace(f"/j/{model['id']}", f"/j/{meeting_id}")
    api.meetings.put(str(meeting_id), {**model, "id": meeting_id, "topic": topic, "created_at": created,
                                       "uuid": base64.b64encode(secrets.token_bytes(16)).decode("ascii"),
                                       "join_url": join_url, "host_id": host_id, "_host": host_id})


def label_of(method: str, path: str) -> str:
    """The rate-limit label of an API call (path without the /zoom prefix), as the official document gives it."""
    parts = path.strip("/").split("/")
    if method.upper() == "GET" and (parts == ["v2", "users"]
                                    or (len(parts) == 4 and parts[:2] == ["v2", "users"]
                                        and parts[3] in ("meetings", "webinars"))):
        return "Medium"
    return "Light"


# ----------------------------------------------------------------------------------------------- responses

def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=dict(headers or {}),
                    media_type="application/json;charset=UTF-8")


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """Every v2 error: `{"code": <int>, "message": "<text>"}`."""
    return _json({"code": code, "message": message}, status, headers)


def _invalid_token() -> Response:
    return _error(401, 124, "Invalid access token.")


def _expired_token() -> Response:
    return _error(401, 124, "Access token is expired.")


def _user_not_found(user_id: str) -> Response:
    return _error(404, 1001, f"User does not exist: {user_id}.")


def _validation_failed(field_name: str, message: str) -> Response:
    return _json({"code": 300, "message": "Validation Failed.",
                  "errors": [{"field": field_name, "message": message}]}, 400)


def _qps_limited(label: str, limit: float, retry_after: int) -> Response:
    return _error(429, 429, "You have reached the maximum per-second rate limit for this API. Try again later.",
                  {"X-RateLimit-Type": "QPS", "X-RateLimit-Category": label, "X-RateLimit-Limit": f"{limit:g}",
                   "X-RateLimit-Remaining": "0", "Retry-After": str(max(1, retry_after))})


def _daily_limited(label: str, limit: int, reset: datetime) -> Response:
    return _error(429, 429, f"You have exceeded the daily rate limit ({limit}) of {label} APIs for your account. "
                            f"Try again after {_utc_z(reset)}.",
                  {"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": label,
                   "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0", "Retry-After": _utc_z(reset)})


class _InjectedThrottle(Response):
    """The per-second 429 the fault injector sends: its category header depends on the request's path."""

    def __init__(self, api: _ZoomApi, retry_after: int) -> None:
        super().__init__(b"", status_code=429)
        self._api = api
        self._retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        label = label_of(str(scope.get("method", "GET")), path.removeprefix(PREFIX))
        response = _qps_limited(label, self._api.rates.get(label, 0), self._retry_after)
        await response(scope, receive, send)


# ----------------------------------------------------------------------------------------------- times

def _utc_z(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def _parse_instant(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _zone(name: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _series_rule(meeting: Record) -> tuple[rrule.rrule, ZoneInfo] | None:
    """The meeting's recurrence as a dateutil rule in local wall time (None: not a fixed-time series, or broken)."""
    recurrence = meeting.get("recurrence")
    start = _parse_instant(meeting.get("start_time"))
    if not isinstance(recurrence, dict) or start is None:
        return None
    zone = _zone(meeting.get("timezone"))
    try:
        frequency = _FREQUENCIES[int(recurrence["type"])]
        options: dict[str, Any] = {"interval": int(recurrence.get("repeat_interval") or 1)}
        if frequency == rrule.WEEKLY and recurrence.get("weekly_days"):
            options["byweekday"] = [_ZOOM_WEEKDAYS[int(day) - 1] for day in str(recurrence["weekly_days"]).split(",")]
        elif frequency == rrule.MONTHLY and recurrence.get("monthly_day"):
            options["bymonthday"] = int(recurrence["monthly_day"])
        elif frequency == rrule.MONTHLY and recurrence.get("monthly_week"):
            weekday = _ZOOM_WEEKDAYS[int(recurrence["monthly_week_day"]) - 1]
            options["byweekday"] = [weekday(int(recurrence["monthly_week"]))]
        if recurrence.get("end_times"):
            options["count"] = int(recurrence["end_times"])
        elif recurrence.get("end_date_time"):
            until = _parse_instant(recurrence["end_date_time"])
            if until is None:
                return None
            options["until"] = until.astimezone(zone).replace(tzinfo=None)
        else:
            return None  # Zoom fixed-time series always end
        rule = rrule.rrule(frequency, dtstart=start.astimezone(zone).replace(tzinfo=None), **options)
    except (KeyError, ValueError, IndexError, TypeError):
        return None
    return rule, zone


def _occurrence_starts(meeting: Record) -> Iterator[datetime] | None:
    """Aware UTC starts of every occurrence, in order (None: no usable recurrence)."""
    found = _series_rule(meeting)
    if found is None:
        return None
    rule, zone = found
    return (local.replace(tzinfo=zone).astimezone(UTC) for local in rule)


def _expires_at(meeting: Record) -> datetime | None:
    """When the meeting stops being listed as scheduled (None: it does not expire)."""
    meeting_type = meeting.get("type")
    duration = timedelta(minutes=int(meeting.get("duration") or 0))
    if meeting_type in (8, 9):
        starts = _occurrence_starts(meeting)
        if starts is None:
            return None
        last = collections.deque(starts, maxlen=1)
        return last[0] + duration if last else None
    if meeting_type in (2, 5):
        start = _parse_instant(meeting.get("start_time"))
        return None if start is None else start + duration + SINGLE_MEETING_GRACE
    return None  # no fixed time, PMI: no expiry the sandbox can compute


def _occurrences(meeting: Record, now: datetime, *, previous: bool,
                 changes_from: datetime) -> list[dict[str, object]] | None:
    """`occurrences[]` of a fixed-time series: ids are the original starts in epoch ms; the generator's
    `_occurrence_changes` (indexes among the occurrences from `changes_from`) delete, move or resize some."""
    starts = _occurrence_starts(meeting)
    if starts is None:
        return None
    duration = int(meeting.get("duration") or 0)
    changed = _changed_occurrences(meeting, changes_from)
    if not previous:
        starts = (start for start in starts if start + timedelta(minutes=duration) > now)
    found = []
    for start in itertools.islice(starts, MAX_OCCURRENCES):
        status, moved, length = changed.get(start, ("available", start, duration))
        found.append({"occurrence_id": str(int(start.timestamp()) * 1000), "start_time": _utc_z(moved),
                      "duration": length, "status": status})
    return found


def _changed_occurrences(meeting: Record, changes_from: datetime) -> dict[datetime, tuple[str, datetime, int]]:
    """Original start → (status, start, duration) for the occurrences `_occurrence_changes` names."""
    changes = meeting.get("_occurrence_changes")
    starts = _occurrence_starts(meeting)
    if not isinstance(changes, dict) or starts is None:
        return {}
    ahead = list(itertools.islice((start for start in starts if start >= changes_from), 8))
    duration = int(meeting.get("duration") or 0)
    changed: dict[datetime, tuple[str, datetime, int]] = {}
    for index in changes.get("deleted", ()):
        if index < len(ahead):
            changed[ahead[index]] = ("deleted", ahead[index], duration)
    for index, minutes in changes.get("moved", ()):
        if index < len(ahead):
            changed[ahead[index]] = ("available", ahead[index] + timedelta(minutes=minutes), duration)
    for index, length in changes.get("resized", ()):
        if index < len(ahead):
            changed[ahead[index]] = ("available", ahead[index], length)
    return changed


# ----------------------------------------------------------------------------------------------- page tokens

def _base62(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars)).rjust(_TOKEN_CHARS, "0")


def _unbase62(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = _BASE62.find(char)
        if digit < 0:
            return None
        number = number * 62 + digit
    try:
        return number.to_bytes(_TOKEN_BYTES, "big")
    except OverflowError:
        return None


class _PageTokens:
    """Opaque next_page_token values: offset and issue time, signed for one listing; valid 15 minutes."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._key = secrets.token_bytes(32)

    def _mac(self, scope: str, offset: int, issued: int) -> bytes:
        return hmac.new(self._key, f"{scope}\x00{offset}\x00{issued}".encode(), hashlib.sha256).digest()[:10]

    def issue(self, scope: str, offset: int) -> str:
        broken = self._sandbox.broken("repeat_page_token")
        issued = _BROKEN_ISSUED if broken else int(self._sandbox.now().timestamp())
        return _base62(offset.to_bytes(4, "big") + issued.to_bytes(8, "big") + self._mac(scope, offset, issued))

    def offset(self, scope: str, token: str) -> int | None:
        """The offset a token stands for; None when it is not one of ours, for another listing, or expired."""
        data = _unbase62(token) if len(token) == _TOKEN_CHARS else None
        if data is None:
            return None
        offset, issued = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:12], "big")
        if not hmac.compare_digest(data[12:], self._mac(scope, offset, issued)):
            return None
        if issued == _BROKEN_ISSUED and self._sandbox.broken("repeat_page_token"):
            return offset
        age = self._sandbox.now() - datetime.fromtimestamp(issued, UTC)
        return offset if timedelta(0) <= age <= PAGE_TOKEN_LIFETIME else None


# ----------------------------------------------------------------------------------------------- the API

Handler = Callable[[Request, Any], Response]


class _ZoomApi:
    """State and routes of the Zoom stand-in (one per Sandbox)."""

    def __init__(self, sandbox: Sandbox, options: ZoomOptions) -> None:
        self.sandbox = sandbox
        self.options = options
        config = sandbox.config
        self.account_id = str(sandbox.manifest["tenant"]["zoom_account_id"])
        self.rates = LABEL_RATES[config.zoom_plan]
        self.daily = dict(options.daily_limits if options.daily_limits is not None
                          else DAILY_LIMITS[config.zoom_plan])
        self.limiter = RateLimiter(dict(self.rates), enabled=config.rate_limits)
        zoom_dir = sandbox.data_dir / "zoom"
        self.users = JsonlStore(zoom_dir / "users.jsonl", key=_user_key,
                                groups={"status": lambda r: [str(r.get("status", "active"))],
                                        "email": lambda r: [_email_key(r.get("email"))]})
        host: dict[str, Callable[[Record], list[str]]] = {"host": lambda r: [str(r.get("_host", r.get("host_id")))]}
        self.meetings = JsonlStore(zoom_dir / "meetings.jsonl", key=lambda r: str(r["id"]), groups=host)
        self.webinars = JsonlStore(zoom_dir / "webinars.jsonl", key=lambda r: str(r["id"]), groups=host)
        self.page_tokens = _PageTokens(sandbox)
        self._tokens: dict[str, datetime] = {}
        self._moved: dict[str, tuple[str, str]] = {}  # user key → (status in the file, status now)
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route(TOKEN_PATH, self.token, methods=["POST"]),
            Route("/v2/users", self._api(self.list_users), methods=["GET"]),
            Route("/v2/users/{user_id}", self._api(self.get_user), methods=["GET"]),
            Route("/v2/users/{user_id}", self._api(self.patch_user), methods=["PATCH"]),
            Route("/v2/users/{user_id}/status", self._api(self.put_user_status), methods=["PUT"]),
            Route("/v2/users/{user_id}/meetings", self._api(self.list_meetings), methods=["GET"]),
            Route("/v2/users/{user_id}/webinars", self._api(self.list_webinars), methods=["GET"]),
            Route("/v2/meetings/{meeting_id}", self._api(self.get_meeting), methods=["GET"]),
            Route("/v2/meetings/{meeting_id}", self._api(self.delete_meeting), methods=["DELETE"]),
            Route("/v2/webinars/{webinar_id}", self._api(self.get_webinar), methods=["GET"]),
        ])

    # ------------------------------------------------------------------------------------------ faults

    def injected_throttle(self, retry_after: int) -> Response:
        return _InjectedThrottle(self, retry_after)

    def server_error(self) -> Response:
        return _error(500, 500, "Internal server error.")

    # ------------------------------------------------------------------------------------------ OAuth

    async def token(self, request: Request) -> Response:
        """POST /oauth/token: Server-to-Server OAuth, account_credentials grant only."""
        credentials = self.sandbox.config.credentials
        client = _basic_auth(request.headers.get("authorization", ""))
        if client is None or not (
                hmac.compare_digest(client[0], credentials.zoom_client_id)
                and hmac.compare_digest(client[1], credentials.zoom_client_secret)):
            self.sandbox.count("zoom:token:refused")
            return _json({"reason": "Invalid client_id or client_secret", "error": "invalid_client"}, 401)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        params = {name: values[0] for name, values in form.items()} | dict(request.query_params)
        if params.get("grant_type") != "account_credentials":
            return _json({"reason": "Unsupported grant type", "error": "unsupported_grant_type"}, 400)
        if params.get("account_id") != self.account_id:
            return _json({"reason": "Invalid account_id", "error": "invalid_request"}, 400)
        lifetime = self.sandbox.config.token_lifetime_seconds
        access_token = secrets.token_urlsafe(48)
        now = self.sandbox.now()
        with self._lock:
            self._tokens = {token: expiry for token, expiry in self._tokens.items() if expiry > now}
            self._tokens[access_token] = now + timedelta(seconds=lifetime)
        self.sandbox.count("zoom:token:issued")
        return _json({"access_token": access_token, "token_type": "bearer", "expires_in": lifetime,
                      "scope": " ".join(credentials.zoom_scopes), "api_url": "https://api.zoom.us"})

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Bearer token, then the account's limits for the route's label, then the handler."""

        async def endpoint(request: Request) -> Response:
            refusal = self._authenticate(request.headers.get("authorization", ""))
            if refusal is not None:
                return refusal
            label = label_of(request.method, request.url.path.removeprefix(PREFIX))
            limited = self._rate_limit(label)
            if limited is not None:
                return limited
            self.sandbox.count(f"zoom:label:{label}")
            body: Any = None
            if request.method in ("PATCH", "PUT", "POST"):
                raw = await request.body()
                try:
                    body = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    return _error(400, 300, "Request Body should be a valid JSON object.")
                if not isinstance(body, dict):
                    return _error(400, 300, "Request Body should be a valid JSON object.")
            return handler(request, body)

        return endpoint

    def _authenticate(self, header: str) -> Response | None:
        scheme, _, token = header.partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None:
            self.sandbox.count("zoom:auth:invalid")
            return _invalid_token()
        if expiry <= self.sandbox.now():
            self.sandbox.count("zoom:auth:expired")
            return _expired_token()
        return None

    def _rate_limit(self, label: str) -> Response | None:
        if not self.sandbox.config.rate_limits:
            return None
        cap = self.daily.get(label)
        now = self.sandbox.now()
        day_key = f"zoom:daily:{label}:{now.date().isoformat()}"
        if cap is not None and self.sandbox.stats[day_key] >= cap:
            self.sandbox.count("zoom:limited:daily")
            reset = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
            return _daily_limited(label, cap, reset)
        wait = self.limiter.take(self.account_id, label)
        if wait is not None:
            self.sandbox.count("zoom:limited:qps")
            return _qps_limited(label, self.rates[label], math.ceil(wait))
        if cap is not None:
            self.sandbox.count(day_key)
        return None

    # ------------------------------------------------------------------------------------------ users

    def _find_user(self, user_id: str) -> tuple[str, Record] | None:
        """A user by id or e-mail (pending users only by e-mail: they have no id)."""
        if "@" in user_id:
            keys = self.users.group("email", _email_key(user_id))
            key = keys[0] if keys else None
        else:
            key = user_id if not user_id.startswith("pending:") else None
        record = self.users.get(key) if key is not None else None
        return None if key is None or record is None else (key, record)

    def _status_keys(self, status: str) -> list[str]:
        keys = self.users.group("status", status)
        with self._lock:
            moved = dict(self._moved)
        if not moved:
            return keys
        kept = [key for key in keys if moved.get(key, (status, status))[1] == status]
        return kept + [key for key, (before, now) in moved.items() if now == status and before != status]

    def list_users(self, request: Request, _body: Any) -> Response:
        status = request.query_params.get("status") or "active"
        if status not in ("active", "inactive", "pending"):
            return _validation_failed("status", "Invalid field.")
        keys = self._status_keys(status)
        page = self._page(request, f"users:{status}", keys)
        if isinstance(page, Response):
            return page
        now = _utc_z(self.sandbox.now())
        items = [_without_status_sometimes(_subset(_as_served(record, now), USER_LIST_FIELDS))
                 for record in self.users.records(page.keys)]
        return _json(page.envelope() | {"users": items})

    def get_user(self, request: Request, _body: Any) -> Response:
        user_id = request.path_params["user_id"]
        found = self._find_user(user_id)
        if found is None:
            return _user_not_found(user_id)
        return _json(public(_as_served(found[1], _utc_z(self.sandbox.now()))))

    def patch_user(self, request: Request, body: Any) -> Response:
        user_id = request.path_params["user_id"]
        found = self._find_user(user_id)
        if found is None:
            return _user_not_found(user_id)
        key, record = found
        assert isinstance(body, dict)
        type_fields = [name for name in ("type", "plan_united_type", "zoom_one_type") if name in body]
        if len(type_fields) > 1:
            return _error(400, 300, "The type, plan_united_type and zoom_one_type fields cannot be updated "
                                    "in the same request.")
        if "type" in body:
            new_type = body["type"]
            if new_type not in (1, 2, 3, 4, 99):
                return _validation_failed("type", "Invalid field.")
            if new_type in (1, 4) and _is_zoom_room(record):
                return _error(400, 200, f"A Zoom Room user cannot be updated to a free user type: {user_id}")
            cap = self.options.basic_user_cap
            if new_type == 1 and record.get("type") != 1 and cap is not None and self._count_type(1) >= cap:
                return _error(400, 3412, "Your account has reached the maximum number of Basic users.")
        for name in PATCHABLE_USER_FIELDS:
            if name in body:
                record[name] = body[name]
        self.users.put(key, record)
        self.sandbox.count("zoom:write:patch_user")
        return Response(status_code=204)

    def put_user_status(self, request: Request, body: Any) -> Response:
        user_id = request.path_params["user_id"]
        found = self._find_user(user_id)
        if found is None:
            return _user_not_found(user_id)
        key, record = found
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("activate", "deactivate"):
            return _validation_failed("action", "Invalid field.")
        if str(record.get("role_id")) in ADMIN_ROLE_IDS or _is_zoom_room(record):
            return _error(400, 200, "Zoom Room and Admin users' status cannot be activated or deactivated.")
        before = str(record.get("status", "active"))
        if before == "pending":
            return _error(400, 1120, "A valid invitation to join the Zoom account was not found for this user.")
        after = "inactive" if action == "deactivate" else "active"
        if action == "activate" and before == "inactive" and record.get("type") == 1:
            cap = self.options.basic_user_cap
            if cap is not None and self._count_type(1) >= cap:
                return _error(400, 3412, "Your account has reached the maximum number of Basic users.")
        record["status"] = after
        if action == "deactivate" and record.get("type") == 2:
            record["type"] = 1  # deactivating removes every licence (zoom.md section 5)
        self.users.put(key, record)
        with self._lock:
            original = self._moved.get(key, (before, before))[0]
            if original == after:
                self._moved.pop(key, None)
            else:
                self._moved[key] = (original, after)
        self.sandbox.count("zoom:write:user_status")
        return Response(status_code=204)

    def _count_type(self, user_type: int) -> int:
        return sum(1 for record in self.users.records() if record.get("type") == user_type)

    # ------------------------------------------------------------------------------------------ meetings

    def _listed(self, store: JsonlStore, host_id: str, listing: str) -> list[str]:
        now = self.sandbox.now()
        keys = []
        for key in store.group("host", host_id):
            record = store.get(key)
            if record is None:
                continue
            expires = _expires_at(record)
            live = expires is None or expires > now
            if listing == "previous_meetings":
                wanted = not live
            elif listing == "scheduled":
                wanted = live
            else:
                wanted = live and _has_upcoming(record, now)
            if wanted:
                keys.append(key)
        return keys

    def _list_hosted(self, request: Request, store: JsonlStore, kind: str, fields: tuple[str, ...],
                     listings: tuple[str, ...], *, by_number: bool = False) -> Response:
        user_id = request.path_params["user_id"]
        found = self._find_user(user_id)
        if found is None:
            return _user_not_found(user_id)
        listing = request.query_params.get("type") or "scheduled"
        if listing not in listings:
            return _validation_failed("type", "Invalid field.")
        host_id = str(found[1].get("id", ""))
        if self.sandbox.broken(f"refuse_{kind}_of", host_id):
            return _error(400, 300, "Invalid field.")
        keys = [] if not host_id or listing == "live" else self._listed(store, host_id, listing)
        page = (self._numbered_page(request, f"{kind}:{host_id}:{listing}", keys) if by_number
                else self._page(request, f"{kind}:{host_id}:{listing}", keys))
        if isinstance(page, Response):
            return page
        items = []
        for record in store.records(page.keys):
            item = _subset(record, fields)
            if isinstance(item.get("agenda"), str):
                item["agenda"] = item["agenda"][:LIST_AGENDA_CHARS]
            items.append(item)
        if self.sandbox.broken(f"malformed_{kind}_of", host_id):
            return _json(page.envelope() | {kind: {"unexpected": "an object where the spec has an array"}})
        return _json(page.envelope() | {kind: items})

    def list_meetings(self, request: Request, _body: Any) -> Response:
        return self._list_hosted(request, self.meetings, "meetings", MEETING_LIST_FIELDS,
                                 ("scheduled", "live", "upcoming", "upcoming_meetings", "previous_meetings"))

    def list_webinars(self, request: Request, _body: Any) -> Response:
        # The operation declares page_size and page_number only (its response still carries a next_page_token,
        # which this listing does not read back): a client that follows the token gets page 1 again.
        return self._list_hosted(request, self.webinars, "webinars", WEBINAR_LIST_FIELDS, ("scheduled", "upcoming"),
                                 by_number=True)

    def _get_scheduled(self, request: Request, store: JsonlStore, identifier: str, noun: str) -> Response:
        if not identifier.isdigit():
            return _error(400, 300, f"Invalid {noun.lower()} id.")
        record = store.get(identifier)
        if record is None:
            return _error(404, 3001, f"{noun} {identifier} is not found or has expired.")
        body = public(record)
        if body.get("type") in (8, 9):
            previous = request.query_params.get("show_previous_occurrences", "").lower() == "true"
            occurrences = _occurrences(record, self.sandbox.now(), previous=previous,
                                       changes_from=self.sandbox.now_fixed)
            if occurrences is not None:
                settings = body.pop("settings", None)
                body["occurrences"] = occurrences
                if settings is not None:
                    body["settings"] = settings
        return _json(body)

    def get_meeting(self, request: Request, _body: Any) -> Response:
        return self._get_scheduled(request, self.meetings, request.path_params["meeting_id"], "Meeting")

    def delete_meeting(self, request: Request, _body: Any) -> Response:
        """DELETE /meetings/{meetingId}: bascule never calls it; tests use it to remove a meeting mid-listing."""
        identifier = request.path_params["meeting_id"]
        if identifier not in self.meetings:
            return _error(404, 3001, f"Meeting {identifier} is not found or has expired.")
        self.meetings.delete(identifier)
        self.sandbox.count("zoom:write:delete_meeting")
        return Response(status_code=204)

    def get_webinar(self, request: Request, _body: Any) -> Response:
        return self._get_scheduled(request, self.webinars, request.path_params["webinar_id"], "Webinar")

    # ------------------------------------------------------------------------------------------ paging

    def _page(self, request: Request, scope: str, keys: list[str]) -> _Page | Response:
        size_text = request.query_params.get("page_size", "")
        try:
            size = int(size_text) if size_text else PAGE_SIZE_DEFAULT
        except ValueError:
            return _validation_failed("page_size", "Invalid field.")
        size = PAGE_SIZE_DEFAULT if size <= 0 else min(size, PAGE_SIZE_MAX)
        token = request.query_params.get("next_page_token", "")
        offset = 0
        if token:
            found = self.page_tokens.offset(scope, token)
            if found is None:
                self.sandbox.count("zoom:page_token:refused")
                return _error(400, 300, "The next page token is invalid or expired.")
            offset = found
        end = offset + size
        if self.sandbox.broken("repeat_page_token"):
            following = self.page_tokens.issue(scope, size if len(keys) > size else 0)
        elif self.sandbox.broken("endless_page_token"):
            following = self.page_tokens.issue(scope, end)  # past the end too: empty pages, a new token each time
        else:
            following = self.page_tokens.issue(scope, end) if end < len(keys) else ""
        return _Page(keys[offset:end], size=size, total=len(keys), number=offset // size + 1, token=following)


    def _numbered_page(self, request: Request, scope: str, keys: list[str]) -> _Page | Response:
        """A listing paged by `page_number` (1-based; past the end: an empty page)."""
        size_text = request.query_params.get("page_size", "")
        number_text = request.query_params.get("page_number", "") or "1"
        try:
            size = int(size_text) if size_text else PAGE_SIZE_DEFAULT
            number = int(number_text)
        except ValueError:
            return _validation_failed("page_size" if not size_text.lstrip("-").isdigit() else "page_number",
                                      "Invalid field.")
        size = PAGE_SIZE_DEFAULT if size <= 0 else min(size, PAGE_SIZE_MAX)
        number = max(1, number)
        offset = (number - 1) * size
        end = offset + size
        following = self.page_tokens.issue(scope, end) if end < len(keys) else ""
        return _Page(keys[offset:end], size=size, total=len(keys), number=number, token=following)


@dataclass(frozen=True, slots=True)
class _Page:
    keys: list[str]
    size: int
    total: int
    number: int
    token: str

    def envelope(self) -> dict[str, object]:
        return {"page_count": math.ceil(self.total / self.size), "page_number": self.number,
                "page_size": self.size, "total_records": self.total, "next_page_token": self.token}


def _has_upcoming(record: Record, now: datetime) -> bool:
    if record.get("type") in (8, 9):
        starts = _occurrence_starts(record)
        return starts is not None and any(start > now for start in starts)
    start = _parse_instant(record.get("start_time"))
    return start is None or start > now


def _as_served(user: Record, now: str) -> Record:
    """A pending user's `created_at` is the time of the API call, not the invitation's (spec, list users)."""
    if user.get("status") == "pending":
        user["created_at"] = now
    return user


def _without_status_sometimes(item: Record) -> Record:
    """A listed user without `status` (not required by the list schema), for one user in twenty: clients must take
    the status of the listing they asked for."""
    if int(hashlib.sha256(_user_key(item).encode()).hexdigest()[:4], 16) % 20 == 0:
        item.pop("status", None)
    return item


def _subset(record: Record, fields: tuple[str, ...]) -> Record:
    return {name: record[name] for name in fields if name in record}


def _user_key(record: Record) -> str:
    return str(record["id"]) if record.get("id") else "pending:" + _email_key(record.get("email"))


def _email_key(value: object) -> str:
    return str(value or "").strip().lower()


def _is_zoom_room(record: Record) -> bool:
    return _email_key(record.get("email")).startswith(ZOOM_ROOM_PREFIX)


def _basic_auth(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
