"""Records that connectors produce and the domain decides on: frozen values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeAlias, TypeVar

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
T = TypeVar("T")


class Platform(StrEnum):
    """The licensed platforms a ministry leaves."""

    ZOOM = "zoom"
    TEAMS = "teams"
    WEBEX = "webex"


class AnchorKind(StrEnum):
    """Which immutable directory attribute anchors a person."""

    ENTRY_UUID = "entryUUID"
    OBJECT_GUID = "objectGUID"
    EMPLOYEE_NUMBER = "employeeNumber"


class AccountStatus(StrEnum):
    """Account state on a source platform, whatever the platform calls it."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    PENDING = "pending"


class MeetingKind(StrEnum):
    """What a meeting is, as the migration sees it."""

    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY_NTH_WEEKDAY = "monthly_nth_weekday"
    MONTHLY_DAY = "monthly_day"
    DAILY = "daily"
    NO_FIXED_TIME = "no_fixed_time"
    PERSONAL_ROOM = "personal_room"
    ONE_OFF = "one_off"
    EXPIRED_SERIES = "expired_series"


class MatchMethod(StrEnum):
    """How a source account was tied to a person (never by display name)."""

    PRIMARY_EMAIL = "primary_email"
    ALIAS = "alias"
    EMPLOYEE_ID = "employee_id"
    IMMUTABLE_ID = "immutable_id"
    FORMER_EMAIL = "former_email"      # the account still shows an address the person had before a change
    OVERRIDE = "override"


class ConflictKind(StrEnum):
    """Identity conflicts, with the reason codes of shared/contracts/proconnect.md section 7."""

    DUPLICATE_EMAIL_DIRECTORY = "DUPLICATE_EMAIL_DIRECTORY"
    VISIO_EMAIL_COLLISION = "VISIO_EMAIL_COLLISION"
    SOURCE_UNMATCHED = "SOURCE_UNMATCHED"
    MULTI_SOURCE_ACCOUNTS = "MULTI_SOURCE_ACCOUNTS"
    ALIAS_ONLY_MATCH = "ALIAS_ONLY_MATCH"
    DOMAIN_NOT_ROUTED = "DOMAIN_NOT_ROUTED"
    NO_PROCONNECT_COVERAGE = "NO_PROCONNECT_COVERAGE"
    SUB_DRIFT = "SUB_DRIFT"
    PROVISIONAL_NEVER_ACTIVATED = "PROVISIONAL_NEVER_ACTIVATED"
    EMAIL_CHANGED = "EMAIL_CHANGED"
    CASE_OR_UNICODE_MISMATCH = "CASE_OR_UNICODE_MISMATCH"
    NON_PERSON_ACCOUNT = "NON_PERSON_ACCOUNT"
    PRIVILEGED_ACCOUNT = "PRIVILEGED_ACCOUNT"
    DEPARTED_OR_DISABLED = "DEPARTED_OR_DISABLED"
    POPULATION_POLICY = "POPULATION_POLICY"


class ReasonCode(StrEnum):
    """Why an input record was quarantined instead of loaded (or an answer of Visio refused, VISIO_ID_REUSED)."""

    LDIF_MALFORMED = "LDIF_MALFORMED"
    LDIF_BAD_BASE64 = "LDIF_BAD_BASE64"
    LDIF_BAD_ENCODING = "LDIF_BAD_ENCODING"
    LDIF_URL_VALUE = "LDIF_URL_VALUE"
    LDIF_CHANGE_RECORD = "LDIF_CHANGE_RECORD"
    UNKNOWN_ATTRIBUTE = "UNKNOWN_ATTRIBUTE"
    NOT_A_PERSON = "NOT_A_PERSON"
    MISSING_ANCHOR = "MISSING_ANCHOR"
    MISSING_MAIL = "MISSING_MAIL"
    INVALID_EMAIL = "INVALID_EMAIL"
    RECURRENCE_UNPARSEABLE = "RECURRENCE_UNPARSEABLE"
    MEETING_WITHOUT_HOST = "MEETING_WITHOUT_HOST"
    MEETING_TYPE_UNKNOWN = "MEETING_TYPE_UNKNOWN"        # neither given nor inferable: never downgraded to a one-off
    MALFORMED_RECORD = "MALFORMED_RECORD"                # a field of an unexpected type or shape
    DUPLICATE_SOURCE_ID = "DUPLICATE_SOURCE_ID"          # one listing returned the same id twice (the first kept)
    VALUE_TOO_LONG = "VALUE_TOO_LONG"                    # an identifying value longer than its column: not loaded
    VALUE_TRUNCATED = "VALUE_TRUNCATED"                  # loaded, a descriptive value cut to fit its column
    CONTROL_CHARACTERS = "CONTROL_CHARACTERS"            # loaded, NUL or control characters removed from text
    LISTING_REFUSED = "LISTING_REFUSED"                  # the platform refused one host's listing (400, 403…)
    LISTING_CURSOR_REPEATED = "LISTING_CURSOR_REPEATED"  # the server handed back a page cursor it gave before
    LISTING_UNBOUNDED = "LISTING_UNBOUNDED"              # more pages or items than the listing announced
    LISTING_MALFORMED = "LISTING_MALFORMED"              # a page that is not the documented envelope
    VISIO_ID_REUSED = "VISIO_ID_REUSED"  # Visio gave a room an id or slug bascule recorded for another series


class ActionKind(StrEnum):
    """What a plan action does when applied."""

    CREATE_ROOM = "create_room"
    REWRITE_EVENT = "rewrite_event"
    SEND_INVITATION = "send_invitation"
    RESTORE_EVENT = "restore_event"          # rollback of a REWRITE_EVENT
    SEND_ROLLBACK = "send_rollback"          # rollback of a SEND_INVITATION: the old link mailed back
    RELEASE_LICENCE = "release_licence"
    REWRITE_CALENDAR = "rewrite_calendar"    # a Zoom/Webex series rewritten in its organiser's own calendar
    RESTORE_CALENDAR = "restore_calendar"    # rollback of a REWRITE_CALENDAR


class ActionState(StrEnum):
    """Where an action is in the outbox."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"
    HELD = "held"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One person entry of the ministry directory, whatever its flavour."""

    anchor: str
    anchor_kind: AnchorKind
    dn: str
    primary_email: str
    aliases: tuple[str, ...] = ()
    employee_id: str | None = None
    login: str | None = None
    given_name: str | None = None
    surname: str | None = None
    display_name: str | None = None
    department: str | None = None
    department_code: str | None = None
    population: str | None = None
    disabled: bool = False
    last_logon: datetime | None = None
    immutable_id: str | None = None


@dataclass(frozen=True, slots=True)
class SourceAccount:
    """A user account on Zoom, Teams or Webex; `external_id` is stable per platform."""

    platform: Platform
    external_id: str
    email: str
    status: AccountStatus
    licences: tuple[str, ...] = ()
    licensed: bool = False
    display_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    aliases: tuple[str, ...] = ()
    employee_id: str | None = None
    immutable_id: str | None = None
    role: str | None = None
    account_type: str | None = None
    department: str | None = None
    last_activity: datetime | None = None


@dataclass(frozen=True, slots=True)
class LicenceSku:
    """A licence product as the platform bills it, priced by the tenant's cost model."""

    platform: Platform
    sku_key: str
    name: str
    includes_meetings: bool
    prepaid_units: int | None = None
    consumed_units: int | None = None
    site_url: str | None = None
    annual_unit_cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A recurrence rule as RFC 5545 RRULE text, expanded in an IANA time zone."""

    rrule: str
    timezone: str


@dataclass(frozen=True, slots=True)
class OccurrenceChange:
    """One occurrence of a series moved or resized on the platform.

    `original` is the start the series' rule gives that occurrence (the iCalendar RECURRENCE-ID); `start` and
    `duration_minutes` are what it became (`duration_minutes` None: the series' duration). All instants aware.
    """

    original: datetime
    start: datetime
    duration_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Meeting:
    """A scheduled meeting or series on a source platform.

    `exclusions` are occurrences deleted from the series (their original starts: EXDATE); `exceptions` are
    occurrences moved or resized. `invitees_known` is False when the platform did not say who is invited (Zoom's
    Get carries no attendee list for a meeting scheduled from a calendar): `invitees` is then empty, not "nobody".
    `number_key` is the key of the meeting's number when its join link gives another one (Webex: the link carries an
    MTID, the invitation and the SIP address show the meeting number, `webex:number:<n>`), so the helpdesk finds it
    by either.
    """

    platform: Platform
    external_id: str
    host_account_id: str
    host_email: str
    topic: str
    kind: MeetingKind
    timezone: str
    join_url: str
    link_key: str
    start: datetime | None = None
    duration_minutes: int | None = None
    recurrence: Recurrence | None = None
    ends_at: datetime | None = None
    waiting_room: bool = False
    passcode: bool = False
    alternative_hosts: tuple[str, ...] = ()
    invitees: tuple[str, ...] = ()
    external_invitees: int = 0
    webinar: bool = False
    dial_in: bool = False
    registration: bool = False
    exclusions: tuple[datetime, ...] = ()
    exceptions: tuple[OccurrenceChange, ...] = ()
    invitees_known: bool = True
    number_key: str | None = None


@dataclass(frozen=True, slots=True)
class HostRef:
    """A source account whose meetings are listed: its platform id and its e-mail as the platform has it."""

    external_id: str
    email: str


@dataclass(frozen=True, slots=True)
class Person:
    """One human, anchored on the directory's immutable id."""

    anchor: str
    primary_email: str
    display_name: str | None = None
    department: str | None = None
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Conflict:
    """An identity value held back, with the reason the report shows."""

    kind: ConflictKind
    subject: str
    value: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An input record that could not be loaded, kept with its reason code."""

    reason: ReasonCode
    record_key: str
    detail: str = ""
    payload: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanAction:
    """One step of a wave plan; the idempotency key makes a re-run a no-op."""

    kind: ActionKind
    idempotency_key: str
    payload: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Removed:
    """A source object the platform reports as deleted (Graph delta `@removed`)."""

    platform: Platform
    external_id: str
    reason: str = "deleted"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a stream.

    `next_cursor` resumes after this page (None: the pass is done); on the last page `delta_cursor` starts the
    next pass from here (Graph delta link). `delta` is True when the page holds changes only, not a full listing
    (nothing absent from a delta pass may be taken as deleted). `skipped` counts what the page passed over.
    `incomplete` names the scopes (the hosts of a meeting page) whose listing failed: what they had before stays as
    it was, and each failure is one of the page's Quarantined items.
    """

    items: tuple[T, ...]
    next_cursor: str | None
    skipped: int = 0
    delta_cursor: str | None = None
    delta: bool = False
    incomplete: tuple[str, ...] = ()
