"""The `bascule` command: one module per command group. Imports stay inside commands: `bascule --help` must not
pay for Prefect."""

from __future__ import annotations

import sys

import typer

from flows.cli import (
    access,
    adoption,
    calendars,
    contracts,
    db,
    directory,
    identities,
    licences,
    links,
    sandbox,
    savings,
    stages,
    wave,
    web,
)
from flows.cli.common import one_line

app = typer.Typer(name="bascule", help="Move a ministry from Zoom, Teams and Webex to Visio.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.command()(stages.onboard)
app.command()(stages.extract)
app.command()(stages.demo)
app.add_typer(db.app, name="db")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(directory.app, name="directory")
app.add_typer(identities.app, name="identities")
app.add_typer(wave.app, name="wave")
app.add_typer(links.app, name="links")
app.add_typer(calendars.app, name="calendars")
app.add_typer(adoption.app, name="adoption")
app.add_typer(contracts.app, name="contracts")
app.add_typer(licences.app, name="licences")
app.add_typer(savings.app, name="savings")
app.add_typer(access.app, name="access")
app.add_typer(web.app, name="web")


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except Exception as exc:
        print(f"bascule: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
