"""Flow calendar-scan: find, in each organiser's own calendar, the event that carries their Zoom or Webex meeting's
link (contracts/calendars.md §5.1–5.2), so that the cutover can rewrite it in place under its original UID.

The organisers are the hosts of the current Zoom and Webex meetings, taken in address order, `ORGANISERS_PER_BATCH`
at a time: one task per batch reads each organiser's calendar over the window (now → now + `window_days`), keeps
their own events that carry a join link, matches each to an extracted meeting by link key, and stores them, the
events of those organisers it no longer saw dropped and the batch's last address saved as the checkpoint — in one
transaction, so a killed scan resumes at the next batch. An organiser whose calendar cannot be read is quarantined
(LISTING_REFUSED) and the scan goes on. The summary counts events matched, events whose link names no extracted
meeting (a meeting bascule did not see), and meetings no calendar holds (their attendees can only get an update
under a new UID: a second event).
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from connectors.errors import ConnectorError, NotFound
from core import Quarantined, ReasonCode
from db.calendars import CalendarRepository, scanned_row
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


def _read_calendars(calendar: Any, organisers: list[str], start: datetime, end: datetime
                    ) -> tuple[list[tuple[str, Any]], dict[str, bool], list[Quarantined], int]:
    """Each organiser's linked events, whether their server tells attendees itself, the unreadable calendars
    (quarantined), and how many organisers have no calendar there at all (no mailbox, no collection: nothing to
    rewrite, their series go by mail)."""
    found: list[tuple[str, Any]] = []
    schedules: dict[str, bool] = {}
    quarantined: list[Quarantined] = []
    without = 0
    for organiser in organisers:
        try:
            events = [(organiser, event) for event in calendar.scan(organiser, start, end)]
            if events:   # who will tell their attendees: the server (RFC 6638), or bascule under the original UID
                schedules[organiser] = calendar.schedules(organiser)
            found += events
        except NotFound:
            without += 1
        except ConnectorError as error:
            quarantined.append(Quarantined(ReasonCode.LISTING_REFUSED, f"calendar:{organiser}",
                                           detail=str(error)[:200]))
    return found, schedules, quarantined, without


@task(name="scan-organisers", cache_policy=NO_CACHE)
def scan_organisers(database_url: str, tenant: TenantConfig, organisers: list[str], *, pass_id: str,
                    start: datetime, end: datetime, items_done: int) -> dict[str, int]:
    """Scan one batch of organisers' calendars and store what they hold (one transaction with the checkpoint)."""
    from flows.wiring import build_calendar

    with ExitStack() as stack:
        calendar = build_calendar(tenant, stack)
        found, schedules, quarantined, without = _read_calendars(calendar, organisers, start, end)
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        repository = CalendarRepository(session, tenant.id)
        meetings = repository.meetings_for(key for _organiser, event in found for key in event.parsed.join_keys)
        rows = []
        for organiser, event in found:
            key = next((key for key in event.parsed.join_keys if key in meetings), event.parsed.join_keys[0])
            rows.append(scanned_row(system=calendar.kind, organiser=organiser, href=event.href,
                                    uid=event.parsed.uid, etag=event.etag, sequence=event.parsed.sequence,
                                    recurring=event.parsed.recurring, attendees=len(event.parsed.attendees),
                                    join_key=key, meeting=meetings.get(key),
                                    raw=event.data.decode("utf-8", "replace"),
                                    schedules=schedules.get(organiser), pass_id=pass_id, now=now))
        repository.store(rows)
        reachable = [o for o in organisers if f"calendar:{o}" not in {q.record_key for q in quarantined}]
        repository.forget_unseen(reachable, pass_id=pass_id)
        if quarantined:
            QuarantineRepository(session, tenant.id).upsert(quarantined, stage=STAGE, source=SOURCE, now=now,
                                                            pass_id=pass_id)
        CheckpointRepository(session, tenant.id).save(SOURCE, STREAM, pass_id=pass_id, cursor=organisers[-1],
                                                      items_done=items_done + len(organisers), complete=False,
                                                      now=now)
    return {"organisers": len(organisers), "events": len(rows),
            "matched": sum(1 for row in rows if row["meeting_external_id"]), "unreadable": len(quarantined),
            "without_calendar": without}


@flow(name="calendar-scan", flow_run_name=run_name("calendar-scan"), log_prints=False)
@one_per_tenant("calendar-scan")
def scan_calendars(tenant_file: str, now: str | None = None,
                   batch_size: int = ORGANISERS_PER_BATCH) -> dict[str, Any]:
    """Scan the organisers' calendars of the tenant's [calendar] section, `batch_size` organisers per task (resumes
    a killed scan at the next batch)."""
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
    totals = {"organisers": 0, "events": 0, "matched": 0, "unreadable": 0, "without_calendar": 0}
    try:
        while True:
            checkpoint()
            with transaction(database_url) as session:
                batch = CalendarRepository(session, tenant.id).organisers(after=cursor, limit=batch_size)
            if not batch:
                break
            scanned = scan_organisers(database_url, tenant, batch, pass_id=pass_id, start=start, end=end,
                                      items_done=done)
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
        f"  this run             {run['organisers']} organisers read, {run['events']} events with a join link, "
        f"{run['unreadable']} calendars unreadable (quarantined), {run['without_calendar']} organisers without a "
        "calendar there",
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
