"""`bascule calendars`: find, in organisers' own calendars, the events that carry their Zoom and Webex links."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli.common import TenantOption, as_job, flow_function

app = typer.Typer(help="Organisers' calendars: where each Zoom and Webex series lives, to rewrite it in place.",
                  no_args_is_help=True)


@app.command("scan")
def calendars_scan(
    tenant: TenantOption,
    now: Annotated[str | None, typer.Option(help="Start of the window (ISO 8601); default: now.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Organisers per task (and per checkpoint).")] = 50,
    full: Annotated[bool, typer.Option("--full", help="List every calendar whole (default: only what changed "
                                                     "since each organiser's last scan).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Read each Zoom and Webex host's calendar over the tenant's window ([calendar] section), keep their events
    carrying a join link, match them to the extracted meetings (resumable: a killed scan goes on from the next
    batch of organisers; after the first scan, only what changed in each calendar is read); print the events
    matched, the events naming no extracted meeting and the meetings no calendar holds."""
    def work() -> None:
        summary = flow_function("flows.calendars", "scan_calendars")(tenant_file=str(tenant), now=now,
                                                                     batch_size=batch_size, full=full)
        if not isinstance(summary, dict):
            raise typer.Exit(130)
        from flows.calendars import render_scan

        print(json.dumps(summary, sort_keys=True) if as_json else render_scan(summary))

    as_job(work, tenant=tenant)
