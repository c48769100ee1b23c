"""Releasing source licences after adoption evidence, through the outbox (issue 12, points 2 and 3).

`licences_plan` is the dry run: every person holding a Zoom/Teams/Webex licence that includes meetings, read one
batch of people at a time, is decided by the tenant's release policy (core.release_policy): releasable, or held for
one reason. `release_licences` plans the same way and writes the releasable licences to the outbox (`decommission`),
then drains it one batch per Prefect task: each row is claimed (committed) before its source is called, the source
is read before and after each write (connectors' LicenceReleaser), and the outcome, the licence's assignment state
and an audit event are recorded together. A run killed anywhere is run again: rows it left claimed are tried again,
and the read-before finds a licence already gone, so nothing is sent twice. `restore_licences` gives the same SKU
back within the tenant's restore window, the same way.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from connectors.roles import LicenceReleaser
from core import csv_text
from core.emails import normalise_email
from core.licences import PricedSku, ReleaseResult, RestoreResult, price_licences
from core.records import LicenceSku, Platform
from core.release_policy import VISIO_DAY_ZONE, HoldReason, PersonEvidence, ReleaseState, decide
from db import models
from db.adoption import AdoptionRepository
from db.releases import LicenceLine, OutboxRow, PersonFacts, ReleaseRepository
from flows.budget import limit_name, one_per_tenant, slot
from flows.errors import OperatorError
from flows.runtime import StopRequested, cancelled, checkpoint, run_name, stoppable, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

__all__ = ["ReleaseOutcome", "ReleasePlan", "RestoreOutcome", "licences_plan", "release_licences",
           "render_outcome", "render_plan", "render_release_dry_run", "render_restore", "restore_licences"]

PEOPLE_PER_BATCH = 1000
SHOWN_ROWS = 15


class KeepListError(OperatorError):
    """The keep-licence CSV cannot be read."""


class RestoreRefused(OperatorError):
    """Nothing to restore, or asked for people bascule does not know."""


class WaveUnknown(OperatorError):
    """A wave the tenant does not have."""


# ----------------------------------------------------------------------------------------------- the plan

@dataclass
class SkuLine:
    """Seats of one SKU in the plan, and what the releasable ones cost per year."""

    platform: str
    sku_key: str
    name: str
    annual_unit_cost: Decimal
    estimated: bool
    releasable: int = 0
    held: int = 0

    @property
    def releasable_annual(self) -> Decimal:
        return (self.annual_unit_cost * self.releasable).quantize(Decimal("0.01"))


@dataclass
class ReleasePlan:
    """Who is releasable, who is held and why (one reason each), and seats and money per SKU."""

    tenant: str
    wave: str | None
    computed_at: datetime
    people: int = 0
    people_releasable: int = 0
    people_held: dict[str, int] = field(default_factory=dict)     # by the person's reason
    licences_releasable: int = 0
    licences_held: dict[str, int] = field(default_factory=dict)   # by reason (person-level or licence-level)
    skus: list[SkuLine] = field(default_factory=list)
    releasable_annual: Decimal = Decimal("0.00")
    keep_list: dict[str, int] = field(default_factory=dict)        # rows read, people kept, rows naming nobody
    sample: list[dict[str, str]] = field(default_factory=list)     # first rows (anchors, never e-mail addresses)
    planned: int = 0                                               # written to the outbox (release --apply)
    withdrawn: int = 0
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One licence of one person in the plan (the CSV's row)."""

    anchor: str
    email: str | None
    department: str | None
    wave: str | None
    platform: str
    account: str
    sku_key: str
    sku_name: str
    releasable: bool
    reason: str | None
    detail: str | None


def _prices(session: Any, tenant: TenantConfig, tenant_id: str) -> dict[tuple[str, str], PricedSku]:
    """Every SKU of the tenant priced by its cost model (contract price, else the €10 benchmark, estimated)."""
    from flows.wiring import cost_model

    table = models.LicenceSku
    skus = [LicenceSku(platform=Platform(row.platform), sku_key=row.sku_key, name=row.name,
                       includes_meetings=row.includes_meetings) for row in session.execute(
        select(table).where(table.tenant_id == tenant_id)).scalars()]
    return {(priced.sku.platform.value, priced.sku.sku_key): priced
            for priced in price_licences(skus, cost_model(tenant))}


def keep_list(path: Path | None, session: Any, tenant_id: str) -> tuple[frozenset[str], dict[str, int]]:
    """The people the ministry listed as keeping their licence: a CSV with an `email` or `anchor` column (as
    spreadsheets save it). Rows naming nobody known are counted, not fatal (they exempt nobody)."""
    if path is None:
        return frozenset(), {}
    decoded = csv_text.decode(path.read_bytes())
    if isinstance(decoded, csv_text.NotText):
        raise KeepListError(f"{path}: {decoded.reason}")
    lines = list(io.StringIO(decoded.text, newline=""))
    delimiter = csv_text.sep_hint(lines[0]) if lines else None
    if delimiter is not None:   # Excel's `sep=;` line names the delimiter; it is no row of the table
        lines = lines[1:]
    first = lines[0] if lines else ""
    delimiter = delimiter or csv_text.delimiter_of(first, ("email", "anchor", "reason"))
    try:
        rows = list(csv.DictReader(lines, delimiter=delimiter))
    except csv.Error as error:
        raise KeepListError(f"{path}: not readable CSV ({error})") from None
    header = {name.strip().lower() for name in (rows[0].keys() if rows else next(csv.reader([first]), []))}
    if not header & {"email", "anchor"}:
        raise KeepListError(f"{path}: needs a column `email` or `anchor` (found: {', '.join(sorted(header))})")
    emails, anchors = set(), set()
    for row in rows:
        cells = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        if cells.get("anchor"):
            anchors.add(cells["anchor"])
        elif cells.get("email"):
            emails.add(normalise_email(cells["email"]) or cells["email"].lower())
    people = models.Person
    found: set[str] = set()
    wanted_emails, wanted_anchors = sorted(emails), sorted(anchors)
    for start in range(0, max(len(wanted_emails), len(wanted_anchors)), 500):
        found |= set(session.execute(select(people.anchor).where(
            people.tenant_id == tenant_id, (people.email_normalised.in_(wanted_emails[start:start + 500]))
            | (people.anchor.in_(wanted_anchors[start:start + 500])))).scalars())
    return frozenset(found), {"rows": len(rows), "people": len(found),
                              "unknown": len(emails) + len(anchors) - len(found)}


def _evidence(facts: PersonFacts, days: frozenset[Any], large: int) -> PersonEvidence:
    return PersonEvidence(
        anchor=facts.anchor, wave_state=facts.wave_state, cut_over_at=facts.cut_over_at,
        verified_at=facts.verified_at, visio_days=days,
        last_hosted_on_source=facts.last_meeting_seen, hosts_webinars=facts.hosts_webinars,
        hosts_large_meetings=facts.largest_invitees > large)


OutboxStates = Mapping[tuple[str, str, str], tuple[ReleaseState, str | None, str | None]]


def _licence_hold(line: LicenceLine, tenant: TenantConfig, current: OutboxStates, *,
                  retry_refused: bool) -> tuple[str, str | None] | None:
    """Why this licence of a releasable person stays, if it does."""
    if line.platform == Platform.TEAMS.value and not {line.sku_name, line.sku_key} & set(
            tenant.release.teams_standalone_skus):
        return HoldReason.SUITE_SKU.value, f"{line.sku_name}: Teams inside a suite"
    state, reason, detail = current.get((line.platform, line.account_external_id, line.sku_key),
                                        (None, None, None))
    if state is ReleaseState.REFUSED and not retry_refused:
        held = HoldReason.GROUP_INHERITED if reason == "GROUP_INHERITED" else HoldReason.REFUSED_AT_SOURCE
        return held.value, f"{reason}: {detail}" if detail else reason
    if state in (ReleaseState.RESTORED, ReleaseState.RESTORE_PENDING, ReleaseState.RESTORING,
                 ReleaseState.RESTORE_FAILED):
        return HoldReason.RESTORED.value, "given back by bascule licences restore"
    return None


def iter_plan(database: str, tenant: TenantConfig, *, wave: str | None, now: datetime, apply: bool,
              retry_refused: bool = False, plan: ReleasePlan,
              people_per_batch: int = PEOPLE_PER_BATCH) -> Iterator[PlanRow]:
    """Decide every person in scope, one batch at a time, tallying `plan`; yields one row per licence. With
    `apply`, each batch's releasable licences are written to the outbox in the batch's transaction."""
    policy_settings = tenant.release
    after: str | None = None
    with transaction(database) as session:
        kept, plan.keep_list = keep_list(policy_settings.keep_licence_csv, session, tenant.id)
        prices = _prices(session, tenant, tenant.id)
    policy = policy_settings.policy(kept)
    plan.policy = {"min_visio_days": policy.min_visio_days, "window_days": policy.window_days,
                   "grace_days": policy.grace_days, "exempt_webinar_hosts": policy.exempt_webinar_hosts,
                   "exempt_large_meetings": policy.exempt_large_meetings,
                   "large_meeting_invitees": policy_settings.large_meeting_invitees}
    skus: dict[tuple[str, str], SkuLine] = {}
    while True:
        checkpoint()
        with transaction(database) as session:
            releases = ReleaseRepository(session, tenant.id)
            batch = releases.people_in_scope(wave=wave, after=after, limit=people_per_batch)
            if not batch:
                break
            after = batch[-1]
            facts = releases.facts(batch)
            seen = AdoptionRepository(session, tenant.id).seen_in_visio(batch, zone=VISIO_DAY_ZONE)
            emails = dict(session.execute(select(models.Person.anchor, models.Person.primary_email).where(
                models.Person.tenant_id == tenant.id, models.Person.anchor.in_(batch))).all())
            current = releases.current([line for person in facts.values() for line in person.licences])
            to_plan: list[tuple[LicenceLine, str, str | None]] = []
            keep: set[tuple[str, str, str]] = set()
            rows: list[PlanRow] = []
            for anchor in batch:
                person = facts[anchor]
                decision = decide(_evidence(person, seen[anchor].days if anchor in seen else frozenset(),
                                            policy_settings.large_meeting_invitees), policy, now=now)
                plan.people += 1
                person_releasable = False
                line_reasons: Counter[str] = Counter()
                for line in person.licences:
                    hold = ((decision.reason.value, decision.detail) if decision.reason is not None
                            else _licence_hold(line, tenant, current, retry_refused=retry_refused))
                    priced = prices.get((line.platform, line.sku_key))
                    sku = skus.setdefault((line.platform, line.sku_key), SkuLine(
                        line.platform, line.sku_key, line.sku_name,
                        priced.annual_unit_cost if priced else Decimal(0), priced.estimated if priced else True))
                    if hold is None:
                        person_releasable = True
                        sku.releasable += 1
                        plan.licences_releasable += 1
                        to_plan.append((line, anchor, person.wave))
                        keep.add((line.platform, line.account_external_id, line.sku_key))
                    else:
                        sku.held += 1
                        line_reasons[hold[0]] += 1
                        plan.licences_held[hold[0]] = plan.licences_held.get(hold[0], 0) + 1
                    rows.append(PlanRow(anchor, emails.get(anchor), person.department, person.wave, line.platform,
                                        line.account_external_id, line.sku_key, line.sku_name, hold is None,
                                        hold[0] if hold else None, hold[1] if hold else None))
                if decision.reason is not None:
                    plan.people_held[decision.reason.value] = plan.people_held.get(decision.reason.value, 0) + 1
                elif person_releasable:
                    plan.people_releasable += 1
                else:
                    # Releasable, but none of their licences is (Teams in a suite, refused before…): the most
                    # frequent licence reason is theirs.
                    first = line_reasons.most_common(1)[0][0] if line_reasons else "NOTHING_TO_RELEASE"
                    plan.people_held[first] = plan.people_held.get(first, 0) + 1
            if apply:
                plan.planned += releases.plan(to_plan, now=now)
                plan.withdrawn += releases.withdraw(batch, keep)
        for row in rows:
            if len(plan.sample) < SHOWN_ROWS:
                plan.sample.append({"person": row.anchor, "department": row.department or "", "platform": row.platform,
                                    "sku": row.sku_name, "releasable": "yes" if row.releasable else "no",
                                    "reason": row.reason or "", "detail": row.detail or ""})
            yield row
    plan.skus = sorted(skus.values(), key=lambda line: (line.platform, line.name))
    plan.releasable_annual = sum((line.releasable_annual for line in plan.skus), Decimal("0.00"))


def compute_plan(database: str, tenant: TenantConfig, *, wave: str | None, now: datetime, apply: bool = False,
                 retry_refused: bool = False, csv_path: Path | None = None) -> ReleasePlan:
    """The plan (streamed; with `csv_path`, one CSV row per licence, e-mail addresses included: the file is the
    operator's, never an artifact)."""
    plan = ReleasePlan(tenant=tenant.id, wave=wave, computed_at=now)
    rows = iter_plan(database, tenant, wave=wave, now=now, apply=apply, retry_refused=retry_refused, plan=plan)
    if csv_path is None:
        for _row in rows:
            pass
        return plan
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person", "email", "department", "wave", "platform", "account", "sku_key", "sku",
                         "releasable", "reason", "detail"])
        for row in rows:
            writer.writerow([row.anchor, row.email or "", row.department or "", row.wave or "", row.platform,
                             row.account, row.sku_key, row.sku_name, "yes" if row.releasable else "no",
                             row.reason or "", row.detail or ""])
    return plan


def _wave_known(database: str, tenant_id: str, wave: str | None) -> None:
    if wave is None:
        return
    with transaction(database) as session:
        if not AdoptionRepository(session, tenant_id).wave_exists(wave):
            raise WaveUnknown(f"no wave {wave!r} in tenant {tenant_id} (bascule wave list shows them)")


def _instant(text: str | None) -> datetime:
    return datetime.fromisoformat(text) if text else datetime.now(UTC)


@flow(name="licences-plan", flow_run_name=run_name("licences-plan"), log_prints=False)
@stoppable
def licences_plan(tenant_file: str, wave: str | None = None, now: str | None = None,
                  csv_path: str | None = None) -> ReleasePlan:
    """The dry run: who is releasable, who is held and why, seats and money per SKU. Writes nothing."""
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    _wave_known(settings.database, tenant.id, wave)
    plan = compute_plan(settings.database, tenant, wave=wave, now=_instant(now),
                        csv_path=Path(csv_path) if csv_path else None)
    create_markdown_artifact(key=f"licences-plan-{tenant.id}", markdown=render_plan(plan, markdown=True),
                             description="Licence release plan (dry run)")
    return plan


# ----------------------------------------------------------------------------------------------- release

@dataclass
class ReleaseOutcome:
    """One `licences release --apply` run: the plan it made, and what the sources did."""

    tenant: str
    run: str
    plan: ReleasePlan
    reconciled: int = 0
    released: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    released_annual: Decimal = Decimal("0.00")
    totals: dict[str, int] = field(default_factory=dict)   # outbox rows by state after the run


Releasers = Mapping[str, LicenceReleaser]
ReleasersFactory = Callable[[TenantConfig, Settings], Any]


@contextmanager
def default_releasers(tenant: TenantConfig, settings: Settings) -> Iterator[Releasers]:
    """The tenant's releasers (flows.wiring), closed at the end."""
    from flows.wiring import build_releasers

    with ExitStack() as stack:
        yield build_releasers(tenant, settings, stack)


def _call(releaser: LicenceReleaser, row: OutboxRow, restore: bool) -> ReleaseResult | RestoreResult | Exception:
    try:
        if restore:
            return releaser.restore(row.account_external_id, row.sku_key)
        return releaser.release(row.account_external_id, row.sku_key)
    except Exception as error:   # a transient failure after the retries: the row is tried again by the next run
        return error


@task(name="release-batch", cache_policy=NO_CACHE)
def release_batch(database: str, tenant_id: str, rows: list[OutboxRow], releasers: Releasers, *, run_id: str,
                  actor: str, restore_days: int, budgets: Mapping[str, str], restore: bool = False) -> dict[str, int]:
    """Send one claimed batch to the sources (paced by their throttles, under the shared limits), then record every
    outcome in one transaction. Returns outcomes by state (refusals as `refused:<reason>`)."""
    results: list[tuple[OutboxRow, ReleaseResult | RestoreResult | Exception]] = []
    for platform in sorted({row.platform for row in rows}):
        with slot(budgets.get(platform)):
            for row in rows:
                if row.platform != platform:
                    continue
                releaser = releasers.get(platform)
                results.append((row, _call(releaser, row, restore) if releaser is not None
                                else RuntimeError(f"no {platform} source in the tenant file")))
    counts: Counter[str] = Counter()
    now = datetime.now(UTC)
    with transaction(database) as session:
        outbox = ReleaseRepository(session, tenant_id)
        for row, result in results:
            state, reason, detail, before, after = _outcome(result, restore)
            outbox.record(row, state, now=now, run_id=run_id, actor=actor, before=before, after=after,
                          reason=reason, detail=detail, restore_days=restore_days)
            counts[state.value if reason is None or state is ReleaseState.FAILED else f"{state.value}:{reason}"] += 1
    return dict(counts)


def _outcome(result: ReleaseResult | RestoreResult | Exception, restore: bool) -> tuple[
        ReleaseState, str | None, str | None, str | None, str | None]:
    if isinstance(result, Exception):
        return (ReleaseState.RESTORE_PENDING if restore else ReleaseState.FAILED, "TRANSIENT",
                f"{type(result).__name__}: {result}"[:500], None, None)
    if isinstance(result, RestoreResult):
        if result.restored:
            return ReleaseState.RESTORED, None, result.detail, None, result.after
        return ReleaseState.RESTORE_FAILED, str(result.refusal or "REFUSED"), result.detail, None, result.after
    if result.released:
        return ReleaseState.RELEASED, None, result.detail, result.before, result.after
    return ReleaseState.REFUSED, str(result.refusal or "REFUSED"), result.detail, result.before, result.after


def _budgets(tenant_id: str, settings: Settings) -> dict[str, str]:
    """With BASCULE_SHARED_LIMITS, the same per-platform limits extraction holds (one API budget per account)."""
    if not settings.shared_limits:
        return {}
    from flows.budget import ensure_limits

    budgets = {platform.value: limit_name(tenant_id, platform.value) for platform in Platform}
    ensure_limits(sorted(budgets.values()), slots=settings.account_slots)
    return budgets


def _drain(database: str, tenant: TenantConfig, releasers: Releasers, *, run_id: str, actor: str, restore: bool,
           budgets: Mapping[str, str]) -> Counter[str]:
    waiting, taking = ((ReleaseState.RESTORE_PENDING, ReleaseState.RESTORING) if restore
                       else (ReleaseState.PLANNED, ReleaseState.CLAIMED))
    totals: Counter[str] = Counter()
    while True:
        checkpoint()   # a stop takes effect between batches: a batch's claims are recorded before it
        with transaction(database) as session:
            rows = ReleaseRepository(session, tenant.id).claim(
                [waiting], into=taking, run_id=run_id, limit=tenant.release.batch_size, now=datetime.now(UTC),
                platforms=sorted(releasers))
        if not rows:
            return totals
        totals.update(release_batch(database, tenant.id, rows, releasers, run_id=run_id, actor=actor,
                                    restore_days=tenant.release.restore_window_days, budgets=budgets,
                                    restore=restore))


@flow(name="licences-release", flow_run_name=run_name("licences-release"), log_prints=False)
@one_per_tenant("licences")
def release_licences(tenant_file: str, wave: str | None = None, apply: bool = False, now: str | None = None,
                     retry_refused: bool = False, actor: str = "bascule",
                     releasers: ReleasersFactory | None = None) -> ReleasePlan | ReleaseOutcome:
    """Without `apply`, the plan (dry run). With it: the plan written to the outbox, then the outbox drained."""
    logger = get_run_logger()
    settings = Settings()
    database = settings.database
    tenant = TenantConfig.load(Path(tenant_file))
    _wave_known(database, tenant.id, wave)
    at = _instant(now)
    if not apply:
        plan = compute_plan(database, tenant, wave=wave, now=at)
        create_markdown_artifact(key=f"licences-plan-{tenant.id}", markdown=render_plan(plan, markdown=True),
                                 description="Licence release plan (dry run)")
        return plan
    run_id = uuid.uuid4().hex
    try:
        plan = compute_plan(database, tenant, wave=wave, now=at, apply=True, retry_refused=retry_refused)
        with transaction(database) as session:
            reconciled = ReleaseRepository(session, tenant.id).stale(
                [ReleaseState.CLAIMED], back_to=ReleaseState.PLANNED, run_id=run_id, now=datetime.now(UTC))
        if reconciled:
            logger.info("tenant %s: %d releases a killed run left claimed are tried again (the source is read "
                        "first)", tenant.id, reconciled)
        with (releasers or default_releasers)(tenant, settings) as built:
            counts = _drain(database, tenant, built, run_id=run_id, actor=actor, restore=False,
                            budgets=_budgets(tenant.id, settings))
    except StopRequested as stop:
        return cancelled(stop)  # type: ignore[no-any-return]
    outcome = ReleaseOutcome(tenant=tenant.id, run=run_id, plan=plan, reconciled=reconciled,
                             released=counts.get(ReleaseState.RELEASED.value, 0),
                             failed=counts.get(ReleaseState.FAILED.value, 0))
    outcome.refused = {key.split(":", 1)[1]: count for key, count in counts.items()
                       if key.startswith(f"{ReleaseState.REFUSED.value}:")}
    with transaction(database) as session:
        outbox = ReleaseRepository(session, tenant.id)
        outcome.totals = outbox.counts()
        prices = _prices(session, tenant, tenant.id)
        outcome.released_annual = sum(
            (prices[key].annual_unit_cost * count for key, count in outbox.released_by_sku().items() if key in prices),
            Decimal(0)).quantize(Decimal("0.01"))
    create_markdown_artifact(key=f"licences-release-{tenant.id}", markdown=render_outcome(outcome, markdown=True),
                             description="Licence release")
    logger.info("tenant %s: %d licences released, %d refused, %d failed (run %s)", tenant.id, outcome.released,
                sum(outcome.refused.values()), outcome.failed, run_id)
    return outcome


# ----------------------------------------------------------------------------------------------- restore

@dataclass
class RestoreOutcome:
    """One `licences restore` run."""

    tenant: str
    dry_run: bool
    asked: int = 0
    outside_window: list[dict[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    queued: int = 0
    restored: int = 0
    failed: dict[str, int] = field(default_factory=dict)


def _anchors_of(session: Any, tenant_id: str, emails: Sequence[str]) -> tuple[list[str], list[str]]:
    people = models.Person
    wanted = {normalise_email(email) or email.lower(): email for email in emails}
    found = dict(session.execute(select(people.email_normalised, people.anchor).where(
        people.tenant_id == tenant_id, people.email_normalised.in_(sorted(wanted)))).all())
    return [found[key] for key in sorted(found)], [wanted[key] for key in sorted(wanted) if key not in found]


@flow(name="licences-restore", flow_run_name=run_name("licences-restore"), log_prints=False)
@one_per_tenant("licences")
def restore_licences(tenant_file: str, emails: Sequence[str] = (), wave: str | None = None, apply: bool = False,
                     now: str | None = None, actor: str = "bascule",
                     releasers: ReleasersFactory | None = None) -> RestoreOutcome:
    """Give back the licences bascule released for these people (or a wave's), within the restore window."""
    settings = Settings()
    database = settings.database
    tenant = TenantConfig.load(Path(tenant_file))
    at = _instant(now)
    outcome = RestoreOutcome(tenant=tenant.id, dry_run=not apply)
    with transaction(database) as session:
        outbox = ReleaseRepository(session, tenant.id)
        anchors, outcome.unknown = _anchors_of(session, tenant.id, emails) if emails else ([], [])
        if wave is not None:
            anchors += outbox.anchors_released_in_wave(wave)
        released = outbox.released_of(sorted(set(anchors)))
        outcome.asked = len(released)
        inside = []
        for row, until in released:
            if until is not None and at > until:
                outcome.outside_window.append({"person": row.person_anchor or "", "platform": row.platform,
                                               "sku": row.sku_key, "window_closed": until.date().isoformat()})
            else:
                inside.append(row.id)
        if apply:
            outcome.queued = outbox.ask_restore(inside, now=at)
        else:
            outcome.queued = len(inside)
    if outcome.unknown and not released:   # the addresses stay out of the message: it reaches the log file
        named = "that address" if len(outcome.unknown) == 1 else f"those {len(outcome.unknown)} addresses"
        raise RestoreRefused(f"no person known with {named}: check the spelling, or find them with bascule "
                             "identities report")
    if not apply:
        return outcome
    run_id = uuid.uuid4().hex
    try:
        with transaction(database) as session:
            ReleaseRepository(session, tenant.id).stale([ReleaseState.RESTORING], back_to=ReleaseState.RESTORE_PENDING,
                                                        run_id=run_id, now=datetime.now(UTC))
        with (releasers or default_releasers)(tenant, settings) as built:
            counts = _drain(database, tenant, built, run_id=run_id, actor=actor, restore=True,
                            budgets=_budgets(tenant.id, settings))
    except StopRequested as stop:
        return cancelled(stop)  # type: ignore[no-any-return]
    outcome.restored = counts.get(ReleaseState.RESTORED.value, 0)
    outcome.failed = {key.split(":", 1)[1]: count for key, count in counts.items()
                      if key.startswith(f"{ReleaseState.RESTORE_FAILED.value}:")}
    return outcome


# ----------------------------------------------------------------------------------------------- rendering

def _money(amount: Decimal) -> str:
    return f"€{amount:,.2f}".replace(",", " ")


def render_plan(plan: ReleasePlan, *, markdown: bool = False) -> str:
    """The plan as people read it: counts first, seats and money per SKU, then the first rows."""
    policy = plan.policy
    lines = [f"{'# ' if markdown else ''}Licence release plan — tenant {plan.tenant}"
             + (f", wave {plan.wave}" if plan.wave else "") + f" (as of {plan.computed_at:%Y-%m-%d %H:%M} UTC)",
             "",
             f"Policy: seen in Visio on {policy.get('min_visio_days')} days within {policy.get('window_days')}, "
             f"{policy.get('grace_days')} days after the wave was verified; webinar hosts "
             f"{'exempt' if policy.get('exempt_webinar_hosts') else 'not exempt'}, hosts of meetings over "
             f"{policy.get('large_meeting_invitees')} invitees "
             f"{'exempt' if policy.get('exempt_large_meetings') else 'not exempt'}.",
             f"People holding a licence with meetings: {plan.people}; releasable: {plan.people_releasable}; "
             f"held: {sum(plan.people_held.values())}.",
             f"Licences releasable: {plan.licences_releasable} ({_money(plan.releasable_annual)} a year at the "
             f"tenant's prices); held: {sum(plan.licences_held.values())}."]
    if plan.keep_list:
        lines.append(f"Keep-licence list: {plan.keep_list.get('rows', 0)} rows, {plan.keep_list.get('people', 0)} "
                     f"people kept, {plan.keep_list.get('unknown', 0)} rows naming nobody known.")
    if plan.people_held:
        lines += ["", "People held, by reason:"]
        lines += [f"  {reason:<24} {count}" for reason, count in sorted(plan.people_held.items(), key=lambda i: -i[1])]
    if plan.licences_held:
        lines += ["", "Licences held, by reason:"]
        lines += [f"  {reason:<24} {count}" for reason, count in sorted(plan.licences_held.items(),
                                                                        key=lambda i: -i[1])]
    if plan.skus:
        lines += ["", "Per SKU:", f"  {'platform':<8} {'SKU':<34} {'releasable':>10} {'held':>6} "
                                  f"{'unit/yr':>10} {'releasable/yr':>14}"]
        for sku in plan.skus:
            lines.append(f"  {sku.platform:<8} {sku.name[:34]:<34} {sku.releasable:>10} {sku.held:>6} "
                         f"{_money(sku.annual_unit_cost):>10} {_money(sku.releasable_annual):>14}"
                         + ("  (estimated price)" if sku.estimated else ""))
    if plan.sample:
        lines += ["", f"First {len(plan.sample)} licences (all of them: --csv FILE):"]
        for row in plan.sample:
            lines.append(f"  {row['person']:<38} {row['platform']:<6} {row['sku'][:28]:<28} "
                         f"{'releasable' if row['releasable'] == 'yes' else row['reason']}"
                         + (f" — {row['detail']}" if row["detail"] else ""))
    if plan.planned or plan.withdrawn:
        lines += ["", f"Written to the outbox: {plan.planned} planned, {plan.withdrawn} withdrawn."]
    return "\n".join(lines)


def render_release_dry_run(plan: ReleasePlan) -> str:
    return (f"DRY RUN — nothing was released. --apply releases the {plan.licences_releasable} releasable licences "
            "(each read back from its source, audited; run it again after any interruption).\n\n"
            + render_plan(plan))


def render_outcome(outcome: ReleaseOutcome, *, markdown: bool = False) -> str:
    plan = outcome.plan
    lines = [f"{'# ' if markdown else ''}Licence release — tenant {outcome.tenant} (run {outcome.run[:8]})", "",
             f"Releasable at this run: {plan.licences_releasable} licences of {plan.people_releasable} people; "
             f"held: {sum(plan.people_held.values())} people.",
             f"Released now: {outcome.released}; refused by the source: {sum(outcome.refused.values())}; "
             f"failed (tried again by the next run): {outcome.failed}."]
    if outcome.reconciled:
        lines.append(f"Claims of a killed run tried again: {outcome.reconciled}.")
    if outcome.refused:
        lines += ["", "Refused, by reason:"] + [f"  {reason:<20} {count}" for reason, count in
                                               sorted(outcome.refused.items())]
    if plan.people_held:
        lines += ["", "People held, by reason:"] + [f"  {reason:<24} {count}" for reason, count in
                                                    sorted(plan.people_held.items(), key=lambda i: -i[1])]
    lines += ["", f"All releases so far: {outcome.totals.get('released', 0)} licences released "
                  f"({_money(outcome.released_annual)} a year of seats freed; the bill falls only when a contract "
                  "quantity is lowered: bascule savings report)."]
    return "\n".join(lines)


def render_restore(outcome: RestoreOutcome) -> str:
    head = "DRY RUN — nothing is granted; --apply does it." if outcome.dry_run else "Restored at the source."
    lines = [f"Licence restore — tenant {outcome.tenant}: {head}",
             f"Released licences of the people named: {outcome.asked}; inside the restore window: {outcome.queued}; "
             f"outside it: {len(outcome.outside_window)}."]
    if not outcome.dry_run:
        lines.append(f"Granted again: {outcome.restored}; refused: {sum(outcome.failed.values())}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in sorted(outcome.failed.items()))})"
                        if outcome.failed else "") + ".")
    for row in outcome.outside_window[:SHOWN_ROWS]:
        lines.append(f"  outside the window: {row['person']} {row['platform']} {row['sku']} "
                     f"(closed {row['window_closed']}; grant it at the source by hand)")
    if outcome.unknown:
        lines.append(f"Nobody known with: {', '.join(outcome.unknown[:SHOWN_ROWS])}")
    return "\n".join(lines)
