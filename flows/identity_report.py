"""The identity report for the migration team, and the overrides CSV they send back.

`counts` is what `bascule identities report --json` prints (conflict keys as in the generator's manifest; persons
no wave moves — rooms, shared mailboxes, administrator identities — by reason);
`write_conflicts_csv` is both the CSV detail and the file `export-conflicts` hands over for decisions;
`apply_overrides` validates every decision row against the state database, stores and audits the valid ones:
overrides of source accounts, and decisions on conflicts about a person, a shared e-mail or the tenant.
`override_lines` reads the file as spreadsheets save it (core.csv_text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import chain
from typing import Any, TextIO

from jinja2 import Environment, select_autoescape

from core import ConflictKind, MatchMethod, csv_text
from core.identity import (
    CONFLICT_MEANING,
    OVERRIDE_COLUMNS,
    ConflictDecision,
    DecisionRow,
    Override,
    OverrideRow,
    RefusedRow,
    RowRefusal,
    SubjectPerson,
    Target,
    header_refusal,
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
        identities = IdentityRepository(session, tenant_id)
        overrides = identities.overrides()
        decisions = {(d.kind.value, d.subject, d.value): d for d in identities.decisions()}
        batch: list[Any] = []
        for conflict in identities.iter_open_conflicts():
            batch.append(conflict)
            if len(batch) >= 500:
                yield from _described(identities, batch, overrides, decisions)
                batch = []
        yield from _described(identities, batch, overrides, decisions)


def _described(identities: IdentityRepository, conflicts: list[Any], overrides: dict[tuple[str, str], Override],
               decisions: dict[tuple[str, str, str], ConflictDecision]) -> Iterator[dict[str, str]]:
    """Rows naming whom each conflict is about, with the decision standing on it (if any)."""
    people = identities.describe_subjects([(conflict.subject, conflict.value) for conflict in conflicts])
    for conflict in conflicts:
        account = split_account_subject(conflict.subject)
        decided: Override | ConflictDecision | None = (
            overrides.get((account[0].value, account[1])) if account
            else decisions.get((conflict.kind, conflict.subject, conflict.value)))
        who = people.get((conflict.subject, conflict.value), SubjectPerson("", "", ""))
        yield {"kind": conflict.kind, "subject": conflict.subject, "display_name": who.display_name,
               "email": who.email, "department": who.department, "value": conflict.value,
               "detail": conflict.detail, "platform": account[0].value if account else "",
               "account_external_id": account[1] if account else "",
               "action": decided.action.value if decided else "",
               "person_anchor": (decided.person_anchor or "") if decided else "", "reason": ""}


# Cells a spreadsheet would take for a formula: the informative columns get a leading apostrophe (never the keys).
_FORMULA_START = ("=", "+", "-", "@")
_INFORMATIVE = ("display_name", "email", "department", "detail")


def write_conflicts_csv(database_url: str, tenant_id: str, out: TextIO, *, excel: bool = False) -> int:
    """Every open conflict, one per row, naming whom it is about, with the decision columns (filled where a
    decision already stands). `excel`: semicolons and CRLF, as French Excel reads and writes CSV (the caller writes
    the file in UTF-8 with a byte-order mark, so that Excel shows the accents)."""
    writer = csv.DictWriter(out, fieldnames=OVERRIDE_COLUMNS, delimiter=";" if excel else ",",
                            lineterminator="\r\n" if excel else "\n")
    writer.writeheader()
    written = 0
    for row in _conflict_rows(database_url, tenant_id):
        for column in _INFORMATIVE:
            if row[column].startswith(_FORMULA_START):
                row[column] = "'" + row[column]
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

    applied: tuple[OverrideRow | DecisionRow, ...]
    refused: tuple[RefusedRow, ...]
    rows_without_decision: int


def override_lines(data: bytes) -> list[str] | RefusedRow:
    """The lines of an overrides file as saved from a spreadsheet (UTF-8 with or without BOM, Windows-1252, UTF-16
    with BOM; any line ending), or why it is refused whole."""
    decoded = csv_text.decode(data)
    if isinstance(decoded, csv_text.NotText):
        return RefusedRow(1, decoded.reason, RowRefusal.NOT_TEXT)
    return list(io.StringIO(decoded.text, newline=""))


def read_override_rows(lines: Iterable[str]) -> tuple[list[OverrideRow | DecisionRow], list[RefusedRow], int]:
    """Parse the CSV, comma-, semicolon- or tab-separated (line numbers as a spreadsheet shows them: the header is
    row 1). A file refused whole gives one refusal with a code of FILE_REFUSALS."""
    try:
        return _read_override_rows(lines)
    except csv.Error as error:  # a NUL byte, a quote never closed: the file is refused, nothing of it applied
        return [], [RefusedRow(1, f"the file is not readable CSV ({error})", RowRefusal.UNREADABLE_CSV)], 0


def _read_override_rows(lines: Iterable[str]) -> tuple[list[OverrideRow | DecisionRow], list[RefusedRow], int]:
    remaining = iter(lines)
    first = next(remaining, "")
    delimiter = csv_text.sep_hint(first)
    if delimiter is not None:  # Excel's `sep=;` line: not a row of the table, and not shown as one
        first = next(remaining, "")
    else:
        delimiter = csv_text.delimiter_of(first, OVERRIDE_COLUMNS)
    reader = csv.reader(chain([first], remaining), delimiter=delimiter, strict=True)
    found = next(reader, [])
    header = [name.strip().lower() for name in found]
    if (refusal := header_refusal(found)) is not None:
        return [], [refusal], 0
    rows: list[OverrideRow | DecisionRow] = []
    refused: list[RefusedRow] = []
    empty = 0
    first_row_of: dict[tuple[str, ...], tuple[int, Any]] = {}
    for number, cells in enumerate(reader, start=2):
        parsed = parse_override_row(number, dict(zip(header, cells, strict=False)))
        if parsed is None:
            empty += 1
            continue
        if isinstance(parsed, RefusedRow):
            refused.append(parsed)
            continue
        key, decided = _decision_key(parsed)
        if key in first_row_of:
            line, earlier = first_row_of[key]
            if earlier != decided:
                refused.append(RefusedRow(number, f"{_describe_key(key)} is already decided otherwise in row {line}",
                                          RowRefusal.DECIDED_TWICE))
            continue  # the same decision twice (one account in two conflicts): once is enough
        first_row_of[key] = (number, decided)
        rows.append(parsed)
    return rows, refused, empty


def _decision_key(row: OverrideRow | DecisionRow) -> tuple[tuple[str, ...], Any]:
    """What a row decides about (two rows about it must agree) and what it decides."""
    if isinstance(row, OverrideRow):
        return ("account", row.platform.value, row.account_external_id), row.override
    if row.target is Target.EMAIL:  # the two conflicts of one shared e-mail take one decision
        return ("email", row.value), (row.decision.action, row.decision.person_anchor) if row.decision else None
    return ("conflict", row.kind.value, row.subject, row.value), row.decision


def _describe_key(key: tuple[str, ...]) -> str:
    if key[0] == "account":
        return f"account {key[1]}:{key[2]}"
    if key[0] == "email":
        return f"e-mail {key[1]}"
    return f"conflict {key[1]} of {key[2]}"


def apply_overrides(database_url: str, tenant_id: str, lines: Iterable[str], *, author: str) -> OverridesOutcome:
    """Store the valid decisions (each audited); refuse rows naming an unknown account, person or conflict."""
    rows, refused, empty = read_override_rows(lines)
    applied: list[OverrideRow | DecisionRow] = []
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        identities, audit = IdentityRepository(session, tenant_id), AuditRepository(session, tenant_id)
        current = identities.overrides()
        standing = {(d.kind.value, d.subject, d.value): d for d in identities.decisions()}
        for row in rows:
            if isinstance(row, DecisionRow):
                refusal = _apply_decision(identities, audit, row, standing, author=author, now=now)
                if refusal is not None:
                    refused.append(refusal)
                else:
                    applied.append(row)
                continue
            subject = f"{row.platform.value}:{row.account_external_id}"
            if not identities.account_exists(row.platform.value, row.account_external_id):
                refused.append(RefusedRow(row.line, f"unknown account {subject} (not in the extracted accounts)",
                                          RowRefusal.UNKNOWN_ACCOUNT))
                continue
            anchor = row.override.person_anchor if row.override else None
            if row.override is not None and anchor is not None and not identities.person_exists(anchor):
                found = identities.persons_with_email(anchor) if "@" in anchor else []
                if len(found) != 1:
                    why = (f"{len(found)} persons have this primary e-mail: give the anchor" if found else
                           "no current directory entry" + (" has this primary e-mail" if "@" in anchor else ""))
                    refused.append(RefusedRow(row.line, f"unknown person {anchor} ({why})",
                                              RowRefusal.UNKNOWN_PERSON))
                    continue
                # The person named by their primary e-mail, as people fill it in: the anchor is what is stored.
                row = replace(row, override=replace(row.override, person_anchor=found[0]))
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


def _apply_decision(identities: IdentityRepository, audit: AuditRepository, row: DecisionRow,
                    standing: dict[tuple[str, str, str], ConflictDecision], *, author: str,
                    now: datetime) -> RefusedRow | None:
    """Store (or clear) one decision on a conflict about a person, an e-mail or the tenant; audited."""
    key = (row.kind.value, row.subject, row.value)
    before = standing.get(key)
    if row.decision is not None:
        if not identities.conflict_known(row.kind, row.subject, row.value):
            return RefusedRow(row.line, f"no {row.kind} conflict of {row.subject} on {row.value!r} was ever found "
                                        "(keep the kind, subject and value columns export-conflicts wrote)",
                              RowRefusal.UNKNOWN_CONFLICT)
        anchor = row.decision.person_anchor
        if anchor is not None and anchor not in identities.email_holders(row.value):
            if not identities.person_exists(anchor):
                return RefusedRow(row.line, f"unknown person {anchor} (no current directory entry)",
                                  RowRefusal.UNKNOWN_PERSON)
            return RefusedRow(row.line, f"entry {anchor} does not hold {row.value}: give the e-mail to one of the "
                                        "entries the conflict names", RowRefusal.EMAIL_NOT_HELD)
        identities.save_decision(row.decision, reason=row.reason, author=author, now=now)
    else:
        identities.delete_decision(row.kind, row.subject, row.value)
    target_kind, target_id = {Target.PERSON: ("person", row.subject), Target.EMAIL: ("email", row.value),
                              Target.TENANT: ("tenant", row.subject)}.get(row.target, ("conflict", row.subject))
    audit.record(actor=author, action="identity.decision" if row.decision else "identity.decision_cleared",
                 target_kind=target_kind, target_id=target_id, now=now, before=_decision_json(before),
                 after=_decision_json(row.decision))
    return None


def _decision_json(decision: ConflictDecision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {"kind": decision.kind.value, "subject": decision.subject, "value": decision.value,
            "action": decision.action.value, "person_anchor": decision.person_anchor}


def _override_json(override: Any) -> dict[str, Any] | None:
    if override is None:
        return None
    return {"action": override.action.value, "person_anchor": override.person_anchor}
