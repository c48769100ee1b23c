"""Adoption evidence as stored: LiveKit events (webhooks, polls), once each (the event id is the key); the ProConnect
`sub` observations they give; what the per-person summary reads (migrated rooms, wave members, source activity)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from core.adoption import AdoptionEvent, LiveKitEventName, MigratedRoom, RoomRole, SubSighting, parse_room_role
from db import models
from db.models import table_of
from db.upsert import upsert_plain


@dataclass(frozen=True, slots=True)
class SeenInVisio:
    """One person's evidence, as core.adoption.summarise_adoption counts it: first seen, the distinct days (in the
    zone asked for), whether they hosted (joined as a room's owner, or joined their own migrated room)."""

    first_seen: datetime | None = None
    days: frozenset[date] = frozenset()
    hosted: bool = False


_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start:start + _CHUNK])


class AdoptionRepository:
    """One tenant's adoption events. Never commits: the caller's transaction does."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def record(self, events: Sequence[AdoptionEvent]) -> int:
        """Store events not seen before; a duplicate or late delivery of a known event id changes nothing (the
        first stored stays). Returns how many were new. `occurred_at` is when LiveKit says the event happened."""
        if not events:
            return 0
        before = self.count()
        rows = [{"tenant_id": self._tenant_id, "event_id": event.event_id, "event": str(event.event),
                 "room_meet_id": event.room_name, "participant_identity": event.participant_identity,
                 "authenticated": bool(event.authenticated), "room_role": str(event.room_role) if event.room_role
                 else None, "occurred_at": event.created_at} for event in events]
        upsert_plain(self._session, table_of(models.AdoptionEvent), rows, key=["tenant_id", "event_id"], update=[])
        return self.count() - before

    def count(self) -> int:
        table = table_of(models.AdoptionEvent)
        return int(self._session.execute(select(func.count()).select_from(table)
                                         .where(table.c.tenant_id == self._tenant_id)).scalar_one())

    def events(self, *, batch: int = 5000) -> Iterator[AdoptionEvent]:
        """Every stored event of the tenant, read in pages by row id (never the whole table at once)."""
        table = table_of(models.AdoptionEvent)
        after = 0
        while True:
            rows = self._session.execute(
                select(table.c.id, table.c.event_id, table.c.event, table.c.room_meet_id,
                       table.c.participant_identity, table.c.authenticated, table.c.room_role, table.c.occurred_at)
                .where(table.c.tenant_id == self._tenant_id, table.c.id > after)
                .order_by(table.c.id).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                try:
                    name = LiveKitEventName(row.event)
                except ValueError:
                    continue
                yield AdoptionEvent(event_id=row.event_id, event=name, room_name=row.room_meet_id,
                                    created_at=row.occurred_at, participant_identity=row.participant_identity,
                                    authenticated=bool(row.authenticated), room_role=parse_room_role(row.room_role))
            after = rows[-1].id

    def migrated_rooms(self, wave: str | None = None) -> list[MigratedRoom]:
        """The Visio rooms bascule created for the tenant (of one wave), by Meet UUID."""
        room, waves = table_of(models.Room), table_of(models.Wave)
        query = select(room.c.meet_id, room.c.host_anchor).where(room.c.tenant_id == self._tenant_id)
        if wave is not None:
            query = query.join(waves, waves.c.id == room.c.wave_id).where(waves.c.name == wave)
        return [MigratedRoom(row.meet_id, row.host_anchor) for row in self._session.execute(
            query.order_by(room.c.meet_id))]

    def wave_exists(self, wave: str) -> bool:
        waves = table_of(models.Wave)
        return self._session.execute(select(waves.c.id).where(
            waves.c.tenant_id == self._tenant_id, waves.c.name == wave)).first() is not None

    def migrated_people(self, wave: str | None = None) -> list[str]:
        """The anchors of the people in the tenant's waves (of one wave), sorted."""
        members, waves = table_of(models.WaveMember), table_of(models.Wave)
        query = select(members.c.person_anchor).distinct().where(members.c.tenant_id == self._tenant_id)
        if wave is not None:
            query = query.join(waves, waves.c.id == members.c.wave_id).where(waves.c.name == wave)
        return sorted(str(anchor) for anchor in self._session.execute(query).scalars())

    def record_sightings(self, sightings: Sequence[SubSighting], *, source: str = "livekit") -> int:
        """Store each (person, sub) seen, widening its first/last seen in the database itself (so two runs at once
        cannot narrow it); seeing the same again changes nothing. Returns how many observations were new."""
        if not sightings:
            return 0
        table = table_of(models.ProconnectObservation)
        mine = table.c.tenant_id == self._tenant_id
        before = int(self._session.execute(select(func.count()).select_from(table).where(mine)).scalar_one())
        upsert_plain(self._session, table, [
            {"tenant_id": self._tenant_id, "person_anchor": sighting.person_anchor, "sub": sighting.sub,
             "source": source, "first_seen_at": sighting.first_seen, "last_seen_at": sighting.last_seen}
            for sighting in sightings], key=["tenant_id", "person_anchor", "sub", "source"], update=[])
        for sighting in sightings:
            self._session.execute(
                update(table).where(mine, table.c.person_anchor == sighting.person_anchor,
                                    table.c.sub == sighting.sub, table.c.source == source,
                                    (table.c.first_seen_at > sighting.first_seen)
                                    | (table.c.last_seen_at < sighting.last_seen))
                .values(first_seen_at=case((table.c.first_seen_at > sighting.first_seen, sighting.first_seen),
                                           else_=table.c.first_seen_at),
                        last_seen_at=case((table.c.last_seen_at < sighting.last_seen, sighting.last_seen),
                                          else_=table.c.last_seen_at)))
        after = int(self._session.execute(select(func.count()).select_from(table).where(mine)).scalar_one())
        return after - before

    def seen_in_visio(self, anchors: Sequence[str], *, zone: ZoneInfo) -> dict[str, SeenInVisio]:
        """Each person of a batch as the evidence shows them (a logged-in participant joining a room bascule
        migrated, each event once), read by index — rooms by host, events by room and by participant — never the
        tenant's events at once. A person is known by their subs: the ProConnect observations stored, and whoever
        joined their own migrated room as its owner."""
        if not anchors:
            return {}
        wanted = set(anchors)
        first, last = min(anchors), max(anchors)
        rooms, events, seen = (table_of(models.Room), table_of(models.AdoptionEvent),
                               table_of(models.ProconnectObservation))
        joined = and_(events.c.tenant_id == self._tenant_id,
                      events.c.event == LiveKitEventName.PARTICIPANT_JOINED.value,
                      events.c.authenticated.is_(True), events.c.participant_identity.is_not(None))
        subs: dict[str, set[str]] = {}
        for anchor, sub in self._session.execute(select(seen.c.person_anchor, seen.c.sub).where(
                seen.c.tenant_id == self._tenant_id, seen.c.person_anchor >= first, seen.c.person_anchor <= last)):
            if anchor in wanted:
                subs.setdefault(sub, set()).add(anchor)
        host_of = {meet_id: anchor for meet_id, anchor in self._session.execute(
            select(rooms.c.meet_id, rooms.c.host_anchor).where(
                rooms.c.tenant_id == self._tenant_id, rooms.c.host_anchor >= first, rooms.c.host_anchor <= last))
            if anchor in wanted}
        for chunk in _chunks(sorted(host_of)):
            for meet_id, sub in self._session.execute(select(events.c.room_meet_id, events.c.participant_identity)
                                                      .where(joined, events.c.room_meet_id.in_(chunk),
                                                             events.c.room_role == RoomRole.OWNER.value)):
                subs.setdefault(sub, set()).add(host_of[meet_id])
        moments: dict[str, list[datetime]] = {anchor: [] for anchor in wanted}
        hosted: set[str] = set()
        for chunk in _chunks(sorted(subs)):
            for sub, moment, role, room_host in self._session.execute(
                    select(events.c.participant_identity, events.c.occurred_at, events.c.room_role, rooms.c.host_anchor)
                    .join(rooms, and_(rooms.c.tenant_id == events.c.tenant_id,
                                      rooms.c.meet_id == events.c.room_meet_id))
                    .where(joined, events.c.participant_identity.in_(chunk))):
                for anchor in subs[sub]:
                    moments[anchor].append(moment)
                    if role == RoomRole.OWNER.value or room_host == anchor:
                        hosted.add(anchor)
        return {anchor: SeenInVisio(min(found, default=None), frozenset(m.astimezone(zone).date() for m in found),
                                    anchor in hosted) for anchor, found in moments.items()}

    def owner_sightings(self) -> list[SubSighting]:
        """Who owns each migrated room's joins, as core.adoption.observed_subs reads them (a logged-in participant
        joining a migrated room with a known host, as its owner), aggregated in SQL: one row per (host, sub) with
        its first and last time, never the tenant's events in memory."""
        events, rooms = table_of(models.AdoptionEvent), table_of(models.Room)
        query = (select(rooms.c.host_anchor, events.c.participant_identity, func.min(events.c.occurred_at),
                        func.max(events.c.occurred_at))
                 .join(rooms, (rooms.c.tenant_id == events.c.tenant_id) & (rooms.c.meet_id == events.c.room_meet_id))
                 .where(events.c.tenant_id == self._tenant_id,
                        events.c.event == LiveKitEventName.PARTICIPANT_JOINED.value,
                        events.c.authenticated.is_(True), events.c.participant_identity.is_not(None),
                        events.c.room_role == RoomRole.OWNER.value, rooms.c.host_anchor.is_not(None))
                 .group_by(rooms.c.host_anchor, events.c.participant_identity)
                 .order_by(rooms.c.host_anchor, events.c.participant_identity))
        return [SubSighting(str(anchor), str(sub), first, last)
                for anchor, sub, first, last in self._session.execute(query)]

    def subs_by_person(self) -> dict[str, set[str]]:
        """Every sub observed for each person (any source)."""
        table = table_of(models.ProconnectObservation)
        found: dict[str, set[str]] = {}
        for anchor, sub in self._session.execute(select(table.c.person_anchor, table.c.sub).where(
                table.c.tenant_id == self._tenant_id)):
            found.setdefault(anchor, set()).add(sub)
        return found

    def last_activity(self, people: Sequence[str]) -> dict[str, dict[str, datetime | None]]:
        """Per person, the latest activity each matched source account carries, by platform (None when the
        source does not give it: a Teams tenant without Entra ID P1 or AuditLog.Read.All, a user who never signed
        in)."""
        accounts, matches = table_of(models.SourceAccount), table_of(models.IdentityMatch)
        wanted = set(people)
        found: dict[str, dict[str, datetime | None]] = {}
        query = (select(matches.c.person_anchor, accounts.c.platform, func.max(accounts.c.last_activity))
                 .join(accounts, (accounts.c.tenant_id == matches.c.tenant_id)
                       & (accounts.c.platform == matches.c.platform)
                       & (accounts.c.external_id == matches.c.account_external_id))
                 .where(matches.c.tenant_id == self._tenant_id)
                 .group_by(matches.c.person_anchor, accounts.c.platform))
        for anchor, platform, last in self._session.execute(query):
            if anchor in wanted:
                found.setdefault(anchor, {})[str(platform)] = last
        return found
