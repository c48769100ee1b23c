"""Sandbox Microsoft Graph v1.0 and the Entra token endpoint, over a generated ministry.

Follows shared/contracts/graph.md (section 9 is the checklist) and the official CSDL:

- Entra (root routes, outside /graph, because azure-identity wants an authority host):
  `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token` (form `client_id`,
  `client_secret`, `grant_type=client_credentials`, `scope=…/.default`); AADSTS-style errors (`invalid_client`,
  401, for a wrong secret). Tokens are signed by the sandbox, carry the app's roles and live
  `token_lifetime_seconds` of the sandbox clock; an expired one is a 401 `InvalidAuthenticationToken`.
- `GET /graph/v1.0/users` (11 default properties unless `$select`; `$top` 1-999; absolute `@odata.nextLink` with
  `$skiptoken`), `GET /users/{id|upn}`, `GET /users/delta` and `/users/delta()` (nextLinks, then an
  `@odata.deltaLink` whose later use returns what changed since, removed users as `@removed`; `$top` is ignored
  like the service does, `Prefer: odata.maxpagesize` up to 200 is honoured), `GET /subscribedSkus` (`$select`
  only), `GET /organization`.
- `GET /users/{id|upn}/events` (only singleInstance and seriesMaster; `$top`, `$skip` nextLinks as Outlook writes
  them; `$filter` on simple properties such as `type eq 'seriesMaster'`, 400 on recurrence/organizer/attendees;
  `Prefer: outlook.timezone`, `outlook.body-content-type`, `IdType="ImmutableId"` echoed in Preference-Applied),
  `GET|PATCH|DELETE /users/{id}/events/{id}` (only updatable members; previous versions kept, see GraphState;
  DELETE needs Calendars.ReadWrite, takes a series' exceptions along and leaves a tombstone for delta).
- `GET /users/{id|upn}/calendarView/delta` (also `delta()`, `microsoft.graph.delta[()]`; event-delta.md): the
  first request needs `startDateTime` and `endDateTime` (400 `ErrorInvalidParameter` otherwise), no `$` option is
  accepted (400 `ErrorInvalidUrlQuery`); `Prefer: odata.maxpagesize` (default 10, at most 1000) is echoed. The
  first round lists every instance overlapping the window — single instances, the occurrences of each series
  master expanded here with dateutil in the series' zone (`type: occurrence`, `seriesMasterId`, an id derived from
  the master and the original start, the master's members, `recurrence: null`), stored exceptions in place of
  theirs — never a master nor a cancelled event; `@odata.nextLink` ($skiptoken) pages, then `@odata.deltaLink`
  ($deltatoken). Tokens are opaque base64 JSON carrying the mailbox, window, change positions and a generation;
  a later round gives every instance of each event changed since (PATCH, add, the organiser's edit) and
  `{"@odata.type", "id", "@removed": {"reason": "deleted"}}` for instances gone from the window.
  `GraphState.reset_event_sync()` expires every token handed out (410 `SyncStateNotFound`).
- `POST /users/{id}/assignLicense` (both members required; group-inherited SKUs refused; seats recounted; the
  change shows in reads and in the next users delta), `DELETE /users/{id}` (soft delete).
- `POST /graph/v1.0/$batch`: at most 20 items, responses shuffled, `dependsOn`/`depends_on`, 424 on a failed
  dependency, per-item 429 (mailbox concurrency, injected faults) with its own Retry-After.
- Throttling when `config.rate_limits`: 4 concurrent requests per app and mailbox for Outlook resources
  (`ApplicationThrottled`, "Application is over its MailboxConcurrency limit."); identity endpoints draw resource
  units from a per-app token bucket sized by the tenant (3,500 / 5,000 / 8,000 RU per 10 s). 429s carry an integer
  Retry-After and Graph's OData error body; so do the injected faults.
- Wire habits of msgraph-sdk: lower-case headers, percent-encoded path segments (`%40`, `%3D`), `delta()`,
  `@odata.*` keys in bodies, `depends_on` and `%24filter` in batch items.
- Deliberate bugs of Outlook (Sandbox.broken): `edit_event_after_read:<event id>` (the organiser edits the event
  right after a client read it, once), `expire_event_delta` or `expire_event_delta:<mailbox>` (the next request
  with a calendarView `$deltatoken` finds its sync state dropped: 410, and so does every older token; once).

Where the service's exact status or message is unconfirmed (graph.md says so), the choice is marked "unconfirmed";
what the sandbox does not implement answers 501 with a message starting "sandbox:", never a silent wrong answer.
Records are read from the generated files on demand (sandbox.store); writes live in the store's overlay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import math
import random
import re
import secrets
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from dateutil import rrule
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from core.timezones import WINDOWS_TO_IANA
from sandbox.faults import Fault
from sandbox.limits import ConcurrencyGate, TokenBucket
from sandbox.server import Sandbox, SystemMount
from sandbox.store import JsonlStore, Record, public

PREFIX = "/graph"
SYSTEM = "teams"          # counter names ("teams:requests", "teams:injected:throttle") follow Platform.TEAMS
VERSION = "v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TEAMS1_PLAN_ID = "57ff2da0-773e-42df-b2af-ffb7a2317929"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

DEFAULT_USER_PROPERTIES = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                           "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
# User properties the sandbox knows (those of the generated records and a few common others); selecting
# anything else is a 400 like the service's for a name the type does not have.
USER_PROPERTIES = frozenset(DEFAULT_USER_PROPERTIES) | {
    "accountEnabled", "userType", "externalUserState", "mailNickname", "proxyAddresses", "otherMails",
    "employeeId", "employeeType", "department", "companyName", "createdDateTime", "usageLocation",
    "onPremisesImmutableId", "onPremisesSyncEnabled", "onPremisesSamAccountName", "onPremisesUserPrincipalName",
    "assignedLicenses", "assignedPlans", "licenseAssignmentStates", "signInActivity", "city", "country",
    "streetAddress", "postalCode", "state", "faxNumber", "ageGroup", "creationType", "deletedDateTime",
    "imAddresses", "isResourceAccount", "lastPasswordChangeDateTime", "preferredDataLocation",
    "showInAddressList", "employeeHireDate", "identities", "securityIdentifier"}
USER_PAGE_DEFAULT, USER_PAGE_MAX = 100, 999
DELTA_PAGE_MAX = 200              # observed cap of users delta pages (Prefer: odata.maxpagesize)
EVENT_PAGE_DEFAULT, EVENT_PAGE_MAX = 10, 1000   # the maximum is commonly cited, unconfirmed (graph.md 5.1)
BATCH_MAX = 20
FILTER_IDS_MAX = 50
# Event members a PATCH may set (event-update.md).
EVENT_UPDATABLE = frozenset({
    "attendees", "body", "categories", "end", "hideAttendees", "importance", "isAllDay", "isOnlineMeeting",
    "isReminderOn", "location", "locations", "onlineMeetingProvider", "recurrence", "reminderMinutesBeforeStart",
    "responseRequested", "sensitivity", "showAs", "start", "subject"})
# Beta-only members the generator writes; v1.0 does not declare them (CSDL), so they are not served.
EVENT_NOT_IN_V1 = frozenset({"uid"})
# Event properties `$filter` may compare with eq/ne; the service refuses recurrence, organizer and attendees.
EVENT_FILTERABLE = frozenset({"type", "isCancelled", "isOrganizer", "isOnlineMeeting", "isAllDay", "subject",
                              "onlineMeetingProvider", "showAs", "sensitivity", "importance", "seriesMasterId",
                              "iCalUId", "isDraft", "hasAttachments"})
EVENT_UNFILTERABLE = ("recurrence", "organizer", "attendees")
# calendarView/delta (event-delta.md): no OData query option but the state tokens; page size by Prefer only.
EVENT_DELTA_REFUSED = ("$select", "$filter", "$orderby", "$expand", "$search", "$top", "$skip", "$count")
# Series members an occurrence does not carry (the master's own bookkeeping).
SERIES_ONLY = frozenset({"cancelledOccurrences", "exceptionOccurrences", "instances", "originalStart"})
OCCURRENCES_MAX = 20_000          # per series and window: a guard against a window of centuries, not a Graph limit
# Exchange's GlobalObjectId (iCalUId in hex): class id, then the instance date (zero on a master) (MS-OXOCAL).
EXCHANGE_UID_CLASS = "040000008200E00074C5B7101A82E008"
# The wordings below are unconfirmed; the codes follow Outlook's for the same faults (graph.md 5.1).
DELTA_WINDOW_MESSAGE = ("This request requires a time window specified by the query string parameters"
                        " StartDateTime and EndDateTime.")
SYNC_STATE_MESSAGE = ("The sync state generation is not found. The delta token is expired and data must be"
                      " synchronized again.")

# Application roles (graph.md 1): any one of each set is enough.
READ_USERS = frozenset({"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
READ_SKUS = frozenset({"Organization.Read.All", "Organization.ReadWrite.All", "LicenseAssignment.Read.All",
                       "LicenseAssignment.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"})
READ_ORGANIZATION = READ_SKUS | READ_USERS
READ_EVENTS = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
WRITE_EVENTS = frozenset({"Calendars.ReadWrite"})
ASSIGN_LICENCES = frozenset({"LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})
DELETE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All", "User.DeleteRestore.All"})
SIGN_IN_ACTIVITY = "AuditLog.Read.All"

# Identity and access resource units (throttling-limits): per app and tenant per 10 s, by tenant size.
RU_COSTS = {"users": 2, "user": 1, "delta": 2, "subscribedSkus": 3, "organization": 1, "assignLicense": 10,
            "deleteUser": 5}
WRITES_PER_150_SECONDS = 3000
MAILBOX_RETRY_AFTER = 1
IDENTITY_SCOPE = "Tenant_Application/ReadWrite/{app}/{tenant}"

_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_FUNCTION_SEGMENTS = {"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"}
_ASSIGN_SEGMENTS = {"assignLicense", "microsoft.graph.assignLicense"}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_QUERY_OPTIONS = {"select", "top", "skip", "skiptoken", "deltatoken", "filter", "orderby", "expand", "count",
                  "search", "format"}
_TAG = re.compile(r"<[^>]+>")

_STATES: weakref.WeakKeyDictionary[Sandbox, GraphState] = weakref.WeakKeyDictionary()


def mount(sandbox: Sandbox) -> SystemMount:
    """The Graph stand-in, mounted under /graph; the Entra token endpoints as root routes."""
    api = _GraphApi(sandbox)
    _STATES[sandbox] = api.state
    return SystemMount(name=SYSTEM, prefix=PREFIX, app=api.app(), throttled=api.injected_throttle,
                       server_error=api.server_error, root_routes=api.entra_routes())


def identity_units(tenant_users: int) -> int:
    """Resource units per 10 s an app gets on identity endpoints, by tenant size (throttling-limits)."""
    return 3500 if tenant_users < 50 else 5000 if tenant_users <= 500 else 8000


def state_of(sandbox: Sandbox) -> GraphState:
    """The Graph state of a running sandbox, for tests: delete a user, read an event's previous versions."""
    return _STATES[sandbox]


# ----------------------------------------------------------------------------------------------- wire types

@dataclass(frozen=True, slots=True)
class _Call:
    """One API request, as the handlers see it: unquoted path segments after /v1.0, `$`-named query options,
    lower-case header names."""

    method: str
    segments: tuple[str, ...]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    base: str                  # http://host:port/graph/v1.0, for absolute links
    request_id: str
    in_batch: bool = False


@dataclass(slots=True)
class _Reply:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False


@dataclass(frozen=True, slots=True)
class _Token:
    tenant: str
    app: str
    roles: frozenset[str]
    expires: float


@dataclass(frozen=True, slots=True)
class _Prefer:
    """The Prefer header, read once (several headers or one comma-separated header)."""

    timezone: str | None = None
    text_body: bool = False
    immutable_ids: bool = False
    max_page_size: int | None = None

    @staticmethod
    def parse(value: str) -> _Prefer:
        timezone, text_body, immutable, page = None, False, False, None
        for part in _split_prefer(value):
            name, _, raw = part.partition("=")
            name = name.strip().lower()
            setting = raw.strip().strip('"')
            if name == "outlook.timezone":
                timezone = setting
            elif name == "outlook.body-content-type":
                text_body = setting.lower() == "text"
            elif name == "idtype":
                immutable = setting.lower() == "immutableid"
            elif name == "odata.maxpagesize" and setting.isdigit():
                page = int(setting)
        return _Prefer(timezone, text_body, immutable, page)


def _split_prefer(value: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


@dataclass(frozen=True, slots=True)
class _EventChange:
    """One write to an event: its position in the event change sequence and the version it replaced (None: the
    event did not exist before)."""

    sequence: int
    before: Record | None


class GraphError(Exception):
    """An OData error answer, raised inside a handler."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# ----------------------------------------------------------------------------------------------- state

class GraphState:
    """What the Graph stand-in serves and what clients changed: users, events, SKUs, the users change log."""

    def __init__(self, sandbox: Sandbox) -> None:
        teams = sandbox.data_dir / "teams"
        self._sandbox = sandbox
        self.users = JsonlStore(teams / "users.jsonl", key=lambda r: str(r["id"]),
                                groups={"upn": lambda r: [str(r.get("userPrincipalName") or "").lower()]})
        self.events = JsonlStore(teams / "events.jsonl", key=lambda r: str(r["id"]),
                                 groups={"mailbox": lambda r: [str(r["_mailbox"])]})
        self.user_ids: tuple[str, ...] = tuple(self.users.keys())  # file order; users are never created
        if sandbox.config.outlook_calendars:
            from sandbox.outlook import outlook_events

            for record in outlook_events(sandbox.data_dir, self.user):
                self.events.put(str(record["id"]), record)
        skus_path = teams / "subscribed_skus.json"
        self._skus: list[Record] = orjson.loads(skus_path.read_bytes())["value"] if skus_path.exists() else []
        org_path = teams / "organization.json"
        self.organization: Record = orjson.loads(org_path.read_bytes()) if org_path.exists() else {}
        self.tenant_id = str(sandbox.manifest.get("tenant", {}).get("entra_tenant_id")
                             or self.organization.get("id") or "")
        units = identity_units(len(self.users))
        self.identity_bucket = TokenBucket(units / 10, burst=units)   # resource units, per app and tenant
        self.write_bucket = TokenBucket(WRITES_PER_150_SECONDS / 150, burst=WRITES_PER_150_SECONDS)
        self.lock = threading.RLock()   # writes read, change and store a record under it
        self._sequence = 0
        self._changes: dict[str, tuple[int, frozenset[str] | None]] = {}   # user → (sequence, properties)
        self._removed: dict[str, str] = {}                                  # user → @removed reason
        self._history: dict[str, list[Record]] = {}                         # event → previous versions
        # Event changes, for calendarView/delta: a sequence of their own (users delta has _sequence), each change
        # with the version it replaced, so that any past position of a mailbox can be seen again.
        self._event_sequence = 0
        self._event_generation = 0       # reset_event_sync() bumps it: older calendarView delta tokens expire
        self._event_log: dict[str, list[_EventChange]] = {}                 # event → its changes, in order
        self._logged_in_mailbox: dict[str, set[str]] = {}                   # mailbox → events ever changed there

    # -- reads

    @property
    def sequence(self) -> int:
        return self._sequence

    def skus(self) -> list[Record]:
        with self.lock:
            return orjson.loads(orjson.dumps(self._skus))  # type: ignore[no-any-return]

    def sku(self, sku_id: str) -> Record | None:
        return next((sku for sku in self.skus() if str(sku.get("skuId", "")).lower() == sku_id.lower()), None)

    def user(self, id_or_upn: str) -> Record | None:
        """A user by object id or userPrincipalName (case-insensitive), as it is now."""
        record = self.users.get(id_or_upn)
        if record is None:
            keys = self.users.group("upn", id_or_upn.lower())
            record = self.users.get(keys[0]) if keys else None
        return record

    def event(self, event_id: str) -> Record | None:
        """An event by immutable (stored) or REST id."""
        return self.events.get(event_id) or self.events.get(_immutable_id(event_id))

    def event_versions(self, event_id: str) -> list[Record]:
        """Previous versions of an event, oldest first (each PATCH keeps the version it replaced)."""
        with self.lock:
            return [orjson.loads(orjson.dumps(v)) for v in self._history.get(_immutable_id(event_id), [])]

    def changes_since(self, since: int, upto: int) -> list[tuple[str, frozenset[str] | None]]:
        with self.lock:
            found = [(seq, user, props) for user, (seq, props) in self._changes.items() if since < seq <= upto]
        return [(user, props) for _seq, user, props in sorted(found)]

    def removed_reason(self, user_id: str) -> str | None:
        with self.lock:
            return self._removed.get(user_id)

    @property
    def event_sequence(self) -> int:
        """The position of the latest event change (calendarView delta tokens hold one)."""
        return self._event_sequence

    @property
    def event_generation(self) -> int:
        return self._event_generation

    def calendar_view(self, mailbox: str, window: tuple[datetime, datetime], *, at: int) -> list[Record]:
        """Every instance of a mailbox's events overlapping `window` as they were at change position `at`:
        single instances, series occurrences and exceptions, ordered by start then id (never a series master)."""
        with self.lock:
            snapshot = self._mailbox_at(mailbox, at)
        instances = [instance for record in snapshot.values() for instance in _instances(record, snapshot, window)]
        return sorted(instances, key=_instance_order)

    def calendar_view_changes(self, mailbox: str, window: tuple[datetime, datetime], *, since: int,
                              upto: int) -> tuple[list[Record], list[str]]:
        """What changed in a mailbox's calendar view between two change positions: every instance of a changed
        event as it is at `upto`, and the ids of the instances it had at `since` and has no more."""
        with self.lock:
            changed = {event_id for event_id in self._logged_in_mailbox.get(mailbox, set())
                       if any(since < change.sequence <= upto for change in self._event_log[event_id])}
            before, after = self._mailbox_at(mailbox, since), self._mailbox_at(mailbox, upto)
        for snapshot in (before, after):       # an exception's change changes its series' occurrences too
            changed |= {_immutable_id(str(record.get("seriesMasterId") or "")) for event_id, record in snapshot.items()
                        if event_id in changed and record.get("type") == "exception"}
        old = {str(instance["id"]) for event_id in changed if event_id in before
               for instance in _instances(before[event_id], before, window)}
        new = [instance for event_id in changed if event_id in after
               for instance in _instances(after[event_id], after, window)]
        kept = {str(instance["id"]) for instance in new}
        return sorted(new, key=_instance_order), sorted(old - kept)

    # -- writes

    def delete_user(self, user_id: str, *, permanent: bool = False) -> None:
        """Delete a user: soft (restorable; delta says reason "changed") or permanent (reason "deleted")."""
        if user_id not in self.users and user_id not in self._removed:
            raise KeyError(user_id)
        with self.lock:
            self.users.delete(user_id)
            self._removed[user_id] = "deleted" if permanent else "changed"
            self._record_change(user_id, None)

    def put_user(self, record: Record, changed: Iterable[str]) -> None:
        with self.lock:
            self.users.put(str(record["id"]), record)
            self._record_change(str(record["id"]), frozenset(changed))

    def put_event(self, record: Record, previous: Record) -> None:
        with self.lock:
            self._history.setdefault(str(record["id"]), []).append(previous)
            self.events.put(str(record["id"]), record)
            self._record_event_change(str(record["id"]), previous, record)

    def add_event(self, record: Record, *, mailbox: str | None = None) -> str:
        """A new event in a mailbox (`mailbox`: user id or UPN, else the record's `_mailbox`), as if its organiser
        had just created it: id, changeKey and iCalUId generated when missing; the next calendarView delta shows it.
        Returns its (immutable) id."""
        event: Record = orjson.loads(orjson.dumps(record))
        owner = self.user(mailbox or str(event.get("_mailbox") or ""))
        if owner is None:
            raise KeyError(mailbox or event.get("_mailbox"))
        event["_mailbox"] = str(owner["id"])
        event.setdefault("id", "AAMk" + _b64(b"\x00added" + secrets.token_bytes(48)))
        event.setdefault("changeKey", base64.b64encode(secrets.token_bytes(12)).decode("ascii"))
        event.setdefault("iCalUId", EXCHANGE_UID_CLASS + "00000000" + secrets.token_hex(24).upper())
        event.setdefault("type", "seriesMaster" if event.get("recurrence") else "singleInstance")
        event.setdefault("isCancelled", False)
        now = _iso(self._sandbox.now())
        event.setdefault("createdDateTime", now)
        event.setdefault("lastModifiedDateTime", now)
        event_id = str(event["id"])
        with self.lock:
            if event_id in self.events:
                raise ValueError(f"the event {event_id} exists already")
            self.events.put(event_id, event)
            self._record_event_change(event_id, None, event)
        return event_id

    def delete_event(self, event_id: str) -> None:
        """Remove an event (a series master takes its stored exceptions along), leaving a tombstone for delta."""
        with self.lock:
            record = self.event(event_id)
            if record is None:
                raise KeyError(event_id)
            doomed = [record]
            if record.get("type") == "seriesMaster":
                doomed += [other for other in self.events.records(self.events.group("mailbox",
                                                                                    str(record["_mailbox"])))
                           if other.get("type") == "exception"
                           and _immutable_id(str(other.get("seriesMasterId") or "")) == record["id"]]
            for gone in doomed:
                self.events.delete(str(gone["id"]))
                self._record_event_change(str(gone["id"]), gone, None)

    def reset_event_sync(self) -> None:
        """Expire every calendarView delta token handed out so far (the next use is a 410 SyncStateNotFound), as
        Exchange does when it drops a sync state."""
        with self.lock:
            self._event_generation += 1

    def set_prepaid(self, sku_id: str, enabled: int) -> None:
        """The seats the tenant pays for a SKU (`prepaidUnits.enabled`): a test or scenario buys or cancels seats."""
        with self.lock:
            for sku in self._skus:
                if str(sku.get("skuId", "")).lower() == sku_id.lower():
                    sku.setdefault("prepaidUnits", {})["enabled"] = enabled

    def adjust_consumed(self, sku_id: str, delta: int) -> None:
        with self.lock:
            for sku in self._skus:
                if str(sku.get("skuId", "")).lower() == sku_id.lower():
                    sku["consumedUnits"] = int(sku.get("consumedUnits") or 0) + delta

    def _record_change(self, user_id: str, props: frozenset[str] | None) -> None:
        self._sequence += 1
        previous = self._changes.get(user_id)
        merged: frozenset[str] | None = None     # None: every property (a removal)
        if props is not None and not (previous is not None and previous[1] is None):
            merged = props | (previous[1] if previous is not None and previous[1] is not None else frozenset())
        self._changes[user_id] = (self._sequence, merged)

    def _mailbox_at(self, mailbox: str, position: int) -> dict[str, Record]:
        """A mailbox's events as they were at a change position, by id."""
        ids = dict.fromkeys([*self.events.group("mailbox", mailbox),
                             *sorted(self._logged_in_mailbox.get(mailbox, set()))])
        snapshot = {}
        for event_id in ids:
            record = self._event_at(event_id, position)
            if record is not None and record.get("_mailbox") == mailbox:
                snapshot[event_id] = record
        return snapshot

    def _event_at(self, event_id: str, position: int) -> Record | None:
        for change in self._event_log.get(event_id, []):
            if change.sequence > position:
                return orjson.loads(orjson.dumps(change.before)) if change.before is not None else None
        return self.events.get(event_id)

    def _record_event_change(self, event_id: str, before: Record | None, after: Record | None) -> None:
        self._event_sequence += 1
        mailbox = str((after or before or {}).get("_mailbox") or "")
        self._event_log.setdefault(event_id, []).append(_EventChange(
            self._event_sequence, orjson.loads(orjson.dumps(before)) if before is not None else None))
        self._logged_in_mailbox.setdefault(mailbox, set()).add(event_id)


# ----------------------------------------------------------------------------------------------- the API

class _GraphApi:
    """Request handling for one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.config = sandbox.config
        self.state = GraphState(sandbox)
        self._key = secrets.token_bytes(32)
        self._gate = ConcurrencyGate(self.config.graph_mailbox_concurrency)
        self._random = random.Random(0)
        self._random_lock = threading.Lock()

    # -- ASGI

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/" + VERSION + "/{rest:path}", self._endpoint,
                                       methods=["GET", "POST", "PATCH", "DELETE", "PUT"])])

    def entra_routes(self) -> list[Route]:
        return [Route("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration,
                      methods=["GET"]),
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"])]

    async def _endpoint(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        rest = path.split(f"/{VERSION}/", 1)[1] if f"/{VERSION}/" in path else ""
        headers = {name.lower(): ", ".join(request.headers.getlist(name)) for name in request.headers}
        try:
            body = await request.body()
        except ClientDisconnect:   # the client left while still sending: nobody reads the answer
            return Response(status_code=499)
        call = _Call(method=request.method.upper(), segments=_segments(rest),
                     query=_query(request.url.query), headers=headers, body=body,
                     base=f"{request.url.scheme}://{request.url.netloc}{PREFIX}/{VERSION}",
                     request_id=headers.get("client-request-id") or str(uuid.uuid4()))
        if "retry-attempt" in headers:   # kiota's RetryHandler retried: a second retry layer is at work
            self.sandbox.count(f"{SYSTEM}:retry_attempt_header")
        reply = await run_in_threadpool(self.handle, call)
        return self._render(reply, call)

    def _render(self, reply: _Reply, call: _Call) -> Response:
        headers = {"request-id": str(uuid.uuid4()), "client-request-id": call.request_id, **reply.headers}
        if reply.body is None:
            return Response(status_code=reply.status, headers=headers)
        content = orjson.dumps(reply.body)
        if reply.truncate:
            content = content[: len(content) // 2]
        return Response(content, status_code=reply.status, headers=headers, media_type=_JSON)

    # -- fault renderers (the middleware's injected 429 and 5xx)

    def injected_throttle(self, retry_after: int) -> Response:
        return self._plain(_throttled_reply(retry_after, self._now()))

    def server_error(self) -> Response:
        return self._plain(self._error_reply(503, "serviceNotAvailable", "The service is temporarily unavailable."
                                             " Please try again later.", None, retry_after=None))

    def _plain(self, reply: _Reply) -> Response:
        headers = {"request-id": str(uuid.uuid4()), **reply.headers}
        return Response(orjson.dumps(reply.body), status_code=reply.status, headers=headers, media_type=_JSON)

    # -- dispatch

    def handle(self, call: _Call) -> _Reply:
        try:
            token = self._authenticate(call)
            if call.segments == ("$batch",):
                if call.method != "POST":
                    raise GraphError(405, "Request_BadRequest", "Only POST is allowed on $batch.")
                return self._batch(call, token)
            return self._route(call, token)
        except GraphError as error:
            return self._error_reply(error.status, error.code, error.message, call, headers=error.headers)

    def _route(self, call: _Call, token: _Token) -> _Reply:
        parts, method = call.segments, call.method
        if parts == ("users",) and method == "GET":
            return self._list_users(call, token)
        if len(parts) == 2 and parts[0] == "users" and parts[1] in _FUNCTION_SEGMENTS and method == "GET":
            return self._users_delta(call, token)
        if len(parts) == 2 and parts[0] == "users":
            if method == "GET":
                return self._get_user(call, token, parts[1])
            if method == "DELETE":
                return self._delete_user(call, token, parts[1])
        if len(parts) == 3 and parts[0] == "users" and parts[2] in _ASSIGN_SEGMENTS and method == "POST":
            return self._assign_license(call, token, parts[1])
        if len(parts) == 3 and parts[0] == "users" and parts[2] == "events" and method == "GET":
            return self._with_mailbox(call, token, parts[1], self._list_events)
        if len(parts) == 4 and parts[0] == "users" and parts[2] == "events" and method in ("GET", "PATCH", "DELETE"):
            handler = {"GET": self._get_event, "PATCH": self._patch_event, "DELETE": self._delete_event}[method]
            return self._with_mailbox(call, token, parts[1], lambda c, t, u: handler(c, t, u, parts[3]))
        if len(parts) >= 3 and parts[0] == "users" and parts[2].lower() == "calendarview" and method == "GET":
            if len(parts) == 4 and parts[3] in _FUNCTION_SEGMENTS:
                return self._with_mailbox(call, token, parts[1], self._calendar_view_delta)
            raise GraphError(501, "NotImplemented", "sandbox: only calendarView/delta is implemented, not the"
                             " calendarView listing.")
        if parts == ("subscribedSkus",) and method == "GET":
            return self._subscribed_skus(call, token)
        if parts == ("organization",) and method == "GET":
            return self._organization(call, token)
        unknown = next((p for p in parts if p not in ("users",)), parts[0] if parts else "")
        if method not in ("GET", "POST", "PATCH", "DELETE"):
            raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed.")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{unknown}'.")

    # -- authentication

    def _authenticate(self, call: _Call) -> _Token:
        header = call.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _auth_error("Access token is empty.")
        token = self._verify(value.strip())
        if token is None:
            raise _auth_error("Access token validation failure. Invalid audience.")
        if token.expires <= self._now().timestamp():
            raise _auth_error("Lifetime validation failed, the token is expired.")
        return token

    def _issue(self, roles: Iterable[str], app: str) -> str:
        header = _b64(b'{"typ":"JWT","alg":"HS256"}')
        expires = self._now().timestamp() + self.config.token_lifetime_seconds
        payload = _b64(orjson.dumps({"aud": GRAPH_SCOPE.removesuffix("/.default"), "tid": self.state.tenant_id,
                                     "appid": app, "roles": sorted(roles), "exp": expires}))
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def _verify(self, value: str) -> _Token | None:
        parts = value.split(".")
        if len(parts) != 3:
            return None
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return None
        return _Token(str(claims["tid"]), str(claims["appid"]), frozenset(claims["roles"]), float(claims["exp"]))

    def _require(self, token: _Token, roles: frozenset[str], *, outlook: bool = False) -> None:
        if token.roles & roles:
            return
        if outlook:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    # -- Entra

    async def _openid_configuration(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        base = f"{request.url.scheme}://{request.url.netloc}/{tenant}"
        body = {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": f"{base}/discovery/v2.0/keys", "response_modes_supported": ["query", "fragment"],
                "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout", "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com"}
        self.sandbox.count(f"{SYSTEM}:openid_configuration")
        return Response(orjson.dumps(body), media_type="application/json; charset=utf-8")

    async def _token(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        credentials = self.config.credentials
        self.sandbox.count(f"{SYSTEM}:token_requests")
        if tenant.lower() != self.state.tenant_id.lower():
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you"
                              " have the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type"
                              f" '{form.get('grant_type', '')}'.")
        if form.get("client_id") != credentials.graph_client_id:
            return _aad_error(400, "unauthorized_client", 700016, f"Application with identifier"
                              f" '{form.get('client_id', '')}' was not found in the directory '{tenant}'.")
        if not hmac.compare_digest(form.get("client_secret", "").encode(), credentials.graph_client_secret.encode()):
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret"
                              " being sent in the request is the client secret value, not the client secret ID,"
                              f" for a secret added to app '{credentials.graph_client_id}'.")
        scopes = form.get("scope", "").split()
        if not scopes or any(not s.endswith("/.default") for s in scopes):
            return _aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {form.get('scope')}"
                              " is not valid. Client credential flows must have a scope value with /.default"
                              " suffixed to the resource identifier (application ID URI).")
        lifetime = self.config.token_lifetime_seconds
        body = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": self._issue(credentials.graph_roles, credentials.graph_client_id)}
        return Response(orjson.dumps(body), media_type="application/json; charset=utf-8",
                        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    # -- throttling

    def _draw_identity(self, cost: int, *, write: bool = False) -> None:
        if not self.config.rate_limits:
            return
        wait = self.state.identity_bucket.take(cost)
        if wait is None and write:
            wait = self.state.write_bucket.take(1)
        if wait is None:
            return
        self.sandbox.count(f"{SYSTEM}:throttled:identity")
        retry_after = max(1, math.ceil(wait))
        scope = IDENTITY_SCOPE.format(app=self.config.credentials.graph_client_id, tenant=self.state.tenant_id)
        raise GraphError(429, "TooManyRequests", "Please retry again later.",
                         headers={"Retry-After": str(retry_after), "x-ms-throttle-scope": scope,
                                  "x-ms-throttle-information": "ResourceUnitLimitExceeded"})

    def _with_mailbox(self, call: _Call, token: _Token, user_segment: str,
                      handler: Callable[[_Call, _Token, Record], _Reply]) -> _Reply:
        self._require(token, READ_EVENTS if call.method == "GET" else WRITE_EVENTS, outlook=True)
        user = self.state.user(user_segment)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user_segment}' is invalid.")
        mailbox = str(user["id"])
        if not self.state.events.group("mailbox", mailbox) and not _has_exchange(user):
            raise GraphError(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or"
                             " is hosted on-premise.")
        if not self.config.rate_limits:
            return handler(call, token, user)
        if not self._gate.enter(f"{token.app}:{mailbox}"):
            raise _mailbox_throttled(self.sandbox)
        try:
            return handler(call, token, user)
        finally:
            self._gate.leave(f"{token.app}:{mailbox}")

    # -- users

    def _list_users(self, call: _Call, token: _Token) -> _Reply:
        self._require(token, READ_USERS)
        query = call.query
        top = _page_size(query.get("$top"), USER_PAGE_DEFAULT, USER_PAGE_MAX)
        if "$skip" in query:
            raise GraphError(400, "Request_UnsupportedQuery", "'$skip' is not supported by the service.")
        for option in ("$orderby", "$expand"):
            if option in query:
                raise GraphError(501, "NotImplemented", f"sandbox: {option} on users is not implemented.")
        advanced = call.headers.get("consistencylevel", "").lower() == "eventual"
        if "$search" in query and not advanced:
            raise GraphError(400, "Request_UnsupportedQuery", "Request with $search query parameter only works"
                             " through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
        if query.get("$count", "").lower() == "true" and not advanced:
            raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
        select = self._user_select(query.get("$select"), token)
        keep = _user_filter(query.get("$filter"), query.get("$search"))
        self._draw_identity(RU_COSTS["users"] - (1 if select else 0))
        offset = _decode_offset(query.get("$skiptoken"))
        page: list[Record] = []
        position = offset
        while position < len(self.state.user_ids) and len(page) < top:
            record = self.state.users.get(self.state.user_ids[position])
            position += 1
            if record is not None and keep(record):
                page.append(_present_user(record, select, always_id=False))
        body: dict[str, object] = {"@odata.context": f"{call.base}/$metadata#users"
                                   + (f"({','.join(select)})" if select else "")}
        if query.get("$count", "").lower() == "true" and "$skiptoken" not in query:
            body["@odata.count"] = sum(1 for r in self.state.users.records() if keep(r))
        repeat = self.sandbox.broken("repeat_page_token") and "$skiptoken" in query
        if repeat or _more_users(self.state, position, keep):
            next_offset = offset if repeat else position
            params = {k: v for k, v in query.items() if k != "$skiptoken"}
            params["$skiptoken"] = _encode_offset(next_offset)
            body["@odata.nextLink"] = f"{call.base}/users?{_urlencode(params)}"
        body["value"] = page
        return _Reply(200, body)

    def _user_select(self, raw: str | None, token: _Token) -> list[str] | None:
        if not raw:
            return None
        names = [name.strip() for name in raw.split(",") if name.strip()]
        for name in names:
            if name not in USER_PROPERTIES:
                raise GraphError(400, "Request_BadRequest", f"Could not find a property named '{name}' on type"
                                 " 'Microsoft.DirectoryServices.User'.")
        if "signInActivity" in names and SIGN_IN_ACTIVITY not in token.roles:
            raise GraphError(403, "Authorization_RequestDenied",
                             "Calling principal does not have required MSGraph permissions AuditLog.Read.All")
        if "signInActivity" in names and not self.sandbox.config.graph_premium:
            raise GraphError(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                             "Neither tenant is B2C or tenant doesn't have premium license")
        return names

    def _get_user(self, call: _Call, token: _Token, user_segment: str) -> _Reply:
        self._require(token, READ_USERS)
        select = self._user_select(call.query.get("$select"), token)
        record = self.state.user(user_segment)
        if record is None:
            raise _user_not_found(user_segment)
        self._draw_identity(RU_COSTS["user"])
        body = {"@odata.context": f"{call.base}/$metadata#users/$entity", **_present_user(record, select,
                                                                                        always_id=False)}
        return _Reply(200, body)

    def _delete_user(self, call: _Call, token: _Token, user_segment: str) -> _Reply:
        self._require(token, DELETE_USERS)
        record = self.state.user(user_segment)
        if record is None:
            raise _user_not_found(user_segment)
        self._draw_identity(RU_COSTS["deleteUser"], write=True)
        self.state.delete_user(str(record["id"]))
        return _Reply(204)

    def _users_delta(self, call: _Call, token: _Token) -> _Reply:
        self._require(token, READ_USERS)
        query = call.query
        raw_token = query.get("$skiptoken") or query.get("$deltatoken")
        if raw_token:
            try:
                position = orjson.loads(_unb64(raw_token))
            except (ValueError, binascii.Error) as error:
                raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired"
                                 " and can no longer be included in your request.") from error
            if "$deltatoken" in query and "$skiptoken" not in query:
                position = {**position, "k": "c", "o": 0, "u": self.state.sequence}
        else:
            select = self._user_select(query.get("$select"), token)
            position = {"k": "i", "o": 0, "u": self.state.sequence, "s": select,
                        "f": _delta_filter_ids(query.get("$filter"))}
        select = position.get("s")
        if select and "signInActivity" in select and SIGN_IN_ACTIVITY not in token.roles:
            self._user_select(",".join(select), token)
        self._draw_identity(RU_COSTS["delta"] - (1 if select else 0))
        prefer = _Prefer.parse(call.headers.get("prefer", ""))
        size = min(prefer.max_page_size or DELTA_PAGE_MAX, DELTA_PAGE_MAX)
        only: set[str] | None = set(position["f"]) if position.get("f") else None
        items: list[Record] = []
        offset = int(position["o"])
        if position["k"] == "i":
            cursor = offset
            ids = self.state.user_ids
            while cursor < len(ids) and len(items) < size:
                record = self.state.users.get(ids[cursor])
                cursor += 1
                if record is not None and (only is None or str(record["id"]) in only):
                    items.append(_present_user(record, select, always_id=True))
            more = _more_users(self.state, cursor, lambda r: only is None or str(r["id"]) in only)
        else:
            tracked = set(select) if select else None
            changes = [(user, props) for user, props in self.state.changes_since(int(position["a"]),
                                                                                 int(position["u"]))
                       if (only is None or user in only)
                       and (props is None or tracked is None or bool(props & tracked))]
            for user, _props in changes[offset:offset + size]:
                reason = self.state.removed_reason(user)
                record = self.state.users.get(user)
                if record is None:
                    items.append({"id": user, "@removed": {"reason": reason or "deleted"}})
                else:
                    items.append(_present_user(record, select, always_id=True))
            cursor = offset + size
            more = cursor < len(changes)
        body: dict[str, object] = {"@odata.context": f"{call.base}/$metadata#users"
                                   + (f"({','.join(select)})" if select else "")}
        repeat = self.sandbox.broken("repeat_page_token") and "$skiptoken" in query
        if more or repeat:
            following = position if repeat else dict(position, o=cursor)
            body["@odata.nextLink"] = f"{call.base}/users/delta?$skiptoken={_b64(orjson.dumps(following))}"
        else:
            done = {"k": "d", "a": position["u"], "s": select, "f": position.get("f")}
            body["@odata.deltaLink"] = f"{call.base}/users/delta?$deltatoken={_b64(orjson.dumps(done))}"
        body["value"] = items
        return _Reply(200, body)

    def _assign_license(self, call: _Call, token: _Token, user_segment: str) -> _Reply:
        self._require(token, ASSIGN_LICENCES)
        with self.state.lock:
            return self._assign_license_locked(call, user_segment)

    def _assign_license_locked(self, call: _Call, user_segment: str) -> _Reply:
        record = self.state.user(user_segment)
        if record is None:
            raise _user_not_found(user_segment)
        payload = _json_body(call)
        for member in ("addLicenses", "removeLicenses"):
            if not isinstance(payload.get(member), list):
                # Both members are Nullable=false in the CSDL; the service's exact answer is unconfirmed.
                raise GraphError(400, "Request_BadRequest",
                                 f"Invalid value specified for property '{member}' of resource 'User'.")
        self._draw_identity(RU_COSTS["assignLicense"], write=True)
        add: list[Record] = payload["addLicenses"]
        remove = [str(item) for item in payload["removeLicenses"]]
        assigned: list[Record] = list(record.get("assignedLicenses") or [])
        states: list[Record] = list(record.get("licenseAssignmentStates") or [])
        for sku_id in remove:
            if not _GUID.match(sku_id):
                raise GraphError(400, "Request_BadRequest", f"Invalid GUID:{sku_id}")
            held = [s for s in states if str(s.get("skuId", "")).lower() == sku_id.lower()]
            if not any(str(a.get("skuId", "")).lower() == sku_id.lower() for a in assigned):
                raise GraphError(400, "Request_BadRequest", "User does not have a corresponding license.")
            if held and all(s.get("assignedByGroup") for s in held):
                raise GraphError(400, "Request_BadRequest", "User license is inherited from group membership and"
                                 " cannot be removed directly from the user.")
        for licence in add:
            sku_id = str(licence.get("skuId") or "") if isinstance(licence, dict) else ""
            sku = self.state.sku(sku_id) if _GUID.match(sku_id) else None
            if sku is None:
                raise GraphError(400, "Request_BadRequest",
                                 f"License {sku_id} does not correspond to a valid company License.")
            if not record.get("usageLocation"):
                raise GraphError(400, "Request_BadRequest", "Invalid usage location for the user. Please assign a"
                                 " valid usage location before assigning a license.")
            already = any(str(a.get("skuId", "")).lower() == sku_id.lower() for a in assigned)
            prepaid = int((sku.get("prepaidUnits") or {}).get("enabled") or 0)
            if not already and int(sku.get("consumedUnits") or 0) >= prepaid:
                raise GraphError(400, "Request_BadRequest",
                                 f"Subscription {sku_id} does not have any available licenses.")
        now = _iso(self._now())
        for sku_id in remove:
            assigned = [a for a in assigned if str(a.get("skuId", "")).lower() != sku_id.lower()]
            states = [s for s in states if str(s.get("skuId", "")).lower() != sku_id.lower()
                      or s.get("assignedByGroup")]
            self.state.adjust_consumed(sku_id, -1)
        for licence in add:
            sku_id = str(licence["skuId"])
            disabled = [str(plan) for plan in licence.get("disabledPlans") or []]
            existing = next((a for a in assigned if str(a.get("skuId", "")).lower() == sku_id.lower()), None)
            if existing is None:
                assigned.append({"disabledPlans": disabled, "skuId": sku_id})
                self.state.adjust_consumed(sku_id, 1)
            else:
                existing["disabledPlans"] = disabled
            states = [s for s in states if str(s.get("skuId", "")).lower() != sku_id.lower()
                      or s.get("assignedByGroup")]
            states.append({"skuId": sku_id, "disabledPlans": disabled, "assignedByGroup": None, "state": "Active",
                           "error": "None", "lastUpdatedDateTime": now})
        record["assignedLicenses"] = assigned
        self.sandbox.count(f"{SYSTEM}:write:assign_license")
        record["licenseAssignmentStates"] = states
        record["assignedPlans"] = self._assigned_plans(record, assigned, now)
        # user-delta.md: changes to licenseAssignmentStates are not tracked by delta.
        self.state.put_user(record, {"assignedLicenses", "assignedPlans"})
        body = {"@odata.context": f"{call.base}/$metadata#users/$entity",
                **_present_user(record, None, always_id=False)}
        return _Reply(200, body)

    def _assigned_plans(self, record: Record, assigned: list[Record], now: str) -> list[Record]:
        previous = {str(p.get("servicePlanId")): p for p in record.get("assignedPlans") or []}
        plans: dict[str, Record] = {}
        for licence in assigned:
            sku = self.state.sku(str(licence["skuId"]))
            disabled = {str(p).lower() for p in licence.get("disabledPlans") or []}
            for plan in (sku or {}).get("servicePlans") or []:
                plan_id = str(plan["servicePlanId"])
                status = "Deleted" if plan_id.lower() in disabled else "Enabled"
                if plans.get(plan_id, {}).get("capabilityStatus") == "Enabled":
                    continue
                before = previous.get(plan_id)
                plans[plan_id] = {"assignedDateTime": (before or {}).get("assignedDateTime") or now,
                                  "service": str(plan.get("servicePlanName", "")).split("_")[0],
                                  "servicePlanId": plan_id, "capabilityStatus": status}
        for plan_id, before in previous.items():
            if plan_id not in plans:
                plans[plan_id] = {**before, "capabilityStatus": "Deleted"}
        return list(plans.values())

    # -- licences and organisation

    def _subscribed_skus(self, call: _Call, token: _Token) -> _Reply:
        self._require(token, READ_SKUS)
        unsupported = [option for option in call.query if option.startswith("$") and option != "$select"]
        if unsupported:
            raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported query option '{unsupported[0]}':"
                             " only $select is supported on subscribedSkus.")
        select = [n.strip() for n in call.query.get("$select", "").split(",") if n.strip()] or None
        self._draw_identity(RU_COSTS["subscribedSkus"] - (1 if select else 0))
        skus = self.state.skus()
        value = [{k: v for k, v in sku.items() if k == "id" or k in select} if select else sku for sku in skus]
        return _Reply(200, {"@odata.context": f"{call.base}/$metadata#subscribedSkus", "value": value})

    def _organization(self, call: _Call, token: _Token) -> _Reply:
        self._require(token, READ_ORGANIZATION)
        self._draw_identity(RU_COSTS["organization"])
        return _Reply(200, {"@odata.context": f"{call.base}/$metadata#organization",
                            "value": [self.state.organization] if self.state.organization else []})

    # -- events

    def _list_events(self, call: _Call, token: _Token, user: Record) -> _Reply:
        query = call.query
        for option in ("$orderby", "$expand", "$search", "$count", "$skiptoken"):
            if option in query:
                raise GraphError(501, "NotImplemented", f"sandbox: {option} on events is not implemented.")
        mailbox = str(user["id"])
        if self.sandbox.broken("refuse_meetings_of", mailbox):
            raise GraphError(400, "ErrorInvalidRequest", "The request is invalid.")
        top = _event_page_size(query.get("$top"))
        skip = _non_negative(query.get("$skip"), "$skip")
        select = _event_select(query.get("$select"))
        keep = _event_filter(query.get("$filter"))
        prefer = _Prefer.parse(call.headers.get("prefer", ""))
        records = [r for r in self.state.events.records(self.state.events.group("mailbox", str(user["id"])))
                   if r.get("type") in ("singleInstance", "seriesMaster") and keep(r)]
        page = [self._present_event(r, select, prefer) for r in records[skip:skip + top]]
        user_segment = call.segments[1]
        body: dict[str, object] = {"@odata.context": f"{call.base}/$metadata#users('{user_segment}')/events"
                                   + (f"({','.join(select)})" if select else "")}
        repeat = self.sandbox.broken("repeat_page_token") and "$skip" in query
        endless = self.sandbox.broken("endless_page_token")
        if endless:
            params = {k: v for k, v in query.items() if k not in ("$top", "$skip")}
            params.update({"$top": str(top), "$skip": str(skip + top)})  # past the end: empty pages, forever
            body["@odata.nextLink"] = f"{call.base}/users/{quote(user_segment, safe='@')}/events?{_urlencode(params)}"
        elif repeat or skip + top < len(records):
            next_skip = skip if repeat else skip + top
            params = {k: v for k, v in query.items() if k not in ("$top", "$skip")}
            params.update({"$top": str(top), "$skip": str(next_skip)})
            body["@odata.nextLink"] = f"{call.base}/users/{quote(user_segment, safe='@')}/events?{_urlencode(params)}"
        body["value"] = {"unexpected": "an object"} if self.sandbox.broken("malformed_meetings_of", mailbox) else page
        return _Reply(200, body, headers=self._preference_applied(prefer))

    def _get_event(self, call: _Call, token: _Token, user: Record, event_id: str) -> _Reply:
        record = self._mailbox_event(user, event_id)
        prefer = _Prefer.parse(call.headers.get("prefer", ""))
        body = {"@odata.context": f"{call.base}/$metadata#users('{call.segments[1]}')/events/$entity",
                **self._present_event(record, _event_select(call.query.get("$select")), prefer)}
        if self.sandbox.broken("edit_event_after_read", str(record["id"])):
            self._organiser_edits(record)
        return _Reply(200, body, headers=self._preference_applied(prefer))

    def _organiser_edits(self, record: Record) -> None:
        """Deliberate bug `edit_event_after_read:<event id>`, once: right after a client read the event, its
        organiser adds a line to the body (a new change key): the client's next If-Match is stale."""
        self.sandbox.set_bugs(remove=[f"edit_event_after_read:{record['id']}"])
        with self.state.lock:
            previous = orjson.loads(orjson.dumps(record))
            content = str(record["body"]["content"])
            note = "<p>Ordre du jour ajouté par l'organisateur.</p>"
            at = content.lower().rfind("</body>")
            record["body"] = {**record["body"], "content": content[:at] + note + content[at:] if at >= 0
                              else content + note}
            record["changeKey"] = base64.b64encode(secrets.token_bytes(12)).decode("ascii")
            self.state.put_event(record, previous)

    def _patch_event(self, call: _Call, token: _Token, user: Record, event_id: str) -> _Reply:
        with self.state.lock:
            return self._patch_event_locked(call, user, event_id)

    def _patch_event_locked(self, call: _Call, user: Record, event_id: str) -> _Reply:
        record = self._mailbox_event(user, event_id)
        # If-Match with the @odata.etag read earlier: a change since (the organiser's, or Exchange's own) is a 412,
        # as Exchange answers a stale change key (contracts/calendars.md §1.4). Without If-Match, last writer wins.
        wanted = call.headers.get("if-match")
        if wanted is not None and wanted.strip() != "*" and _etag_key(wanted) != record.get("changeKey"):
            raise GraphError(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed "
                             "because the change key passed in the request does not match the current change key "
                             "for the item.")
        payload = {k: v for k, v in _json_body(call).items() if not k.startswith("@odata.")}
        for name in payload:
            if name not in EVENT_UPDATABLE:
                # The service's code for a read-only or unknown member is unconfirmed.
                raise GraphError(400, "ErrorInvalidPropertySet", f"The property '{name}' cannot be updated.")
        if "body" in payload:
            body = payload["body"]
            if (not isinstance(body, dict) or str(body.get("contentType", "")).lower() not in ("html", "text")
                    or not isinstance(body.get("content"), str)):
                raise GraphError(400, "ErrorInvalidRequest", "The body must carry contentType (text or html) and"
                                 " content.")
        if "location" in payload and not isinstance(payload["location"], dict):
            raise GraphError(400, "ErrorInvalidRequest", "The location must be an object.")
        previous = orjson.loads(orjson.dumps(record))
        for name, value in payload.items():
            record[name] = value
        if "body" in payload:
            record["body"] = {"contentType": str(payload["body"]["contentType"]).lower(),
                              "content": payload["body"]["content"]}
            record["bodyPreview"] = _html_text(record["body"]["content"])[:255]
        if "location" in payload and "locations" not in payload:
            location = {"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
                        **payload["location"]}
            record["location"] = location
            record["locations"] = [location] if location.get("displayName") else []
        record["lastModifiedDateTime"] = _iso(self._now())
        record["changeKey"] = base64.b64encode(secrets.token_bytes(12)).decode("ascii")
        self.state.put_event(record, previous)
        self.sandbox.count(f"{SYSTEM}:event_patches")
        prefer = _Prefer.parse(call.headers.get("prefer", ""))
        body = {"@odata.context": f"{call.base}/$metadata#users('{call.segments[1]}')/events/$entity",
                **self._present_event(record, None, prefer)}
        return _Reply(200, body, headers=self._preference_applied(prefer))

    def _delete_event(self, call: _Call, token: _Token, user: Record, event_id: str) -> _Reply:
        with self.state.lock:
            record = self._mailbox_event(user, event_id)
            self.state.delete_event(str(record["id"]))
        self.sandbox.count(f"{SYSTEM}:event_deletes")
        return _Reply(204)

    def _calendar_view_delta(self, call: _Call, token: _Token, user: Record) -> _Reply:
        """`GET /users/{id}/calendarView/delta`: a first round lists every instance in the window, page by page;
        its deltaLink later gives what changed since, with `@removed` for instances gone from the window."""
        query = call.query
        refused = [option for option in EVENT_DELTA_REFUSED if option in query]
        if refused:
            # Documented as unsupported (event-delta.md); the wording of the answer is unconfirmed.
            raise GraphError(400, "ErrorInvalidUrlQuery", "The following parameters are not supported with change"
                             f" tracking over the 'CalendarView' resource: '{', '.join(refused)}'.")
        mailbox = str(user["id"])
        raw = query.get("$skiptoken") or query.get("$deltatoken")
        if raw:
            position = _decode_event_delta(raw, mailbox)
            if "$skiptoken" not in query and self.sandbox.broken("expire_event_delta", mailbox):
                self._expire_event_delta(mailbox)
            if position["g"] != self.state.event_generation:
                # Outlook's answer to a dropped sync state: 410 (delta-query-overview); the code is unconfirmed.
                raise GraphError(410, "SyncStateNotFound", SYNC_STATE_MESSAGE)
            if position["k"] == "d":
                position = {**position, "k": "c", "u": self.state.event_sequence, "o": 0}
        else:
            start, end = _delta_window(query)
            position = {"m": mailbox, "w": [_iso(start), _iso(end)], "k": "i", "u": self.state.event_sequence,
                        "o": 0, "g": self.state.event_generation}
        window = (_instant(position["w"][0]), _instant(position["w"][1]))
        if position["k"] == "i":
            entries: list[Record | str] = [*self.state.calendar_view(mailbox, window, at=position["u"])]
        else:
            updated, removed = self.state.calendar_view_changes(mailbox, window, since=position["a"],
                                                                upto=position["u"])
            entries = [*updated, *removed]
        prefer = _Prefer.parse(call.headers.get("prefer", ""))
        size = min(prefer.max_page_size or EVENT_PAGE_DEFAULT, EVENT_PAGE_MAX)
        offset = position["o"]
        page = [self._present_event(entry, None, prefer) if isinstance(entry, dict)
                else {"@odata.type": "#microsoft.graph.event", "id": _presented_id(entry, prefer),
                      "@removed": {"reason": "deleted"}} for entry in entries[offset:offset + size]]
        link = f"{call.base}/users/{quote(call.segments[1], safe='@')}/calendarView/delta"
        body: dict[str, object] = {"@odata.context": f"{call.base}/$metadata#Collection(event)"}
        if offset + size < len(entries):
            body["@odata.nextLink"] = f"{link}?$skiptoken={_encode_event_delta({**position, 'o': offset + size})}"
        else:
            done = {"m": mailbox, "w": position["w"], "k": "d", "a": position["u"], "g": position["g"]}
            body["@odata.deltaLink"] = f"{link}?$deltatoken={_encode_event_delta(done)}"
        body["value"] = page
        headers = self._preference_applied(prefer)
        if prefer.max_page_size:
            applied = [part for part in [headers.get("Preference-Applied"), f"odata.maxpagesize={size}"] if part]
            headers["Preference-Applied"] = ", ".join(applied)
        return _Reply(200, body, headers=headers)

    def _expire_event_delta(self, mailbox: str) -> None:
        """Deliberate bug `expire_event_delta` (or `expire_event_delta:<mailbox>`), once: Exchange drops the sync
        states when the next deltaLink comes: that token and every other one handed out so far get 410."""
        self.sandbox.set_bugs(remove=["expire_event_delta", f"expire_event_delta:{mailbox}"])
        self.sandbox.count(f"{SYSTEM}:bug:expire_event_delta")
        self.state.reset_event_sync()

    def _mailbox_event(self, user: Record, event_id: str) -> Record:
        record = self.state.event(event_id)
        if record is None or record.get("_mailbox") != user["id"]:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return record

    def _present_event(self, record: Record, select: list[str] | None, prefer: _Prefer) -> Record:
        event = {k: v for k, v in public(record).items() if k not in EVENT_NOT_IN_V1}
        event["id"] = _presented_id(str(record["id"]), prefer)
        if event.get("seriesMasterId"):
            event["seriesMasterId"] = _presented_id(str(event["seriesMasterId"]), prefer)
        zone = _zone(prefer.timezone)
        for name in ("start", "end"):
            moment = event.get(name)
            if zone is not None and isinstance(moment, dict):
                event[name] = _in_zone(moment, zone, prefer.timezone or "UTC")
        if prefer.text_body and isinstance(event.get("body"), dict) and event["body"].get("contentType") == "html":
            event["body"] = {"contentType": "text", "content": _html_text(str(event["body"]["content"]))}
        presented: Record = {"@odata.etag": f'W/"{record.get("changeKey", "")}"'}
        if select:
            presented.update({k: event.get(k) for k in ("id", *select)})
        else:
            presented.update(event)
        return presented

    def _preference_applied(self, prefer: _Prefer) -> dict[str, str]:
        applied = []
        if prefer.timezone and _zone(prefer.timezone) is not None:
            applied.append(f'outlook.timezone="{prefer.timezone}"')
        if prefer.text_body:
            applied.append('outlook.body-content-type="text"')
        if prefer.immutable_ids:
            applied.append('IdType="ImmutableId"')
        return {"Preference-Applied": ", ".join(applied)} if applied else {}

    # -- $batch

    def _batch(self, call: _Call, token: _Token) -> _Reply:
        self.sandbox.count(f"{SYSTEM}:batches")
        try:
            payload = orjson.loads(call.body)
        except orjson.JSONDecodeError as error:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from error
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > BATCH_MAX:
            # The limit is documented (json-batching.md); the exact message is unconfirmed.
            raise GraphError(400, "BadRequest", f"Invalid batch payload: {len(requests)} requests, the maximum is"
                             f" {BATCH_MAX}.")
        items: dict[str, Record] = {}
        for item in requests:
            if not isinstance(item, dict) or not item.get("id") or not item.get("method") or not item.get("url"):
                raise GraphError(400, "BadRequest", "Invalid batch payload format: each request needs id, method"
                                 " and url.")
            if str(item["id"]) in items:
                raise GraphError(400, "BadRequest", f"Duplicate request id '{item['id']}' in the batch.")
            items[str(item["id"])] = item
        depends = {key: [str(d) for d in (item.get("dependsOn") or item.get("depends_on") or [])]
                   for key, item in items.items()}
        for key, needed in depends.items():
            if any(d not in items for d in needed):
                raise GraphError(400, "BadRequest", f"Request '{key}' depends on a request that is not in the batch.")
        results: dict[str, _Reply] = {}
        truncate = False
        concurrent = [key for key in items if not depends[key]]
        mailbox_slots: dict[str, int] = {}
        for key in _dependency_order(items, depends):
            failed = [d for d in depends[key] if not 200 <= results[d].status < 300]
            if failed:
                results[key] = self._error_reply(424, "FailedDependency", "The request depends on a request that"
                                                 " failed.", None)
                continue
            inner = _item_call(items[key], call)
            fault = self.sandbox.faults.draw()
            if fault is Fault.TRUNCATE:
                self.sandbox.count(f"{SYSTEM}:injected:truncate")
                truncate = True
            elif fault is not None:
                self.sandbox.count(f"{SYSTEM}:batch:injected_items")
                results[key] = self._injected_item(fault)
                continue
            mailbox = self._mailbox_of(inner)
            if mailbox and key in concurrent and self.config.rate_limits:
                used = mailbox_slots.get(mailbox, 0)
                if used >= self.config.graph_mailbox_concurrency:
                    refused = _mailbox_throttled(self.sandbox)
                    results[key] = self._error_reply(refused.status, refused.code, refused.message, inner,
                                                     headers=refused.headers)
                    continue
                mailbox_slots[mailbox] = used + 1
            try:
                results[key] = self._route(inner, token)
            except GraphError as error:
                results[key] = self._error_reply(error.status, error.code, error.message, inner,
                                                 headers=error.headers)
        self.sandbox.count(f"{SYSTEM}:batch_items", len(items))
        order = list(items)
        with self._random_lock:
            self._random.shuffle(order)
        responses = []
        for key in order:
            reply = results[key]
            headers = {"Content-Type": _JSON} if reply.body is not None else {}
            headers.update(reply.headers)
            entry: dict[str, object] = {"id": key, "status": reply.status, "headers": headers}
            if reply.body is not None:
                entry["body"] = reply.body
            responses.append(entry)
        return _Reply(200, {"responses": responses}, truncate=truncate)

    def _injected_item(self, fault: Fault) -> _Reply:
        if fault is Fault.THROTTLE:
            self.sandbox.count(f"{SYSTEM}:injected:throttle")
            return _throttled_reply(self.sandbox.faults.rates.retry_after_seconds, self._now())
        if fault is Fault.TIMEOUT:
            self.sandbox.count(f"{SYSTEM}:injected:timeout")
            return self._error_reply(504, "UnknownError", "The request timed out.", None)
        self.sandbox.count(f"{SYSTEM}:injected:server_error")
        return self._error_reply(503, "serviceNotAvailable", "The service is temporarily unavailable. Please try"
                                 " again later.", None)

    def _mailbox_of(self, call: _Call) -> str | None:
        if (len(call.segments) >= 3 and call.segments[0] == "users"
                and call.segments[2].lower() in ("events", "calendarview")):
            user = self.state.user(call.segments[1])
            return str(user["id"]) if user else None
        return None

    # -- helpers

    def _now(self) -> datetime:
        return self.sandbox.now()

    def _error_reply(self, status: int, code: str, message: str, call: _Call | None, *,
                     headers: Mapping[str, str] | None = None, retry_after: int | None = None) -> _Reply:
        inner = {"date": _iso(self._now()), "request-id": str(uuid.uuid4()),
                 "client-request-id": call.request_id if call else str(uuid.uuid4())}
        reply_headers = dict(headers or {})
        if status == 401:
            reply_headers.setdefault("WWW-Authenticate", 'Bearer realm="", authorization_uri="https://login.'
                                     'microsoftonline.com/common/oauth2/authorize", client_id="' + GRAPH_APP_ID + '"')
        if retry_after is not None:
            reply_headers["Retry-After"] = str(retry_after)
        if status == 429:
            return _Reply(status, {"error": {"code": code, "message": message,
                                             "innerError": {"code": "429", **inner, "message": "Please retry after",
                                                            "status": "429"}}}, reply_headers)
        return _Reply(status, {"error": {"code": code, "message": message, "innerError": inner}}, reply_headers)


# ----------------------------------------------------------------------------------------------- free helpers

def _segments(rest: str) -> tuple[str, ...]:
    return tuple(unquote(part) for part in rest.split("/") if part)


def _query(raw: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        key = name if name.startswith("$") else (f"${name.lower()}" if name.lower() in _QUERY_OPTIONS else name)
        query[key.lower() if key.startswith("$") else key] = value
    return query


def _urlencode(params: Mapping[str, str]) -> str:
    return urlencode(params, safe="$,'()@", quote_via=quote)


def _item_call(item: Record, envelope: _Call) -> _Call:
    url = str(item["url"])
    if "://" in url:
        url = urlsplit(url).path + ("?" + urlsplit(url).query if urlsplit(url).query else "")
    path, _, raw_query = url.partition("?")
    path = path.lstrip("/")
    if path.startswith(f"{VERSION}/"):
        path = path[len(VERSION) + 1:]
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    headers["authorization"] = envelope.headers.get("authorization", "")
    body = item.get("body")
    raw_body = b"" if body is None else (body.encode() if isinstance(body, str) else orjson.dumps(body))
    return _Call(method=str(item["method"]).upper(), segments=_segments(path), query=_query(raw_query),
                 headers=headers, body=raw_body, base=envelope.base, request_id=envelope.request_id, in_batch=True)


def _dependency_order(items: Mapping[str, Record], depends: Mapping[str, list[str]]) -> list[str]:
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order:
            return
        if key in visiting:
            raise GraphError(400, "BadRequest", "The batch has a circular dependency.")
        visiting.add(key)
        for needed in depends[key]:
            visit(needed)
        visiting.discard(key)
        order.append(key)

    for key in items:
        visit(key)
    return order


def _json_body(call: _Call) -> Record:
    try:
        payload = orjson.loads(call.body or b"{}")
    except orjson.JSONDecodeError as error:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header"
                         " is set and payload is of valid JSON format.") from error
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "The request payload must be a JSON object.")
    return payload


def _page_size(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 1 <= value <= maximum:
        raise GraphError(400, "Request_UnsupportedQuery",
                         f"Invalid page size specified: '{raw}'. Must be between 1 and {maximum} inclusive.")
    return value


def _etag_key(etag: str) -> str:
    """The change key an ETag carries (`W/"<changeKey>"`, as @odata.etag shows it)."""
    value = etag.strip()
    value = value[2:] if value.startswith("W/") else value
    return value.strip('"')


def _event_page_size(raw: str | None) -> int:
    if raw is None:
        return EVENT_PAGE_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= EVENT_PAGE_MAX:
        # Outlook's answer above its maximum is unconfirmed.
        raise GraphError(400, "ErrorInvalidUrlQuery", f"The value '{raw}' of the query option $top is invalid.")
    return int(raw)


def _non_negative(raw: str | None, option: str) -> int:
    if raw is None:
        return 0
    if not raw.isdigit():
        raise GraphError(400, "ErrorInvalidUrlQuery", f"The value '{raw}' of the query option {option} is invalid.")
    return int(raw)


def _encode_offset(offset: int) -> str:
    return _b64(orjson.dumps({"o": offset}))


def _decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(orjson.loads(_unb64(token))["o"])
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise GraphError(400, "Directory_ExpiredPageToken", "The specified page token value has expired and can no"
                         " longer be included in your request.") from error


def _more_users(state: GraphState, position: int, keep: Callable[[Record], bool]) -> bool:
    for user_id in state.user_ids[position:]:
        record = state.users.get(user_id)
        if record is not None and keep(record):
            return True
    return False


def _present_user(record: Record, select: list[str] | None, *, always_id: bool) -> Record:
    names = list(select) if select else list(DEFAULT_USER_PROPERTIES)
    if always_id and "id" not in names:
        names.insert(0, "id")
    return {name: record.get(name) for name in names}


_SIMPLE_CLAUSE = re.compile(r"^\s*(\w+(?:/\w+)?)\s+(eq|ne)\s+('(?:[^']|'')*'|true|false|null|-?\d+)\s*$",
                            re.IGNORECASE)


def _literal(raw: str) -> object:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    return int(raw)


def _clauses(raw: str) -> list[str]:
    return [part for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE) if part]


def _event_filter(raw: str | None) -> Callable[[Record], bool]:
    if not raw:
        return lambda _record: True
    tests: list[Callable[[Record], bool]] = []
    for clause in _clauses(raw):
        if any(re.search(rf"\b{name}\b", clause) for name in EVENT_UNFILTERABLE):
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid"
                             " nodes.")
        match = _SIMPLE_CLAUSE.match(clause)
        if match is None:
            raise GraphError(501, "NotImplemented", f"sandbox: the filter clause '{clause}' is not implemented"
                             " (eq/ne on simple properties joined by 'and' are).")
        name, operator, literal = match.group(1), match.group(2).lower(), _literal(match.group(3))
        if name not in EVENT_FILTERABLE:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid"
                             " nodes.")
        tests.append(_comparison(name, operator, literal))
    return lambda record: all(test(record) for test in tests)


def _comparison(name: str, operator: str, literal: object) -> Callable[[Record], bool]:
    def test(record: Record) -> bool:
        value = record.get(name)
        equal = value.lower() == literal.lower() if isinstance(value, str) and isinstance(literal, str) \
            else value == literal
        return equal if operator == "eq" else not equal
    return test


def _user_filter(raw_filter: str | None, raw_search: str | None) -> Callable[[Record], bool]:
    tests: list[Callable[[Record], bool]] = []
    if raw_filter:
        for clause in _clauses(raw_filter):
            match = _SIMPLE_CLAUSE.match(clause)
            if match is None or match.group(1) not in USER_PROPERTIES:
                raise GraphError(501, "NotImplemented", f"sandbox: the users filter clause '{clause}' is not"
                                 " implemented (eq/ne on simple properties joined by 'and' are).")
            tests.append(_comparison(match.group(1), match.group(2).lower(), _literal(match.group(3))))
    if raw_search:
        term = raw_search.strip().strip('"')
        name, _, value = term.partition(":")
        if name not in USER_PROPERTIES or not value:
            raise GraphError(400, "Request_UnsupportedQuery", "Invalid search expression: use \"property:value\".")
        tests.append(lambda r: value.lower() in str(r.get(name) or "").lower())
    return lambda record: all(test(record) for test in tests)


def _delta_filter_ids(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    ids = []
    for clause in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        match = re.match(r"^\s*id\s+eq\s+'([^']+)'\s*$", clause)
        if match is None:
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported query: only $filter=id eq '…' is"
                             " supported on users delta.")
        ids.append(match.group(1))
    if len(ids) > FILTER_IDS_MAX:
        raise GraphError(400, "Request_UnsupportedQuery", f"Too many ids in the filter: at most {FILTER_IDS_MAX}.")
    return ids


def _event_select(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [name.strip() for name in raw.split(",") if name.strip() and name.strip() != "id"]


def _has_exchange(user: Record) -> bool:
    return any(str(plan.get("service", "")).upper().startswith("EXCHANGE")
               and plan.get("capabilityStatus") == "Enabled" for plan in user.get("assignedPlans") or [])


def _presented_id(immutable: str, prefer: _Prefer) -> str:
    return immutable if prefer.immutable_ids else _rest_id(immutable)


# -- calendarView/delta: state tokens, the window, the expansion of series

def _encode_event_delta(position: Mapping[str, Any]) -> str:
    return _b64(orjson.dumps(position))


def _decode_event_delta(token: str, mailbox: str) -> dict[str, Any]:
    """A calendarView delta token: mailbox `m`, window `w`, kind `k` (i: first round, c: a round of changes, d: a
    deltaLink), change positions `a` (since) and `u` (upto), page offset `o`, generation `g`."""
    try:
        position = orjson.loads(_unb64(token))
        valid = (isinstance(position, dict) and position.get("m") == mailbox and position.get("k") in ("i", "c", "d")
                 and isinstance(position.get("g"), int) and isinstance(position.get("w"), list)
                 and len(position["w"]) == 2 and all(isinstance(bound, str) for bound in position["w"])
                 and all(isinstance(position.get(key), int) for key in
                         {"i": ("u", "o"), "c": ("a", "u", "o"), "d": ("a",)}[position["k"]]))
        if valid and _instant(position["w"][0]) < _instant(position["w"][1]):
            return position  # type: ignore[no-any-return]
    except (ValueError, TypeError, binascii.Error):
        pass
    # The service's answer to a garbled state token is unconfirmed.
    raise GraphError(400, "ErrorInvalidUrlQuery", "The sync state token in the request is invalid.")


def _delta_window(query: Mapping[str, str]) -> tuple[datetime, datetime]:
    """The first round's required custom options startDateTime and endDateTime (names case-insensitive)."""
    options = {name.lower(): value for name, value in query.items() if not name.startswith("$")}
    try:
        start = _instant(options["startdatetime"])
        end = _instant(options["enddatetime"])
    except (KeyError, ValueError) as error:
        raise GraphError(400, "ErrorInvalidParameter", DELTA_WINDOW_MESSAGE) from error
    if end <= start:
        raise GraphError(400, "ErrorInvalidParameter", DELTA_WINDOW_MESSAGE)
    return start, end


def _instant(text: str) -> datetime:
    """An ISO 8601 date-time of a query string; without an offset it is UTC (unconfirmed). A `+` decoded to a
    space by a client that did not percent-encode it is taken back."""
    value = text.strip().replace(" ", "+")
    if not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError(text)
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _moment(value: Any) -> datetime:
    """A dateTimeTimeZone as an aware instant (an unknown zone is taken as UTC)."""
    zone = _zone(str(value.get("timeZone") or "UTC")) or ZoneInfo("UTC")
    return datetime.fromisoformat(str(value["dateTime"])[:26]).replace(tzinfo=zone)


def _graph_moment(moment: datetime, label: str) -> Record:
    zone = _zone(label) or ZoneInfo("UTC")
    return {"dateTime": moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": label}


def _overlaps(start: datetime, end: datetime, window: tuple[datetime, datetime]) -> bool:
    if start == end:     # a zero-length event shows where it starts
        return window[0] <= start < window[1]
    return start < window[1] and end > window[0]


def _instance_order(instance: Record) -> tuple[datetime, str]:
    return _moment(instance["start"]).astimezone(UTC), str(instance["id"])


def _instances(record: Record, snapshot: Mapping[str, Record], window: tuple[datetime, datetime]) -> list[Record]:
    """What a stored event shows in a calendar view: a series master its occurrences (exceptions standing in for
    theirs), an exception itself while its master exists, a single instance itself; nothing when cancelled."""
    if record.get("isCancelled"):
        return []
    kind = record.get("type") or ("seriesMaster" if record.get("recurrence") else "singleInstance")
    if kind == "seriesMaster":
        return _occurrences(record, snapshot, window)
    if kind == "occurrence":      # occurrences are derived from their master, never stored
        return []
    if kind == "exception" and _immutable_id(str(record.get("seriesMasterId") or "")) not in snapshot:
        return []
    return [record] if _overlaps(_moment(record["start"]), _moment(record["end"]), window) else []


def _occurrences(master: Record, snapshot: Mapping[str, Record], window: tuple[datetime, datetime]) -> list[Record]:
    """The occurrences of a series master overlapping the window, in the series' own zone (a 10:00 Paris meeting
    stays at 10:00 Paris across a daylight-saving change), expanded here with dateutil, not with bascule's code."""
    recurrence = master.get("recurrence")
    if not isinstance(recurrence, dict):
        return []
    span = recurrence.get("range") or {}
    zone = next((z for z in (_zone(str(name)) for name in (
        master.get("originalStartTimeZone"), span.get("recurrenceTimeZone"), (master.get("start") or {}).get(
            "timeZone")) if name) if z is not None), ZoneInfo("UTC"))
    start, end = _moment(master["start"]), _moment(master["end"])
    duration = end - start
    local = start.astimezone(zone)
    first = datetime.combine(date.fromisoformat(str(span["startDate"])) if span.get("startDate") else local.date(),
                             local.time().replace(tzinfo=None))
    replaced = {_instant(str(other["originalStart"])) for other in snapshot.values()
                if other.get("type") == "exception" and other.get("originalStart")
                and _immutable_id(str(other.get("seriesMasterId") or "")) == master["id"]}
    cancelled = {str(oid).rsplit(".", 1)[-1] for oid in master.get("cancelledOccurrences") or []}
    found: list[Record] = []
    for count, begin_local in enumerate(_series_rule(recurrence, first)):
        if count >= OCCURRENCES_MAX:
            raise GraphError(501, "NotImplemented", "sandbox: the window holds too many occurrences of a series.")
        begin = begin_local.replace(tzinfo=zone)
        if begin >= window[1]:
            break
        original = begin.astimezone(UTC)
        if original in replaced or begin.date().isoformat() in cancelled:
            continue
        if _overlaps(begin, begin + duration, window):
            found.append(_occurrence(master, begin, begin + duration))
    return found


_WEEKDAYS = {"monday": rrule.MO, "tuesday": rrule.TU, "wednesday": rrule.WE, "thursday": rrule.TH,
             "friday": rrule.FR, "saturday": rrule.SA, "sunday": rrule.SU}
_WEEK_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def _series_rule(recurrence: Mapping[str, Any], first: datetime) -> rrule.rrule:
    """A patternedRecurrence as a dateutil rule over naive local date-times, from the range's start date."""
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = str(pattern.get("type") or "")
    days = [_WEEKDAYS[str(day).lower()] for day in pattern.get("daysOfWeek") or [] if str(day).lower() in _WEEKDAYS]
    index = _WEEK_INDEX.get(str(pattern.get("index") or "first").lower(), 1)
    month = int(pattern.get("month") or 0) or first.month
    day_of_month = int(pattern.get("dayOfMonth") or 0) or first.day
    options: dict[str, Any] = {
        "dtstart": first, "interval": max(1, int(pattern.get("interval") or 1)),
        "wkst": _WEEKDAYS.get(str(pattern.get("firstDayOfWeek") or "sunday").lower(), rrule.SU)}
    if kind in ("relativeMonthly", "relativeYearly") and not days:
        raise GraphError(501, "NotImplemented", f"sandbox: a {kind} recurrence needs daysOfWeek.")
    frequency: Literal[0, 1, 2, 3, 4, 5, 6]
    if kind == "daily":
        frequency = rrule.DAILY
    elif kind == "weekly":
        frequency = rrule.WEEKLY
        options["byweekday"] = days or [rrule.weekdays[first.weekday()]]
    elif kind in ("absoluteMonthly", "absoluteYearly"):
        frequency = rrule.MONTHLY if kind == "absoluteMonthly" else rrule.YEARLY
        # "Day 31" falls on the last day of shorter months (Outlook says so when the series is made): the last
        # existing day up to dayOfMonth.
        options.update(bymonthday=tuple(range(min(day_of_month, 28), day_of_month + 1)), bysetpos=-1)
        if kind == "absoluteYearly":
            options["bymonth"] = month
    elif kind in ("relativeMonthly", "relativeYearly"):
        frequency = rrule.MONTHLY if kind == "relativeMonthly" else rrule.YEARLY
        options.update(byweekday=days, bysetpos=index)
        if kind == "relativeYearly":
            options["bymonth"] = month
    else:
        raise GraphError(501, "NotImplemented", f"sandbox: the recurrence pattern type '{kind}' is not implemented.")
    ending = str(span.get("type") or "noEnd")
    if ending == "endDate":
        options["until"] = datetime.combine(date.fromisoformat(str(span["endDate"])), time.max)
    elif ending == "numbered":
        options["count"] = max(1, int(span.get("numberOfOccurrences") or 0))
    return rrule.rrule(frequency, **options)


def _occurrence(master: Record, begin: datetime, finish: datetime) -> Record:
    """One occurrence of a series: the master's members, its own id, times, original start and iCalUId."""
    original = begin.astimezone(UTC)
    master_id = str(master["id"])
    occurrence_id = "AAMk" + _b64(b"\x01occurrence" + hashlib.sha256(
        f"{master_id}|{_iso(original)}".encode()).digest() + hashlib.sha256(master_id.encode()).digest()[:24])
    record = {key: value for key, value in master.items() if key not in SERIES_ONLY}
    label = str((master.get("start") or {}).get("timeZone") or "UTC")
    record.update(id=occurrence_id, type="occurrence", seriesMasterId=master_id, recurrence=None,
                  originalStart=_iso(original), start=_graph_moment(begin, label), end=_graph_moment(finish, label))
    uid = str(master.get("iCalUId") or "")
    if uid.upper().startswith(EXCHANGE_UID_CLASS) and len(uid) >= 40:
        # iCalUId differs per occurrence (event resource doc): Exchange writes the instance date into the id.
        stamp = begin.date()
        record["iCalUId"] = (uid[:32] + f"{stamp.year:04X}{stamp.month:02X}{stamp.day:02X}" + uid[40:])
    if isinstance(master.get("webLink"), str):
        record["webLink"] = master["webLink"].replace(master_id, occurrence_id)
    return record


def _rest_id(immutable: str) -> str:
    """The id Outlook gives without `Prefer: IdType="ImmutableId"` (a different, folder-bound string)."""
    return "AQMk" + immutable[4:] if immutable.startswith("AAMk") else immutable


def _immutable_id(event_id: str) -> str:
    return "AAMk" + event_id[4:] if event_id.startswith("AQMk") else event_id


def _zone(windows: str | None) -> ZoneInfo | None:
    if not windows:
        return None
    name = WINDOWS_TO_IANA.get(windows, windows)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _in_zone(moment: Mapping[str, Any], zone: ZoneInfo, label: str) -> Record:
    source = _zone(str(moment.get("timeZone") or "UTC")) or ZoneInfo("UTC")
    local = datetime.fromisoformat(str(moment["dateTime"])[:26]).replace(tzinfo=source).astimezone(zone)
    return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": label}


def _html_text(content: str) -> str:
    text = _TAG.sub(" ", re.sub(r"(?is)<(head|style|script)\b.*?</\1>", " ", content))
    return re.sub(r"[ \t\r\f\v]+", " ", html.unescape(text)).strip()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _auth_error(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message)


def _user_not_found(user_segment: str) -> GraphError:
    return GraphError(404, "Request_ResourceNotFound", f"Resource '{user_segment}' does not exist or one of its"
                      " queried reference-property objects are not present.")


def _mailbox_throttled(sandbox: Sandbox) -> GraphError:
    sandbox.count(f"{SYSTEM}:throttled:mailbox")
    return GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                      headers={"Retry-After": str(MAILBOX_RETRY_AFTER)})


def _throttled_reply(retry_after: int, now: datetime) -> _Reply:
    inner = {"code": "429", "date": _iso(now), "message": "Please retry after", "request-id": str(uuid.uuid4()),
             "status": "429"}
    return _Reply(429, {"error": {"code": "TooManyRequests", "message": "Please retry again later.",
                                  "innerError": inner}},
                  {"Retry-After": str(int(retry_after))})


def _aad_error(status: int, error: str, code: int, description: str) -> Response:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {"error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation}"
                                 f" Timestamp: {stamp}",
            "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": correlation,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json; charset=utf-8")

