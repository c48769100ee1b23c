"""Licence releases as stored: who holds which source licence, what the release policy needs to know of them, and
the release outbox (`decommission`: planned → claimed → released | refused | failed, then maybe restored).

Everything is read in batches of people (never the tenant at once): `people_in_scope` pages the anchors, `facts`
reads what one batch needs in a few set-based queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from core.release_policy import ReleaseState
from core.waves import WaveState
from db import models
from db.models import table_of
from db.repositories import AuditRepository
from db.upsert import upsert_plain

__all__ = ["LicenceLine", "OutboxRow", "PersonFacts", "ReleaseRepository", "release_key"]

_CHUNK = 500  # values per IN (...) list


@dataclass(frozen=True, slots=True)
class LicenceLine:
    """One source licence a person holds (through a matched account) on a SKU that includes meetings."""

    platform: str
    account_external_id: str
    sku_key: str
    sku_name: str


@dataclass(slots=True)
class PersonFacts:
    """What the release policy needs of one person (core.release_policy.PersonEvidence is built from it)."""

    anchor: str
    department: str | None = None
    wave: str | None = None
    wave_state: WaveState | None = None
    cut_over_at: datetime | None = None
    verified_at: datetime | None = None
    last_meeting_seen: datetime | None = None   # the latest meeting on an old platform bascule first saw
    meeting_seen_since_cutover: datetime | None = None
    hosts_webinars: bool = False
    largest_invitees: int = 0
    licences: list[LicenceLine] = field(default_factory=list)
    wave_key: tuple[datetime, int] | None = None    # (created_at, id) of the wave kept: the latest


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A release (or restore) claimed from the outbox."""

    id: int
    key: str
    platform: str
    account_external_id: str
    sku_key: str
    person_anchor: str | None
    wave: str | None
    state: ReleaseState
    generation: int
    released_at: datetime | None


def release_key(platform: str, account: str, sku_key: str, generation: int) -> str:
    """The idempotency key of one release of one licence (a release after a restore is a new generation)."""
    return f"release:{platform}:{account}:{sku_key}:{generation}"


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start:start + _CHUNK])


class ReleaseRepository:
    """One tenant's licence releases. Never commits: the caller's transaction does."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._outbox = table_of(models.Decommission)
        self._sku_cache: dict[tuple[str, str], tuple[str, bool]] | None = None

    # -- reading what the policy needs

    def people_in_scope(self, *, wave: str | None = None, after: str | None = None, limit: int = 1000) -> list[str]:
        """Anchors of people holding a licence in scope (of one wave's members), in anchor order, after `after`.

        Walks identity_match in anchor order and keeps a person when one of their accounts holds such a licence
        (EXISTS on licence_assignment's unique index): each call reads about `limit` people's rows."""
        matches, held, skus = (table_of(models.IdentityMatch), table_of(models.LicenceAssignment),
                               table_of(models.LicenceSku))
        licensed = exists(select(held.c.id).join(skus, and_(
            skus.c.tenant_id == held.c.tenant_id, skus.c.platform == held.c.platform,
            skus.c.sku_key == held.c.sku_key)).where(
            held.c.tenant_id == matches.c.tenant_id, held.c.platform == matches.c.platform,
            held.c.account_external_id == matches.c.account_external_id, held.c.state == "assigned",
            skus.c.includes_meetings.is_(True)))
        query = select(matches.c.person_anchor).where(matches.c.tenant_id == self._tenant_id, licensed)
        if wave is not None:
            members, waves = table_of(models.WaveMember), table_of(models.Wave)
            query = query.where(exists(select(members.c.id).join(waves, waves.c.id == members.c.wave_id).where(
                members.c.tenant_id == self._tenant_id, members.c.person_anchor == matches.c.person_anchor,
                waves.c.name == wave)))
        if after is not None:
            query = query.where(matches.c.person_anchor > after)
        return [str(anchor) for anchor in self._session.execute(
            query.group_by(matches.c.person_anchor).order_by(matches.c.person_anchor).limit(limit)).scalars()]

    def _skus(self) -> dict[tuple[str, str], tuple[str, bool]]:
        """The tenant's SKUs (a few dozen): (platform, key) → (name, includes meetings)."""
        if self._sku_cache is None:
            skus = table_of(models.LicenceSku)
            self._sku_cache = {(row.platform, row.sku_key): (row.name, bool(row.includes_meetings))
                               for row in self._session.execute(select(
                                   skus.c.platform, skus.c.sku_key, skus.c.name, skus.c.includes_meetings).where(
                                   skus.c.tenant_id == self._tenant_id))}
        return self._sku_cache

    def facts(self, anchors: Sequence[str]) -> dict[str, PersonFacts]:
        """Per person of the batch (anchors in order, as people_in_scope gives them): licences in scope, latest
        wave, meetings still on the old platforms.

        The batch's accounts are read by anchor range on identity_match, then their licences and meetings by
        account on each table's (tenant, platform, account) index: a few queries per batch whose cost follows the
        batch, whatever the planner knows of the tables."""
        found = {anchor: PersonFacts(anchor) for anchor in anchors}
        if not anchors:
            return found
        first, last = min(anchors), max(anchors)
        people, matches, meetings = (table_of(models.Person), table_of(models.IdentityMatch),
                                     table_of(models.Meeting))
        held, members, waves = (table_of(models.LicenceAssignment), table_of(models.WaveMember),
                                table_of(models.Wave))
        owner: dict[tuple[str, str], str] = {}
        for anchor, platform, account in self._session.execute(
                select(matches.c.person_anchor, matches.c.platform, matches.c.account_external_id).where(
                    matches.c.tenant_id == self._tenant_id, matches.c.person_anchor >= first,
                    matches.c.person_anchor <= last)):
            if anchor in found:
                owner[(platform, account)] = anchor
        skus = self._skus()
        by_platform: dict[str, list[str]] = {}
        for platform, account in owner:
            by_platform.setdefault(platform, []).append(account)
        for platform, accounts in sorted(by_platform.items()):
            for chunk in _chunks(sorted(accounts)):
                for account, sku_key in self._session.execute(select(held.c.account_external_id, held.c.sku_key)
                                                              .where(held.c.tenant_id == self._tenant_id,
                                                                     held.c.platform == platform,
                                                                     held.c.account_external_id.in_(chunk),
                                                                     held.c.state == "assigned")):
                    name, with_meetings = skus.get((platform, sku_key), (sku_key, False))
                    if with_meetings:
                        found[owner[(platform, account)]].licences.append(
                            LicenceLine(platform, account, sku_key, name))
                for account, created, invitees, flags in self._session.execute(
                        select(meetings.c.host_account_id, meetings.c.created_at, meetings.c.invitee_count,
                               meetings.c.flags).where(
                            meetings.c.tenant_id == self._tenant_id, meetings.c.platform == platform,
                            meetings.c.host_account_id.in_(chunk), meetings.c.removed_at.is_(None))):
                    facts = found[owner[(platform, account)]]
                    if facts.last_meeting_seen is None or created > facts.last_meeting_seen:
                        facts.last_meeting_seen = created
                    facts.hosts_webinars |= bool((flags or {}).get("webinar"))
                    facts.largest_invitees = max(facts.largest_invitees, int(invitees or 0))
        for facts in found.values():
            facts.licences.sort(key=lambda line: (line.platform, line.sku_key, line.account_external_id))
        for anchor, department in self._session.execute(select(people.c.anchor, people.c.department).where(
                people.c.tenant_id == self._tenant_id, people.c.anchor >= first, people.c.anchor <= last)):
            if anchor in found:
                found[anchor].department = department
        # A person's wave: the latest one they were put in that was not cancelled.
        wave_rows = {row.id: row for row in self._session.execute(select(
            waves.c.id, waves.c.name, waves.c.state, waves.c.cut_over_at, waves.c.updated_at, waves.c.created_at)
            .where(waves.c.tenant_id == self._tenant_id, waves.c.state != WaveState.CANCELLED.value))}
        for chunk in _chunks(list(anchors)):
            for anchor, wave_id in self._session.execute(select(members.c.person_anchor, members.c.wave_id).where(
                    members.c.tenant_id == self._tenant_id, members.c.person_anchor.in_(chunk))):
                wave = wave_rows.get(wave_id)
                person = found[anchor]
                if wave is None or (person.wave_key is not None and (wave.created_at, wave.id) < person.wave_key):
                    continue
                person.wave, person.wave_state, person.cut_over_at = wave.name, WaveState(wave.state), wave.cut_over_at
                person.wave_key = (wave.created_at, wave.id)
                # A verified wave changes only to rolled back: its last update is when it was verified.
                person.verified_at = wave.updated_at if wave.state == WaveState.VERIFIED.value else None
        return found

    def current(self, lines: Sequence[LicenceLine]) -> dict[tuple[str, str, str], tuple[ReleaseState, str | None,
                                                                                          str | None]]:
        """The outbox state (and reason, detail) of these licences, where they have a row."""
        table = self._outbox
        found: dict[tuple[str, str, str], tuple[ReleaseState, str | None, str | None]] = {}
        accounts = sorted({line.account_external_id for line in lines})
        for chunk in _chunks(accounts):
            for row in self._session.execute(select(
                    table.c.platform, table.c.account_external_id, table.c.sku_key, table.c.state, table.c.reason,
                    table.c.detail).where(table.c.tenant_id == self._tenant_id,
                                          table.c.account_external_id.in_(chunk))):
                found[(row.platform, row.account_external_id, row.sku_key)] = (ReleaseState(row.state), row.reason,
                                                                               row.detail)
        return found

    # -- the outbox

    def plan(self, releases: Sequence[tuple[LicenceLine, str, str | None]], *, now: datetime) -> int:
        """Mark these licences (with their person and wave) planned: new rows, or rows planned/failed before (a
        claimed, released, refused or restored row is left as it is). Returns rows planned."""
        if not releases:
            return 0
        table = self._outbox
        upsert_plain(self._session, table, [
            {"tenant_id": self._tenant_id, "platform": line.platform, "account_external_id": line.account_external_id,
             "sku_key": line.sku_key, "action": _action_of(line.platform), "state": ReleaseState.PLANNED.value,
             "idempotency_key": release_key(line.platform, line.account_external_id, line.sku_key, 0),
             "person_anchor": anchor, "wave_name": wave, "generation": 0, "planned_at": now, "updated_at": now}
            for line, anchor, wave in releases], key=["tenant_id", "platform", "account_external_id", "sku_key"],
            update=[])
        planned = 0
        for line, anchor, wave in releases:
            result = self._session.execute(update(table).where(
                table.c.tenant_id == self._tenant_id, table.c.platform == line.platform,
                table.c.account_external_id == line.account_external_id, table.c.sku_key == line.sku_key,
                table.c.state.in_([ReleaseState.PLANNED.value, ReleaseState.FAILED.value])).values(
                state=ReleaseState.PLANNED.value, person_anchor=anchor, wave_name=wave, planned_at=now,
                updated_at=now))
            planned += int(getattr(result, "rowcount", 0) or 0)
        return planned

    def withdraw(self, anchors: Sequence[str], keep: set[tuple[str, str, str]]) -> int:
        """Planned releases of these people that the latest plan no longer holds releasable are withdrawn."""
        table = self._outbox
        withdrawn = 0
        for chunk in _chunks(list(anchors)):
            rows = self._session.execute(select(table.c.id, table.c.platform, table.c.account_external_id,
                                                table.c.sku_key).where(
                table.c.tenant_id == self._tenant_id, table.c.person_anchor.in_(chunk),
                table.c.state == ReleaseState.PLANNED.value)).all()
            gone = [row.id for row in rows if (row.platform, row.account_external_id, row.sku_key) not in keep]
            if gone:
                self._session.execute(delete(table).where(table.c.id.in_(gone)))
                withdrawn += len(gone)
        return withdrawn

    def claim(self, states: Sequence[ReleaseState], *, into: ReleaseState, run_id: str, limit: int,
              now: datetime, platforms: Sequence[str] | None = None) -> list[OutboxRow]:
        """Up to `limit` rows in `states` (not already tried by this run), moved to `into` for this run."""
        table = self._outbox
        query = select(table.c.id).where(
            table.c.tenant_id == self._tenant_id, table.c.state.in_([state.value for state in states]),
            or_(table.c.claimed_by.is_(None), table.c.claimed_by != run_id))
        if platforms is not None:
            query = query.where(table.c.platform.in_(list(platforms)))
        ids = list(self._session.execute(query.order_by(table.c.platform, table.c.id).limit(limit)).scalars())
        if not ids:
            return []
        self._session.execute(update(table).where(table.c.id.in_(ids)).values(
            state=into.value, claimed_by=run_id, claimed_at=now, attempts=table.c.attempts + 1, updated_at=now))
        return self._rows(ids)

    def stale(self, states: Sequence[ReleaseState], *, back_to: ReleaseState, run_id: str, now: datetime) -> int:
        """Rows a killed run claimed and never recorded go back to be tried again (the source is read first)."""
        table = self._outbox
        result = self._session.execute(update(table).where(
            table.c.tenant_id == self._tenant_id, table.c.state.in_([state.value for state in states]),
            table.c.claimed_by != run_id).values(state=back_to.value, claimed_by=None, updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def _rows(self, ids: Sequence[int]) -> list[OutboxRow]:
        table = self._outbox
        rows = self._session.execute(select(table).where(table.c.id.in_(list(ids)))
                                     .order_by(table.c.platform, table.c.id)).mappings().all()
        return [OutboxRow(row["id"], row["idempotency_key"] or "", row["platform"], row["account_external_id"],
                          row["sku_key"], row["person_anchor"], row["wave_name"], ReleaseState(row["state"]),
                          int(row["generation"] or 0), row["released_at"]) for row in rows]

    def record(self, row: OutboxRow, state: ReleaseState, *, now: datetime, run_id: str, actor: str,
               before: str | None = None, after: str | None = None, reason: str | None = None,
               detail: str | None = None, restore_days: int = 0) -> None:
        """The outcome of one release or restore: the outbox row, the licence's assignment state, an audit event."""
        table, held = self._outbox, table_of(models.LicenceAssignment)
        values: dict[str, Any] = {"state": state.value, "reason": reason, "detail": detail, "updated_at": now}
        licence = and_(held.c.tenant_id == self._tenant_id, held.c.platform == row.platform,
                       held.c.account_external_id == row.account_external_id, held.c.sku_key == row.sku_key)
        if state is ReleaseState.RELEASED:
            values.update(released_at=now, restore_until=now + timedelta(days=restore_days), restored_at=None,
                          before={"licence": before}, after={"licence": after}, evidence=f"run {run_id}")
            self._session.execute(update(held).where(licence).values(state="released", released_at=now))
        elif state is ReleaseState.RESTORED:
            values.update(restored_at=now, after={"licence": after})
            self._session.execute(update(held).where(licence).values(state="assigned", released_at=None))
        self._session.execute(update(table).where(table.c.id == row.id).values(**values))
        verb = "licence.restore" if state in (ReleaseState.RESTORED, ReleaseState.RESTORE_FAILED) else "licence.release"
        AuditRepository(self._session, self._tenant_id).record(
            actor=actor, action=verb, target_kind="licence",
            target_id=f"{row.platform}:{row.account_external_id}:{row.sku_key}", now=now, run_id=run_id,
            before={"state": row.state.value, "licence": before},
            after={"state": state.value, "licence": after, "reason": reason, "person": row.person_anchor,
                   "key": row.key})

    # -- restores

    def released_of(self, anchors: Sequence[str]) -> list[tuple[OutboxRow, datetime | None]]:
        """The released (or restore-pending/failed) licences of these people, with the end of their restore window."""
        table = self._outbox
        found: list[tuple[OutboxRow, datetime | None]] = []
        for chunk in _chunks(list(anchors)):
            rows = self._session.execute(select(table.c.id, table.c.restore_until).where(
                table.c.tenant_id == self._tenant_id, table.c.person_anchor.in_(chunk),
                table.c.state.in_([ReleaseState.RELEASED.value, ReleaseState.RESTORE_PENDING.value,
                                   ReleaseState.RESTORE_FAILED.value]))).all()
            until = {row.id: row.restore_until for row in rows}
            found += [(row, until[row.id]) for row in self._rows(list(until))]
        return found

    def ask_restore(self, ids: Sequence[int], *, now: datetime) -> int:
        table = self._outbox
        if not ids:
            return 0
        result = self._session.execute(update(table).where(table.c.id.in_(list(ids))).values(
            state=ReleaseState.RESTORE_PENDING.value, claimed_by=None, updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def anchors_released_in_wave(self, wave: str) -> list[str]:
        table = self._outbox
        return sorted(str(anchor) for anchor in self._session.execute(select(table.c.person_anchor).distinct().where(
            table.c.tenant_id == self._tenant_id, table.c.wave_name == wave,
            table.c.state == ReleaseState.RELEASED.value)).scalars() if anchor)

    # -- counts

    def counts(self) -> dict[str, int]:
        table = self._outbox
        return {str(state): int(count) for state, count in self._session.execute(
            select(table.c.state, func.count()).where(table.c.tenant_id == self._tenant_id)
            .group_by(table.c.state))}

    def reasons(self, state: ReleaseState) -> dict[str, int]:
        table = self._outbox
        return {str(reason or "?"): int(count) for reason, count in self._session.execute(
            select(table.c.reason, func.count()).where(table.c.tenant_id == self._tenant_id,
                                                       table.c.state == state.value).group_by(table.c.reason))}

    def released_by_sku(self) -> dict[tuple[str, str], int]:
        table = self._outbox
        return {(str(platform), str(sku)): int(count) for platform, sku, count in self._session.execute(
            select(table.c.platform, table.c.sku_key, func.count()).where(
                table.c.tenant_id == self._tenant_id, table.c.state == ReleaseState.RELEASED.value)
            .group_by(table.c.platform, table.c.sku_key))}


def _action_of(platform: str) -> str:
    """What releasing does on each platform (savings.md §6: record which action was taken)."""
    return {"zoom": "downgrade_to_basic", "teams": "remove_licence", "webex": "remove_licence"}.get(platform,
                                                                                                   "remove_licence")
