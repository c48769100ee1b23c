"""`bascule db`: the state database's schema."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import settings

app = typer.Typer(help="The state database.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Bring the database (BASCULE_DATABASE_URL, or SQLite in the data directory) to the latest schema."""
    from db.migrate import current, upgrade

    config = settings()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.database, revision)
    print(f"database at revision {current(config.database)}")


@app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Option(help="Target revision ('base' = empty).")]) -> None:
    """Take the database back to an earlier schema revision."""
    from db.migrate import current, downgrade

    config = settings()
    downgrade(config.database, revision)
    print(f"database at revision {current(config.database)}")


@app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from db.migrate import current

    print(current(settings().database) or "empty (run `bascule db upgrade`)")
