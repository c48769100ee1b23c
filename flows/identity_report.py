"""The identity report for the migration team, and the overrides CSV they send back.

`counts` is what `bascule identities report --json` prints (conflict keys as in the generator's manifest; persons
no wave moves — rooms, shared mailboxes, administrator identities — by reason);
`write_conflicts_csv` is both the CSV detail and the file `export-conflicts` hands over for decisions;
`apply_overrides` validates every decision row against the state database, stores and audits the valid ones.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from jinja2 import Environment, select_autoescape

from core import ConflictKind, MatchMethod
from core.identity import (
    CONFLICT_MEANING,
    OVERRIDE_COLUMNS,
    OverrideRow,
    RefusedRow,
    RowRefusal,
    parse_override_row,
    split_account_subject,
)
from db.repositories import AuditRepository, CheckpointRepository, IdentityRepository
from flows.identities import SOURCE, STREAM
from flows.runtime import transaction


def counts(database_url: str, tenant_id: str) -> dict[str, Any]:
    """Persons (and those never selected in a wave, by reason), matches by method, open conflicts per kind (every
    kind, zeros included), expectations."""
    with transaction(database_url) as session:
        identities = IdentityRepository(session, tenant_id)
        state = CheckpointRepository(session, tenant_id).get(SOURCE, STREAM)
        methods = identities.method_counts()
        open_counts = identities.open_conflict_counts()
        return {
            "tenant": tenant_id,
            "pass": {"id": state.pass_id, "complete": state.complete} if state else None,
            "persons": identities.person_count(),
            "excluded_persons": identities.excluded_counts(),
            "expectations": identities.expectation_counts(),
            "matches_by_method": {str(method): methods.get(str(method), 0) for method in MatchMethod},
            "conflicts": {str(kind): open_counts.get(str(kind), 0) for kind in ConflictKind},
        }


def render_text(report: dict[str, Any]) -> str:
    """The counts as the CLI prints them: persons, matches by method, open conflicts by kind."""
    lines = [f"tenant {report['tenant']}: {report['persons']} persons, "
             f"{sum(report['matches_by_method'].values())} source accounts matched"
             + ("" if report["pass"] and report["pass"]["complete"] else " (last pass unfinished: re-run map)")]
    if report.get("excluded_persons"):
        lines.append("persons never selected in a wave: " + ", ".join(
            f"{reason} {count}" for reason, count in report["excluded_persons"].items()))
    lines.append("matches by method:")
    lines += [f"  {method:<28} {count:>8}" for method, count in report["matches_by_method"].items() if count]
    lines.append("open conflicts by kind:")
    lines += [f"  {kind:<28} {count:>8}  {CONFLICT_MEANING[ConflictKind(kind)]}"
              for kind, count in report["conflicts"].items() if count]
    for name, values in report["expectations"].items():
        lines.append(f"{name.replace('_', ' ')}: " + ", ".join(f"{key} {count}" for key, count in values.items()))
    return "\n".join(lines)


def _conflict_rows(database_url: str, tenant_id: str) -> Iterator[dict[str, str]]:
    with transaction(database_url) as session:
        decided = IdentityRepository(session, tenant_id).overrides()
        for conflict in IdentityRepository(session, tenant_id).iter_open_conflicts():
            account = split_account_subject(conflict.subject)
            override = decided.get((account[0].value, account[1])) if account else None
            yield {"kind": conflict.kind, "subject": conflict.subject, "value": conflict.value,
                   "detail": conflict.detail, "platform": account[0].value if account else "",
                   "account_external_id": account[1] if account else "",
                   "action": override.action.value if override else "",
                   "person_anchor": (override.person_anchor or "") if override else "", "reason": ""}


def write_conflicts_csv(database_url: str, tenant_id: str, out: TextIO) -> int:
    """Every open conflict, one per row, with the decision columns (filled where a decision already stands)."""
    writer = csv.DictWriter(out, fieldnames=OVERRIDE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    written = 0
    for row in _conflict_rows(database_url, tenant_id):
        writer.writerow(row)
        written += 1
    return written


_HTML = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Identités — {{ report.tenant }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}th{background:#eef}.n{text-align:right}</style>
</head><body>
<h1>Identity report — {{ report.tenant }}</h1>
<p>{{ report.persons }} persons; {{ report.matches_by_method.values() | sum }} source accounts matched.</p>
{% if report.excluded_persons %}<p>Never selected in a wave: {% for reason, n in report.excluded_persons.items() %}
{{ reason }} {{ n }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
<h2>Matches by method</h2>
<table><tr><th>method</th><th>accounts</th></tr>
{% for method, n in report.matches_by_method.items() %}<tr><td>{{ method }}</td><td class="n">{{ n }}</td></tr>
{% endfor %}</table>
<h2>Open conflicts by kind</h2>
<table><tr><th>kind</th><th>open</th><th>meaning</th></tr>
{% for kind, n in report.conflicts.items() %}<tr><td><a href="#{{ kind }}">{{ kind }}</a></td>
<td class="n">{{ n }}</td><td>{{ meaning[kind] }}</td></tr>
{% endfor %}</table>
{% for kind, rows in detail %}<h2 id="{{ kind }}">{{ kind }} ({{ rows | length }})</h2>
<table><tr><th>subject</th><th>value</th><th>detail</th><th>decision</th></tr>
{% for row in rows %}<tr><td>{{ row.subject }}</td><td>{{ row.value }}</td><td>{{ row.detail }}</td>
<td>{{ row.action }} {{ row.person_anchor }}</td></tr>
{% endfor %}</table>
{% endfor %}</body></html>
"""


def render_html(database_url: str, tenant_id: str) -> str:
    """The report as one self-contained HTML page (every value escaped)."""
    detail: dict[str, list[dict[str, str]]] = {}
    for row in _conflict_rows(database_url, tenant_id):
        detail.setdefault(row["kind"], []).append(row)
    template = Environment(autoescape=select_autoescape(default=True)).from_string(_HTML)
    return template.render(report=counts(database_url, tenant_id), detail=sorted(detail.items()),
                           meaning={str(kind): text for kind, text in CONFLICT_MEANING.items()})


@dataclass(frozen=True, slots=True)
class OverridesOutcome:
    """What `apply_overrides` did with a CSV."""

    applied: tuple[OverrideRow, ...]
    refused: tuple[RefusedRow, ...]
    rows_without_decision: int


def read_override_rows(lines: Iterable[str]) -> tuple[list[OverrideRow], list[RefusedRow], int]:
    """Parse the CSV (line numbers as a spreadsheet shows them: the header is row 1)."""
    try:
        return _read_override_rows(lines)
    except csv.Error as error:  # a NUL byte, a quote never closed: the file is refused, nothing of it applied
        return [], [RefusedRow(1, f"the file is not readable CSV ({error})", RowRefusal.UNREADABLE_CSV)], 0


def _read_override_rows(lines: Iterable[str]) -> tuple[list[OverrideRow], list[RefusedRow], int]:
    reader = csv.DictReader(lines, strict=True)
    missing = {"action"} - set(reader.fieldnames or ())
    if missing:
        return [], [RefusedRow(1, "the header has no 'action' column (use the file export-conflicts writes)",
                               RowRefusal.NO_ACTION_COLUMN)], 0
    rows: list[OverrideRow] = []
    refused: list[RefusedRow] = []
    empty = 0
    first_row_of: dict[tuple[str, str], int] = {}
    for number, row in enumerate(reader, start=2):
        parsed = parse_override_row(number, row)
        if parsed is None:
            empty += 1
        elif isinstance(parsed, RefusedRow):
            refused.append(parsed)
        elif (key := (parsed.platform.value, parsed.account_external_id)) in first_row_of:
            refused.append(RefusedRow(number, f"account {key[0]}:{key[1]} is already decided in row "
                                              f"{first_row_of[key]}", RowRefusal.DECIDED_TWICE))
        else:
            first_row_of[key] = number
            rows.append(parsed)
    return rows, refused, empty


def apply_overrides(database_url: str, tenant_id: str, lines: Iterable[str], *, author: str) -> OverridesOutcome:
    """Store the valid decisions (each audited); refuse rows naming an unknown account or person."""
    rows, refused, empty = read_override_rows(lines)
    applied: list[OverrideRow] = []
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        identities, audit = IdentityRepository(session, tenant_id), AuditRepository(session, tenant_id)
        current = identities.overrides()
        for row in rows:
            subject = f"{row.platform.value}:{row.account_external_id}"
            if not identities.account_exists(row.platform.value, row.account_external_id):
                refused.append(RefusedRow(row.line, f"unknown account {subject} (not in the extracted accounts)",
                                          RowRefusal.UNKNOWN_ACCOUNT))
                continue
            anchor = row.override.person_anchor if row.override else None
            if anchor is not None and not identities.person_exists(anchor):
                refused.append(RefusedRow(row.line, f"unknown person {anchor} (no current directory entry)",
                                          RowRefusal.UNKNOWN_PERSON))
                continue
            before = current.get((row.platform.value, row.account_external_id))
            if row.override is None:
                identities.delete_override(row.platform, row.account_external_id)
            else:
                identities.save_override(row.override, reason=row.reason, author=author, now=now)
            audit.record(actor=author, action="identity.override" if row.override else "identity.override_cleared",
                         target_kind="source_account", target_id=subject, now=now,
                         before=_override_json(before), after=_override_json(row.override) if row.override else None)
            applied.append(row)
    return OverridesOutcome(tuple(applied), tuple(sorted(refused, key=lambda r: r.line)), empty)


def _override_json(override: Any) -> dict[str, Any] | None:
    if override is None:
        return None
    return {"action": override.action.value, "person_anchor": override.person_anchor}
