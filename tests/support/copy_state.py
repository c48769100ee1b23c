"""Copy a migrated state database into another one (e.g. a SQLite state built once into a fresh PostgreSQL
database), so that an expensive set-up — extract, map, plan — is paid once and run on both dialects."""

from __future__ import annotations

from sqlalchemy import create_engine, func, select, text

from db import models
from db.migrate import upgrade

CHUNK = 1000


def copy_state(source_url: str, target_url: str) -> None:
    """Every row of every table of the model, from `source_url` into `target_url` (migrated here, empty)."""
    upgrade(target_url)
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        with source.connect() as reading, target.begin() as writing:
            for table in models.Base.metadata.sorted_tables:
                rows = [dict(row) for row in reading.execute(select(table)).mappings()]
                for start in range(0, len(rows), CHUNK):
                    writing.execute(table.insert(), rows[start:start + CHUNK])
                # Rows came with their ids: PostgreSQL's sequences must start after them.
                serial = "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement is not False
                if target.dialect.name == "postgresql" and serial and rows and isinstance(rows[0]["id"], int):
                    highest = writing.execute(select(func.max(table.c.id))).scalar_one()
                    writing.execute(text("select setval(pg_get_serial_sequence(:table, 'id'), :value)"),
                                    {"table": table.name, "value": highest})
    finally:
        source.dispose()
        target.dispose()
