"""Repositories: core records in, rows out, batched; they never commit (the task boundary does)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.orm import Session

from core import DirectoryEntry, HostRef, LicenceSku, Meeting, Platform, Quarantined, SourceAccount, normalise_email
from core.hashing import content_hash
from db import models
from db.models import table_of
from db.upsert import UpsertResult, dialect_insert, mark_unseen, upsert_plain, upsert_synced


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
                             key=["tenant_id", "anchor"], now=now, pass_id=pass_id)

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

    def upsert(self, accounts: Sequence[SourceAccount], *, now: datetime, pass_id: str) -> UpsertResult:
        rows = [self._row(account) for account in accounts]
        result = upsert_synced(self._session, table_of(models.SourceAccount), rows,
                               key=["tenant_id", "platform", "external_id"], now=now, pass_id=pass_id)
        self._assignments(accounts, now=now)
        return result

    def _assignments(self, accounts: Sequence[SourceAccount], *, now: datetime) -> None:
        """The licences each account holds now; a licence no longer held becomes `unassigned` (not released by us)."""
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
                set_={"state": case((table.c.state == "released", table.c.state), else_=literal("assigned"))}), held)
        for account in accounts:
            self._session.execute(
                update(table)
                .where(table.c.tenant_id == self._tenant_id, table.c.platform == self._platform.value,
                       table.c.account_external_id == account.external_id, table.c.state == "assigned",
                       table.c.sku_key.not_in(list(account.licences) or [""]))
                .values(state="unassigned"))

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
                               key=["tenant_id", "platform", "sku_key"], now=now, pass_id=pass_id)
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
                             key=["tenant_id", "platform", "external_id"], now=now, pass_id=pass_id)

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
                 "external_invitees": meeting.external_invitees}
        return {
            "tenant_id": self._tenant_id, "platform": self._platform.value, "external_id": meeting.external_id,
            "host_account_id": meeting.host_account_id, "host_email": meeting.host_email, "topic": meeting.topic,
            "kind": meeting.kind.value, "timezone": meeting.timezone,
            "rrule": meeting.recurrence.rrule if meeting.recurrence else None, "start_at": meeting.start,
            "ends_at": meeting.ends_at, "duration_minutes": meeting.duration_minutes, "join_url": meeting.join_url,
            "link_key": meeting.link_key, "invitee_count": len(meeting.invitees), "invitees": list(meeting.invitees),
            "alternative_hosts": list(meeting.alternative_hosts), "flags": flags,
            "content_hash": content_hash(meeting),
        }
