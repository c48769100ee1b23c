"""The savings as stored: seat counts aggregated in SQL (never a tenant's seats in memory), the people each snapshot
row is credited with, the seats of each direction and wave, and the snapshot and breakdown rows themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, case, delete, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from core.adoption import LiveKitEventName, RoomRole
from core.savings import SeatCounts, SnapshotRow
from core.waves import WaveState
from db import models
from db.models import table_of
from db.upsert import upsert_plain

__all__ = ["GroupSeats", "SavingsRepository", "SkuKey", "WaveFunnel"]

SkuKey = tuple[str, str]   # (platform, sku_key)
_MIGRATED = (WaveState.CUT_OVER.value, WaveState.VERIFIED.value)
UNMATCHED = "(no person)"
NO_WAVE = "(no wave)"
NO_DIRECTION = "(no direction)"


@dataclass(frozen=True, slots=True)
class GroupSeats:
    """Seats of one SKU held by one group of people (a direction, a wave): assigned, of which held by migrated
    people, and reclaimed."""

    group: str
    platform: str
    sku_key: str
    assigned: int
    migrated: int
    reclaimed: int


@dataclass(frozen=True, slots=True)
class WaveFunnel:
    """One wave's people down the funnel of savings.md §4.5: in scope, seen in Visio (a logged-in join of a room
    bascule migrated, as theirs or as a participant), a source licence released, and (per seat) released seats
    covered by a lowered contract quantity (the report adds the seats)."""

    wave: str
    state: str
    in_scope: int
    seen_in_visio: int
    released_people: int


class SavingsRepository:
    """One tenant's savings. Never commits: the caller's transaction does."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def _targets(self, held: Any, targets: Sequence[SkuKey]) -> Any:
        by_platform: dict[str, list[str]] = {}
        for platform, sku in targets:
            by_platform.setdefault(platform, []).append(sku)
        return or_(*(and_(held.c.platform == platform, held.c.sku_key.in_(sorted(skus)))
                     for platform, skus in sorted(by_platform.items()))) if by_platform else literal(False)

    def _migrated(self, matches: Any) -> Any:
        """Whether the person of `matches` is in a wave that was cut over (or verified)."""
        members, waves = table_of(models.WaveMember), table_of(models.Wave)
        return exists(select(members.c.id).join(waves, waves.c.id == members.c.wave_id).where(
            members.c.tenant_id == matches.c.tenant_id, members.c.person_anchor == matches.c.person_anchor,
            waves.c.state.in_(_MIGRATED)))

    def seats(self, targets: Sequence[SkuKey], *, active_since: Mapping[str, datetime]) -> dict[SkuKey, SeatCounts]:
        """Per SKU: assigned seats (of which held by people not migrated yet: required), reclaimed (released by
        bascule, not restored), active (used since the tool's threshold) and never active — one aggregate query."""
        held, accounts, matches = (table_of(models.LicenceAssignment), table_of(models.SourceAccount),
                                   table_of(models.IdentityMatch))
        since = case(*((held.c.platform == platform, literal(moment)) for platform, moment in active_since.items()),
                     else_=literal(None))
        migrated = exists(select(matches.c.id).where(
            matches.c.tenant_id == held.c.tenant_id, matches.c.platform == held.c.platform,
            matches.c.account_external_id == held.c.account_external_id, self._migrated(matches)))
        query = (select(held.c.platform, held.c.sku_key, held.c.state, func.count(),
                        func.sum(case((accounts.c.last_activity >= since, 1), else_=0)),
                        func.sum(case((accounts.c.last_activity.is_(None), 1), else_=0)),
                        func.sum(case((migrated, 1), else_=0)))
                 .select_from(held.outerjoin(accounts, and_(
                     accounts.c.tenant_id == held.c.tenant_id, accounts.c.platform == held.c.platform,
                     accounts.c.external_id == held.c.account_external_id)))
                 .where(held.c.tenant_id == self._tenant_id, held.c.state.in_(["assigned", "released"]),
                        self._targets(held, targets))
                 .group_by(held.c.platform, held.c.sku_key, held.c.state))
        parts: dict[SkuKey, dict[str, int]] = {key: {} for key in targets}
        for platform, sku, state, count, active, never, moved in self._session.execute(query):
            found = parts.setdefault((platform, sku), {})
            if state == "released":
                found["reclaimed"] = int(count)
            else:
                found.update(assigned=int(count), active=int(active or 0), never=int(never or 0),
                             required=int(count) - int(moved or 0))
        return {key: SeatCounts(assigned=found.get("assigned", 0), required_remaining=found.get("required", 0),
                                reclaimed=found.get("reclaimed", 0), active=found.get("active", 0),
                                never_active=found.get("never", 0)) for key, found in parts.items()}

    def credited(self, targets: Sequence[SkuKey], *, who: Literal["left", "migrated"]) -> dict[SkuKey, int]:
        """People credited to each SKU, each person once: `left` — every licence of theirs in `targets` released
        (savings.md §1), credited to the first released one; `migrated` — in a cut-over wave, credited to the first
        of their licences in `targets`. (Each person counts in one snapshot row only.)"""
        held, matches = table_of(models.LicenceAssignment), table_of(models.IdentityMatch)
        released = held.c.state == "released"
        key = held.c.platform + literal("\x1f") + held.c.sku_key
        per_person = (select(matches.c.person_anchor.label("person"),
                             func.min(case((released, key), else_=None) if who == "left" else key).label("key"))
                      .join(held, and_(held.c.tenant_id == matches.c.tenant_id, held.c.platform == matches.c.platform,
                                       held.c.account_external_id == matches.c.account_external_id))
                      .where(matches.c.tenant_id == self._tenant_id, held.c.state.in_(["assigned", "released"]),
                             self._targets(held, targets))
                      .group_by(matches.c.person_anchor))
        if who == "left":
            per_person = per_person.having(and_(func.sum(case((held.c.state == "assigned", 1), else_=0)) == 0,
                                                func.sum(case((released, 1), else_=0)) > 0))
        else:
            per_person = per_person.where(self._migrated(matches))
        people = per_person.subquery()
        found: dict[SkuKey, int] = {}
        for combined, count in self._session.execute(select(people.c.key, func.count()).group_by(people.c.key)):
            platform, _, sku = str(combined).partition("\x1f")
            found[(platform, sku)] = int(count)
        return found

    def seats_by(self, targets: Sequence[SkuKey], dimension: Literal["direction", "wave"]) -> list[GroupSeats]:
        """Seats of each SKU by direction (the first level of the person's department) or by the person's latest
        wave; seats of accounts matched to nobody are `(no person)`."""
        held, matches, people = (table_of(models.LicenceAssignment), table_of(models.IdentityMatch),
                                 table_of(models.Person))
        members, waves = table_of(models.WaveMember), table_of(models.Wave)
        if dimension == "direction":
            group = people.c.department
            joined = held.outerjoin(matches, and_(
                matches.c.tenant_id == held.c.tenant_id, matches.c.platform == held.c.platform,
                matches.c.account_external_id == held.c.account_external_id)).outerjoin(people, and_(
                    people.c.tenant_id == matches.c.tenant_id, people.c.anchor == matches.c.person_anchor))
        else:
            latest = (select(members.c.person_anchor, func.max(members.c.wave_id).label("wave_id"))
                      .join(waves, waves.c.id == members.c.wave_id)
                      .where(members.c.tenant_id == self._tenant_id, waves.c.state != WaveState.CANCELLED.value)
                      .group_by(members.c.person_anchor).subquery())
            group = waves.c.name
            joined = held.outerjoin(matches, and_(
                matches.c.tenant_id == held.c.tenant_id, matches.c.platform == held.c.platform,
                matches.c.account_external_id == held.c.account_external_id)).outerjoin(
                latest, latest.c.person_anchor == matches.c.person_anchor).outerjoin(
                waves, waves.c.id == latest.c.wave_id)
        migrated = and_(matches.c.person_anchor.is_not(None), self._migrated(matches))
        query = (select(group, matches.c.person_anchor.is_(None), held.c.platform, held.c.sku_key, held.c.state,
                        func.count(), func.sum(case((migrated, 1), else_=0)))
                 .select_from(joined)
                 .where(held.c.tenant_id == self._tenant_id, held.c.state.in_(["assigned", "released"]),
                        self._targets(held, targets))
                 .group_by(group, matches.c.person_anchor.is_(None), held.c.platform, held.c.sku_key, held.c.state))
        totals: dict[tuple[str, str, str], list[int]] = {}
        for name, unmatched, platform, sku, state, count, moved in self._session.execute(query):
            if unmatched:
                label = UNMATCHED
            elif dimension == "direction":
                label = str(name).split("/")[0].strip() if name else NO_DIRECTION
            else:
                label = str(name) if name else NO_WAVE
            found = totals.setdefault((label, platform, sku), [0, 0, 0])
            if state == "released":
                found[2] += int(count)
            else:
                found[0] += int(count)
                found[1] += int(moved or 0)
        return [GroupSeats(label, platform, sku, *counts) for (label, platform, sku), counts in sorted(totals.items())]

    # -- stored rows

    def write_snapshots(self, rows: Sequence[SnapshotRow]) -> int:
        """Upsert on (tenant, platform, SKU, contract, month): recomputing a month replaces its rows."""
        table = table_of(models.SavingsSnapshot)
        values = [{"tenant_id": self._tenant_id, "platform": row.platform.value, "sku_key": row.sku_key,
                   "contract_ref": row.contract_ref, "month": row.month, "assigned": row.assigned,
                   "active": row.active, "never_active": row.never_active, "reclaimed": row.reclaimed,
                   "committed": row.committed, "commit_floor": row.commit_floor,
                   "annual_unit_cost": row.annual_unit_cost.amount, "potential_annual": row.potential_annual.amount,
                   "stranded": row.stranded.amount, "realised_run_rate": row.realised_run_rate.amount,
                   "realised_in_fy": row.realised_in_fy.amount, "net": row.net.amount,
                   "gov_expected": row.gov_expected.amount, "status": row.status.value,
                   "evidence_refs": list(row.evidence_refs), "computed_at": row.computed_at} for row in rows]
        columns = [name for name in values[0] if name not in ("tenant_id", "platform", "sku_key", "contract_ref",
                                                                "month")] if values else []
        return upsert_plain(self._session, table, values, key=["tenant_id", "platform", "sku_key", "contract_ref",
                                                               "month"], update=columns)

    def drop_snapshots_except(self, month: date, keep: Sequence[tuple[str, str, str]]) -> int:
        """A month's rows no longer computed (a contract removed, a SKU gone) are dropped."""
        table = table_of(models.SavingsSnapshot)
        rows = self._session.execute(select(table.c.id, table.c.platform, table.c.sku_key, table.c.contract_ref)
                                     .where(table.c.tenant_id == self._tenant_id, table.c.month == month)).all()
        wanted = set(keep)
        gone = [row.id for row in rows if (row.platform, row.sku_key, row.contract_ref) not in wanted]
        if gone:
            self._session.execute(delete(table).where(table.c.id.in_(gone)))
        return len(gone)

    def write_breakdowns(self, month: date, rows: Sequence[Mapping[str, Any]], *, computed_at: datetime) -> None:
        """Replace a month's breakdown rows."""
        table = table_of(models.SavingsBreakdown)
        self._session.execute(delete(table).where(table.c.tenant_id == self._tenant_id, table.c.month == month))
        if rows:
            self._session.execute(table.insert(), [{"tenant_id": self._tenant_id, "month": month,
                                                    "computed_at": computed_at, **row} for row in rows])

    def snapshots(self, month: date) -> list[dict[str, Any]]:
        table = table_of(models.SavingsSnapshot)
        return [dict(row) for row in self._session.execute(
            select(table).where(table.c.tenant_id == self._tenant_id, table.c.month == month)
            .order_by(table.c.platform, table.c.sku_key, table.c.contract_ref)).mappings()]

    def breakdowns(self, month: date) -> list[dict[str, Any]]:
        table = table_of(models.SavingsBreakdown)
        return [dict(row) for row in self._session.execute(
            select(table).where(table.c.tenant_id == self._tenant_id, table.c.month == month)
            .order_by(table.c.dimension, table.c.key)).mappings()]

    def months(self) -> list[date]:
        """The months with stored snapshots, oldest first (the month breakdown)."""
        table = table_of(models.SavingsSnapshot)
        return list(self._session.execute(select(table.c.month).distinct().where(
            table.c.tenant_id == self._tenant_id).order_by(table.c.month)).scalars())

    def month_totals(self) -> list[tuple[date, Decimal, Decimal, Decimal, int]]:
        """Per stored month: potential, stranded, realised run-rate, reclaimed seats."""
        table = table_of(models.SavingsSnapshot)
        return [(month, Decimal(potential or 0), Decimal(stranded_ or 0), Decimal(realised or 0), int(seats or 0))
                for month, potential, stranded_, realised, seats in self._session.execute(
                    select(table.c.month, func.sum(table.c.potential_annual), func.sum(table.c.stranded),
                           func.sum(table.c.realised_run_rate), func.sum(table.c.reclaimed))
                    .where(table.c.tenant_id == self._tenant_id).group_by(table.c.month).order_by(table.c.month))]

    def funnel(self) -> list[WaveFunnel]:
        """Every wave's people down the funnel, counted in SQL by index (members by wave; evidence by participant
        and by host; releases by each person's matched accounts). Released seats are the report's (seats_by)."""
        wave, member, events, rooms, seen = (table_of(models.Wave), table_of(models.WaveMember),
                                             table_of(models.AdoptionEvent), table_of(models.Room),
                                             table_of(models.ProconnectObservation))
        matches, held = table_of(models.IdentityMatch), table_of(models.LicenceAssignment)
        joined = and_(events.c.tenant_id == self._tenant_id,
                      events.c.event == LiveKitEventName.PARTICIPANT_JOINED.value, events.c.authenticated.is_(True))
        as_participant = exists().where(seen.c.tenant_id == self._tenant_id,
                                        seen.c.person_anchor == member.c.person_anchor,
                                        exists().where(joined, events.c.participant_identity == seen.c.sub))
        as_host = exists().where(rooms.c.tenant_id == self._tenant_id, rooms.c.host_anchor == member.c.person_anchor,
                                 exists().where(joined, events.c.room_meet_id == rooms.c.meet_id,
                                                events.c.room_role == RoomRole.OWNER.value))
        released = exists().where(matches.c.tenant_id == self._tenant_id,
                                  matches.c.person_anchor == member.c.person_anchor,
                                  exists().where(held.c.tenant_id == self._tenant_id,
                                                 held.c.platform == matches.c.platform,
                                                 held.c.account_external_id == matches.c.account_external_id,
                                                 held.c.state == "released"))
        query = (select(wave.c.name, wave.c.state, func.count(member.c.id),
                        func.sum(case((or_(as_participant, as_host), 1), else_=0)),
                        func.sum(case((released, 1), else_=0)))
                 .select_from(wave).join(member, member.c.wave_id == wave.c.id, isouter=True)
                 .where(wave.c.tenant_id == self._tenant_id).group_by(wave.c.name, wave.c.state)
                 .order_by(wave.c.name))
        return [WaveFunnel(name, state, int(count or 0), int(visio or 0), int(people or 0))
                for name, state, count, visio, people in self._session.execute(query).tuples()]

    def write_summary(self, month: date, *, currency: str, document: Mapping[str, Any], computed_at: datetime) -> None:
        """Store (replace) the month's summary document."""
        table = table_of(models.SavingsSummary)
        upsert_plain(self._session, table, [{"tenant_id": self._tenant_id, "month": month, "currency": currency,
                                             "document": dict(document), "computed_at": computed_at}],
                     key=["tenant_id", "month"], update=["currency", "document", "computed_at"])

    def summary(self, month: date) -> tuple[str, dict[str, Any], datetime] | None:
        """The month's summary: currency, document, when it was computed; None before the month is computed."""
        table = table_of(models.SavingsSummary)
        row = self._session.execute(select(table.c.currency, table.c.document, table.c.computed_at).where(
            table.c.tenant_id == self._tenant_id, table.c.month == month)).first()
        return None if row is None else (row.currency, dict(row.document), row.computed_at)

    def summary_months(self) -> list[date]:
        """The months with a stored summary, latest first."""
        table = table_of(models.SavingsSummary)
        return list(self._session.execute(select(table.c.month).where(table.c.tenant_id == self._tenant_id)
                                          .order_by(table.c.month.desc())).scalars())
