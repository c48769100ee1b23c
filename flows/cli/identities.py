"""`bascule identities`: persons, matches and conflicts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ForceOption, TenantOption, as_job, fail, load_tenant, settings

app = typer.Typer(help="Persons, matches and identity conflicts (ProConnect readiness of every agent).",
                  no_args_is_help=True)


@app.command("map")
def identities_map(tenant: TenantOption, force: ForceOption = False,
                   batch_size: Annotated[int, typer.Option(min=100, max=50_000, help="Entries per task.")] = 5000,
                   ) -> None:
    """Map the directory and the extracted accounts to persons, matches and conflicts (resumable, idempotent)."""
    as_job(lambda: _identities_map(tenant, force, batch_size))


def _identities_map(tenant: Path, force: bool, batch_size: int) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(settings())
    from flows.identities import map_identities

    summary = map_identities(tenant_file=str(tenant), batch_size=batch_size, force=force)
    print(json.dumps(summary, sort_keys=True))


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
    database = settings().database
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
def identities_export(tenant: TenantOption,
                      out: Annotated[Path | None, typer.Option(help="CSV file (default: standard output).")] = None,
                      ) -> None:
    """Write the open conflicts as the CSV the migration team fills in (action, person_anchor, reason)."""
    from flows.identity_report import write_conflicts_csv

    config = load_tenant(tenant)
    if out is None:
        write_conflicts_csv(settings().database, config.id, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        rows = write_conflicts_csv(settings().database, config.id, handle)
    print(f"{rows} conflicts written to {out}")


@app.command("apply-overrides")
def identities_apply(
    file: Annotated[Path, typer.Argument(help="The CSV of export-conflicts with decisions filled in.")],
    tenant: TenantOption,
    author: Annotated[str | None, typer.Option(help="Who decided (audit); default: $USER.")] = None,
) -> None:
    """Store the decisions of a conflicts CSV: force_match, exclude, mark_service, or clear. Applied on every
    `identities map`; a row naming an unknown account or person is refused and nothing of it is applied."""
    from flows.identity_report import apply_overrides

    config = load_tenant(tenant)
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    except UnicodeDecodeError:
        fail(f"{file} is not UTF-8 text: save the CSV as UTF-8 and apply it again")
    outcome = apply_overrides(settings().database, config.id, lines,
                              author=author or os.environ.get("USER") or "unknown")
    for refused in outcome.refused:
        print(f"refused: {refused}", file=sys.stderr)
    print(f"{len(outcome.applied)} decisions applied, {len(outcome.refused)} refused, "
          f"{outcome.rows_without_decision} rows without a decision; run `bascule identities map` to apply them")
    if outcome.refused:
        raise typer.Exit(1)
