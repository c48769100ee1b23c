"""Organisers' Outlook calendars in Exchange Online through Graph: the OrganiserCalendar role for the Zoom and Webex
series the add-ins left there (contracts/calendars.md §1).

- Scan: the organiser's own series masters and single events (`isOrganizer`, not cancelled, not Teams meetings:
  those are extracted and rewritten as Teams meetings), listed page by page;
  the join links are looked for client-side in the HTML body and the location (Graph cannot filter on bodies).
  A single event that ended before the window is left out.
- What is stored for an event (`StoredEvent.data`): its body, location and locations as JSON — exactly what a
  rollback PATCHes back; `etag` is the change key; the UID is the master's `iCalUId`, the one attendees hold.
- Rewrite: the add-in's block (found by the join URL between separator lines or in the one element that holds it,
  core.calendar) becomes the Visio block; the location becomes Visio only where it carried the join link. PATCH
  under `If-Match`: a 412 (the organiser, or Exchange itself, changed the item) means read again and rewrite the
  fresh copy. Exchange sends the update to the attendees itself (`schedules` is true): bascule mails nothing.
- Restore: the stored body and location under `If-Match`; when the organiser changed the event since, only the
  Visio block is put back to the add-in's block, their change kept.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from connectors.errors import ConnectorError, NotFound, PreconditionFailed, SyncTokenExpired
from connectors.graph import GraphCalendar
from connectors.graph import _instant as _instant
from core.calendar import BodyRefused, rewrite_teams_block, visio_location
from core.ical_rewrite import (
    CalendarChanges,
    CalendarObject,
    CalendarWrite,
    IcalRefusal,
    IcalRefused,
    StoredEvent,
    join_keys_in,
)

__all__ = ["GraphOrganiserCalendar"]

log = logging.getLogger(__name__)

SYSTEM = "graph-calendar"
MAX_CONFLICTS = 3
FIELDS = ("id", "iCalUId", "subject", "type", "start", "end", "isOrganizer", "isCancelled", "organizer",
          "attendees", "body", "location", "locations", "changeKey", "onlineMeetingProvider")


class GraphOrganiserCalendar:
    """The OrganiserCalendar role (connectors.roles) for Exchange Online mailboxes."""

    kind = "graph"

    def __init__(self, calendar: GraphCalendar) -> None:
        self._calendar = calendar

    def schedules(self, organiser: str) -> bool:
        """Exchange sends an organiser's update to the attendees itself (contracts/calendars.md §1.4)."""
        return True

    def syncs(self, organiser: str) -> bool:
        """Exchange tracks every mailbox's changes (calendarView delta)."""
        return True

    def scan(self, organiser: str, start: datetime, end: datetime) -> Iterator[StoredEvent]:
        mailbox = organiser.strip().lower()
        for event in self._calendar.events_json(mailbox, FIELDS):
            stored = _linked(mailbox, event, start)
            if stored is not None:
                yield stored

    def changes(self, organiser: str, start: datetime, end: datetime, token: str | None,
                known: Mapping[str, str | None]) -> CalendarChanges:
        """What changed in the mailbox since `token` (a calendarView deltaLink), through `calendarView/delta`.

        The delta speaks in instances: a series shows as its occurrences (with `seriesMasterId`), so each master
        named is read once and judged like the scan judges it. A removed instance names only its own id: when it
        is not an event bascule keeps (a single event), the masters it keeps are read again to learn which one
        went. Without a token, or when the service dropped it (410), the round starts over from the window and
        lists everything (`full`). The window is the first round's: Graph keeps it in the token."""
        mailbox = organiser.strip().lower()
        full = token is None
        try:
            items, link = self._calendar.calendar_view_delta(mailbox, window=(start, end), link=token)
        except SyncTokenExpired:
            log.info("calendar delta token dropped by the service: the mailbox is listed again")
            items, link = self._calendar.calendar_view_delta(mailbox, window=(start, end))
            full = True
        masters: dict[str, None] = {}
        singles: dict[str, Mapping[str, Any]] = {}
        removed: set[str] = set()
        for item in items:
            item_id = str(item.get("id") or "")
            if "@removed" in item:
                removed.add(item_id)
            elif item.get("type") in ("occurrence", "exception") and item.get("seriesMasterId"):
                masters[str(item["seriesMasterId"])] = None
            elif item.get("type") == "singleInstance" and item_id:
                singles[item_id] = item
        events: list[StoredEvent] = []
        gone: list[str] = [href for href in removed if href in known]
        read = 0
        recheck = [href for href in known if href not in masters and href not in singles and href not in gone] \
            if removed - set(known) else []
        # Instances that came without their body (a service sending fewer members) are read whole.
        for href in [href for href, single in singles.items() if "body" not in single]:
            masters[href] = None
            del singles[href]
        for href in [*masters, *recheck]:
            read += 1
            current: Mapping[str, Any] | None
            try:
                current = self._calendar.event_json(mailbox, href, FIELDS)
            except NotFound:
                current = None
            stored = _linked(mailbox, current, start) if current is not None else None
            if stored is None:
                if href in known:
                    gone.append(href)
            elif full or href not in known or stored.etag != known[href]:
                events.append(stored)     # new or changed (a master re-read only to learn what went is not)
        for href, single in singles.items():
            stored = _linked(mailbox, single, start)
            if stored is not None:
                events.append(stored)
            elif href in known:
                gone.append(href)
        if full:                 # a listing: what bascule keeps and the listing did not show is gone
            listed = {event.href for event in events}
            gone += [href for href in known if href not in listed and href not in gone]
        return CalendarChanges(events, gone, link, full, read)

    def read(self, organiser: str, href: str) -> StoredEvent | None:
        mailbox = organiser.strip().lower()
        try:
            event = self._calendar.event_json(mailbox, href, FIELDS)
        except NotFound:
            return None
        stored = _stored(mailbox, event)
        if stored is None:
            raise ConnectorError(SYSTEM, "the event has no id or no body")
        return stored

    def carries(self, event: StoredEvent, url: str) -> bool:
        """The body shows `url` (the Visio link)."""
        state = _state(event.data)
        return url in html.unescape(str(state["body"]["content"]))

    def rewrite(self, event: StoredEvent, *, join_key: str, visio_url: str, phone: str | None = None,
                pin: str | None = None) -> CalendarWrite | IcalRefused:
        current: StoredEvent | None = event
        conflicts = 0
        while current is not None:
            planned = _rewritten(current, join_key=join_key, visio_url=visio_url, phone=phone, pin=pin)
            if isinstance(planned, IcalRefused):
                return planned
            if planned is None:      # already shows the Visio block: nothing to send
                return CalendarWrite(current.href, current.data, current.data, current.etag, False, conflicts, {})
            body, location = planned
            try:
                self._calendar.update_event(current.organiser, current.href, body_html=body, location=location,
                                            if_match=current.etag)
            except PreconditionFailed:
                conflicts += 1
                log.info("graph event changed under the rewrite (412), re-read (conflict %d)", conflicts)
                if conflicts >= MAX_CONFLICTS:
                    raise
                current = self.read(current.organiser, current.href)
                continue
            written = self.read(current.organiser, current.href)
            after = written.data if written else current.data
            return CalendarWrite(current.href, current.data, after, written.etag if written else None, True,
                                 conflicts, {})
        raise NotFound(SYSTEM, "the event was deleted before it could be rewritten")

    def restore(self, organiser: str, href: str, *, original: bytes, rewritten: bytes,
                sequence: int) -> CalendarWrite:
        before, after = _state(original), _state(rewritten)
        conflicts = 0
        while True:
            current = self.read(organiser, href)
            if current is None:
                raise NotFound(SYSTEM, "the event was deleted after the cutover: nothing to restore")
            now = _state(current.data)
            kept: tuple[str, ...] = ()
            if now["body"]["content"] == after["body"]["content"]:
                body = str(before["body"]["content"])
            else:                     # the organiser changed it since: only the Visio block goes back
                body = _unrewrite(str(now["body"]["content"]), str(after["body"]["content"]),
                                  str(before["body"]["content"]))
                kept = ("body",)
            location = before["location"] if now["location"] == after["location"] else now["location"]
            locations = before["locations"] if now["location"] == after["location"] else now["locations"]
            try:
                self._calendar.update_event(organiser, href, body_html=body, location=location,
                                            locations=locations, if_match=current.etag)
            except PreconditionFailed:
                conflicts += 1
                if conflicts >= MAX_CONFLICTS:
                    raise
                continue
            written = self.read(organiser, href)
            data = written.data if written else current.data
            return CalendarWrite(href, current.data, data, written.etag if written else None, True, conflicts, {},
                                 kept)


def _state(data: bytes) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(data)
    return state


def _stored(mailbox: str, event: Mapping[str, Any]) -> StoredEvent | None:
    body = event.get("body")
    if not isinstance(event.get("id"), str) or not isinstance(body, Mapping) or not isinstance(body.get("content"),
                                                                                                str):
        return None
    location = event.get("location") if isinstance(event.get("location"), Mapping) else {}
    locations = [dict(item) for item in event.get("locations") or () if isinstance(item, Mapping)]
    state = {"body": {"contentType": str(body.get("contentType") or "html").lower(), "content": body["content"]},
             "location": dict(location or {}), "locations": locations}
    text = html.unescape(str(body["content"])) + "\n" + str((location or {}).get("displayName") or "")
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    attendees = tuple(str((a.get("emailAddress") or {}).get("address") or "").lower()
                      for a in event.get("attendees") or () if isinstance(a, Mapping))
    parsed = CalendarObject(uid=str(event.get("iCalUId") or ""), organizer=str(organizer).lower() if organizer
                            else None, summary=str(event.get("subject") or ""), sequence=0,
                            recurring=event.get("type") == "seriesMaster", overrides=0, attendees=attendees,
                            join_keys=tuple(key for key, _url in join_keys_in(text)))
    return StoredEvent(mailbox, str(event["id"]), str(event.get("changeKey") or "") or None,
                       orjson.dumps(state, option=orjson.OPT_SORT_KEYS), parsed)


def _rewritten(event: StoredEvent, *, join_key: str, visio_url: str, phone: str | None,
               pin: str | None) -> tuple[str, dict[str, Any]] | IcalRefused | None:
    """(body, location) to PATCH; None when the event already shows the Visio link and no longer the join link."""
    state = _state(event.data)
    content = str(state["body"]["content"])
    if state["body"]["contentType"] != "html":
        return IcalRefused(IcalRefusal.NOT_ICALENDAR, "the body is not HTML")
    urls = [url for key, url in join_keys_in(html.unescape(content)) if key == join_key]
    if not urls:
        if visio_url in html.unescape(content):
            return None
        return IcalRefused(IcalRefusal.LINK_NOT_FOUND, f"no {join_key.split(':', 1)[0]} join link in the body")
    body = rewrite_teams_block(content, join_url=urls[0], visio_url=visio_url, phone=phone, pin=pin)
    if isinstance(body, BodyRefused):
        return IcalRefused(IcalRefusal.LINK_OUTSIDE_BLOCK, f"{body.reason.value}: {body.detail}")
    location = dict(state["location"])
    shown = str(location.get("displayName") or "")
    if any(key == join_key for key, _url in join_keys_in(shown)):
        location = dict(visio_location(visio_url))
    return body, location


def _unrewrite(current: str, rewritten: str, original: str) -> str:
    """`current` with the span the rewrite changed (rewritten vs original) put back; refused when the organiser
    changed that span too."""
    prefix = 0
    while prefix < min(len(rewritten), len(original)) and rewritten[prefix] == original[prefix]:
        prefix += 1
    suffix = 0
    while (suffix < min(len(rewritten), len(original)) - prefix
           and rewritten[-1 - suffix] == original[-1 - suffix]):
        suffix += 1
    new, old = rewritten[prefix:len(rewritten) - suffix], original[prefix:len(original) - suffix]
    if current.count(new) != 1:
        raise ConnectorError(SYSTEM, "the organiser changed the Visio block since the cutover: restore it by hand")
    return current.replace(new, old, 1)


def _linked(mailbox: str, event: Mapping[str, Any], start: datetime) -> StoredEvent | None:
    """The event as stored when it is one bascule rewrites: the organiser's own, not cancelled, a series master or
    a single event not over before the window, not a Teams meeting, carrying a join link."""
    if (event.get("isOrganizer") is not True or event.get("isCancelled") is True
            or event.get("type") not in ("seriesMaster", "singleInstance")
            or event.get("onlineMeetingProvider") == "teamsForBusiness"):
        return None     # a Teams meeting is extracted and rewritten as such (flows.cutover REWRITE_EVENT)
    if event.get("type") == "singleInstance" and _ends_before(event, start):
        return None
    stored = _stored(mailbox, event)
    return stored if stored is not None and stored.parsed.join_keys else None


def _ends_before(event: Mapping[str, Any], start: datetime) -> bool:
    end = _instant(event.get("end"))
    return end is not None and end < start
