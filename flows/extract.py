"""Flow extract: users, licences and meetings of every source of a tenant, page by page, resumable.

Runbook, per platform and concurrently across platforms: users (a full listing, or a Graph delta pass from the
last delta link) → the licence catalogue, priced → the meetings of every licensed active account. Each page is
stored by one task: its records upserted (content hash detects change), its bad records quarantined with a reason,
its cursor saved — in one transaction, so a killed run resumes at the last page. A complete full pass marks what
it no longer saw as removed (never deletes); a delta pass applies the removals the platform reports.
"""

from __future__ import annotations

import contextvars
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from connectors.errors import ActivityUnavailable, RateLimited
from connectors.retry import RetryStats
from connectors.roles import AccountSource, ActivitySource, LicenceSource, MeetingSource
from core import HostRef, LicenceSku, Meeting, Page, Platform, Quarantined, Removed, SourceAccount
from core.licences import CostModel, price_licences
from db.repositories import (
    CheckpointRepository,
    LicenceRepository,
    MeetingRepository,
    QuarantineRepository,
    SourceAccountRepository,
    TenantRepository,
)
from flows.budget import ensure_limits, limit_name, one_per_tenant, slot, within_slots
from flows.progress import Progress
from flows.runtime import StopRequested, cancelled, run_name, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

STAGE = "extract"
HOSTS_PER_CHUNK = 200


@dataclass(frozen=True)
class SourceSet:
    """The three roles of one platform, built by flows.wiring."""

    platform: Platform
    accounts: AccountSource
    licences: LicenceSource
    meetings: MeetingSource
    stats: RetryStats | None = None
    activity: ActivitySource | None = None   # last activity read apart (Graph's signInActivity)


@dataclass
class StreamSummary:
    """What one stream of one platform did in this run."""

    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)  # not a Counter: asdict() would mangle it
    incomplete_hosts: int = 0   # hosts whose listing failed: quarantined, their meetings kept as they were
    resumed: bool = False
    delta: bool = False
    activity_read: int = 0          # accounts whose last activity was read apart (Graph sign-ins)
    activity_unknown: str | None = None   # why it could not be (the tenant's permission or licence)

    def count_quarantined(self, items: tuple[Any, ...] | list[Any]) -> None:
        for item in items:
            if isinstance(item, Quarantined):
                self.quarantined[str(item.reason)] = self.quarantined.get(str(item.reason), 0) + 1


@dataclass
class PlatformSummary:
    platform: str
    users: StreamSummary = field(default_factory=StreamSummary)
    licences: int = 0
    meetings: StreamSummary = field(default_factory=StreamSummary)
    hosts: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    deferred_until: str | None = None  # a quota (Zoom's daily limit) ran out: the checkpoint waits for its reset


# ------------------------------------------------------------------------------------------------- cursors

def _encode(cursor: str | None, *, delta: bool) -> str | None:
    return json.dumps({"cursor": cursor, "delta": delta}) if cursor is not None or delta else None


def _decode(saved: str | None) -> tuple[str | None, bool]:
    if not saved:
        return None, False
    document = json.loads(saved)
    return document.get("cursor"), bool(document.get("delta"))


# ------------------------------------------------------------------------------------------------- tasks

@task(name="store-accounts-page", cache_policy=NO_CACHE)
def store_accounts_page(database_url: str, tenant_id: str, platform: Platform,
                        items: list[SourceAccount | Quarantined | Removed], *, pass_id: str, next_cursor: str | None,
                        delta: bool, items_done: int) -> tuple[int, int, int, int, list[Quarantined]]:
    """Upsert a page of accounts, quarantine its bad records, apply reported removals, move the cursor.

    Returns the counts and the quarantine entries storing the page raised (values cut or cleaned to fit their
    columns, records refused, ids the listing gave twice)."""
    now = datetime.now(UTC)
    accounts = [item for item in items if isinstance(item, SourceAccount)]
    quarantined = [item for item in items if isinstance(item, Quarantined)]
    removed = [item.external_id for item in items if isinstance(item, Removed)]
    with transaction(database_url) as session:
        result = SourceAccountRepository(session, tenant_id, platform).upsert(accounts, now=now, pass_id=pass_id,
                                                                              delta=delta)
        gone = SourceAccountRepository(session, tenant_id, platform).mark_removed_ids(removed, now=now)
        QuarantineRepository(session, tenant_id).upsert([*quarantined, *result.quarantined], stage=STAGE,
                                                        source=f"{platform}:users", now=now, pass_id=pass_id)
        CheckpointRepository(session, tenant_id).save(str(platform), "users", pass_id=pass_id,
                                                      cursor=_encode(next_cursor, delta=delta), items_done=items_done,
                                                      complete=False, now=now)
    return result.inserted, result.updated, result.unchanged, gone, list(result.quarantined)


@task(name="store-activity-page", cache_policy=NO_CACHE)
def store_activity_page(database_url: str, tenant_id: str, platform: Platform,
                        page: list[tuple[str, datetime | None]]) -> int:
    """Each account's last activity, as the platform gives it apart from the accounts; returns accounts updated."""
    with transaction(database_url) as session:
        return SourceAccountRepository(session, tenant_id, platform).set_last_activity(page)


def _read_activity(database_url: str, tenant_id: str, source: SourceSet, *, budget: str | None,
                   users: StreamSummary) -> None:
    """Every account's last activity, on every pass (full or delta: sign-ins are no directory change). A tenant
    that does not give it (permission, licence) leaves it not known, says so once, and the extraction goes on."""
    assert source.activity is not None
    try:
        for page in within_slots(source.activity.iter_sign_ins(), budget):
            users.activity_read += store_activity_page(database_url, tenant_id, source.platform, page)
    except ActivityUnavailable as refused:
        users.activity_unknown = str(refused)
        get_run_logger().warning("tenant %s %s: last activity not known: %s", tenant_id, source.platform, refused)


@task(name="close-accounts-pass", cache_policy=NO_CACHE)
def close_accounts_pass(database_url: str, tenant_id: str, platform: Platform, *, pass_id: str, delta: bool,
                        delta_cursor: str | None, items_done: int) -> int:
    """End the users pass: a full listing marks the accounts it did not see; keep the delta link for next time."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        removed = 0
        if not delta:
            removed = SourceAccountRepository(session, tenant_id, platform).mark_removed(pass_id=pass_id, now=now)
            QuarantineRepository(session, tenant_id).resolve_unseen(source=f"{platform}:users", pass_id=pass_id,
                                                                    now=now)
        saved = _encode(delta_cursor, delta=True) if delta_cursor else None
        CheckpointRepository(session, tenant_id).save(str(platform), "users", pass_id=pass_id, cursor=saved,
                                                      items_done=items_done, complete=True, now=now)
    return removed


@task(name="store-licences", cache_policy=NO_CACHE)
def store_licences(database_url: str, tenant_id: str, platform: Platform, skus: list[LicenceSku]) -> int:
    """The priced licence catalogue of a platform (SKUs no longer offered are marked removed)."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        LicenceRepository(session, tenant_id, platform).upsert(skus, now=now, pass_id=uuid.uuid4().hex)
    return len(skus)


@task(name="store-meetings-page", cache_policy=NO_CACHE)
def store_meetings_page(database_url: str, tenant_id: str, platform: Platform, items: list[Meeting | Quarantined],
                        *, pass_id: str, next_cursor: str | None, items_done: int,
                        incomplete: list[str] | None = None) -> tuple[int, int, int, list[Quarantined]]:
    """Upsert a page of meetings, quarantine the bad ones, save the last host done.

    Hosts whose listing failed (`incomplete`) keep the meetings stored for them, counted as seen by this pass: a
    failed listing is not a host without meetings. Their quarantine entry is resolved by the pass that lists them.
    """
    now = datetime.now(UTC)
    meetings = [item for item in items if isinstance(item, Meeting)]
    quarantined = [item for item in items if isinstance(item, Quarantined)]
    with transaction(database_url) as session:
        repository = MeetingRepository(session, tenant_id, platform)
        result = repository.upsert(meetings, now=now, pass_id=pass_id)
        repository.carry_over(incomplete or [], pass_id=pass_id)
        QuarantineRepository(session, tenant_id).upsert([*quarantined, *result.quarantined], stage=STAGE,
                                                        source=f"{platform}:meetings", now=now, pass_id=pass_id)
        CheckpointRepository(session, tenant_id).save(str(platform), "meetings", pass_id=pass_id, cursor=next_cursor,
                                                      items_done=items_done, complete=False, now=now)
    return result.inserted, result.updated, result.unchanged, list(result.quarantined)


@task(name="close-meetings-pass", cache_policy=NO_CACHE)
def close_meetings_pass(database_url: str, tenant_id: str, platform: Platform, *, pass_id: str,
                        items_done: int) -> int:
    """Every host listed: meetings not seen in this pass are marked removed."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        removed = MeetingRepository(session, tenant_id, platform).mark_removed(pass_id=pass_id, now=now)
        QuarantineRepository(session, tenant_id).resolve_unseen(source=f"{platform}:meetings", pass_id=pass_id,
                                                                now=now)
        CheckpointRepository(session, tenant_id).save(str(platform), "meetings", pass_id=pass_id, cursor=None,
                                                      items_done=items_done, complete=True, now=now)
    return removed


# ------------------------------------------------------------------------------------------------- streams

def _start_pass(database_url: str, tenant_id: str, platform: Platform,
                stream: str) -> tuple[str, str | None, int, bool]:
    """(pass id, saved cursor, items done, resumed?) — a running pass resumes; otherwise a new one starts."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        checkpoints = CheckpointRepository(session, tenant_id)
        state = checkpoints.get(str(platform), stream)
        if state is not None and not state.complete:
            return state.pass_id, state.cursor, state.items_done, True
        saved = state.cursor if state is not None else None
        pass_id = uuid.uuid4().hex
        checkpoints.start(str(platform), stream, pass_id=pass_id, now=now)
        if saved:  # a finished pass left a delta cursor: the next pass starts from it
            checkpoints.save(str(platform), stream, pass_id=pass_id, cursor=saved, items_done=0, complete=False,
                             now=now)
        return pass_id, saved, 0, False


def extract_platform(database_url: str, tenant_id: str, source: SourceSet, cost_model: CostModel, *,
                     budget: str | None = None) -> PlatformSummary:
    """Users, then licences, then meetings of one platform (runs in a thread of its own).

    A quota that resets later than the retry policy waits (Zoom's daily limit) ends the platform's run early:
    what was stored stays, the checkpoint keeps the position, and the summary says when to come back.
    """
    summary = PlatformSummary(platform=str(source.platform))
    try:
        _extract_platform(database_url, tenant_id, source, cost_model, budget=budget, summary=summary)
    except RateLimited as exc:
        if exc.retry_after is None:
            raise
        resume = datetime.now(UTC) + timedelta(seconds=exc.retry_after)
        summary.deferred_until = resume.isoformat(timespec="seconds")
        get_run_logger().warning("tenant %s %s: quota exhausted, extraction resumes after %s", tenant_id,
                                 source.platform, summary.deferred_until)
    if source.stats is not None:
        summary.retries = dict(source.stats.counts)
    return summary


def _extract_platform(database_url: str, tenant_id: str, source: SourceSet, cost_model: CostModel, *,
                      budget: str | None, summary: PlatformSummary) -> None:
    logger = get_run_logger()
    platform = source.platform
    progress = Progress(f"extract-{tenant_id}-{platform}", f"Extraction of {platform} for {tenant_id}: users "
                        "(0-25 %), licences, meetings by host", label=f"extract {platform}")

    # Users: a full listing, or a delta pass from the delta link the last complete pass left.
    pass_id, saved, done, resumed = _start_pass(database_url, tenant_id, platform, "users")
    cursor, delta = _decode(saved)
    users = summary.users
    users.resumed = resumed
    last: Page[Any] | None = None
    for page in within_slots(source.accounts.iter_accounts(cursor), budget):
        done += len(page.items)
        delta = delta or page.delta
        # quote(): Prefect would otherwise walk every record of the page looking for futures (a quarter of the CPU)
        inserted, updated, unchanged, gone, noted = store_accounts_page(
            database_url, tenant_id, platform, _unwalked(page.items), pass_id=pass_id,
            next_cursor=page.next_cursor, delta=delta, items_done=done)
        users.pages += 1
        users.inserted += inserted
        users.updated += updated
        users.unchanged += unchanged
        users.removed += gone
        users.skipped += page.skipped
        users.count_quarantined(page.items)
        users.count_quarantined(noted)
        progress.set(min(25.0, users.pages))
        last = page
    users.delta = delta
    users.removed += close_accounts_pass(database_url, tenant_id, platform, pass_id=pass_id, delta=delta,
                                         delta_cursor=last.delta_cursor if last else None, items_done=done)
    logger.info("tenant %s %s: users pass %s done (%d pages, %d new, %d changed, %d removed)", tenant_id, platform,
                pass_id[:8], users.pages, users.inserted, users.updated, users.removed)

    if source.activity is not None:
        _read_activity(database_url, tenant_id, source, budget=budget, users=users)

    # Licences: the catalogue is small; priced by the tenant's cost model.
    with slot(budget):
        catalogue = source.licences.fetch_licences()
    priced = price_licences(catalogue, cost_model)
    summary.licences = store_licences(database_url, tenant_id, platform,
                                      [_with_cost(p.sku, p.annual_unit_cost) for p in priced])
    progress.set(30.0)

    # Meetings of every licensed active account, host by host in id order; the cursor is the last host done.
    pass_id, cursor, done, resumed = _start_pass(database_url, tenant_id, platform, "meetings")
    meetings = summary.meetings
    meetings.resumed = resumed
    summary.hosts = _count_hosts(database_url, tenant_id, platform)
    for chunk in _host_chunks(database_url, tenant_id, platform, after=cursor):
        for batch in within_slots(source.meetings.iter_meetings(chunk), budget):
            done += len(batch.items)
            # A chunk's last page has no cursor (the source is done with these hosts): the chunk's last host is.
            position = batch.next_cursor or chunk[-1].external_id
            inserted, updated, unchanged, noted = store_meetings_page(
                database_url, tenant_id, platform, _unwalked(batch.items), pass_id=pass_id, next_cursor=position,
                items_done=done, incomplete=list(batch.incomplete))
            meetings.pages += 1
            meetings.inserted += inserted
            meetings.updated += updated
            meetings.unchanged += unchanged
            meetings.skipped += batch.skipped
            meetings.count_quarantined(batch.items)
            meetings.count_quarantined(noted)
            meetings.incomplete_hosts += len(batch.incomplete)
            hosts_done = _count_hosts(database_url, tenant_id, platform, up_to=position)
            progress.set(30.0 + 70.0 * hosts_done / max(1, summary.hosts))
    meetings.removed = close_meetings_pass(database_url, tenant_id, platform, pass_id=pass_id, items_done=done)
    progress.done()
    logger.info("tenant %s %s: meetings pass %s done (%d hosts, %d pages, %d new, %d changed, %d removed)",
                tenant_id, platform, pass_id[:8], summary.hosts, meetings.pages, meetings.inserted, meetings.updated,
                meetings.removed)


def _unwalked(items: tuple[Any, ...]) -> Any:
    """A page's records as a task argument Prefect will not walk through (it looks for futures in arguments)."""
    return quote(list(items))


def _with_cost(sku: LicenceSku, cost: Any) -> LicenceSku:
    from dataclasses import replace

    return replace(sku, annual_unit_cost=cost)


def _host_chunks(database_url: str, tenant_id: str, platform: Platform, *,
                 after: str | None) -> Iterator[list[HostRef]]:
    """Hosts in id order, a chunk at a time (never every host of a large tenant in memory)."""
    while True:
        with transaction(database_url) as session:
            chunk = SourceAccountRepository(session, tenant_id, platform).hosts(after=after, limit=HOSTS_PER_CHUNK)
        if not chunk:
            return
        yield chunk
        after = chunk[-1].external_id


def _count_hosts(database_url: str, tenant_id: str, platform: Platform, *, up_to: str | None = None) -> int:
    with transaction(database_url) as session:
        return SourceAccountRepository(session, tenant_id, platform).count_hosts(up_to=up_to)


# ------------------------------------------------------------------------------------------------- flow

def _reschedule(results: dict[str, PlatformSummary], *, tenant_file: str) -> None:
    """Deferred platforms come back by themselves when this run belongs to a deployment; otherwise the CLI user
    runs `bascule extract` again after the time the summary gives (the checkpoints hold the position)."""
    deferred = {name: summary.deferred_until for name, summary in results.items() if summary.deferred_until}
    if not deferred:
        return
    from prefect.deployments import run_deployment
    from prefect.runtime import deployment

    if deployment.id is None:
        return
    when = max(datetime.fromisoformat(value) for value in deferred.values())
    run_deployment(deployment.id, parameters={"tenant_file": tenant_file, "platforms": sorted(deferred)},
                   scheduled_time=when, timeout=0)
    get_run_logger().info("extraction of %s rescheduled for %s", ", ".join(sorted(deferred)), when.isoformat())


SourceBuilder = Callable[[TenantConfig, Settings, datetime | None], list[SourceSet]]


@flow(name="extract", flow_run_name=run_name("extract"), log_prints=False)
@one_per_tenant("extract")
def extract(tenant_file: str, platforms: list[str] | None = None, now: str | None = None,
            force: bool = False) -> dict[str, Any]:
    """Extract users, licences and meetings of the tenant's sources (resumes a killed run where it stopped).

    Refuses a tenant whose onboarding did not find it ready (or whose file changed since), unless `force`."""
    from flows.onboard import require_ready
    from flows.wiring import build_sources, cost_model

    logger = get_run_logger()
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    database_url = settings.database
    require_ready(database_url, tenant.id, force=force, config_hash=TenantConfig.file_hash(Path(tenant_file)))
    with transaction(database_url) as session:
        TenantRepository(session).ensure(tenant.id, name=tenant.name, siret=tenant.siret,
                                         config_path=str(Path(tenant_file).resolve()),
                                         config_hash=TenantConfig.file_hash(Path(tenant_file)), now=datetime.now(UTC))
    clock_at = datetime.fromisoformat(now) if now else None
    sources = [s for s in build_sources(tenant, settings, clock_at) if platforms is None or s.platform in platforms]
    model = cost_model(tenant)
    budgets = {source.platform: limit_name(tenant.id, str(source.platform)) if settings.shared_limits else None
               for source in sources}
    if settings.shared_limits:
        ensure_limits([name for name in budgets.values() if name], slots=settings.account_slots)
    results: dict[str, PlatformSummary] = {}
    # One thread per platform; each carries the flow's context so that its page tasks belong to this run.
    with ThreadPoolExecutor(max_workers=max(1, len(sources)), thread_name_prefix="extract") as pool:
        futures = {source.platform: pool.submit(contextvars.copy_context().run, extract_platform, database_url,
                                                tenant.id, source, model, budget=budgets[source.platform])
                   for source in sources}
        errors = []
        stopped: StopRequested | None = None
        for platform, future in futures.items():
            try:
                results[str(platform)] = future.result()
            except StopRequested as exc:  # the operator's Ctrl-C: the run ends Cancelled, resumable
                stopped = exc
                results[str(platform)] = PlatformSummary(platform=str(platform), error=str(exc))
            except Exception as exc:  # one platform failing must not hide what the others did
                logger.error("tenant %s %s: extraction failed: %s", tenant.id, platform, type(exc).__name__)
                results[str(platform)] = PlatformSummary(platform=str(platform), error=f"{type(exc).__name__}: {exc}")
                errors.append(exc)
    table = []
    for name, summary in sorted(results.items()):
        for stream, stats in (("users", summary.users), ("meetings", summary.meetings)):
            table.append({"source": name, "stream": stream, "reason": "", "new": stats.inserted,
                          "changed": stats.updated, "unchanged": stats.unchanged, "removed": stats.removed,
                          "skipped": stats.skipped})
            table.extend({"source": name, "stream": stream, "reason": reason, "new": count, "changed": 0,
                          "unchanged": 0, "removed": 0, "skipped": 0}
                         for reason, count in sorted(stats.quarantined.items()))
        table.append({"source": name, "stream": "licences", "reason": "", "new": summary.licences, "changed": 0,
                      "unchanged": 0, "removed": 0, "skipped": 0})
    _reschedule(results, tenant_file=tenant_file)
    create_table_artifact(key=f"extract-summary-{tenant.id}", table=table,
                          description=f"Extraction of {tenant.id}: counts per source, stream and quarantine reason")
    if errors:
        raise errors[0]
    if stopped is not None:
        return cancelled(stopped)  # type: ignore[no-any-return]
    return {name: asdict(summary) for name, summary in results.items()}
