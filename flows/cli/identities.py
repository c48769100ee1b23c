"""`bascule identities`: persons, matches and conflicts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ForceOption, TenantOption, as_job, fail, load_tenant, state_database

app = typer.Typer(help="Persons, matches and identity conflicts (ProConnect readiness of every agent).",
                  no_args_is_help=True)


@app.command("map")
def identities_map(tenant: TenantOption, force: ForceOption = False,
                   batch_size: Annotated[int, typer.Option(min=100, max=50_000, help="Entries per task.")] = 5000,
                   as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
                   ) -> None:
    """Map the directory and the extracted accounts to persons, matches and conflicts (resumable, idempotent)."""
    as_job(lambda: _identities_map(tenant, force, batch_size, as_json), tenant=tenant)


def _identities_map(tenant: Path, force: bool, batch_size: int, as_json: bool) -> None:
    from flows.identities import map_identities
    from flows.reports import render_identities

    summary = map_identities(tenant_file=str(tenant), batch_size=batch_size, force=force)
    print(json.dumps(summary, sort_keys=True) if as_json else render_identities(summary))


@app.command("report")
def identities_report(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (conflict keys as in the "
                                                         "generator's manifest).")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write every open conflict to this CSV file.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report as an HTML page.")] = None,
) -> None:
    """Counts of persons, matches by method and open conflicts by kind, with CSV and HTML detail."""
    from flows import identity_report

    config = load_tenant(tenant)
    database = state_database()
    report = identity_report.counts(database, config.id)
    if csv_out is not None:
        with csv_out.open("w", encoding="utf-8", newline="") as out:
            rows = identity_report.write_conflicts_csv(database, config.id, out)
        print(f"{rows} conflicts written to {csv_out}", file=sys.stderr)
    if html_out is not None:
        html_out.write_text(identity_report.render_html(database, config.id), encoding="utf-8")
        print(f"report written to {html_out}", file=sys.stderr)
    if as_json:
        print(json.dumps(report, sort_keys=True, ensure_ascii=False))
        return
    if report["pass"] is None:
        print(f"tenant {config.id}: identities never mapped (run `bascule identities map --tenant {tenant}`)")
        return
    print(identity_report.render_text(report))


@app.command("export-conflicts")
def identities_export(
    tenant: TenantOption,
    out: Annotated[Path | None, typer.Option(help="CSV file (default: standard output).")] = None,
    excel: Annotated[bool, typer.Option("--excel", help="Semicolons, CRLF and UTF-8 with a byte-order mark, as "
                                                        "French Excel opens and saves CSV.")] = False,
) -> None:
    """Write the open conflicts as the CSV the migration team fills in: who each is about (name, e-mail,
    department), then action, person_anchor, reason. apply-overrides reads it back as saved by Excel or any
    spreadsheet (comma or semicolon, UTF-8 or Windows-1252)."""
    from flows.identity_report import write_conflicts_csv

    config = load_tenant(tenant)
    if out is None:
        if excel:
            sys.stdout.reconfigure(encoding="utf-8-sig", newline="")  # type: ignore[union-attr]
        write_conflicts_csv(state_database(), config.id, sys.stdout, excel=excel)
        return
    try:
        with out.open("w", encoding="utf-8-sig" if excel else "utf-8", newline="") as handle:
            rows = write_conflicts_csv(state_database(), config.id, handle, excel=excel)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    print(f"{rows} conflicts written to {out}")


@app.command("apply-overrides")
def identities_apply(
    file: Annotated[Path, typer.Argument(help="The CSV of export-conflicts with decisions filled in.")],
    tenant: TenantOption,
    author: Annotated[str | None, typer.Option(help="Who decided (audit); default: $USER.")] = None,
) -> None:
    """Store the decisions of a conflicts CSV. About an account: force_match (with person_anchor), exclude,
    mark_service; about a person: accept, exclude (from waves), include (a person after all); about a shared
    e-mail: force_match (person_anchor keeps it), accept; clear removes a decision. Applied on every
    `identities map`. A bad row is refused (line, code) and nothing of it applied; a file that cannot be read
    (not UTF-8 or Windows-1252 text, not CSV, a header without the decision columns) is refused whole."""
    from core.identity import FILE_REFUSALS
    from flows.identity_report import apply_overrides, override_lines

    config = load_tenant(tenant)
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    lines = override_lines(data)
    if not isinstance(lines, list):
        fail(f"{file} refused: {lines.reason} [{lines.code}]")
    outcome = apply_overrides(state_database(), config.id, lines,
                              author=author or os.environ.get("USER") or "unknown")
    whole = [refused for refused in outcome.refused if refused.code in FILE_REFUSALS]
    if whole:
        fail(f"{file} refused: {whole[0].reason} [{whole[0].code}]; nothing applied")
    for refused in outcome.refused:
        print(f"refused: {refused}", file=sys.stderr)
    print(f"{len(outcome.applied)} decisions applied, {len(outcome.refused)} refused, "
          f"{outcome.rows_without_decision} rows without a decision; run `bascule identities map` to apply them")
    if outcome.refused:
        raise typer.Exit(1)
