"""Adoption flows: polling LiveKit for instances whose operators send no webhooks, ProConnect `sub` observations from
the stored events (webhooks and polls alike), and the per-person adoption summary.

Polling (shared/contracts/livekit.md §2) asks RoomService, one batch of migrated rooms per task (never one task per
room), which rooms are in use and who is in them. Each logged-in participant becomes a `participant_joined` event
with a deterministic id, `poll:<room>:<identity>:<day>`, stored like a webhook: polling again the same day changes
nothing. Guests are not evidence. Observations are then derived from every stored event, idempotently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.adoption import PersonAdoption, polled_events
from core.release_policy import VISIO_DAY_ZONE
from db.adoption import AdoptionRepository
from flows.budget import one_per_tenant
from flows.errors import OperatorError
from flows.runtime import checkpoint, run_name, stoppable, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

__all__ = ["AdoptionReport", "PollReport", "adoption_report", "observe_subs", "poll_adoption", "poll_rooms",
           "render_poll", "render_report"]

ROOMS_PER_BATCH = 500
PEOPLE_PER_BATCH = 1000
SHOWN_ROWS = 20


class PollingNotConfigured(OperatorError):
    """The tenant file has no [visio.livekit] section to poll."""


@dataclass(frozen=True, slots=True)
class PollReport:
    """One polling pass: rooms asked about, rooms in use, evidence new and already known, guests seen."""

    tenant: str
    polled_at: datetime
    rooms: int
    active_rooms: int
    evidence_new: int
    evidence_known: int
    guests: int
    observations_new: int


@dataclass(frozen=True, slots=True)
class AdoptionReport:
    """Per-person adoption of one tenant (or wave): counts and every person's row."""

    tenant: str
    wave: str | None
    people: int
    seen: int
    not_seen: int
    hosted: int
    rows: list[PersonAdoption] = field(default_factory=list)
    observations_new: int = 0


BatchRunner = Callable[[str, str, object, Sequence[str], datetime], tuple[int, int, int, int]]


def poll_rooms(database: str, tenant_id: str, rooms_client: object, *, seen_at: datetime,
               batch_size: int = ROOMS_PER_BATCH, run_batch: BatchRunner | None = None) -> PollReport:
    """The polling pass (the flow runs it with one Prefect task per batch; tests may call it as is): one
    RoomService batch per `batch_size` rooms, each batch's evidence stored in its own transaction, then the sub
    observations from every stored event."""
    run_batch = run_batch or _poll_batch
    with transaction(database) as session:
        rooms = [room.meet_id for room in AdoptionRepository(session, tenant_id).migrated_rooms()]
    active = new = known = guests = 0
    for start in range(0, len(rooms), batch_size):
        checkpoint()
        counts = run_batch(database, tenant_id, rooms_client, rooms[start:start + batch_size], seen_at)
        active, new, known, guests = active + counts[0], new + counts[1], known + counts[2], guests + counts[3]
    observations = _observe(database, tenant_id)
    return PollReport(tenant=tenant_id, polled_at=seen_at, rooms=len(rooms), active_rooms=active, evidence_new=new,
                      evidence_known=known, guests=guests, observations_new=observations)


def _poll_batch(database: str, tenant_id: str, rooms_client: object, names: Sequence[str],
                seen_at: datetime) -> tuple[int, int, int, int]:
    from connectors.livekit import LiveKitRooms

    assert isinstance(rooms_client, LiveKitRooms)
    active = [room.name for room in rooms_client.fetch_active_rooms(names)]
    participants = rooms_client.fetch_participants(active) if active else {}
    events = polled_events(participants, seen_at=seen_at)
    guests = sum(1 for people in participants.values() for person in people if not person.authenticated)
    with transaction(database) as session:
        new = AdoptionRepository(session, tenant_id).record(events)
    return len(active), new, len(events) - new, guests


def _observe(database: str, tenant_id: str) -> int:
    """Sub observations from every stored event of the tenant (webhooks and polls), aggregated in the database:
    idempotent."""
    with transaction(database) as session:
        repository = AdoptionRepository(session, tenant_id)
        return repository.record_sightings(repository.owner_sightings())


def summarise(database: str, tenant_id: str, wave: str | None = None) -> AdoptionReport:
    """The per-person summary of the tenant's migrated people (of one wave), after recording sub observations."""
    observations = _observe(database, tenant_id)
    with transaction(database) as session:
        repository = AdoptionRepository(session, tenant_id)
        if wave is not None and not repository.wave_exists(wave):
            raise OperatorError(f"tenant {tenant_id} has no wave {wave!r}")
        people = repository.migrated_people(wave)
    rows: list[PersonAdoption] = []
    for start in range(0, len(people), PEOPLE_PER_BATCH):   # evidence read per batch of people, by index
        batch = people[start:start + PEOPLE_PER_BATCH]
        with transaction(database) as session:
            repository = AdoptionRepository(session, tenant_id)
            evidence = repository.seen_in_visio(batch, zone=VISIO_DAY_ZONE)
            activity = repository.last_activity(batch)
        for anchor in batch:
            found = evidence.get(anchor)
            rows.append(PersonAdoption(
                person_anchor=anchor, first_seen=found.first_seen if found else None,
                days_active=len(found.days) if found else 0, hosted=bool(found and found.hosted),
                last_activity=tuple(sorted(activity.get(anchor, {}).items()))))
    seen = sum(1 for row in rows if row.seen)
    return AdoptionReport(tenant=tenant_id, wave=wave, people=len(rows), seen=seen, not_seen=len(rows) - seen,
                          hosted=sum(1 for row in rows if row.hosted), rows=rows, observations_new=observations)


# ----------------------------------------------------------------------------------------------- flows

@task(name="poll-livekit-batch", cache_policy=NO_CACHE)
def _poll_batch_task(database: str, tenant_id: str, rooms_client: object, names: Sequence[str],
                     seen_at: datetime) -> tuple[int, int, int, int]:
    return _poll_batch(database, tenant_id, rooms_client, names, seen_at)


@flow(name="adoption-poll", flow_run_name=run_name("adoption-poll"), log_prints=False)
@one_per_tenant("adoption-poll")
@stoppable
def poll_adoption(tenant_file: str, now: str | None = None, batch_size: int = ROOMS_PER_BATCH) -> PollReport:
    """Ask LiveKit who is in the tenant's migrated rooms now and store it as adoption evidence (idempotent)."""
    from flows.wiring import build_livekit_rooms

    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    rooms_client = build_livekit_rooms(tenant, settings)
    if rooms_client is None:
        raise PollingNotConfigured(f"{tenant.id}: no [visio.livekit] section (url, api_key, api_secret_env): "
                                   "polling needs the API key Visio's operators gave bascule")
    report = poll_rooms(settings.database, tenant.id, rooms_client, seen_at=_instant(now), batch_size=batch_size,
                        run_batch=_poll_batch_task)
    get_run_logger().info("adoption poll: %d rooms, %d in use, %d new evidence", report.rooms, report.active_rooms,
                          report.evidence_new)
    return report


@flow(name="adoption-report", flow_run_name=run_name("adoption-report"), log_prints=False)
def adoption_report(tenant_file: str, wave: str | None = None) -> AdoptionReport:
    """Per person: first seen in Visio, days active, hosted, last activity on the old platforms."""
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    return summarise(settings.database, tenant.id, wave)


def observe_subs(database: str, tenant_id: str) -> int:
    """Record the sub observations the stored events give (for callers outside the flows, e.g. the demo)."""
    return _observe(database, tenant_id)


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------- rendering

def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def render_poll(report: PollReport) -> str:
    return (f"tenant {report.tenant}: polled {report.rooms} migrated room(s) at {_when(report.polled_at)}; "
            f"{report.active_rooms} in use; evidence {report.evidence_new} new, {report.evidence_known} already "
            f"known; {report.guests} guest(s) ignored; {report.observations_new} new ProConnect sub observation(s)")


def render_report(report: AdoptionReport, *, shown: int = SHOWN_ROWS) -> str:
    scope = f"wave {report.wave}" if report.wave else "all waves"
    lines = [f"tenant {report.tenant}, {scope}: {report.people} people; seen in Visio {report.seen}, "
             f"not seen {report.not_seen}, hosted their room {report.hosted}"]
    for title, rows in (("seen", [row for row in report.rows if row.seen]),
                        ("not seen", [row for row in report.rows if not row.seen]),
                        ("hosted", [row for row in report.rows if row.hosted])):
        if not rows:
            continue
        lines.append(f"{title} (first {min(shown, len(rows))} of {len(rows)}):")
        for row in rows[:shown]:
            activity = "; ".join(f"{platform} {_when(last) if last else 'not known'}"
                                 for platform, last in row.last_activity) or "no source account"
            lines.append(f"  {row.person_anchor}  first seen {_when(row.first_seen)}, {row.days_active} day(s) "
                         f"active, {'hosted' if row.hosted else 'not hosted'}; last activity: {activity}")
    return "\n".join(lines)
