"""The top-level stage commands: onboard, extract, demo."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, fail, settings


def onboard(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Register the tenant and check it is ready: credentials and scopes of each source, the directory, the Visio
    application for each domain, SIRET, cost model. Exit code 1 when a check failed."""
    as_job(lambda: _onboard(tenant, as_json), tenant=tenant)


def _onboard(tenant: Path, as_json: bool) -> None:
    from flows.onboard import onboard as onboard_flow
    from flows.onboard import render_readiness

    report = onboard_flow(tenant_file=str(tenant))
    print(json.dumps(report, sort_keys=True, ensure_ascii=False) if as_json else render_readiness(report))
    if not report["ready"]:
        raise typer.Exit(1)


def extract(
    tenant: TenantOption,
    platform: Annotated[list[str] | None, typer.Option(help="Only this platform (repeatable).")] = None,
    now: Annotated[str | None, typer.Option(help="Reference instant (ISO 8601) for expired series.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Run even if the tenant is not onboarded and ready.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Extract users, licences and meetings of the tenant's sources (resumable; a second run is a delta pass)."""
    as_job(lambda: _extract(tenant, platform, now, force, as_json), tenant=tenant)


def _extract(tenant: Path, platforms: list[str] | None, now: str | None, force: bool, as_json: bool) -> None:
    from flows.extract import extract as extract_flow
    from flows.reports import render_extract

    summary = extract_flow(tenant_file=str(tenant), platforms=platforms, now=now, force=force)
    print(json.dumps(summary, sort_keys=True) if as_json else render_extract(summary))


def demo(
    agents: Annotated[int, typer.Option(min=10, help="Agents in the synthetic ministry.")] = 2000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    flavour: Annotated[str, typer.Option(help="Directory flavour: ad or supann.")] = "ad",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object of counts per stage.")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="Then keep the sandbox (with its ProConnect), the SMTP "
                                                        "sink and the web application up until Ctrl-C.")] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="The web application's port with --serve (another "
                                                             "free one when it is taken).")] = 8080,
) -> None:
    """Generate a ministry and run every available stage on it, with SQLite and Prefect without a server; with
    --serve, then serve the dashboard, the helpdesk and the console on its data."""
    as_job(lambda: _demo(agents, seed, flavour, as_json, serve=serve, port=port), database=False)


def _demo(agents: int, seed: int, flavour: str, as_json: bool, *, serve: bool = False, port: int = 8080) -> None:
    from flows.demo import DemoOptions, clear_previous_run, render_summary, run_demo
    from sandbox.generator.directory import Flavour

    options = settings()
    data_dir = (options.data_dir / "demo").resolve()
    own_database = f"sqlite:///{data_dir / 'bascule.db'}"
    database = os.environ.get("BASCULE_DATABASE_URL") or own_database
    if database != own_database:
        _refuse_a_used_database(database)
    if clear_previous_run(data_dir):
        print(f"bascule demo: starting afresh in {data_dir} (the previous demo's database, ministry and mail "
              "were removed)", file=sys.stderr)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Flows read the database from the environment.
    os.environ["BASCULE_DATABASE_URL"] = database
    summary = run_demo(data_dir, database, DemoOptions(agents=agents, seed=seed, flavour=Flavour(flavour)))
    if as_json:
        print(render_summary(summary), file=sys.stderr)
        print(json.dumps(summary, sort_keys=True, ensure_ascii=False), flush=True)
    else:
        print(render_summary(summary), flush=True)
    if serve:
        from flows.demo_serve import serve_demo

        serve_demo(data_dir, database, summary, port=port,
                   announce=lambda text: print(text, file=sys.stderr if as_json else sys.stdout, flush=True))


def _refuse_a_used_database(database: str) -> None:
    """On a database the user chose, the demo runs only where no demo ran before (it never deletes their data)."""
    from sqlalchemy import inspect, text

    from db.engine import make_engine

    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            used = inspect(connection).has_table("tenant") and connection.execute(
                text("select count(*) from tenant where id = 'min-culture-exemple'")).scalar_one() > 0
    finally:
        engine.dispose()
    if used:
        fail("the database BASCULE_DATABASE_URL names already holds the demo's tenant (min-culture-exemple): unset "
             "BASCULE_DATABASE_URL (the demo then uses its own SQLite file) or give it an empty database")
