"""Flow calendar-scan: find, in each organiser's own calendar, the event that carries their Zoom or Webex meeting's
link (contracts/calendars.md §5.1–5.2), so that the cutover can rewrite it in place under its original UID.

The organisers are the hosts of the current Zoom and Webex meetings, taken in address order, `ORGANISERS_PER_BATCH`
at a time: one task per batch reads each organiser's calendar, keeps their own events that carry a join link,
matches each to an extracted meeting by link key, and stores them — with each organiser's new change token and the
batch's last address as the checkpoint, in one transaction, so a killed scan resumes at the next batch and reads
again only what it had not recorded.

The first scan lists each calendar whole over the window (now → now + `window_days`) and keeps the server's change
token (a CalDAV sync-token, RFC 6578; a Graph calendarView deltaLink). Later scans ask only what changed since:
new and edited events are read and judged, deleted ones (or ones whose link went) forgotten, the rest untouched.
A token the server dropped, a window slid by more than `relist_days`, or `full=True` lists the calendar whole again
(its events not seen then are forgotten). An organiser whose calendar cannot be read is quarantined
(LISTING_REFUSED) and the scan goes on. The summary counts events matched, events whose link names no extracted
meeting (a meeting bascule did not see), and meetings no calendar holds (their attendees can only get an update
under a new UID: a second event).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from connectors.errors import ConnectorError, NotFound
from core import Quarantined, ReasonCode
from core.ical_rewrite import StoredEvent
from db.calendars import CalendarRepository, SyncState, scanned_row
from db.repositories import CheckpointRepository, QuarantineRepository
from flows.budget import one_per_tenant
from flows.errors import OperatorError
from flows.passes import register_and_resume
from flows.runtime import StopRequested, cancelled, checkpoint, run_name, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

__all__ = ["ORGANISERS_PER_BATCH", "scan_calendars"]

STAGE = "calendar-scan"
SOURCE, STREAM = "calendar", "organiser-events"
ORGANISERS_PER_BATCH = 50


@dataclass(slots=True)
class _Read:
    """What one batch's calendars said."""

    found: list[tuple[str, StoredEvent]] = field(default_factory=list)   # (organiser, event new or changed)
    gone: list[str] = field(default_factory=list)          # hrefs to forget (a delta said so)
    listed: list[str] = field(default_factory=list)        # organisers listed whole (their unseen events forgotten)
    states: dict[str, SyncState] = field(default_factory=dict)   # where each organiser's next scan starts
    schedules: dict[str, bool] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    without: list[str] = field(default_factory=list)       # organisers with no calendar there (nothing kept)
    by_delta: int = 0
    events_read: int = 0


def _start_point(state: SyncState | None, *, start: datetime, end: datetime, relist_days: int,
                 full: bool) -> tuple[str | None, datetime, datetime, datetime | None]:
    """(token, window start, window end, last listing) an organiser's scan starts from: the stored token over the
    window of the listing behind it, unless a full scan is asked, the window's length changed, or it has slid by
    more than `relist_days` since (then no token: the calendar is listed whole under the current window)."""
    if (full or state is None or state.token is None or state.window_end - state.window_start != end - start
            or start - state.window_start > timedelta(days=relist_days)):
        return None, start, end, None
    return state.token, state.window_start, state.window_end, state.listed_at


def _read_calendars(calendar: Any, organisers: list[str], *, states: dict[str, SyncState],
                    known: dict[str, dict[str, str | None]], start: datetime, end: datetime, relist_days: int,
                    full: bool, now: datetime) -> _Read:
    """Each organiser's linked events new or changed since their token (all of them on a listing), whether their
    server tells attendees itself, the unreadable calendars (quarantined), and how many organisers have no calendar
    there at all (no mailbox, no collection: nothing to rewrite, their series go by mail)."""
    read = _Read()
    for organiser in organisers:
        token, window_start, window_end, listed_at = _start_point(states.get(organiser), start=start, end=end,
                                                                  relist_days=relist_days, full=full)
        try:
            changes = calendar.changes(organiser, window_start, window_end, token, known.get(organiser, {}))
            if changes.events:   # who will tell their attendees: the server (RFC 6638), or bascule's iTIP
                read.schedules[organiser] = calendar.schedules(organiser)
        except NotFound:      # no calendar (any more): nothing of theirs is kept
            read.without.append(organiser)
            continue
        except ConnectorError as error:
            read.quarantined.append(Quarantined(ReasonCode.LISTING_REFUSED, f"calendar:{organiser}",
                                                detail=str(error)[:200]))
            continue
        read.found.extend((organiser, event) for event in changes.events)
        read.gone.extend(changes.gone)
        read.events_read += changes.read
        if changes.full:
            read.listed.append(organiser)
        else:
            read.by_delta += 1
        read.states[organiser] = SyncState(changes.token, window_start, window_end,
                                           now if changes.full or listed_at is None else listed_at)
    return read


@task(name="scan-organisers", cache_policy=NO_CACHE)
def scan_organisers(database_url: str, tenant: TenantConfig, organisers: list[str], *, pass_id: str,
                    start: datetime, end: datetime, items_done: int, full: bool = False) -> dict[str, int]:
    """Scan one batch of organisers' calendars (only what changed since each one's token) and store what they
    hold, with the new tokens and the checkpoint, in one transaction."""
    from flows.wiring import build_calendar

    assert tenant.calendar is not None
    with ExitStack() as stack:
        calendar = build_calendar(tenant, stack)
        with transaction(database_url) as session:
            repository = CalendarRepository(session, tenant.id)
            states = repository.sync_states(calendar.kind, organisers)
            known = repository.known_events(calendar.kind, organisers)
        read = _read_calendars(calendar, organisers, states=states, known=known, start=start, end=end,
                               relist_days=tenant.calendar.relist_days, full=full, now=datetime.now(UTC))
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        repository = CalendarRepository(session, tenant.id)
        meetings = repository.meetings_for(key for _organiser, event in read.found for key in event.parsed.join_keys)
        rows = []
        for organiser, event in read.found:
            key = next((key for key in event.parsed.join_keys if key in meetings), event.parsed.join_keys[0])
            rows.append(scanned_row(system=calendar.kind, organiser=organiser, href=event.href,
                                    uid=event.parsed.uid, etag=event.etag, sequence=event.parsed.sequence,
                                    recurring=event.parsed.recurring, attendees=len(event.parsed.attendees),
                                    join_key=key, meeting=meetings.get(key),
                                    raw=event.data.decode("utf-8", "replace"),
                                    schedules=read.schedules.get(organiser), pass_id=pass_id, now=now))
        repository.store(rows)
        forgotten = repository.forget(calendar.kind, read.gone)
        forgotten += repository.forget_unseen([*read.listed, *read.without], pass_id=pass_id)
        repository.save_sync_states(calendar.kind, read.states, now=now)
        if read.quarantined:
            QuarantineRepository(session, tenant.id).upsert(read.quarantined, stage=STAGE, source=SOURCE, now=now,
                                                            pass_id=pass_id)
        CheckpointRepository(session, tenant.id).save(SOURCE, STREAM, pass_id=pass_id, cursor=organisers[-1],
                                                      items_done=items_done + len(organisers), complete=False,
                                                      now=now)
    return {"organisers": len(organisers), "events": len(rows),
            "matched": sum(1 for row in rows if row["meeting_external_id"]), "unreadable": len(read.quarantined),
            "without_calendar": len(read.without), "listed": len(read.listed), "by_delta": read.by_delta,
            "events_read": read.events_read, "forgotten": forgotten}


@flow(name="calendar-scan", flow_run_name=run_name("calendar-scan"), log_prints=False)
@one_per_tenant("calendar-scan")
def scan_calendars(tenant_file: str, now: str | None = None, batch_size: int = ORGANISERS_PER_BATCH,
                   full: bool = False) -> dict[str, Any]:
    """Scan the organisers' calendars of the tenant's [calendar] section, `batch_size` organisers per task (resumes
    a killed scan at the next batch): only what changed since each organiser's last scan, or every calendar whole
    with `full`."""
    logger = get_run_logger()
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    if tenant.calendar is None:
        raise OperatorError(f"tenant {tenant.id} has no [calendar] section: say where organisers keep their "
                            "Zoom and Webex series (system = \"caldav\" with [calendar.caldav], or \"graph\")")
    database_url = settings.database
    start = datetime.fromisoformat(now) if now else datetime.now(UTC)
    end = start + timedelta(days=tenant.calendar.window_days)
    state = register_and_resume(database_url, tenant, tenant_file, source=SOURCE, stream=STREAM)
    pass_id, cursor, done = state.pass_id, state.cursor, state.items_done
    resumed_after = done
    if done:
        logger.info("calendar scan of %s resumed after %d organisers", tenant.id, done)
    totals = dict.fromkeys(("organisers", "events", "matched", "unreadable", "without_calendar", "listed",
                            "by_delta", "events_read", "forgotten"), 0)
    try:
        while True:
            checkpoint()
            with transaction(database_url) as session:
                batch = CalendarRepository(session, tenant.id).organisers(after=cursor, limit=batch_size)
            if not batch:
                break
            scanned = scan_organisers(database_url, tenant, batch, pass_id=pass_id, start=start, end=end,
                                      items_done=done, full=full)
            for name, value in scanned.items():
                totals[name] += value
            cursor, done = batch[-1], done + len(batch)
    except StopRequested as stopped:
        return cancelled(stopped)  # type: ignore[no-any-return]
    with transaction(database_url) as session:
        CheckpointRepository(session, tenant.id).save(SOURCE, STREAM, pass_id=pass_id, cursor=None,
                                                      items_done=done, complete=True, now=datetime.now(UTC))
        QuarantineRepository(session, tenant.id).resolve_unseen(source=SOURCE, pass_id=pass_id,
                                                               now=datetime.now(UTC))
        counts = CalendarRepository(session, tenant.id).counts()
        by_channel = CalendarRepository(session, tenant.id).matched_by_channel()
        first = CalendarRepository(session, tenant.id).organisers(after=None, limit=1)
    schedules = _server_schedules(tenant, first[0]) if first else None
    summary = {"tenant": tenant.id, "system": tenant.calendar.system, "window": [start.isoformat(), end.isoformat()],
               "resumed_after": resumed_after, "this_run": totals, **counts.as_json(),
               # Who will tell the attendees of an in-place rewrite: the server (RFC 6638), or bascule's iTIP
               # under the original UID when the server does not schedule.
               "server_schedules": schedules,
               "series_by_channel": by_channel}
    create_table_artifact(key=f"calendar-scan-{tenant.id}", table=[{"measure": k, "value": v}
                                                                   for k, v in counts.as_json().items()],
                          description=f"Calendar scan of {tenant.id}: organisers' events and the meetings they hold")
    logger.info("calendar scan of %s: %d events, %d matched, %d meetings without an event", tenant.id,
                counts.events, counts.matched, counts.meetings_without_event)
    return summary


def _server_schedules(tenant: TenantConfig, organiser: str) -> bool | None:
    """Whether the calendar server delivers an organiser's changes itself (None when it could not be asked)."""
    from flows.wiring import build_calendar

    try:
        with ExitStack() as stack:
            return build_calendar(tenant, stack).schedules(organiser)
    except ConnectorError:
        return None


def render_scan(summary: dict[str, Any]) -> str:
    """The scan's summary for people to read."""
    run = summary["this_run"]
    return "\n".join([
        f"calendar scan — tenant {summary['tenant']} ({summary['system']}, "
        f"{summary['window'][0][:10]} → {summary['window'][1][:10]})",
        f"  this run             {run['organisers']} organisers read ({run['listed']} listed whole, "
        f"{run['by_delta']} by their changes only; {run['events_read']} events read), {run['events']} events with a "
        f"join link new or changed, {run['forgotten']} gone, {run['unreadable']} calendars unreadable "
        f"(quarantined), {run['without_calendar']} organisers without a calendar there",
        f"  events               {summary['events']} in organisers' calendars: {summary['matched']} matched to an "
        f"extracted meeting, {summary['unmatched_events']} naming a meeting bascule did not extract",
        f"  meetings             {summary['meetings']} Zoom and Webex meetings: {summary['meetings_in_a_calendar']} "
        f"found in their organiser's calendar, {summary['meetings_without_event']} in none (an update could reach "
        "their attendees only under a new UID: a second event)",
        "  attendees told by    " + {True: "Exchange Online itself (an organiser's update goes to the attendees)"
                                     if summary["system"] == "graph" else
                                     "the calendar server itself (RFC 6638 scheduling)",
                                     False: "bascule's iTIP under the original UID (the server does not schedule)",
                                     None: "unknown (the server could not be asked)"}[summary["server_schedules"]],
    ])
