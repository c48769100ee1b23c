"""Repositories: core records in, rows out, batched; they never commit (the task boundary does)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, literal, select, update
from sqlalchemy.orm import Session

from core import (
    AccountStatus,
    AnchorKind,
    Conflict,
    ConflictKind,
    DirectoryEntry,
    HostRef,
    LicenceSku,
    Meeting,
    OccurrenceChange,
    Platform,
    Quarantined,
    SourceAccount,
    normalise_email,
)
from core.hashing import content_hash
from core.identity import (
    EMAIL_SUBJECTS,
    EXCLUDING_KINDS,
    AccountMatched,
    ConflictAction,
    ConflictDecision,
    IdentityKey,
    KeyKind,
    Lookup,
    Override,
    OverrideAction,
    SubjectPerson,
    email_changed_from,
    former_key,
    lookup_of,
    split_account_subject,
)
from db import models
from db.models import table_of
from db.upsert import UpsertResult, dialect_insert, mark_unseen, upsert_plain, upsert_synced

# The record fields stored as columns of the same name (read back into core records when paging).
_ENTRY_FIELDS = tuple(name for name in DirectoryEntry.__dataclass_fields__)
_ACCOUNT_FIELDS = tuple(name for name in SourceAccount.__dataclass_fields__)


class TenantRepository:
    """Registered tenants."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def ensure(self, tenant_id: str, *, name: str, siret: str | None, config_path: str | None,
               config_hash: str | None, now: datetime) -> None:
        """Register the tenant or refresh its descriptive columns."""
        insert_row = {"id": tenant_id, "name": name, "siret": siret, "config_path": config_path,
                      "config_hash": config_hash, "ready": False, "registered_at": now, "updated_at": now}
        upsert_plain(self._session, table_of(models.Tenant), [insert_row], key=["id"],
                     update=["name", "siret", "config_path", "config_hash", "updated_at"])

    def get(self, tenant_id: str) -> models.Tenant | None:
        return self._session.get(models.Tenant, tenant_id)


class DirectoryRepository:
    """Directory entries of one tenant, keyed by anchor."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def upsert(self, entries: Sequence[DirectoryEntry], *, now: datetime, pass_id: str) -> UpsertResult:
        rows = [self._row(entry) for entry in entries]
        return upsert_synced(self._session, table_of(models.DirectoryEntry), rows,
                             key=["tenant_id", "anchor"], now=now, pass_id=pass_id,
                             record_key=lambda row: f"directory:{row['anchor']}")

    def mark_removed(self, *, pass_id: str, now: datetime) -> int:
        """Mark entries not seen in the completed pass `pass_id` as removed; returns how many."""
        return mark_unseen(self._session, table_of(models.DirectoryEntry), pass_id=pass_id, now=now,
                           tenant_id=self._tenant_id)

    def count(self, *, include_removed: bool = False) -> int:
        table = table_of(models.DirectoryEntry)
        query = select(func.count()).select_from(table).where(table.c.tenant_id == self._tenant_id)
        if not include_removed:
            query = query.where(table.c.removed_at.is_(None))
        return int(self._session.execute(query).scalar_one())

    def iter_entries(self, *, batch_size: int = 1000) -> Iterator[models.DirectoryEntry]:
        """Stream the tenant's current entries in anchor order."""
        query = (select(models.DirectoryEntry)
                 .where(models.DirectoryEntry.tenant_id == self._tenant_id,
                        models.DirectoryEntry.removed_at.is_(None))
                 .order_by(models.DirectoryEntry.anchor)
                 .execution_options(yield_per=batch_size))
        yield from self._session.scalars(query)

    def page(self, *, after: str | None, limit: int) -> list[DirectoryEntry]:
        """The next `limit` current entries after anchor `after`, in anchor order (keyset paging)."""
        table = table_of(models.DirectoryEntry)
        query = (select(*(table.c[name] for name in _ENTRY_FIELDS))
                 .where(table.c.tenant_id == self._tenant_id, table.c.removed_at.is_(None))
                 .order_by(table.c.anchor).limit(limit))
        if after is not None:
            query = query.where(table.c.anchor > after)
        return [DirectoryEntry(**{**row._asdict(), "anchor_kind": AnchorKind(row.anchor_kind),
                                  "aliases": tuple(row.aliases or ())})
                for row in self._session.execute(query).all()]

    def _row(self, entry: DirectoryEntry) -> dict[str, Any]:
        return {
            "tenant_id": self._tenant_id,
            "anchor": entry.anchor,
            "anchor_kind": entry.anchor_kind.value,
            "dn": entry.dn,
            "primary_email": entry.primary_email,
            "email_normalised": normalise_email(entry.primary_email),
            "aliases": list(entry.aliases),
            "employee_id": entry.employee_id,
            "login": entry.login,
            "given_name": entry.given_name,
            "surname": entry.surname,
            "display_name": entry.display_name,
            "department": entry.department,
            "department_code": entry.department_code,
            "population": entry.population,
            "disabled": entry.disabled,
            "last_logon": entry.last_logon,
            "immutable_id": entry.immutable_id,
            "content_hash": content_hash(entry),
        }


class QuarantineRepository:
    """Bad input of one tenant, by source and reason; re-seen items stay open, fixed ones get resolved."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def upsert(self, items: Sequence[Quarantined], *, stage: str, source: str, now: datetime,
               pass_id: str) -> int:
        rows = [{"tenant_id": self._tenant_id, "stage": stage, "source": source, "record_key": item.record_key,
                 "reason": item.reason.value, "detail": item.detail, "payload": dict(item.payload),
                 "last_seen_pass": pass_id, "first_seen_at": now, "last_seen_at": now, "resolved_at": None}
                for item in items]
        return upsert_plain(self._session, table_of(models.Quarantine), rows,
                            key=["tenant_id", "source", "record_key", "reason"],
                            update=["stage", "detail", "payload", "last_seen_pass", "last_seen_at",
                                    "resolved_at"])

    def resolve_unseen(self, *, source: str, pass_id: str, now: datetime) -> int:
        """Close quarantine items of `source` that the completed pass `pass_id` no longer produced."""
        table = table_of(models.Quarantine)
        result = self._session.execute(
            update(table)
            .where(table.c.tenant_id == self._tenant_id, table.c.source == source,
                   table.c.last_seen_pass != pass_id, table.c.resolved_at.is_(None))
            .values(resolved_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def open_counts(self, *, source: str | None = None) -> dict[str, int]:
        """Open items per reason code."""
        table = table_of(models.Quarantine)
        query = (select(table.c.reason, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.resolved_at.is_(None))
                 .group_by(table.c.reason).order_by(table.c.reason))
        if source is not None:
            query = query.where(table.c.source == source)
        return {reason: int(count) for reason, count in self._session.execute(query).all()}


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """Where a stream stands: which pass, after which cursor, how many items so far."""

    pass_id: str
    cursor: str | None
    items_done: int
    complete: bool


class CheckpointRepository:
    """Per-stream cursors, saved in the same transaction as the page they follow."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def get(self, source: str, stream: str) -> CheckpointState | None:
        row = self._session.execute(
            select(models.Checkpoint).where(models.Checkpoint.tenant_id == self._tenant_id,
                                            models.Checkpoint.source == source,
                                            models.Checkpoint.stream == stream)).scalar_one_or_none()
        if row is None:
            return None
        return CheckpointState(row.pass_id, row.cursor, row.items_done, row.status == "complete")

    def save(self, source: str, stream: str, *, pass_id: str, cursor: str | None, items_done: int,
             complete: bool, now: datetime) -> None:
        row = {"tenant_id": self._tenant_id, "source": source, "stream": stream, "pass_id": pass_id,
               "cursor": cursor, "items_done": items_done, "status": "complete" if complete else "running",
               "started_at": now, "updated_at": now, "completed_at": now if complete else None}
        upsert_plain(self._session, table_of(models.Checkpoint), [row], key=["tenant_id", "source", "stream"],
                     update=["pass_id", "cursor", "items_done", "status", "updated_at", "completed_at"])

    def start(self, source: str, stream: str, *, pass_id: str, now: datetime) -> None:
        """Begin a new pass from the start of the stream (resets started_at)."""
        row = {"tenant_id": self._tenant_id, "source": source, "stream": stream, "pass_id": pass_id,
               "cursor": None, "items_done": 0, "status": "running", "started_at": now, "updated_at": now,
               "completed_at": None}
        upsert_plain(self._session, table_of(models.Checkpoint), [row], key=["tenant_id", "source", "stream"],
                     update=["pass_id", "cursor", "items_done", "status", "started_at", "updated_at",
                             "completed_at"])


class SourceAccountRepository:
    """Accounts of one platform of one tenant, and the licences each holds (licence_assignment)."""

    def __init__(self, session: Session, tenant_id: str, platform: Platform) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._platform = platform

    def upsert(self, accounts: Sequence[SourceAccount], *, now: datetime, pass_id: str,
               delta: bool = False) -> UpsertResult:
        """Store a page of accounts (a delta page may repeat an account: its last state wins; a full listing may
        not: the repeat is reported); returns the counts and the quarantine entries the page raised."""
        rows = [self._row(account) for account in accounts]
        result = upsert_synced(self._session, table_of(models.SourceAccount), rows,
                               key=["tenant_id", "platform", "external_id"], now=now, pass_id=pass_id,
                               record_key=lambda row: f"{self._platform.value}:user:{row['external_id']}",
                               duplicates="last_wins" if delta else "report")
        stored: dict[str, SourceAccount] = {}
        for account in accounts:
            if (self._tenant_id, self._platform.value, account.external_id) in result.refused:
                continue
            if delta:
                stored[account.external_id] = account
            else:
                stored.setdefault(account.external_id, account)
        self._assignments(list(stored.values()), now=now)
        return result

    def _assignments(self, accounts: Sequence[SourceAccount], *, now: datetime) -> None:
        """The licences each account holds now: held → `assigned` (a licence bascule released and the source shows
        held again was re-granted: it is a seat again, savings.md §6); no longer held → `unassigned`, unless bascule
        released it (`released` stays, with its date)."""
        if not accounts:
            return
        table = table_of(models.LicenceAssignment)
        held = [{"tenant_id": self._tenant_id, "platform": self._platform.value, "account_external_id": a.external_id,
                 "sku_key": sku, "assigned_by_group": None, "state": "assigned", "first_seen_at": now,
                 "released_at": None} for a in accounts for sku in dict.fromkeys(a.licences)]
        if held:
            insert = dialect_insert(self._session, table)
            self._session.execute(insert.on_conflict_do_update(
                index_elements=["tenant_id", "platform", "account_external_id", "sku_key"],
                set_={"state": literal("assigned")}), held)
        for account in accounts:
            self._session.execute(
                update(table)
                .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                       table.c.account_external_id == account.external_id, table.c.state == "assigned",
                       table.c.sku_key.not_in(list(account.licences) or [""]))
                .values(state="unassigned"))

    def set_last_activity(self, page: Sequence[tuple[str, datetime | None]]) -> int:
        """Each account's last activity as read apart from the account (Graph sign-ins); returns rows updated.
        Not part of the account's content hash: a sign-in is no change of the account."""
        if not page:
            return 0
        table = table_of(models.SourceAccount)
        statement = (update(table).where(table.c.tenant_id == self._tenant_id,
                                         table.c.platform == self._platform.value,
                                         table.c.external_id == bindparam("account"))
                     .values(last_activity=bindparam("moment")))
        result = self._session.execute(statement, [{"account": account, "moment": moment}
                                                   for account, moment in page])
        return int(getattr(result, "rowcount", 0) or 0)

    def mark_removed(self, *, pass_id: str, now: datetime) -> int:
        """After a complete full listing: accounts it did not contain are marked removed."""
        return mark_unseen(self._session, table_of(models.SourceAccount), pass_id=pass_id, now=now,
                           tenant_id=self._tenant_id, platform=self._platform.value)

    def mark_removed_ids(self, external_ids: Sequence[str], *, now: datetime) -> int:
        """Accounts the platform reported deleted (a delta pass)."""
        if not external_ids:
            return 0
        table = table_of(models.SourceAccount)
        result = self._session.execute(
            update(table)
            .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                   table.c.external_id.in_(list(external_ids)), table.c.removed_at.is_(None))
            .values(removed_at=now, updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def _host_filter(self) -> list[Any]:
        table = table_of(models.SourceAccount)
        return [table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                table.c.licensed.is_(True), table.c.status == "active", table.c.removed_at.is_(None)]

    def hosts(self, *, after: str | None = None, limit: int | None = None) -> list[HostRef]:
        """Licensed, active, current accounts in external-id order: whose meetings are listed."""
        table = table_of(models.SourceAccount)
        query = (select(table.c.external_id, table.c.email).where(*self._host_filter())
                 .order_by(table.c.external_id))
        if after is not None:
            query = query.where(table.c.external_id > after)
        if limit is not None:
            query = query.limit(limit)
        return [HostRef(external_id, email.strip()) for external_id, email in self._session.execute(query).all()]

    def count_hosts(self, *, up_to: str | None = None) -> int:
        """How many hosts there are (up to and including `up_to`, in id order)."""
        table = table_of(models.SourceAccount)
        query = select(func.count()).select_from(table).where(*self._host_filter())
        if up_to is not None:
            query = query.where(table.c.external_id <= up_to)
        return int(self._session.execute(query).scalar_one())

    def page(self, *, after: str | None, limit: int) -> list[SourceAccount]:
        """The next `limit` current accounts after external id `after`, in id order (keyset paging)."""
        table = table_of(models.SourceAccount)
        query = (select(*(table.c[name] for name in _ACCOUNT_FIELDS))
                 .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                        table.c.removed_at.is_(None))
                 .order_by(table.c.external_id).limit(limit))
        if after is not None:
            query = query.where(table.c.external_id > after)
        return [SourceAccount(**{**row._asdict(), "platform": self._platform, "status": AccountStatus(row.status),
                                 "licences": tuple(row.licences or ()), "aliases": tuple(row.aliases or ())})
                for row in self._session.execute(query).all()]

    def count(self) -> int:
        table = table_of(models.SourceAccount)
        return int(self._session.execute(
            select(func.count()).select_from(table)
            .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                   table.c.removed_at.is_(None))).scalar_one())

    def _row(self, account: SourceAccount) -> dict[str, Any]:
        return {
            "tenant_id": self._tenant_id, "platform": self._platform.value, "external_id": account.external_id,
            "email": account.email, "email_normalised": normalise_email(account.email),
            "status": account.status.value, "licensed": account.licensed, "licences": list(account.licences),
            "display_name": account.display_name, "given_name": account.given_name, "surname": account.surname,
            "aliases": list(account.aliases), "employee_id": account.employee_id,
            "immutable_id": account.immutable_id, "role": account.role, "account_type": account.account_type,
            "department": account.department, "last_activity": account.last_activity,
            "content_hash": content_hash(account),
        }


class LicenceRepository:
    """The licence catalogue of one platform, priced."""

    def __init__(self, session: Session, tenant_id: str, platform: Platform) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._platform = platform

    def upsert(self, skus: Sequence[LicenceSku], *, now: datetime, pass_id: str) -> UpsertResult:
        rows = [{"tenant_id": self._tenant_id, "platform": self._platform.value, "sku_key": sku.sku_key,
                 "name": sku.name, "includes_meetings": sku.includes_meetings, "prepaid_units": sku.prepaid_units,
                 "consumed_units": sku.consumed_units, "site_url": sku.site_url,
                 "annual_unit_cost": sku.annual_unit_cost, "content_hash": content_hash(sku)} for sku in skus]
        result = upsert_synced(self._session, table_of(models.LicenceSku), rows,
                               key=["tenant_id", "platform", "sku_key"], now=now, pass_id=pass_id,
                               record_key=lambda row: f"{self._platform.value}:sku:{row['sku_key']}")
        mark_unseen(self._session, table_of(models.LicenceSku), pass_id=pass_id, now=now, tenant_id=self._tenant_id,
                    platform=self._platform.value)
        return result


class MeetingRepository:
    """Meetings of one platform of one tenant."""

    def __init__(self, session: Session, tenant_id: str, platform: Platform) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._platform = platform

    def upsert(self, meetings: Sequence[Meeting], *, now: datetime, pass_id: str) -> UpsertResult:
        rows = [self._row(meeting) for meeting in meetings]
        return upsert_synced(self._session, table_of(models.Meeting), rows,
                             key=["tenant_id", "platform", "external_id"], now=now, pass_id=pass_id,
                             record_key=lambda row: f"{self._platform.value}:meeting:{row['external_id']}")

    def carry_over(self, host_ids: Sequence[str], *, pass_id: str) -> int:
        """Hosts whose listing failed in this pass: their current meetings count as seen (kept as they were)."""
        if not host_ids:
            return 0
        table = table_of(models.Meeting)
        result = self._session.execute(
            update(table)
            .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                   table.c.host_account_id.in_(list(host_ids)), table.c.removed_at.is_(None))
            .values(last_seen_pass=pass_id))
        return int(getattr(result, "rowcount", 0) or 0)

    def mark_removed(self, *, pass_id: str, now: datetime) -> int:
        """After a complete listing of every host: meetings it did not contain are marked removed."""
        return mark_unseen(self._session, table_of(models.Meeting), pass_id=pass_id, now=now,
                           tenant_id=self._tenant_id, platform=self._platform.value)

    def count_by_kind(self) -> dict[str, int]:
        table = table_of(models.Meeting)
        query = (select(table.c.kind, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                        table.c.removed_at.is_(None))
                 .group_by(table.c.kind).order_by(table.c.kind))
        return {kind: int(count) for kind, count in self._session.execute(query).all()}

    def _row(self, meeting: Meeting) -> dict[str, Any]:
        flags = {"waiting_room": meeting.waiting_room, "passcode": meeting.passcode, "webinar": meeting.webinar,
                 "dial_in": meeting.dial_in, "registration": meeting.registration,
                 "external_invitees": meeting.external_invitees, "invitees_known": meeting.invitees_known}
        recurrence = meeting.recurrence
        return {
            "tenant_id": self._tenant_id, "platform": self._platform.value, "external_id": meeting.external_id,
            "host_account_id": meeting.host_account_id, "host_email": meeting.host_email, "topic": meeting.topic,
            "kind": meeting.kind.value, "timezone": meeting.timezone,
            "rrule": recurrence.rrule if recurrence else None,
            "rrule_timezone": recurrence.timezone if recurrence and recurrence.timezone != meeting.timezone else None,
            "exclusions": [moment.isoformat() for moment in meeting.exclusions],
            "exceptions": [occurrence_change_json(change) for change in meeting.exceptions],
            "start_at": meeting.start,
            "ends_at": meeting.ends_at, "duration_minutes": meeting.duration_minutes, "join_url": meeting.join_url,
            "link_key": meeting.link_key, "number_key": meeting.number_key,
            "invitee_count": len(meeting.invitees), "invitees": list(meeting.invitees),
            "alternative_hosts": list(meeting.alternative_hosts), "flags": flags,
            "content_hash": content_hash(meeting),
        }


def occurrence_change_json(change: OccurrenceChange) -> dict[str, Any]:
    """A moved or resized occurrence as stored in meeting.exceptions (instants in ISO 8601 with their offset)."""
    return {"original": change.original.isoformat(), "start": change.start.isoformat(),
            "duration_minutes": change.duration_minutes}


def occurrence_change_of(document: Any) -> OccurrenceChange:
    """The inverse of occurrence_change_json."""
    duration = document.get("duration_minutes")
    return OccurrenceChange(original=datetime.fromisoformat(str(document["original"])),
                            start=datetime.fromisoformat(str(document["start"])),
                            duration_minutes=int(duration) if duration is not None else None)


class IdentityRepository:
    """Keys, persons, matches, conflicts and overrides of one tenant's identity mapping."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    # ---- keys

    def upsert_keys(self, keys: Sequence[IdentityKey], *, pass_id: str) -> None:
        rows = [{"tenant_id": self._tenant_id, "kind": key.kind.value, "value": key.value, "anchor": key.anchor,
                 "raw": key.raw, "last_seen_pass": pass_id} for key in keys]
        upsert_plain(self._session, table_of(models.IdentityKey), rows,
                     key=["tenant_id", "kind", "value", "anchor"], update=["raw", "last_seen_pass"])

    def delete_stale_keys(self, *, pass_id: str) -> int:
        """Keys are derived data: those a complete pass did not produce are gone — except former e-mails, which are
        history (kept while their entry is current)."""
        table, entry = table_of(models.IdentityKey), table_of(models.DirectoryEntry)
        current = select(entry.c.anchor).where(entry.c.tenant_id == self._tenant_id, entry.c.removed_at.is_(None))
        kept = (table.c.kind == KeyKind.FORMER.value) & table.c.anchor.in_(current)
        result = self._session.execute(
            delete(table).where(table.c.tenant_id == self._tenant_id, table.c.last_seen_pass != pass_id, ~kept))
        return int(getattr(result, "rowcount", 0) or 0)

    def former_keys_from_history(self) -> list[IdentityKey]:
        """Former e-mails of current entries as the e-mail-changed history records them ("was <address>", open or
        resolved conflicts): restores what an older pass, or a lost key, did not keep."""
        conflict, entry = table_of(models.IdentityConflict), table_of(models.DirectoryEntry)
        query = (select(conflict.c.subject, conflict.c.detail)
                 .join(entry, (entry.c.tenant_id == conflict.c.tenant_id) & (entry.c.anchor == conflict.c.subject))
                 .where(conflict.c.tenant_id == self._tenant_id,
                        conflict.c.kind == ConflictKind.EMAIL_CHANGED.value, entry.c.removed_at.is_(None))
                 .order_by(conflict.c.subject, conflict.c.id))
        keys = []
        for anchor, detail in self._session.execute(query).all():
            previous = email_changed_from(detail)
            if previous and (key := former_key(anchor, previous)) is not None:
                keys.append(key)
        return keys

    def holders(self, pairs: Sequence[tuple[Lookup, str]]) -> dict[tuple[Lookup, str], list[IdentityKey]]:
        """Every key holding each looked-up value (one query per batch of accounts)."""
        table = table_of(models.IdentityKey)
        values = sorted({value for _lookup, value in pairs})
        found: dict[tuple[Lookup, str], list[IdentityKey]] = {pair: [] for pair in pairs}
        for start in range(0, len(values), 900):
            query = select(table.c.kind, table.c.value, table.c.anchor, table.c.raw).where(
                table.c.tenant_id == self._tenant_id, table.c.value.in_(values[start:start + 900]))
            for kind, value, anchor, raw in self._session.execute(query).all():
                key = IdentityKey(KeyKind(kind), value, anchor, raw)
                pair = (lookup_of(key.kind), value)
                if pair in found:
                    found[pair].append(key)
        return found

    def shared_email_values(self) -> Iterator[tuple[str, list[IdentityKey]]]:
        """E-mail values held by more than one entry, with every key holding them."""
        table = table_of(models.IdentityKey)
        emails = table.c.kind.in_([KeyKind.PRIMARY.value, KeyKind.ALIAS.value])
        shared = (select(table.c.value).where(table.c.tenant_id == self._tenant_id, emails)
                  .group_by(table.c.value).having(func.count(func.distinct(table.c.anchor)) > 1))
        query = (select(table.c.kind, table.c.value, table.c.anchor, table.c.raw)
                 .where(table.c.tenant_id == self._tenant_id, emails, table.c.value.in_(shared))
                 .order_by(table.c.value))
        current: str | None = None
        keys: list[IdentityKey] = []
        for kind, value, anchor, raw in self._session.execute(query).all():
            if value != current and keys:
                yield current or "", keys
                keys = []
            current = value
            keys.append(IdentityKey(KeyKind(kind), value, anchor, raw))
        if keys:
            yield current or "", keys

    # ---- persons

    def previous_emails(self, anchors: Sequence[str]) -> dict[str, str]:
        table = table_of(models.Person)
        query = select(table.c.anchor, table.c.email_normalised).where(
            table.c.tenant_id == self._tenant_id, table.c.anchor.in_(list(anchors)))
        return {anchor: email for anchor, email in self._session.execute(query).all()}

    def upsert_persons(self, rows: Sequence[dict[str, Any]], *, now: datetime) -> UpsertResult:
        stamped = [{"tenant_id": self._tenant_id, **row, "created_at": now, "updated_at": now, "removed_at": None}
                   for row in rows]
        table = table_of(models.Person)
        columns = [name for name in stamped[0] if name not in ("tenant_id", "anchor", "created_at")] if stamped else []
        written = upsert_plain(self._session, table, stamped, key=["tenant_id", "anchor"], update=columns)
        return UpsertResult(inserted=written)

    def excluded_reasons(self, anchors: Sequence[str]) -> dict[str, ConflictKind]:
        """Why each of these persons is not one whose accounts match (rooms, shared mailboxes, administrators); the
        others — persons, and persons the team excluded from waves by decision — are absent."""
        table = table_of(models.Person)
        wanted = sorted(set(anchors))
        found: dict[str, ConflictKind] = {}
        for start in range(0, len(wanted), 900):
            query = select(table.c.anchor, table.c.excluded_reason).where(
                table.c.tenant_id == self._tenant_id, table.c.anchor.in_(wanted[start:start + 900]),
                table.c.excluded_reason.in_(sorted(kind.value for kind in EXCLUDING_KINDS)))
            found.update((anchor, ConflictKind(reason)) for anchor, reason in self._session.execute(query).all())
        return found

    def excluded_counts(self) -> dict[str, int]:
        """Current persons never selected in a wave, by reason."""
        table = table_of(models.Person)
        query = (select(table.c.excluded_reason, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.removed_at.is_(None),
                        table.c.excluded_reason.is_not(None))
                 .group_by(table.c.excluded_reason).order_by(table.c.excluded_reason))
        return {reason: int(count) for reason, count in self._session.execute(query).all()}

    def remove_persons_without_entry(self, *, now: datetime) -> int:
        """A person whose directory entry is gone (removed) is marked removed too."""
        person, entry = table_of(models.Person), table_of(models.DirectoryEntry)
        gone = select(entry.c.anchor).where(entry.c.tenant_id == self._tenant_id, entry.c.removed_at.is_not(None))
        result = self._session.execute(
            update(person).where(person.c.tenant_id == self._tenant_id, person.c.anchor.in_(gone),
                                 person.c.removed_at.is_(None)).values(removed_at=now, updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    # ---- matches

    def upsert_matches(self, matches: Sequence[AccountMatched], *, pass_id: str, now: datetime) -> None:
        rows = [{"tenant_id": self._tenant_id, "platform": match.platform.value,
                 "account_external_id": match.external_id, "person_anchor": match.anchor,
                 "method": match.method.value, "last_seen_pass": pass_id, "updated_at": now} for match in matches]
        upsert_plain(self._session, table_of(models.IdentityMatch), rows,
                     key=["tenant_id", "platform", "account_external_id"],
                     update=["person_anchor", "method", "last_seen_pass", "updated_at"])

    def delete_stale_matches(self, *, pass_id: str) -> int:
        table = table_of(models.IdentityMatch)
        result = self._session.execute(
            delete(table).where(table.c.tenant_id == self._tenant_id, table.c.last_seen_pass != pass_id))
        return int(getattr(result, "rowcount", 0) or 0)

    def several_accounts(self) -> list[tuple[str, str, list[str]]]:
        """(person, platform, account ids) where a person holds more than one account on a platform."""
        table = table_of(models.IdentityMatch)
        groups = (select(table.c.person_anchor, table.c.platform)
                  .where(table.c.tenant_id == self._tenant_id)
                  .group_by(table.c.person_anchor, table.c.platform).having(func.count() > 1))
        found: dict[tuple[str, str], list[str]] = {}
        for anchor, platform in self._session.execute(groups).all():
            found[(anchor, platform)] = []
        if found:
            query = select(table.c.person_anchor, table.c.platform, table.c.account_external_id).where(
                table.c.tenant_id == self._tenant_id,
                table.c.person_anchor.in_(sorted({anchor for anchor, _ in found})))
            for anchor, platform, account in self._session.execute(query).all():
                if (anchor, platform) in found:
                    found[(anchor, platform)].append(account)
        return [(anchor, platform, accounts) for (anchor, platform), accounts in sorted(found.items())]

    def disabled_but_licensed(self) -> list[tuple[str, list[str]]]:
        """(person, platforms) for disabled persons still holding a licensed, matched account."""
        person, match, account = (table_of(models.Person), table_of(models.IdentityMatch),
                                  table_of(models.SourceAccount))
        query = (select(person.c.anchor, account.c.platform)
                 .join(match, (match.c.tenant_id == person.c.tenant_id) & (match.c.person_anchor == person.c.anchor))
                 .join(account, (account.c.tenant_id == match.c.tenant_id) & (account.c.platform == match.c.platform)
                       & (account.c.external_id == match.c.account_external_id))
                 .where(person.c.tenant_id == self._tenant_id, person.c.disabled.is_(True),
                        person.c.removed_at.is_(None), account.c.licensed.is_(True), account.c.removed_at.is_(None))
                 .order_by(person.c.anchor))
        found: dict[str, list[str]] = {}
        for anchor, platform in self._session.execute(query).all():
            found.setdefault(anchor, []).append(platform)
        return sorted(found.items())

    def method_counts(self) -> dict[str, int]:
        table = table_of(models.IdentityMatch)
        query = (select(table.c.method, func.count()).where(table.c.tenant_id == self._tenant_id)
                 .group_by(table.c.method))
        return {method: int(count) for method, count in self._session.execute(query).all()}

    # ---- conflicts

    def upsert_conflicts(self, conflicts: Sequence[Conflict], *, pass_id: str, now: datetime) -> None:
        unique = {(c.kind.value, c.subject, c.value): c for c in conflicts}
        accepted = self.accepted_conflicts() if unique else frozenset()
        rows = [{"tenant_id": self._tenant_id, "kind": c.kind.value, "subject": c.subject, "value": c.value,
                 "detail": c.detail, "status": "accepted" if key in accepted else "open", "last_seen_pass": pass_id,
                 "first_seen_at": now, "last_seen_at": now, "resolved_at": None}
                for key, c in unique.items()]
        upsert_plain(self._session, table_of(models.IdentityConflict), rows,
                     key=["tenant_id", "kind", "subject", "value"],
                     update=["detail", "status", "last_seen_pass", "last_seen_at", "resolved_at"])

    def resolve_unseen_conflicts(self, *, pass_id: str, now: datetime) -> int:
        """Conflicts the complete run no longer found are closed (kept, with the time they were resolved)."""
        table = table_of(models.IdentityConflict)
        result = self._session.execute(
            update(table).where(table.c.tenant_id == self._tenant_id, table.c.status.in_(["open", "accepted"]),
                                table.c.last_seen_pass != pass_id)
            .values(status="resolved", resolved_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def standing_email_changes(self, *, pass_id: str) -> list[Conflict]:
        """E-mail changes of earlier passes that still stand: the person still has the new address and some
        current source account still shows the previous one (the platforms have not caught up yet)."""
        conflict, person, account = (table_of(models.IdentityConflict), table_of(models.Person),
                                     table_of(models.SourceAccount))
        query = (select(conflict.c.subject, conflict.c.value, conflict.c.detail)
                 .join(person, (person.c.tenant_id == conflict.c.tenant_id) & (person.c.anchor == conflict.c.subject))
                 .where(conflict.c.tenant_id == self._tenant_id, conflict.c.status == "open",
                        conflict.c.kind == ConflictKind.EMAIL_CHANGED.value, conflict.c.last_seen_pass != pass_id,
                        person.c.email_normalised == conflict.c.value, person.c.removed_at.is_(None)))
        standing = []
        for subject, value, detail in self._session.execute(query).all():
            before = email_changed_from(detail)
            still_shown = select(func.count()).select_from(account).where(
                account.c.tenant_id == self._tenant_id, account.c.email_normalised == before,
                account.c.removed_at.is_(None))
            if before and self._session.execute(still_shown).scalar_one():
                standing.append(Conflict(ConflictKind.EMAIL_CHANGED, subject, value, detail))
        return standing

    def person_count(self) -> int:
        table = table_of(models.Person)
        return int(self._session.execute(select(func.count()).select_from(table).where(
            table.c.tenant_id == self._tenant_id, table.c.removed_at.is_(None))).scalar_one())

    def expectation_counts(self) -> dict[str, dict[str, int]]:
        """Current persons by expected identity provider and by Visio provisioning; e-mails held back."""
        table = table_of(models.Person)
        current = (table.c.tenant_id == self._tenant_id, table.c.removed_at.is_(None))
        found: dict[str, dict[str, int]] = {}
        for name, column in (("identity_provider", table.c.expected_idp),
                             ("visio_provisioning", table.c.visio_provisioning)):
            query = select(column, func.count()).where(*current).group_by(column).order_by(column)
            found[name] = {value or "proconnect-identite (no ministry provider)": int(count)
                           for value, count in self._session.execute(query).all()}
        held = select(func.count()).select_from(table).where(*current, table.c.proconnect_email.is_(None))
        found["proconnect_email"] = {"held_back": int(self._session.execute(held).scalar_one())}
        return found

    def open_conflict_counts(self) -> dict[str, int]:
        table = table_of(models.IdentityConflict)
        query = (select(table.c.kind, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.status == "open")
                 .group_by(table.c.kind))
        return {kind: int(count) for kind, count in self._session.execute(query).all()}

    def iter_open_conflicts(self) -> Iterator[models.IdentityConflict]:
        query = (select(models.IdentityConflict)
                 .where(models.IdentityConflict.tenant_id == self._tenant_id,
                        models.IdentityConflict.status == "open")
                 .order_by(models.IdentityConflict.kind, models.IdentityConflict.subject)
                 .execution_options(yield_per=1000))
        yield from self._session.scalars(query)

    # ---- overrides and observations

    def overrides(self) -> dict[tuple[str, str], Override]:
        table = table_of(models.IdentityOverride)
        query = select(table.c.platform, table.c.account_external_id, table.c.action, table.c.person_anchor).where(
            table.c.tenant_id == self._tenant_id)
        return {(platform, account): Override(Platform(platform), account, OverrideAction(action), anchor)
                for platform, account, action, anchor in self._session.execute(query).all()}

    def save_override(self, override: Override, *, reason: str, author: str, now: datetime) -> None:
        row = {"tenant_id": self._tenant_id, "platform": override.platform.value,
               "account_external_id": override.account_external_id, "action": override.action.value,
               "person_anchor": override.person_anchor, "reason": reason, "author": author, "applied_at": now}
        upsert_plain(self._session, table_of(models.IdentityOverride), [row],
                     key=["tenant_id", "platform", "account_external_id"],
                     update=["action", "person_anchor", "reason", "author", "applied_at"])

    def delete_override(self, platform: Platform, external_id: str) -> bool:
        table = table_of(models.IdentityOverride)
        result = self._session.execute(delete(table).where(
            table.c.tenant_id == self._tenant_id, table.c.platform == platform.value,
            table.c.account_external_id == external_id))
        return bool(getattr(result, "rowcount", 0))

    def decisions(self) -> list[ConflictDecision]:
        """The standing decisions on conflicts about persons, e-mails and the tenant."""
        table = table_of(models.IdentityDecision)
        query = (select(table.c.kind, table.c.subject, table.c.value, table.c.action, table.c.person_anchor)
                 .where(table.c.tenant_id == self._tenant_id).order_by(table.c.id))
        return [ConflictDecision(ConflictKind(kind), subject, value, ConflictAction(action), anchor)
                for kind, subject, value, action, anchor in self._session.execute(query).all()]

    def accepted_conflicts(self) -> frozenset[tuple[str, str, str]]:
        """(kind, subject, value) of the conflicts the team accepted."""
        table = table_of(models.IdentityDecision)
        query = select(table.c.kind, table.c.subject, table.c.value).where(
            table.c.tenant_id == self._tenant_id, table.c.action == ConflictAction.ACCEPT.value)
        return frozenset((kind, subject, value) for kind, subject, value in self._session.execute(query).all())

    def save_decision(self, decision: ConflictDecision, *, reason: str, author: str, now: datetime) -> None:
        row = {"tenant_id": self._tenant_id, "kind": decision.kind.value, "subject": decision.subject,
               "value": decision.value, "action": decision.action.value, "person_anchor": decision.person_anchor,
               "reason": reason, "author": author, "applied_at": now}
        upsert_plain(self._session, table_of(models.IdentityDecision), [row],
                     key=["tenant_id", "kind", "subject", "value"],
                     update=["action", "person_anchor", "reason", "author", "applied_at"])

    def delete_decision(self, kind: ConflictKind, subject: str, value: str) -> bool:
        table = table_of(models.IdentityDecision)
        result = self._session.execute(delete(table).where(
            table.c.tenant_id == self._tenant_id, table.c.kind == kind.value, table.c.subject == subject,
            table.c.value == value))
        return bool(getattr(result, "rowcount", 0))

    def conflict_known(self, kind: ConflictKind, subject: str, value: str) -> bool:
        """Whether a pass ever found this conflict (open, accepted or resolved)."""
        table = table_of(models.IdentityConflict)
        query = select(func.count()).select_from(table).where(
            table.c.tenant_id == self._tenant_id, table.c.kind == kind.value, table.c.subject == subject,
            table.c.value == value)
        return bool(self._session.execute(query).scalar_one())

    def email_holders(self, value: str) -> set[str]:
        """The current entries holding an e-mail value (primary or alias key, or primary e-mail of the person: a
        key an earlier decision took away still counts)."""
        key, person = table_of(models.IdentityKey), table_of(models.Person)
        keys = select(key.c.anchor).where(key.c.tenant_id == self._tenant_id, key.c.value == value,
                                          key.c.kind.in_([KeyKind.PRIMARY.value, KeyKind.ALIAS.value]))
        persons = select(person.c.anchor).where(person.c.tenant_id == self._tenant_id,
                                                person.c.email_normalised == value, person.c.removed_at.is_(None))
        return set(self._session.execute(keys).scalars()) | set(self._session.execute(persons).scalars())

    def drop_given_away_keys(self, email_owner: dict[str, str]) -> int:
        """The e-mail keys of the entries that lost a shared e-mail to the one the team chose (when that one still
        holds it): the value then has one holder, and the accounts showing it match that entry."""
        table = table_of(models.IdentityKey)
        emails = table.c.kind.in_([KeyKind.PRIMARY.value, KeyKind.ALIAS.value])
        dropped = 0
        for value, owner in sorted(email_owner.items()):
            held = select(func.count()).select_from(table).where(
                table.c.tenant_id == self._tenant_id, table.c.value == value, table.c.anchor == owner, emails)
            if not self._session.execute(held).scalar_one():
                continue
            result = self._session.execute(delete(table).where(
                table.c.tenant_id == self._tenant_id, table.c.value == value, table.c.anchor != owner, emails))
            dropped += int(getattr(result, "rowcount", 0) or 0)
        return dropped

    def describe_subjects(self, subjects: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SubjectPerson]:
        """Whom each (subject, value) of a conflict is about, as people recognise them: the person an account is
        matched to (else the account itself), the person of an anchor, the entries holding a shared e-mail."""
        person, match, account, key = (table_of(models.Person), table_of(models.IdentityMatch),
                                       table_of(models.SourceAccount), table_of(models.IdentityKey))
        found: dict[tuple[str, str], SubjectPerson] = {}
        accounts = sorted({subject for subject, _value in subjects if split_account_subject(subject)})
        emails = sorted({value for subject, value in subjects if subject in EMAIL_SUBJECTS})
        anchors = sorted({subject for subject, _value in subjects} - set(accounts) - set(EMAIL_SUBJECTS))
        people: dict[str, SubjectPerson] = {}

        def load_people(wanted: Sequence[str]) -> None:
            for start in range(0, len(wanted), 900):
                query = select(person.c.anchor, person.c.display_name, person.c.primary_email,
                               person.c.department).where(person.c.tenant_id == self._tenant_id,
                                                          person.c.anchor.in_(wanted[start:start + 900]))
                for anchor, name, email, department in self._session.execute(query).all():
                    people[anchor] = SubjectPerson(name or "", email or "", department or "")

        load_people(anchors)
        holders: dict[str, list[str]] = {}
        for start in range(0, len(emails), 900):
            query = (select(key.c.value, key.c.anchor).distinct()
                     .where(key.c.tenant_id == self._tenant_id, key.c.value.in_(emails[start:start + 900]),
                            key.c.kind.in_([KeyKind.PRIMARY.value, KeyKind.ALIAS.value]))
                     .order_by(key.c.value, key.c.anchor))
            for value, anchor in self._session.execute(query).all():
                holders.setdefault(value, []).append(anchor)
        load_people(sorted({anchor for found_anchors in holders.values() for anchor in found_anchors} - set(people)))
        by_account: dict[str, SubjectPerson] = {}
        for start in range(0, len(accounts), 900):
            chunk = accounts[start:start + 900]
            ids = sorted({subject.partition(":")[2] for subject in chunk})
            query = (select(account.c.platform, account.c.external_id, account.c.display_name, account.c.email,
                            account.c.department, person.c.display_name, person.c.primary_email, person.c.department)
                     .outerjoin(match, (match.c.tenant_id == account.c.tenant_id)
                                & (match.c.platform == account.c.platform)
                                & (match.c.account_external_id == account.c.external_id))
                     .outerjoin(person, (person.c.tenant_id == match.c.tenant_id)
                                & (person.c.anchor == match.c.person_anchor))
                     .where(account.c.tenant_id == self._tenant_id, account.c.external_id.in_(ids)))
            for row in self._session.execute(query).all():
                cells: tuple[Any, ...] = tuple(row)
                own, matched = cells[2:5], cells[5:8]
                by_account[f"{cells[0]}:{cells[1]}"] = SubjectPerson(
                    *(str(cell or "") for cell in (matched if matched[1] is not None else own)))
        for subject, value in subjects:
            if subject in by_account:
                found[(subject, value)] = by_account[subject]
            elif subject in people:
                found[(subject, value)] = people[subject]
            elif value in holders:
                named = [people[anchor] for anchor in holders[value] if anchor in people]
                found[(subject, value)] = SubjectPerson(" | ".join(p.display_name for p in named), value,
                                                        " | ".join(p.department for p in named))
        return found

    def account_exists(self, platform: str, external_id: str) -> bool:
        table = table_of(models.SourceAccount)
        query = select(func.count()).select_from(table).where(
            table.c.tenant_id == self._tenant_id, table.c.platform == platform, table.c.external_id == external_id)
        return bool(self._session.execute(query).scalar_one())

    def persons_with_email(self, email: str) -> list[str]:
        """The anchors of the current persons whose primary e-mail is this one (in any spelling)."""
        table = table_of(models.Person)
        value = normalise_email(email) or email.strip().lower()
        query = (select(table.c.anchor).where(table.c.tenant_id == self._tenant_id, table.c.email_normalised == value,
                                              table.c.removed_at.is_(None)).order_by(table.c.anchor))
        return list(self._session.execute(query).scalars())

    def person_exists(self, anchor: str) -> bool:
        table = table_of(models.Person)
        query = select(func.count()).select_from(table).where(
            table.c.tenant_id == self._tenant_id, table.c.anchor == anchor, table.c.removed_at.is_(None))
        return bool(self._session.execute(query).scalar_one())

    def subs_by_person(self) -> list[tuple[str, list[str]]]:
        table = table_of(models.ProconnectObservation)
        query = (select(table.c.person_anchor, table.c.sub).where(table.c.tenant_id == self._tenant_id)
                 .order_by(table.c.person_anchor, table.c.first_seen_at))
        found: dict[str, list[str]] = {}
        for anchor, sub in self._session.execute(query).all():
            found.setdefault(anchor, []).append(sub)
        return sorted(found.items())


class AuditRepository:
    """Who did what to what, with before and after (append-only)."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def record(self, *, actor: str, action: str, target_kind: str, target_id: str, now: datetime,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
               run_id: str | None = None) -> None:
        self._session.add(models.AuditEvent(tenant_id=self._tenant_id, occurred_at=now, actor=actor, action=action,
                                            target_kind=target_kind, target_id=target_id, before=before,
                                            after=after, run_id=run_id))

    def count_since(self, *, actor: str, action: str, since: datetime) -> int:
        """How many times `actor` did `action` since `since` (a rate limit shared by every web worker)."""
        table = models.AuditEvent
        return int(self._session.execute(select(func.count()).select_from(table).where(
            table.tenant_id == self._tenant_id, table.actor == actor, table.action == action,
            table.occurred_at >= since)).scalar_one())

    def events_of(self, target_kind: str, target_id: str) -> list[AuditRow]:
        """Every event about one target, oldest first."""
        table = models.AuditEvent
        rows = self._session.execute(select(table).where(
            table.tenant_id == self._tenant_id, table.target_kind == target_kind, table.target_id == target_id)
            .order_by(table.occurred_at, table.id)).scalars()
        return [AuditRow(row.occurred_at, row.actor, row.action, dict(row.before or {}), dict(row.after or {}),
                         row.run_id) for row in rows]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit event as the reports read it."""

    occurred_at: datetime
    actor: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    run_id: str | None
