"""`bascule links`: old meeting links and their Visio rooms (helpdesk)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli.common import TenantOption, load_tenant, settings

app = typer.Typer(help="Old meeting links and the Visio rooms they now lead to (helpdesk).", no_args_is_help=True)


@app.command("lookup")
def links_lookup(
    reference: Annotated[str, typer.Argument(help="An old Zoom, Teams or Webex link, or a meeting id/number.")],
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The Visio link, owner and status of an old meeting link (exit code 1 when it has none)."""
    from flows.links import lookup_link, render_lookup

    config = load_tenant(tenant)
    answer = lookup_link(settings().database, config.id, reference)
    print(json.dumps(answer, ensure_ascii=False, sort_keys=True) if as_json else render_lookup(answer))
    if not answer["found"]:
        raise typer.Exit(1)
