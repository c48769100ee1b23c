"""The top-level stage commands: onboard, extract, demo."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, settings


def onboard(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Register the tenant and check it is ready: credentials and scopes of each source, the directory, the Visio
    application for each domain, SIRET, cost model. Exit code 1 when a check failed."""
    as_job(lambda: _onboard(tenant, as_json))


def _onboard(tenant: Path, as_json: bool) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(settings())
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
) -> None:
    """Extract users, licences and meetings of the tenant's sources (resumable; a second run is a delta pass)."""
    as_job(lambda: _extract(tenant, platform, now, force))


def _extract(tenant: Path, platforms: list[str] | None, now: str | None, force: bool) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(settings())
    from flows.extract import extract as extract_flow

    summary = extract_flow(tenant_file=str(tenant), platforms=platforms, now=now, force=force)
    print(json.dumps(summary, sort_keys=True))


def demo(
    agents: Annotated[int, typer.Option(min=10, help="Agents in the synthetic ministry.")] = 2000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    flavour: Annotated[str, typer.Option(help="Directory flavour: ad or supann.")] = "ad",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object of counts per stage.")] = False,
) -> None:
    """Generate a ministry and run every available stage on it, with SQLite and Prefect without a server."""
    as_job(lambda: _demo(agents, seed, flavour, as_json))


def _demo(agents: int, seed: int, flavour: str, as_json: bool) -> None:
    from flows.demo import DemoOptions, render_summary
    from flows.runtime import configure_prefect
    from sandbox.generator.directory import Flavour

    options = settings()
    data_dir = (options.data_dir / "demo").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The demo keeps its own SQLite file unless a database was chosen; flows read it from the environment.
    os.environ.setdefault("BASCULE_DATABASE_URL", f"sqlite:///{data_dir / 'bascule.db'}")
    configure_prefect(options)
    from flows.demo import run_demo

    summary = run_demo(data_dir, os.environ["BASCULE_DATABASE_URL"],
                       DemoOptions(agents=agents, seed=seed, flavour=Flavour(flavour)))
    print(render_summary(summary))
    if as_json:
        print(json.dumps(summary, sort_keys=True, ensure_ascii=False))
