"""`bascule directory`: the ministry directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, load_tenant, state_database

app = typer.Typer(help="The ministry directory.", no_args_is_help=True)


@app.command("load")
def directory_load(tenant: TenantOption,
                   ldif: Annotated[Path | None, typer.Option(help="LDIF export (default: the tenant's).")] = None,
                   page_size: Annotated[int, typer.Option(min=1, max=5000, help="Records per page.")] = 1000,
                   as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
                   ) -> None:
    """Load the directory export into the state database (resumable; re-running changes nothing)."""
    as_job(lambda: _directory_load(tenant, ldif, page_size, as_json), tenant=tenant)


def _directory_load(tenant: Path, ldif: Path | None, page_size: int, as_json: bool) -> None:
    from flows.directory import load_directory
    from flows.reports import render_directory

    summary = load_directory(tenant_file=str(tenant), ldif_path=str(ldif) if ldif else None, page_size=page_size)
    print(json.dumps(summary, sort_keys=True) if as_json else render_directory(summary))


@app.command("departments")
def directory_departments(
    tenant: TenantOption,
    depth: Annotated[int, typer.Option(min=1, max=20, help="Levels shown (1: directions only).")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (every unit, whatever --depth).")]
    = False,
) -> None:
    """The department tree with the persons a wave can select in each unit.

    Directions, sous-directions and bureaux, from the person table: the names `wave plan --department` takes."""
    from flows.departments import departments, departments_json, render_departments

    config = load_tenant(tenant)
    nodes = departments(state_database(), config.id)
    if as_json:
        print(json.dumps(departments_json(config.id, nodes), ensure_ascii=False, sort_keys=True))
        return
    print(render_departments(config.id, nodes, depth=depth))
