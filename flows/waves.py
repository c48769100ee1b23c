"""Flows plan-wave and freeze-wave: who moves, and the plan of what the cutover will do — the dry run.

Runbook of plan-wave: read the tenant → refuse a tenant not ready → create the wave or take it (replanning is
allowed until it is frozen) → its members from the selection (departments with their sub-units, a CSV of anchors
or e-mails; a department, e-mail or anchor nobody has is refused with the nearest known names, and so is a selection
of nobody); persons no wave moves (rooms, shared mailboxes, administrator identities) are left out, counted by
reason, and each one the selection named explicitly is reported with its reason → for each batch of members, one
task: their hosts, meetings and the organisers' events the calendar scan found → core.waves.plan_host → the
actions upserted by key (pending and skipped ones refreshed, applied ones never touched; a meeting another live
wave already gives a room is skipped with that reason) → actions a member who left would have had are dropped →
the plan shown as a markdown and a table artifact and returned (flows.plans reads it for people: the summary, the
CSV). Nothing external is written: this is the dry run.

freeze-wave moves a planned wave to frozen: the plan the cutover will apply. Every state change is audited.
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from core import ActionKind, ActionState, Meeting, normalise_email
from core.waves import Host, SkipReason, WaveSelection, WaveState, check_transition, plan_host
from db.calendars import CalendarRepository
from db.waves import HostRepository, PlanRepository, WaveRepository
from flows.budget import one_per_tenant
from flows.plans import PlanSummary as PlanSummary
from flows.plans import WaveError as WaveError
from flows.plans import audit_state as audit_state
from flows.plans import load_wave as load_wave
from flows.plans import normalised_emails as _normalised
from flows.plans import plan_markdown, reason_text, selection_refusal
from flows.plans import plan_summary as plan_summary
from flows.plans import render_plan as render_plan
from flows.runtime import run_name, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

MEMBERS_PER_TASK = 500
ALREADY_IN_WAVE = SkipReason.ALREADY_IN_WAVE.value


def read_selection_csv(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(anchors, e-mails) from a CSV with an `anchor` and/or an `email` column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower() for name in reader.fieldnames or ()}
            if not columns & {"anchor", "email"}:
                raise WaveError(f"{path}: the CSV needs an 'anchor' or an 'email' column")
            anchors, emails = [], []
            for row in reader:
                cells = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
                if cells.get("anchor"):
                    anchors.append(cells["anchor"])
                elif cells.get("email"):
                    emails.append(cells["email"])
    except OSError as exc:
        raise WaveError(f"cannot read {path}: {exc.strerror}") from None
    return tuple(anchors), tuple(emails)


def left_out(selection: WaveSelection, excluded: Sequence[tuple[str, str, str]]) -> tuple[dict[str, int],
                                                                                         list[dict[str, str]]]:
    """What the selection loses to persons no wave moves: counts by reason, and one entry per person it named
    explicitly ({"selected": as written, "anchor", "reason"}), in the order it named them."""
    by_reason = dict(sorted(Counter(reason for _anchor, _email, reason in excluded).items()))
    reasons = {anchor: reason for anchor, _email, reason in excluded}
    anchor_of = {email: anchor for anchor, email, _reason in excluded}
    named: list[dict[str, str]] = []
    seen: set[str] = set()
    named_as = [*((a.strip(), a.strip()) for a in selection.anchors),
                *((e.strip(), anchor_of.get(normalise_email(e) or e.strip().lower(), "")) for e in selection.emails)]
    for written, anchor in named_as:
        if anchor in reasons and anchor not in seen:
            seen.add(anchor)
            named.append({"selected": written, "anchor": anchor, "reason": reasons[anchor]})
    return by_reason, named


# ----------------------------------------------------------------------------------------------- tasks

@task(name="plan-hosts", cache_policy=NO_CACHE)
def plan_members(database_url: str, tenant_id: str, wave_id: int, wave_name: str, anchors: list[str], *,
                 now: datetime, stamp: datetime) -> int:
    """Plan every meeting of one batch of members (one task per batch, never per person); returns actions."""
    with transaction(database_url) as session:
        hosts_repo = HostRepository(session, tenant_id)
        hosts = hosts_repo.hosts_of(anchors)
        meetings: dict[str, list[Meeting]] = {}
        for anchor, meeting in hosts_repo.meetings_of(anchors):
            meetings.setdefault(anchor, []).append(meeting)
        plan = PlanRepository(session, tenant_id)
        elsewhere = plan.planned_elsewhere(wave_id, [(m.platform.value, m.external_id)
                                                     for found in meetings.values() for m in found])
        held = CalendarRepository(session, tenant_id).held_for(
            [(m.platform.value, m.external_id) for found in meetings.values() for m in found])
        actions = []
        for anchor, found in meetings.items():
            host = hosts.get(anchor) or Host(anchor, None, "PERSON_REMOVED")
            mine = [m for m in found if (m.platform.value, m.external_id) not in elsewhere]
            actions += plan_host(wave_name, host, mine, now=now, held=held)
            actions += _already_planned(wave_name, host, [m for m in found if m not in mine], elsewhere)
        plan.upsert(wave_id, actions, now=stamp)
        return len(actions)


@task(name="plan-unmatched-accounts", cache_policy=NO_CACHE)
def plan_unmatched(database_url: str, tenant_id: str, wave_id: int, wave_name: str, emails: list[str], *,
                   now: datetime, stamp: datetime) -> int:
    """Accounts the selection names by e-mail that matched nobody: their meetings are listed, skipped."""
    with transaction(database_url) as session:
        waves = WaveRepository(session, tenant_id)
        accounts = waves.unmatched_accounts(emails)
        actions = []
        for platform, account in accounts:
            meetings = list(HostRepository(session, tenant_id).meetings_of_accounts([(platform, account)]))
            actions += plan_host(wave_name, Host(None, None, None, account), meetings, now=now)
        PlanRepository(session, tenant_id).upsert(wave_id, actions, now=stamp)
        return len(actions)


def _already_planned(wave: str, host: Host, meetings: Iterable[Meeting],
                     elsewhere: dict[tuple[str, str], str]) -> list[Any]:
    from core.waves import WaveAction

    return [WaveAction(ActionKind.CREATE_ROOM, f"{wave}:skip:{m.platform}:{m.external_id}", m.platform,
                       m.external_id, host.anchor, ActionState.SKIPPED, reason=ALREADY_IN_WAVE,
                       payload={"other_wave": elsewhere[(m.platform.value, m.external_id)],
                                "links": [{"platform": m.platform.value, "meeting_id": m.external_id,
                                           "old_key": m.link_key, "old_url": m.join_url, "topic": m.topic}]})
            for m in meetings]


# ----------------------------------------------------------------------------------------------- flows

@flow(name="plan-wave", flow_run_name=run_name("plan-wave"), log_prints=False)
@one_per_tenant("plan-wave")
def plan_wave(tenant_file: str, wave: str, departments: list[str] | None = None,
              selection_csv: str | None = None, emails: list[str] | None = None, unfreeze: bool = False,
              now: str | None = None, force: bool = False) -> dict[str, Any]:
    """Select the wave's persons and store its plan (dry run: nothing external is written)."""
    from flows.onboard import require_ready

    logger = get_run_logger()
    settings = Settings()
    database_url = settings.database
    path = Path(tenant_file)
    tenant = TenantConfig.load(path)
    require_ready(database_url, tenant.id, force=force, config_hash=TenantConfig.file_hash(path))
    at = _instant(now)
    anchors, csv_emails = read_selection_csv(Path(selection_csv)) if selection_csv else ((), ())
    if selection_csv and not (anchors or csv_emails):
        raise WaveError(f"{selection_csv}: no anchor or e-mail in it, the wave would select nobody")
    selection = WaveSelection(tuple(departments or ()), anchors, tuple(emails or ()) + csv_emails) \
        if (departments or anchors or emails or csv_emails) else None
    with transaction(database_url) as session:
        waves = WaveRepository(session, tenant.id)
        found = waves.get(wave)
        if found is None:
            if selection is None:
                raise WaveError(f"wave {wave!r} is new: say whom it moves (--department, --select-csv or --email)")
            found = waves.create(wave, selection, now=at)
            audit_state(session, tenant.id, found, WaveState.PLANNED, now=at, selection=selection.to_json())
        else:
            refused = check_transition(found.state, WaveState.PLANNED, now=at, unfreeze=unfreeze)
            if refused is not None:
                raise WaveError(f"wave {wave}: {refused}")
            if selection is not None:
                waves.set_selection(found.id, selection, now=at)
            if found.state is not WaveState.PLANNED:
                audit_state(session, tenant.id, found, WaveState.PLANNED, now=at, unfrozen=True)
                waves.set_state(found.id, WaveState.PLANNED, now=at)
        selection = selection or found.selection
        refusal = selection_refusal(waves, selection)
        if refusal is not None:
            raise WaveError(f"wave {wave}: {refusal}")
        members = waves.selected_anchors(selection)
        excluded, excluded_named = left_out(selection, waves.excluded_selected(selection))
        if not members:
            left = f" ({sum(excluded.values())} left out: " + ", ".join(f"{reason} {n}" for reason, n in
                                                                        excluded.items()) + ")" if excluded else ""
            raise WaveError(f"wave {wave}: the selection selects nobody{left}; name departments, e-mails or anchors "
                            "of agents (bascule directory departments lists the departments)")
        waves.replace_members(found.id, members)
    logger.info("tenant %s: wave %s selects %d persons; %d left out (%s), %d of them named explicitly", tenant.id,
                wave, len(members), sum(excluded.values()), ", ".join(excluded) or "none", len(excluded_named))
    planned_at = datetime.now(UTC)
    for start in range(0, len(members), MEMBERS_PER_TASK):
        plan_members(database_url, tenant.id, found.id, wave, members[start:start + MEMBERS_PER_TASK],
                     now=at, stamp=planned_at)
    if selection.emails:
        plan_unmatched(database_url, tenant.id, found.id, wave, _normalised(selection.emails), now=at,
                       stamp=planned_at)
    with transaction(database_url) as session:
        dropped = PlanRepository(session, tenant.id).drop_unplanned(found.id, planned_before=planned_at)
    summary = plan_summary(database_url, tenant.id, load_wave(database_url, tenant.id, wave))
    summary.dropped = dropped
    summary.excluded, summary.excluded_named = excluded, excluded_named
    create_markdown_artifact(key=f"wave-plan-{tenant.id}-{_artifact_key(wave)}",
                             markdown=plan_markdown(summary, title=f"Plan of wave {wave} (dry run)"),
                             description=f"Plan of wave {wave} (dry run)")
    create_table_artifact(key=f"wave-actions-{tenant.id}-{_artifact_key(wave)}",
                          table=[{"action": kind, "state": state, "count": n}
                                 for kind, states in sorted(summary.actions.items())
                                 for state, n in sorted(states.items())],
                          description=f"Actions of wave {wave} by kind and state")
    create_table_artifact(key=f"wave-not-moving-{tenant.id}-{_artifact_key(wave)}",
                          table=[{"reason": reason, "meetings": n, "meaning": reason_text(reason)}
                                 for reason, n in summary.not_moving.items()],
                          description=f"Meetings of wave {wave} that do not move, by reason")
    logger.info("tenant %s: wave %s planned: %d meetings move, %d do not; %s", tenant.id, wave, summary.moving,
                sum(summary.not_moving.values()), "; ".join(
                    f"{kind} " + ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
                    for kind, states in sorted(summary.actions.items())))
    return summary.__dict__


@flow(name="freeze-wave", flow_run_name=run_name("freeze-wave"), log_prints=False)
@one_per_tenant("freeze-wave")
def freeze_wave(tenant_file: str, wave: str, now: str | None = None) -> dict[str, Any]:
    """planned → frozen: the plan the cutover will apply."""
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    at = _instant(now)
    with transaction(settings.database) as session:
        waves = WaveRepository(session, tenant.id)
        found = waves.get(wave)
        if found is None:
            raise WaveError(f"tenant {tenant.id} has no wave {wave!r}")
        refused = check_transition(found.state, WaveState.FROZEN, now=at)
        if refused is not None:
            raise WaveError(f"wave {wave}: {refused}")
        audit_state(session, tenant.id, found, WaveState.FROZEN, now=at)
        waves.set_state(found.id, WaveState.FROZEN, now=at)
    return plan_summary(settings.database, tenant.id, load_wave(settings.database, tenant.id, wave)).__dict__


def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _artifact_key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or uuid.uuid4().hex[:8]


def guard_until(cut_over_at: datetime, hours: float) -> datetime:
    return cut_over_at + timedelta(hours=hours)


