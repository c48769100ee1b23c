"""The state database: one typed model per table of ARCHITECTURE.md section 3.

Conventions: singular table names; every table carries `tenant_id`; every external object is unique on
(tenant, platform, external id); unique constraints are the idempotency keys the flows rely on; rows that
disappear from a source are marked (`removed_at`), never deleted.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, cast

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import BigIntPK, JsonDoc, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]
JsonList = list[Any]


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), Json: JsonDoc, JsonList: JsonDoc}


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as a Table (SQLAlchemy types `__table__` as a FromClause)."""
    return cast(Table, model.__table__)


def _tenant_fk() -> Mapped[str]:
    return mapped_column(String(64), ForeignKey("tenant.id", ondelete="CASCADE"), index=True)


class Tenant(Base):
    """A ministry onboarded as a unit; its configuration lives in a TOML file, never its secrets."""

    __tablename__ = "tenant"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    siret: Mapped[str | None] = mapped_column(String(14))
    config_path: Mapped[str | None] = mapped_column(Text)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    readiness: Mapped[Json | None]
    registered_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SyncedMixin:
    """Columns of a row mirrored from an external source, refreshed on every extraction pass."""

    content_hash: Mapped[str] = mapped_column(String(64))
    last_seen_pass: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class DirectoryEntry(SyncedMixin, Base):
    """A person entry of the ministry directory, keyed by its immutable anchor."""

    __tablename__ = "directory_entry"
    __table_args__ = (
        UniqueConstraint("tenant_id", "anchor"),
        Index(None, "tenant_id", "email_normalised"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    anchor: Mapped[str] = mapped_column(String(255))
    anchor_kind: Mapped[str] = mapped_column(String(32))
    dn: Mapped[str] = mapped_column(Text)
    primary_email: Mapped[str] = mapped_column(String(320))
    email_normalised: Mapped[str | None] = mapped_column(String(320))
    aliases: Mapped[JsonList]
    employee_id: Mapped[str | None] = mapped_column(String(64))
    login: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    surname: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(512))
    department: Mapped[str | None] = mapped_column(String(512))
    department_code: Mapped[str | None] = mapped_column(String(128))
    population: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean)
    last_logon: Mapped[datetime | None]
    immutable_id: Mapped[str | None] = mapped_column(String(64))


class SourceAccount(SyncedMixin, Base):
    """A user account on Zoom, Teams or Webex."""

    __tablename__ = "source_account"
    __table_args__ = (
        UniqueConstraint("tenant_id", "platform", "external_id"),
        Index(None, "tenant_id", "email_normalised"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    email_normalised: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    licensed: Mapped[bool] = mapped_column(Boolean)
    licences: Mapped[JsonList]
    display_name: Mapped[str | None] = mapped_column(String(512))
    given_name: Mapped[str | None] = mapped_column(String(255))
    surname: Mapped[str | None] = mapped_column(String(255))
    aliases: Mapped[JsonList]
    employee_id: Mapped[str | None] = mapped_column(String(64))
    immutable_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(64))
    account_type: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(512))
    last_activity: Mapped[datetime | None]


class LicenceSku(SyncedMixin, Base):
    """A licence product of a platform, with the seats the platform reports."""

    __tablename__ = "licence_sku"
    __table_args__ = (UniqueConstraint("tenant_id", "platform", "sku_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    sku_key: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    includes_meetings: Mapped[bool] = mapped_column(Boolean)
    prepaid_units: Mapped[int | None] = mapped_column(Integer)
    consumed_units: Mapped[int | None] = mapped_column(Integer)
    site_url: Mapped[str | None] = mapped_column(String(255))
    annual_unit_cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))


class LicenceAssignment(Base):
    """Which account holds which SKU, and whether bascule released it."""

    __tablename__ = "licence_assignment"
    __table_args__ = (UniqueConstraint("tenant_id", "platform", "account_external_id", "sku_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    account_external_id: Mapped[str] = mapped_column(String(255))
    sku_key: Mapped[str] = mapped_column(String(255))
    assigned_by_group: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime]
    released_at: Mapped[datetime | None]


class Contract(Base):
    """A contract line of the cost model: what is committed, until when, at what price."""

    __tablename__ = "contract"
    __table_args__ = (UniqueConstraint("tenant_id", "contract_ref"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    contract_ref: Mapped[str] = mapped_column(String(128))
    vendor: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(16))
    sku_key: Mapped[str] = mapped_column(String(255))
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    renewal_unit_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    billing_period_months: Mapped[int] = mapped_column(Integer)
    committed_qty: Mapped[int] = mapped_column(Integer)
    commit_floor: Mapped[int] = mapped_column(Integer)
    term_start: Mapped[date | None] = mapped_column(Date)
    term_end: Mapped[date | None] = mapped_column(Date)
    renewal_date: Mapped[date | None] = mapped_column(Date)
    notice_days: Mapped[int] = mapped_column(Integer)
    auto_renew: Mapped[bool] = mapped_column(Boolean)
    true_down_dates: Mapped[JsonList]
    cancellation_window_days: Mapped[int] = mapped_column(Integer)
    vat_included: Mapped[bool] = mapped_column(Boolean)
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class ContractAmendment(Base):
    """A change of a contract's committed quantity, effective on a date, with the evidence that proves it
    (append-only: a later amendment supersedes it; core.contracts.QuantityChange)."""

    __tablename__ = "contract_amendment"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "contract_ref"], ["contract.tenant_id", "contract.contract_ref"],
                             ondelete="CASCADE"),
        Index(None, "tenant_id", "contract_ref", "effective"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    contract_ref: Mapped[str] = mapped_column(String(128))
    effective: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime]


class Person(Base):
    """One human, anchored on the directory's immutable id, with what ProConnect and Visio will expect."""

    __tablename__ = "person"
    __table_args__ = (
        UniqueConstraint("tenant_id", "anchor"),
        Index(None, "tenant_id", "email_normalised"),
        Index(None, "tenant_id", "department"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    anchor: Mapped[str] = mapped_column(String(255))
    primary_email: Mapped[str] = mapped_column(String(320))
    email_normalised: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(512))
    department: Mapped[str | None] = mapped_column(String(512))
    population: Mapped[str | None] = mapped_column(String(64))
    disabled: Mapped[bool] = mapped_column(Boolean)
    proconnect_email: Mapped[str | None] = mapped_column(String(320))
    expected_idp: Mapped[str | None] = mapped_column(String(128))
    siret: Mapped[str | None] = mapped_column(String(14))
    visio_provisioning: Mapped[str | None] = mapped_column(String(32))
    login_hint_url: Mapped[str | None] = mapped_column(Text)
    # Not a person a wave may select (a room, a shared mailbox, an administrator identity matched by the tenant's
    # patterns): the conflict kind that says why; None for people.
    excluded_reason: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class IdentityKey(Base):
    """Every identifier of every directory entry (e-mails normalised, aliases, ids): what matching looks up."""

    __tablename__ = "identity_key"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "value", "anchor"),
        Index(None, "tenant_id", "value"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(320))
    anchor: Mapped[str] = mapped_column(String(255))
    raw: Mapped[str] = mapped_column(String(320))
    last_seen_pass: Mapped[str] = mapped_column(String(64))


class IdentityMatch(Base):
    """A source account tied to a person, and how (never by display name)."""

    __tablename__ = "identity_match"
    __table_args__ = (
        UniqueConstraint("tenant_id", "platform", "account_external_id"),
        Index(None, "tenant_id", "person_anchor"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    account_external_id: Mapped[str] = mapped_column(String(255))
    person_anchor: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(32))
    last_seen_pass: Mapped[str] = mapped_column(String(64), server_default="")
    updated_at: Mapped[datetime]


class IdentityConflict(Base):
    """An identity value held back with a reason code; re-checked every run, closed once resolved."""

    __tablename__ = "identity_conflict"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "subject", "value"),
        Index(None, "tenant_id", "status", "kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(320))
    value: Mapped[str] = mapped_column(String(320))
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    last_seen_pass: Mapped[str] = mapped_column(String(64), server_default="")
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class IdentityOverride(Base):
    """A migration team's decision on a conflict (force a match, exclude, mark a service account)."""

    __tablename__ = "identity_override"
    __table_args__ = (UniqueConstraint("tenant_id", "platform", "account_external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    account_external_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    person_anchor: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(128))
    applied_at: Mapped[datetime]


class IdentityDecision(Base):
    """A migration team's decision on a conflict about a person, an e-mail or the tenant (accept, exclude, include,
    force_match of a shared e-mail), keyed like the conflict it decides."""

    __tablename__ = "identity_decision"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "subject", "value"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(320))
    value: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(32))
    person_anchor: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(128))
    applied_at: Mapped[datetime]


class ProconnectObservation(Base):
    """A ProConnect `sub` seen for a person (Visio token, LiveKit identity): an observation, never a key."""

    __tablename__ = "proconnect_observation"
    __table_args__ = (UniqueConstraint("tenant_id", "person_anchor", "sub", "source"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    person_anchor: Mapped[str] = mapped_column(String(255))
    sub: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(32))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Meeting(SyncedMixin, Base):
    """A scheduled meeting or series on a source platform (recurrence as RRULE + IANA zone)."""

    __tablename__ = "meeting"
    __table_args__ = (
        UniqueConstraint("tenant_id", "platform", "external_id"),
        Index(None, "tenant_id", "link_key"),
        Index(None, "tenant_id", "number_key"),
        Index(None, "tenant_id", "platform", "host_account_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    host_account_id: Mapped[str] = mapped_column(String(255))
    host_email: Mapped[str] = mapped_column(String(320))
    topic: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str | None] = mapped_column(Text)
    rrule_timezone: Mapped[str | None] = mapped_column(String(64))   # the recurrence's zone when it is not `timezone`
    exclusions: Mapped[JsonList] = mapped_column(server_default="[]")  # deleted occurrences (original starts)
    exceptions: Mapped[JsonList] = mapped_column(server_default="[]")  # moved or resized occurrences
    start_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    join_url: Mapped[str] = mapped_column(Text)
    link_key: Mapped[str] = mapped_column(String(255))
    number_key: Mapped[str | None] = mapped_column(String(255))   # the meeting number's key, when not link_key
    invitee_count: Mapped[int] = mapped_column(Integer)
    invitees: Mapped[JsonList]
    alternative_hosts: Mapped[JsonList]
    flags: Mapped[Json]


class Wave(Base):
    """A cutover wave: planned → frozen → cut over → verified (→ rolled back)."""

    __tablename__ = "wave"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    selection: Mapped[Json]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cut_over_at: Mapped[datetime | None]
    guard_until: Mapped[datetime | None]


class WaveMember(Base):
    """A person selected into a wave."""

    __tablename__ = "wave_member"
    __table_args__ = (UniqueConstraint("wave_id", "person_anchor"),
                      Index(None, "tenant_id", "person_anchor"))   # a person's waves (release plan, savings)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id", ondelete="CASCADE"), index=True)
    person_anchor: Mapped[str] = mapped_column(String(255))


class PlanAction(Base):
    """One action of a wave plan, applied through the outbox (claim → execute → record)."""

    __tablename__ = "plan_action"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "wave_id", "state"),
        Index(None, "tenant_id", "wave_id", "host_anchor"),
        Index(None, "tenant_id", "depends_on"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str | None] = mapped_column(String(16))
    meeting_external_id: Mapped[str | None] = mapped_column(String(255))
    host_anchor: Mapped[str | None] = mapped_column(String(255))
    depends_on: Mapped[str | None] = mapped_column(String(255))
    flags: Mapped[JsonList] = mapped_column(server_default="[]")
    reason: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[Json]
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Json | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Room(Base):
    """A Visio room created by bascule (Meet rooms cannot be renamed or deleted through the External API)."""

    __tablename__ = "room"
    __table_args__ = (
        UniqueConstraint("tenant_id", "meet_id"),
        UniqueConstraint("tenant_id", "action_key"),
        Index(None, "tenant_id", "slug"),   # a slug Visio repeats is refused (VISIO_ID_REUSED)
        Index(None, "tenant_id", "host_anchor"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    meet_id: Mapped[str] = mapped_column(String(64))
    action_key: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(Text)
    access_level: Mapped[str] = mapped_column(String(16))
    owner_email: Mapped[str] = mapped_column(String(320))
    owner_user_id: Mapped[str | None] = mapped_column(String(64))
    telephony: Mapped[Json | None]
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("wave.id"), index=True)
    host_anchor: Mapped[str | None] = mapped_column(String(255))
    adopted: Mapped[bool] = mapped_column(Boolean, server_default="0")
    created_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]


class VisioUser(Base):
    """A host as Visio knows them: their Meet user id, and the rooms they had before bascule created any.

    Meet rooms carry no reference bascule could set: after an interrupted creation, a room of the host that is
    neither in `rooms_before` nor recorded by bascule is one bascule created (contract visio-meet.md section 7).
    """

    __tablename__ = "visio_user"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    email: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[str | None] = mapped_column(String(64))
    rooms_before: Mapped[JsonList]
    listed_run: Mapped[str | None] = mapped_column(String(64))
    listed_at: Mapped[datetime | None]


class Link(Base):
    """Old meeting link → Visio room, for the helpdesk and the redirect."""

    __tablename__ = "link"
    __table_args__ = (UniqueConstraint("tenant_id", "old_key"), Index(None, "tenant_id", "meeting_external_id"),
                      Index(None, "old_key"))   # the public redirect /l/{key} reads by key alone

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    old_key: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(String(16))
    old_url: Mapped[str] = mapped_column(Text)
    meeting_external_id: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str | None] = mapped_column(Text)
    host_anchor: Mapped[str | None] = mapped_column(String(255))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("room.id"), index=True)
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("wave.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime]


class OrganiserEvent(Base):
    """An event of an organiser's own calendar that carries a Zoom, Webex or Teams join link (the calendar scan):
    where it is, its original UID and ETag, the raw object kept for rollback, and the meeting it was matched to."""

    __tablename__ = "organiser_event"
    __table_args__ = (
        UniqueConstraint("tenant_id", "system", "href"),
        Index(None, "tenant_id", "join_key"),
        Index("ix_organiser_event_meeting", "tenant_id", "meeting_platform", "meeting_external_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    system: Mapped[str] = mapped_column(String(16))              # "caldav" or "graph"
    organiser: Mapped[str] = mapped_column(String(320))
    href: Mapped[str] = mapped_column(Text)                      # CalDAV URL, or the Graph event id
    uid: Mapped[str] = mapped_column(Text)                       # iCalendar UID / Graph iCalUId
    etag: Mapped[str | None] = mapped_column(String(255))
    sequence: Mapped[int] = mapped_column(Integer)
    recurring: Mapped[bool] = mapped_column(Boolean)
    attendees: Mapped[int] = mapped_column(Integer)
    join_key: Mapped[str] = mapped_column(String(255))           # the first join link's key (core.links)
    meeting_platform: Mapped[str | None] = mapped_column(String(16))
    meeting_external_id: Mapped[str | None] = mapped_column(String(255))
    raw: Mapped[str] = mapped_column(Text)                       # the object as read (rollback starts from it)
    schedules: Mapped[bool | None] = mapped_column(Boolean)      # the server tells attendees itself (RFC 6638)
    last_seen_pass: Mapped[str] = mapped_column(String(64))
    scanned_at: Mapped[datetime]


class CalendarSync(Base):
    """Where the next calendar scan of one organiser starts: the server's change token (a CalDAV sync-token,
    a Graph calendarView deltaLink) and the window the listing behind it covered. Not a secret: using it needs
    the calendar's own credentials."""

    __tablename__ = "calendar_sync"
    __table_args__ = (UniqueConstraint("tenant_id", "system", "organiser"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    system: Mapped[str] = mapped_column(String(16))
    organiser: Mapped[str] = mapped_column(String(320))
    token: Mapped[str | None] = mapped_column(Text)              # None: the server cannot track changes
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    listed_at: Mapped[datetime]                                  # the last full listing
    synced_at: Mapped[datetime]


class CalendarRewrite(Base):
    """A series master rewritten in place, with the exact previous body kept for rollback."""

    __tablename__ = "calendar_rewrite"
    __table_args__ = (UniqueConstraint("tenant_id", "action_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    action_key: Mapped[str] = mapped_column(String(255))
    platform: Mapped[str] = mapped_column(String(16))
    mailbox: Mapped[str] = mapped_column(String(320))
    event_id: Mapped[str] = mapped_column(Text)
    before: Mapped[Json]
    after: Mapped[Json]
    state: Mapped[str] = mapped_column(String(16), server_default="rewritten")
    prepared_at: Mapped[datetime | None]
    rewritten_at: Mapped[datetime | None]
    reverted_at: Mapped[datetime | None]


class Notification(Base):
    """A calendar update mailed on behalf of an organiser (ICS, same UID, SEQUENCE + 1)."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("tenant_id", "action_key"), Index(None, "tenant_id", "ical_uid"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    action_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    ical_uid: Mapped[str] = mapped_column(String(255))
    sequence: Mapped[int] = mapped_column(Integer)
    recipient_count: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), server_default="sent")
    payload: Mapped[Json | None]
    stamp: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class AdoptionEvent(Base):
    """Evidence that people use Visio (LiveKit webhooks on migrated rooms)."""

    __tablename__ = "adoption_event"
    __table_args__ = (UniqueConstraint("tenant_id", "event_id"),
                      Index(None, "tenant_id", "participant_identity"))   # a person's days, by their subs

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    event_id: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(64))
    room_meet_id: Mapped[str] = mapped_column(String(64), index=True)
    participant_identity: Mapped[str | None] = mapped_column(String(256))
    authenticated: Mapped[bool] = mapped_column(Boolean)
    room_role: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime]


class Decommission(Base):
    """The release outbox: one source licence (account × SKU) bascule releases after adoption evidence.

    planned → claimed → released | refused (the source's documented refusal) | failed (retried by the next run);
    a released licence may be given back within the tenant's window: restore_pending → restoring → restored
    (| restore_failed). The claim is committed before the source is called; the source is read before each write,
    so a run killed between the call and its record sends nothing twice. `generation` counts the releases of the
    licence: released again after a restore, it is a new generation under a new idempotency key.
    """

    __tablename__ = "decommission"
    __table_args__ = (
        UniqueConstraint("tenant_id", "platform", "account_external_id", "sku_key"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(None, "tenant_id", "state"),
        Index(None, "tenant_id", "person_anchor"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    account_external_id: Mapped[str] = mapped_column(String(255))
    sku_key: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    before: Mapped[Json | None]
    after: Mapped[Json | None]
    evidence: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    person_anchor: Mapped[str | None] = mapped_column(String(255))
    wave_name: Mapped[str | None] = mapped_column(String(128))
    generation: Mapped[int] = mapped_column(Integer, server_default="0")
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    planned_at: Mapped[datetime | None]
    restore_until: Mapped[datetime | None]
    restored_at: Mapped[datetime | None]


class SavingsSnapshot(Base):
    """Monthly savings per tenant × platform × SKU × contract, recomputed idempotently."""

    __tablename__ = "savings_snapshot"
    __table_args__ = (UniqueConstraint("tenant_id", "platform", "sku_key", "contract_ref", "month"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    platform: Mapped[str] = mapped_column(String(16))
    sku_key: Mapped[str] = mapped_column(String(255))
    contract_ref: Mapped[str] = mapped_column(String(128))
    month: Mapped[date] = mapped_column(Date)
    assigned: Mapped[int] = mapped_column(Integer)
    active: Mapped[int] = mapped_column(Integer)
    never_active: Mapped[int] = mapped_column(Integer)
    reclaimed: Mapped[int] = mapped_column(Integer)
    committed: Mapped[int] = mapped_column(Integer)
    commit_floor: Mapped[int] = mapped_column(Integer)
    annual_unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    potential_annual: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    stranded: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    realised_run_rate: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    realised_in_fy: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    net: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    gov_expected: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(16))
    evidence_refs: Mapped[JsonList]
    computed_at: Mapped[datetime]


class SavingsBreakdown(Base):
    """A month's figures split along one dimension the dashboard shows (savings.md §4.2): `direction` (the first
    level of the directory's department), `wave`, `tool`, `sku`, `contract`; stored when the snapshots are computed,
    so that pages read them and never recompute."""

    __tablename__ = "savings_breakdown"
    __table_args__ = (UniqueConstraint("tenant_id", "month", "dimension", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    month: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    assigned: Mapped[int] = mapped_column(Integer)
    reclaimed: Mapped[int] = mapped_column(Integer)
    potential_annual: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    stranded: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    realised_run_rate: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    gov_expected: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime]


class SavingsSummary(Base):
    """The month's figures that are not per row (savings.md §4): the headline, the contract calendar, utilisation,
    the funnel per wave and the forecast, as the report computed them (one JSON document per tenant × month,
    replaced when the month is recomputed), so that the dashboard shows exactly what `savings report` printed."""

    __tablename__ = "savings_summary"
    __table_args__ = (UniqueConstraint("tenant_id", "month"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    month: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    document: Mapped[Json]
    computed_at: Mapped[datetime]


class AccessGrant(Base):
    """A role of the web application granted to a ProConnect identity (its e-mail, lower-cased) for one tenant;
    revoking keeps the row (revoked_at), granting again clears it. Every change is also an audit event."""

    __tablename__ = "access_grant"
    __table_args__ = (UniqueConstraint("tenant_id", "email", "role"), Index(None, "email"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Checkpoint(Base):
    """The cursor of one stream of one source; saved in the same transaction as the page it follows."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("tenant_id", "source", "stream"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    source: Mapped[str] = mapped_column(String(32))
    stream: Mapped[str] = mapped_column(String(64))
    pass_id: Mapped[str] = mapped_column(String(64))
    cursor: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    items_done: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class Quarantine(Base):
    """Bad input kept with its reason code; the run went on without it."""

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source", "record_key", "reason"),
        Index(None, "tenant_id", "stage", "reason"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    stage: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[Json]
    last_seen_pass: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what to which external object, with before and after (append-only)."""

    __tablename__ = "audit_event"
    __table_args__ = (Index(None, "tenant_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_kind: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(512))
    before: Mapped[Json | None]
    after: Mapped[Json | None]
    run_id: Mapped[str | None] = mapped_column(String(64))
