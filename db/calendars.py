"""What the calendar scan found in organisers' own calendars (organiser_event): the events carrying a join link,
matched to the extracted meetings by link key, and what matched nothing either way."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from core import Platform
from core.waves import Channel, HeldEvent
from db import models
from db.models import table_of
from db.upsert import upsert_plain

__all__ = ["CALENDAR_PLATFORMS", "CalendarRepository", "CalendarScanCounts", "SyncState"]

# The platforms whose series are rewritten in organisers' calendars by this scan (Teams series are found through
# their Graph event already).
CALENDAR_PLATFORMS = (Platform.ZOOM.value, Platform.WEBEX.value)


@dataclass(frozen=True, slots=True)
class CalendarScanCounts:
    """Where the scan leaves the tenant."""

    events: int                      # organisers' events carrying a Zoom or Webex link
    matched: int                     # … matched to an extracted meeting
    unmatched_events: int            # … whose link names no meeting bascule extracted
    meetings: int                    # current Zoom and Webex meetings
    meetings_in_a_calendar: int      # … held by an organiser's event
    meetings_without_event: int      # … that no calendar holds (their attendees can only get a new-UID update)

    def as_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class SyncState:
    """Where an organiser's next delta scan starts (models.CalendarSync)."""

    token: str | None
    window_start: datetime
    window_end: datetime
    listed_at: datetime


class CalendarRepository:
    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def organisers(self, *, after: str | None, limit: int) -> list[str]:
        """Hosts of current Zoom and Webex meetings, by address, the next `limit` after `after` (the checkpoint)."""
        meeting = models.Meeting
        query = (select(func.lower(meeting.host_email)).distinct()
                 .where(meeting.tenant_id == self._tenant_id, meeting.platform.in_(CALENDAR_PLATFORMS),
                        meeting.removed_at.is_(None), meeting.host_email != "")
                 .order_by(func.lower(meeting.host_email)).limit(limit))
        if after is not None:
            query = query.where(func.lower(meeting.host_email) > after)
        return [str(email) for email in self._session.execute(query).scalars()]

    def meetings_for(self, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
        """Link key → (platform, external id) of the current meetings those keys name (link or number key)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        meeting = models.Meeting
        rows = self._session.execute(
            select(meeting.link_key, meeting.number_key, meeting.platform, meeting.external_id)
            .where(meeting.tenant_id == self._tenant_id, meeting.removed_at.is_(None),
                   or_(meeting.link_key.in_(wanted), meeting.number_key.in_(wanted)))).all()
        found: dict[str, tuple[str, str]] = {}
        for link_key, number_key, platform, external_id in rows:
            for key in (link_key, number_key):
                if key in wanted:
                    found.setdefault(key, (platform, external_id))
        return found

    def store(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert the events one organiser's scan found (by system and href)."""
        if not rows:
            return
        upsert_plain(self._session, table_of(models.OrganiserEvent),
                     [{"tenant_id": self._tenant_id, **row} for row in rows], key=["tenant_id", "system", "href"],
                     update=["organiser", "uid", "etag", "sequence", "recurring", "attendees", "join_key",
                             "meeting_platform", "meeting_external_id", "raw", "schedules", "last_seen_pass",
                             "scanned_at"])

    def sync_states(self, system: str, organisers: Sequence[str]) -> dict[str, SyncState]:
        """Organiser → the change token and window of their last scan on `system`."""
        sync = models.CalendarSync
        rows = self._session.execute(select(sync).where(
            sync.tenant_id == self._tenant_id, sync.system == system, sync.organiser.in_(list(organisers)))).scalars()
        return {row.organiser: SyncState(row.token, row.window_start, row.window_end, row.listed_at) for row in rows}

    def save_sync_states(self, system: str, states: Mapping[str, SyncState], *, now: datetime) -> None:
        """Record where each organiser's next scan starts (in the transaction that stores what this one found)."""
        if not states:
            return
        upsert_plain(self._session, table_of(models.CalendarSync),
                     [{"tenant_id": self._tenant_id, "system": system, "organiser": organiser, "token": state.token,
                       "window_start": state.window_start, "window_end": state.window_end,
                       "listed_at": state.listed_at, "synced_at": now} for organiser, state in states.items()],
                     key=["tenant_id", "system", "organiser"],
                     update=["token", "window_start", "window_end", "listed_at", "synced_at"])

    def known_events(self, system: str, organisers: Sequence[str]) -> dict[str, dict[str, str | None]]:
        """Organiser → href → ETag of the events bascule keeps for them (what a delta is compared with)."""
        event = models.OrganiserEvent
        found: dict[str, dict[str, str | None]] = {organiser: {} for organiser in organisers}
        rows = self._session.execute(select(event.organiser, event.href, event.etag).where(
            event.tenant_id == self._tenant_id, event.system == system, event.organiser.in_(list(organisers))))
        for organiser, href, etag in rows:
            found.setdefault(organiser, {})[href] = etag
        return found

    def forget(self, system: str, hrefs: Sequence[str]) -> int:
        """Events a delta reported gone (deleted, link removed, out of the window)."""
        event = models.OrganiserEvent
        removed = 0
        for start in range(0, len(hrefs), 500):
            result = self._session.execute(delete(event).where(
                event.tenant_id == self._tenant_id, event.system == system,
                event.href.in_(list(hrefs[start:start + 500]))))
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    def forget_unseen(self, organisers: Sequence[str], *, pass_id: str) -> int:
        """Events of these organisers not seen by this pass (deleted, moved out of the window, link removed)."""
        event = models.OrganiserEvent
        result = self._session.execute(delete(event).where(
            event.tenant_id == self._tenant_id, event.organiser.in_(list(organisers)),
            event.last_seen_pass != pass_id))
        return int(getattr(result, "rowcount", 0) or 0)

    def counts(self) -> CalendarScanCounts:
        event, meeting = models.OrganiserEvent, models.Meeting
        events, matched = self._session.execute(
            select(func.count(), func.count(event.meeting_external_id)).where(event.tenant_id == self._tenant_id)
        ).one()
        held = (select(event.meeting_platform, event.meeting_external_id)
                .where(event.tenant_id == self._tenant_id, event.meeting_external_id.is_not(None)))
        current = select(meeting.platform, meeting.external_id).where(
            meeting.tenant_id == self._tenant_id, meeting.platform.in_(CALENDAR_PLATFORMS),
            meeting.removed_at.is_(None))
        meetings = self._session.execute(select(func.count()).select_from(current.subquery())).scalar_one()
        in_calendar = self._session.execute(select(func.count()).select_from(
            current.where(meeting.external_id.in_(held.with_only_columns(event.meeting_external_id))).subquery())
        ).scalar_one()
        return CalendarScanCounts(events=events, matched=matched, unmatched_events=events - matched,
                                  meetings=meetings, meetings_in_a_calendar=in_calendar,
                                  meetings_without_event=meetings - in_calendar)

    def matched_by_channel(self) -> dict[str, int]:
        """Matched events by who will tell their attendees (core.waves.HeldEvent.channel)."""
        event = models.OrganiserEvent
        rows = self._session.execute(select(event.schedules, func.count()).where(
            event.tenant_id == self._tenant_id, event.meeting_external_id.is_not(None)).group_by(event.schedules))
        counts = {Channel.CALENDAR_IN_PLACE.value: 0, Channel.ITIP_ORIGINAL_UID.value: 0}
        for schedules, n in rows:
            channel = Channel.ITIP_ORIGINAL_UID if schedules is False else Channel.CALENDAR_IN_PLACE
            counts[channel.value] += int(n)
        return counts

    def unmatched_events(self, limit: int = 1000) -> list[models.OrganiserEvent]:
        """Calendar events whose link names no extracted meeting (a meeting bascule did not see)."""
        event = models.OrganiserEvent
        return list(self._session.execute(select(event).where(
            event.tenant_id == self._tenant_id, event.meeting_external_id.is_(None))
            .order_by(event.organiser, event.id).limit(limit)).scalars())

    def held_for(self, meetings: Sequence[tuple[str, str]]) -> dict[tuple[str, str], HeldEvent]:
        """(platform, meeting id) → the organiser's own event holding it (the plan's in-place rewrite); when an
        organiser keeps two events with the same link, the first found is the one rewritten."""
        event = models.OrganiserEvent
        ids = sorted({external_id for _platform, external_id in meetings})
        found: dict[tuple[str, str], HeldEvent] = {}
        for start in range(0, len(ids), 500):
            rows = self._session.execute(select(event).where(
                event.tenant_id == self._tenant_id, event.meeting_external_id.in_(ids[start:start + 500]))
                .order_by(event.id)).scalars()
            for row in rows:
                key = (str(row.meeting_platform), str(row.meeting_external_id))
                found.setdefault(key, HeldEvent(row.system, row.organiser, row.href, row.uid, row.join_key,
                                                row.schedules))
        wanted = set(meetings)
        return {key: held for key, held in found.items() if key in wanted}


def scanned_row(*, system: str, organiser: str, href: str, uid: str, etag: str | None, sequence: int,
                recurring: bool, attendees: int, join_key: str, meeting: tuple[str, str] | None, raw: str,
                schedules: bool | None, pass_id: str, now: datetime) -> dict[str, Any]:
    """One organiser_event row."""
    return {"system": system, "organiser": organiser, "href": href, "uid": uid, "etag": etag, "sequence": sequence,
            "recurring": recurring, "attendees": attendees, "join_key": join_key, "schedules": schedules,
            "meeting_platform": meeting[0] if meeting else None,
            "meeting_external_id": meeting[1] if meeting else None, "raw": raw, "last_seen_pass": pass_id,
            "scanned_at": now}
