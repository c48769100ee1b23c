"""Migrations go up, down and up again with no drift, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from db import migrate
from db.models import Base


def _tables(url: str) -> set[str]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_check(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables)
    migrate.check(database_url)

    migrate.downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert migrate.current(database_url) is None

    migrate.upgrade(database_url)
    migrate.check(database_url)
    assert migrate.current(database_url) == _head()


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def test_each_revision_goes_down_and_up_on_its_own(database_url: str) -> None:
    """Every migration step is reversible one at a time, not only all together."""
    from alembic.script import ScriptDirectory

    revisions = [r.revision for r in ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).walk_revisions()]
    migrate.upgrade(database_url)
    for revision in revisions[:-1]:
        migrate.downgrade(database_url, "-1")
        assert migrate.current(database_url) != revision
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == _head()


def test_check_detects_drift(sqlite_url: str) -> None:
    """A model the migrations do not know about must make `check` fail (the check can fail)."""
    from sqlalchemy import Column, Integer, Table

    migrate.upgrade(sqlite_url)
    extra = Table("drift_probe", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        with pytest.raises(migrate.SchemaDriftError):
            migrate.check(sqlite_url)
    finally:
        Base.metadata.remove(extra)


def test_every_table_has_a_tenant_column() -> None:
    for table in Base.metadata.sorted_tables:
        column = "id" if table.name == "tenant" else "tenant_id"
        assert column in table.c, table.name


def test_external_objects_are_unique_per_tenant_platform_and_id() -> None:
    for name in ("source_account", "meeting"):
        uniques = [tuple(c.name for c in constraint.columns) for constraint in Base.metadata.tables[name].constraints
                   if constraint.__class__.__name__ == "UniqueConstraint"]
        assert ("tenant_id", "platform", "external_id") in uniques, name
