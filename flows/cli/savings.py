"""`bascule savings`: what leaving the licensed tools saves, from the stored contracts and the seats released."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, flow_function, settings

app = typer.Typer(help="Savings: monthly snapshots per contract and SKU, breakdowns, calendar and forecast.",
                  no_args_is_help=True)


@app.command("report")
def savings_report(
    tenant: TenantOption,
    month: Annotated[str | None, typer.Option("--month", help="The month (YYYY-MM); default: this month.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    csv_dir: Annotated[Path | None, typer.Option("--csv", help="Write every table as CSV files in this "
                                                               "directory.")] = None,
) -> None:
    """Compute the month's snapshots (idempotent: again gives the same rows) and their breakdowns by direction,
    wave, tool, SKU and contract, store them, and print the headline figures — potential, reclaimed seats and
    stranded cost, realised run-rate and in the fiscal year, net, the State benchmark beside — each booked or
    estimated, the contracts, the next decisions and the forecast to December 2027."""
    def work() -> None:
        from flows.runtime import configure_prefect

        configure_prefect(settings())
        report = flow_function("flows.savings", "savings_report")(tenant_file=str(tenant), month=month)
        if not hasattr(report, "headline"):
            raise typer.Exit(130)
        from flows.savings import render_report, report_json, write_csv

        written = write_csv(report, csv_dir) if csv_dir is not None else []
        if as_json:
            print(json.dumps(report_json(report), sort_keys=True, ensure_ascii=False, default=str))
            return
        print(render_report(report))
        for path in written:
            print(f"  wrote {path}")

    as_job(work, tenant=tenant)
