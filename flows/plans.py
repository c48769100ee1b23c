"""Wave plans as people read them: the summary (counts and the first rows of each table), the CSV export, the list
of a tenant's waves with their history, and cancelling a wave before its cutover.

Nothing here imports Prefect: `wave list`, `wave show`, `wave cancel` and the CSV export answer from the state
database in a fraction of a second. Every table is read a page at a time; the terminal shows counts and the first
rows of each table, the CSV holds every row (one per meeting and action).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from typing import IO, Any

from sqlalchemy.orm import Session

from core import ActionKind, ActionState, ConflictKind, normalise_email
from core.departments import known_departments, nearest_names
from core.identity import CONFLICT_MEANING
from core.waves import (
    BLOCKING_FLAGS,
    CUTOVER_KINDS,
    SKIP_MEANING,
    Channel,
    Flag,
    SkipReason,
    WaveSelection,
    WaveState,
    check_transition,
)
from db.repositories import AuditRepository, AuditRow
from db.waves import PlanLine, PlanRepository, WaveListing, WaveRepository, WaveRow
from flows.errors import OperatorError
from flows.runtime import transaction

ROWS_SHOWN = 10
CSV_COLUMNS = ("meeting_id", "platform", "title", "host", "host_anchor", "series", "recurrence", "action", "state",
               "reason", "reason_text", "visio_room", "flags", "action_key")
_MOVING_STATES = tuple(state for state in ActionState if state is not ActionState.SKIPPED)


class WaveError(OperatorError, ValueError):
    """A wave operation that cannot go on (message fits on one line)."""


@dataclass
class PlanSummary:
    """What a plan holds, as counts and the first rows of each table; the CLI prints it, the demo sums it up.

    `moving` and `not_moving` count meetings (a personal room carries several); the samples are `csv_row`s;
    `waiting_hosts` are hosts whose rooms wait for their first Visio login; `hosts` those who receive something.
    """

    tenant: str
    wave: str
    state: str
    members: int = 0
    actions: dict[str, dict[str, int]] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    # Persons the selection names that no wave moves (rooms, shared mailboxes, administrators), by reason; and
    # each one it named explicitly (by e-mail or anchor, as written), with the reason it was left out.
    excluded: dict[str, int] = field(default_factory=dict)
    excluded_named: list[dict[str, str]] = field(default_factory=list)
    moving: int = 0
    not_moving: dict[str, int] = field(default_factory=dict)
    moving_sample: list[dict[str, str]] = field(default_factory=list)
    not_moving_sample: list[dict[str, str]] = field(default_factory=list)
    waiting_hosts: int = 0
    waiting_sample: list[dict[str, str]] = field(default_factory=list)
    hosts: int = 0
    host_sample: list[dict[str, str | int]] = field(default_factory=list)
    # Series by how their attendees learn the new link (core.waves.Channel): in the organiser's calendar (the
    # server tells them), an iTIP bascule mails under the original UID, or a mail under a made-up UID.
    series_by_channel: dict[str, int] = field(default_factory=dict)


def load_wave(database_url: str, tenant_id: str, name: str) -> WaveRow:
    with transaction(database_url) as session:
        found = WaveRepository(session, tenant_id).get(name)
    if found is None:
        raise WaveError(f"tenant {tenant_id} has no wave {name!r} (plan it first: bascule wave plan; "
                        "the tenant's waves: bascule wave list)")
    return found


def audit_state(session: Any, tenant_id: str, wave: WaveRow, target: WaveState, *, now: datetime,
                actor: str = "bascule", **details: Any) -> None:
    """Record a wave's state change (who, from, to)."""
    AuditRepository(session, tenant_id).record(actor=actor, action=f"wave.{target.value}", target_kind="wave",
                                               target_id=wave.name, now=now, before={"state": wave.state.value},
                                               after={"state": target.value, **details})


def plan_summary(database_url: str, tenant_id: str, wave: WaveRow, *, rows: int = ROWS_SHOWN) -> PlanSummary:
    """Counts of the whole plan and the first `rows` of each table (read in pages, never the plan at once)."""
    with transaction(database_url) as session:
        plan = PlanRepository(session, tenant_id)
        members = WaveRepository(session, tenant_id).member_count(wave.id)
        tally = plan.tally(wave.id)
        moving = islice(plan.iter_lines(wave.id, kinds=[ActionKind.CREATE_ROOM], states=_MOVING_STATES), rows)
        not_moving = islice(plan.iter_lines(wave.id, kinds=[ActionKind.CREATE_ROOM], states=[ActionState.SKIPPED]),
                            rows)
        waiting, waiting_sample = plan.waiting_hosts(wave.id, limit=rows)
        hosts, receipts = plan.host_receipts(wave.id, limit=rows)
        return PlanSummary(
            tenant=tenant_id, wave=wave.name, state=wave.state.value, members=members, actions=plan.counts(wave.id),
            flagged=tally.flagged, skipped=plan.reasons(wave.id, states=[ActionState.SKIPPED]),
            moving=tally.moving, not_moving=tally.not_moving, moving_sample=[csv_row(line) for line in moving],
            not_moving_sample=[csv_row(line) for line in not_moving], waiting_hosts=waiting,
            waiting_sample=[{"host": host.email, "anchor": host.anchor, "status": "held" if host.held else
                             "not seen in Visio yet"} for host in waiting_sample],
            hosts=hosts, host_sample=[asdict(receipt) for receipt in receipts],
            series_by_channel=plan.series_by_channel(wave.id))


# ----------------------------------------------------------------------------------------------- selections

SUGGESTED = 5  # unknown names given their nearest known ones in the refusal (the rest are counted)


def normalised_emails(emails: Iterable[str]) -> list[str]:
    return [normalise_email(e) or e.strip().lower() for e in emails]


def selection_refusal(waves: WaveRepository, selection: WaveSelection) -> str | None:
    """Why the selection cannot be planned — departments, e-mails or anchors nobody has, each of the first ones
    with the nearest known names — or None."""
    unknown: list[tuple[str, str, list[str]]] = []
    if selection.departments:
        known = known_departments(waves.departments())
        unknown += [("department", name, nearest_names(name.rstrip("/"), known)) for name in selection.departments
                    if name.rstrip("/") not in known]
    if selection.emails:
        spelled = dict(zip(selection.emails, normalised_emails(selection.emails), strict=True))
        known_emails = waves.known_emails(list(spelled.values()))
        for written, email in spelled.items():
            if email not in known_emails:
                holders, near = waves.emails_near(email) if len(unknown) < SUGGESTED else ([], [])
                unknown.append(("e-mail", written, list(dict.fromkeys([*holders, *nearest_names(email, near)]))[:3]))
    if selection.anchors:
        known_anchors = waves.known_anchors([anchor.strip() for anchor in selection.anchors])
        unknown += [("anchor", anchor, []) for anchor in selection.anchors if anchor.strip() not in known_anchors]
    if not unknown:
        return None
    said = [f"unknown {what} {name!r} " + (f"(nearest: {', '.join(near)})" if near else "(no close name)")
            for what, name, near in unknown[:SUGGESTED]]
    if len(unknown) > SUGGESTED:
        said.append(f"and {len(unknown) - SUGGESTED} more unknown names")
    hint = " — the departments: bascule directory departments" if any(what == "department" for what, _n, _s
                                                                     in unknown) else ""
    return "; ".join(said) + hint


def selection_check(database_url: str, tenant_id: str, wave: str, *, departments: Sequence[str],
                    emails: Sequence[str]) -> str | None:
    """The refusal plan-wave would give these departments and e-mails (the command checks before Prefect starts)."""
    if not (departments or emails):
        return None
    with transaction(database_url) as session:
        refusal = selection_refusal(WaveRepository(session, tenant_id),
                                    WaveSelection(tuple(departments), (), tuple(emails)))
    return None if refusal is None else f"wave {wave}: {refusal}"


# ----------------------------------------------------------------------------------------------- the CSV

def csv_row(line: PlanLine) -> dict[str, str]:
    """One line of the plan as a CSV row (and as the samples the terminal shows)."""
    return {"meeting_id": line.meeting_id, "platform": line.platform, "title": _cell(line.title),
            "host": _cell(line.host), "host_anchor": line.host_anchor, "series": line.series,
            "recurrence": line.recurrence, "action": line.action.value, "state": line.state.value,
            "reason": line.reason or "", "reason_text": reason_text(line.reason), "visio_room": line.visio_room,
            "flags": ";".join(line.flags), "action_key": line.action_key}


def reason_text(reason: str | None) -> str:
    """What a reason code means, for people (empty for codes without a sentence)."""
    return SKIP_MEANING.get(reason or "", "")


def _cell(text: str) -> str:
    """A free-text cell on one line, never read as a formula by a spreadsheet."""
    flat = " ".join(text.split())
    return "'" + flat if flat[:1] in ("=", "+", "-", "@") else flat


def write_plan_csv(database_url: str, tenant_id: str, wave: str, out: IO[str]) -> int:
    """Every line of the wave's plan (one per meeting and action) to `out`, streamed; returns the rows written."""
    found = load_wave(database_url, tenant_id, wave)
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    written = 0
    with transaction(database_url) as session:
        for line in PlanRepository(session, tenant_id).iter_lines(found.id):
            writer.writerow(csv_row(line))
            written += 1
    return written


# ----------------------------------------------------------------------------------------------- the terminal

def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _title(text: str, width: int = 40) -> str:
    text = text.lstrip("'") if text.startswith("'") else text
    return text if len(text) <= width else text[:width - 1] + "…"


def _more(shown: int, total: int, hint: str) -> list[str]:
    return [f"  … and {total - shown:,} more; {hint}"] if total > shown else []


def render_plan(summary: PlanSummary | Mapping[str, Any], *, more: str = "see --csv FILE") -> str:
    """The plan as the CLI prints it: counts, then the first rows of each table ("… and K more; {more}")."""
    data: Mapping[str, Any] = asdict(summary) if isinstance(summary, PlanSummary) else summary
    actions: dict[str, dict[str, int]] = data["actions"]
    lines = [f"wave {data['wave']} of {data['tenant']}: {data['state']}, {_count(data['members'], 'person')}"]
    if data.get("excluded"):
        lines.append("  not selectable     " + ", ".join(f"{reason} {n}" for reason, n in data["excluded"].items())
                     + " (rooms, shared mailboxes, administrators: never in a wave)")
    for item in data.get("excluded_named") or ():
        lines.append(f"  left out           {item['selected']}: {item['reason']}, "
                     f"{CONFLICT_MEANING[ConflictKind(item['reason'])]}")
    for kind in ActionKind:
        states = actions.get(kind.value)
        if states:
            lines.append(f"  {kind.value:<18} " + ", ".join(f"{state} {n}" for state, n in sorted(states.items())))
    channels: dict[str, int] = data.get("series_by_channel") or {}
    if any(channels.values()):
        lines.append("  series by channel  " + ", ".join(f"{channel} {n}" for channel, n in channels.items())
                     + _invented(channels))
    if data["flagged"]:
        blocking = {str(flag) for flag in BLOCKING_FLAGS}
        lines.append("  meetings flagged   " + ", ".join(
            f"{flag} {n}" + (" (not migrated)" if flag in blocking else "") for flag, n in data["flagged"].items()))
    not_moving: dict[str, int] = data.get("not_moving") or {}
    moving: int = data.get("moving") or 0
    lines += ["", f"Meetings that move: {moving:,}" + ("" if not moving else
                                                       f" (first {len(data['moving_sample'])})")]
    lines += [_meeting_line(row) for row in data.get("moving_sample") or ()]
    lines += _more(len(data.get("moving_sample") or ()), moving, more)
    total = sum(not_moving.values())
    lines += ["", f"Meetings that do not move: {total:,}"]
    lines += [f"  {reason:<18} {n:>7,}  {reason_text(reason)}" for reason, n in not_moving.items()]
    if data.get("not_moving_sample"):
        lines.append(f"  first {len(data['not_moving_sample'])}:")
        lines += [_meeting_line(row) for row in data["not_moving_sample"]]
        lines += _more(len(data["not_moving_sample"]), total, more)
    waiting: int = data.get("waiting_hosts") or 0
    if waiting:
        lines += ["", f"Hosts who must log in to Visio once before their rooms are created: {waiting:,} (the Visio "
                      "instance does not pre-create users; their actions are held and tried again on every cutover "
                      "run)"]
        lines += [f"  {row['host'] or row['anchor']:<40} {row['status']}" for row in data["waiting_sample"]]
        lines += _more(len(data["waiting_sample"]), waiting, more)
    hosts: int = data.get("hosts") or 0
    lines += ["", f"What hosts receive: {_count(hosts, 'host')}, " + _receipt(
        sum(actions.get(ActionKind.CREATE_ROOM.value, {}).get(s, 0) for s in _live_states()),
        sum(actions.get(kind.value, {}).get(s, 0) for s in _live_states()
            for kind in (ActionKind.REWRITE_EVENT, ActionKind.REWRITE_CALENDAR)),
        sum(actions.get(ActionKind.SEND_INVITATION.value, {}).get(s, 0) for s in _live_states()))]
    lines += [f"  {row['email'] or row['anchor']:<40} " + _receipt(int(row["rooms"]), int(row["events"]),
                                                                   int(row["invitations"]))
              for row in data.get("host_sample") or ()]
    lines += _more(len(data.get("host_sample") or ()), hosts, more)
    return "\n".join(lines)


def _invented(channels: Mapping[str, int]) -> str:
    mailed = channels.get(Channel.MAIL_INVENTED_UID.value, 0)
    return (f" ({_count(mailed, 'series', 'series')} no calendar holds: flagged {Flag.UID_UNKNOWN}, their attendees "
            "get a second event beside the old one)") if mailed else ""


def _live_states() -> list[str]:
    return [state.value for state in _MOVING_STATES]


def _receipt(rooms: int, events: int, invitations: int) -> str:
    return (f"{_count(rooms, 'Visio room')}, {_count(events, 'calendar event')} rewritten in place, "
            f"{_count(invitations, 'ICS update')} mailed")


def _meeting_line(row: Mapping[str, str]) -> str:
    what = row["reason"] if row["state"] == ActionState.SKIPPED.value else (
        f"room {row['state']}" + (f" {row['visio_room']}" if row["visio_room"] else ""))
    series = f" ({row['series']})" if row["series"] and row["series"] != row["reason"] else ""
    return (f"  {row['platform']:<5} {_title(row['meeting_id'], 14):<14} {_title(row['title'] or '(no title)'):<40}"
            f"{series:<18} host {row['host'] or '(unknown)'}: {what}")


def plan_markdown(summary: PlanSummary, *, title: str) -> str:
    """The same tables as the terminal, as markdown (the Prefect artifact). Hosts are named by their directory
    anchor, never by e-mail address: artifacts live on the Prefect server, beside the logs."""
    rows = ["| Action | State | Count |", "|---|---|---|"]
    rows += [f"| {kind} | {state} | {count} |" for kind, states in sorted(summary.actions.items())
             for state, count in sorted(states.items())]
    blocking = {str(flag) for flag in BLOCKING_FLAGS}
    flags = ["| Flag | Meetings | Migrated? |", "|---|---|---|"]
    flags += [f"| {flag} | {count} | {'no' if flag in blocking else 'yes'} |"
              for flag, count in summary.flagged.items()]
    left = ["Not selectable (never in a wave): " + ", ".join(f"{reason} {n}" for reason, n in summary.excluded.items())
            + f"; {len(summary.excluded_named)} of them named explicitly.", ""] if summary.excluded else []
    reasons = ["| Reason | Meetings | Meaning |", "|---|---|---|"]
    reasons += [f"| {reason} | {n} | {_md(reason_text(reason))} |" for reason, n in summary.not_moving.items()]
    meetings = ["| Platform | Meeting | Title | Series | Host anchor | Action | State | Reason | Visio room |",
                "|---|---|---|---|---|---|---|---|---|"]
    meetings += [f"| {r['platform']} | {r['meeting_id']} | {_md(r['title'])} | {r['series']} | "
                 f"{_md(r['host_anchor'] or '(unknown)')} | "
                 f"{r['action']} | {r['state']} | {r['reason']} | {r['visio_room']} |"
                 for r in [*summary.moving_sample, *summary.not_moving_sample]]
    waiting = ["| Host anchor | Status |", "|---|---|"]
    waiting += [f"| {_md(r['anchor'] or '(unknown)')} | {r['status']} |" for r in summary.waiting_sample]
    hosts = ["| Host anchor | Visio rooms | Calendar events rewritten in place | ICS updates mailed |",
             "|---|---|---|---|"]
    hosts += [f"| {_md(str(r['anchor'] or '(unknown)'))} | {r['rooms']} | {r['events']} | {r['invitations']} |"
              for r in summary.host_sample]
    return "\n".join([
        f"## {title}: {summary.state}, {summary.members} persons", "", *left, *rows, "",
        f"### Meetings: {summary.moving} move, {sum(summary.not_moving.values())} do not", "", *reasons, "",
        f"First {len(summary.moving_sample)} that move and first {len(summary.not_moving_sample)} that do not "
        "(every row: `bascule wave show --csv FILE`):", "", *meetings, "",
        "### Meetings flagged", "", *flags, "",
        "### Series by channel", "", "| Channel | Series |", "|---|---|",
        *(f"| {channel} | {n} |" for channel, n in summary.series_by_channel.items()), "",
        f"### Hosts who must log in to Visio first: {summary.waiting_hosts}", "", *waiting, "",
        f"### What hosts receive: {summary.hosts} hosts (first {len(summary.host_sample)})", "", *hosts, ""])


def _md(text: str) -> str:
    return text.replace("|", "\\|")


# ----------------------------------------------------------------------------------------------- waves

def list_waves(database_url: str, tenant_id: str) -> list[WaveListing]:
    with transaction(database_url) as session:
        return WaveRepository(session, tenant_id).listing()


def listing_json(wave: WaveListing) -> dict[str, Any]:
    found = asdict(wave)
    found["state"] = wave.state.value
    for name in ("created_at", "updated_at", "cut_over_at"):
        found[name] = found[name].isoformat() if found[name] else None
    return found


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def render_waves(tenant_id: str, waves: Iterable[WaveListing]) -> str:
    """The tenant's waves as a table (dates in UTC)."""
    rows = [("WAVE", "STATE", "PERSONS", "CREATED (UTC)", "CUT OVER (UTC)", "PROGRESS")]
    for wave in waves:
        progress = f"{wave.done:,}/{wave.actions:,} actions done" if wave.actions else "nothing to apply"
        progress += "".join(f", {n:,} {label}" for n, label in ((wave.held, "held"), (wave.failed, "failed")) if n)
        rows.append((wave.name, wave.state.value, f"{wave.persons:,}", _when(wave.created_at), _when(wave.cut_over_at),
                     progress))
    if len(rows) == 1:
        return f"tenant {tenant_id} has no wave yet (bascule wave plan --tenant FILE --wave NAME --department D)"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
                     for row in rows)


def wave_history(database_url: str, tenant_id: str, wave: str) -> list[AuditRow]:
    with transaction(database_url) as session:
        return AuditRepository(session, tenant_id).events_of("wave", wave)


def history_json(event: AuditRow) -> dict[str, Any]:
    return {"at": event.occurred_at.isoformat(), "actor": event.actor, "action": event.action,
            "from": event.before.get("state"), "to": event.after.get("state"),
            "details": {key: value for key, value in event.after.items() if key != "state"}}


def render_history(events: Iterable[AuditRow]) -> str:
    lines = ["History (UTC):"]
    for event in events:
        before, after = event.before.get("state"), event.after.get("state")
        move = f"{after} (created)" if event.action == "wave.planned" and before == after and not lines[1:] \
            else f"{before} → {after}"
        details = _details({key: value for key, value in event.after.items() if key != "state"})
        lines.append(f"  {_when(event.occurred_at)}  {move:<26} by {event.actor}" + (f"  {details}" if details else ""))
    return "\n".join(lines) if len(lines) > 1 else "History: none recorded"


def _details(values: Mapping[str, Any]) -> str:
    """Audit details on one line, for people: scalars as they are, lists by their items, mappings by their keys."""
    parts = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            inner = [f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()
                     if v not in (None, [], {})]
            parts.append(f"{key.replace('_', ' ')}: {'; '.join(inner)}")
        elif isinstance(value, list):
            parts.append(f"{key.replace('_', ' ')}: {', '.join(map(str, value[:5]))}"
                         + (f" and {len(value) - 5} more" if len(value) > 5 else ""))
        elif value is not None:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A wave cancelled before its cutover: its pending actions skipped."""

    tenant: str
    wave: str
    state: str
    actions_skipped: int


def cancel_wave(database_url: str, tenant_id: str, name: str, *, now: datetime, actor: str) -> Cancelled:
    """planned or frozen → cancelled, audited; refused once its cutover started (roll it back instead)."""
    with transaction(database_url) as session:
        waves = WaveRepository(session, tenant_id)
        found = waves.get(name)
        if found is None:
            raise WaveError(f"tenant {tenant_id} has no wave {name!r} (the tenant's waves: bascule wave list)")
        if check_transition(found.state, WaveState.CANCELLED, now=now) is not None:
            hint = ("; roll it back instead (bascule wave rollback), inside its guard window"
                    if found.state in (WaveState.CUT_OVER, WaveState.VERIFIED) else "")
            raise WaveError(f"wave {name} is {found.state.value}: only a planned or frozen wave can be cancelled"
                            + hint)
        plan = PlanRepository(session, tenant_id)
        started = plan.started(found.id)
        if started:
            raise WaveError(f"wave {name} cannot be cancelled: its cutover started ({started} actions applied or "
                            "attempted); roll it back instead (bascule wave rollback)")
        skipped = _cancel(session, tenant_id, found, now=now, actor=actor)
    return Cancelled(tenant_id, name, WaveState.CANCELLED.value, skipped)


def _cancel(session: Session, tenant_id: str, wave: WaveRow, *, now: datetime, actor: str) -> int:
    skipped = PlanRepository(session, tenant_id).skip_pending(wave.id, reason=SkipReason.WAVE_CANCELLED.value,
                                                              now=now)
    audit_state(session, tenant_id, wave, WaveState.CANCELLED, now=now, actor=actor, actions_skipped=skipped)
    WaveRepository(session, tenant_id).set_state(wave.id, WaveState.CANCELLED, now=now)
    return skipped


# ----------------------------------------------------------------------------------------------- the dry run

_WOULD = {ActionKind.CREATE_ROOM: ("create", "Visio room", ""),
          ActionKind.REWRITE_EVENT: ("rewrite", "Teams event", " (the series master, in place: only its meeting "
                                                               "block and location)"),
          ActionKind.REWRITE_CALENDAR: ("rewrite", "Zoom/Webex event", " (in the organiser's own calendar, in place "
                                                                       "under its original UID)"),
          ActionKind.SEND_INVITATION: ("mail", "ICS update", " (on behalf of the organiser, under a UID bascule "
                                                             "makes up: attendees get a second event)")}


def would_apply(actions: Mapping[str, Mapping[str, int]], *, retry_held: bool = True,
                retry_failed: bool = False) -> dict[str, int]:
    """What `cutover --apply` would try now, per action kind: pending and claimed actions, held ones (hosts who had
    not logged in are tried on every run) and failed ones only with --retry-failed."""
    states = [ActionState.PENDING, ActionState.CLAIMED, *([ActionState.HELD] if retry_held else []),
              *([ActionState.FAILED] if retry_failed else [])]
    return {kind.value: sum(actions.get(kind.value, {}).get(state.value, 0) for state in states)
            for kind in CUTOVER_KINDS}


def render_dry_run(result: Mapping[str, Any]) -> str:
    """`wave cutover` without --apply: says it is a dry run, what --apply would do, then the plan."""
    would: Mapping[str, int] = result["would_apply"]
    lines = ["DRY RUN: nothing was changed (no Visio room created, no calendar event rewritten, no mail sent)."]
    if result.get("apply_refused"):
        lines.append(f"--apply would be refused now: {result['apply_refused']}")
    if any(would.values()):
        lines.append("With --apply, this cutover would:")
        for kind, (verb, noun, how) in _WOULD.items():
            if would.get(kind.value):
                lines.append(f"  {verb} {_count(would[kind.value], noun)}{how}")
    else:
        lines.append("With --apply, this cutover would do nothing: every action is done, skipped or failed.")
    failed = sum(states.get(ActionState.FAILED.value, 0) for kind, states in result["actions"].items()
                 if kind in {k.value for k in CUTOVER_KINDS})
    if failed and not result.get("retry_failed"):
        lines.append(f"  ({_count(failed, 'failed action')} left as they are; add --retry-failed to try them "
                     "again once their cause is fixed)")
    return "\n".join([*lines, "", render_plan(result, more="see bascule wave show --csv FILE")])


def dry_run_markdown(summary: PlanSummary, would: Mapping[str, int], refused: str | None) -> str:
    """The dry run as the Prefect artifact shows it: what --apply would do, then the plan's tables."""
    rows = ["| With --apply | Count |", "|---|---|"]
    rows += [f"| {verb} {noun}s{how} | {would.get(kind.value, 0)} |" for kind, (verb, noun, how) in _WOULD.items()]
    head = ["## Dry run: nothing was changed", "", *([f"**--apply would be refused now**: {refused}", ""]
                                                    if refused else []), *rows, ""]
    return "\n".join([*head, plan_markdown(summary, title=f"Plan of wave {summary.wave}")])
