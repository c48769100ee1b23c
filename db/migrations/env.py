"""Alembic environment: online migrations for the URL set by db.migrate."""

from __future__ import annotations

from alembic import context

from db.engine import make_engine
from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations in a transaction; batch mode so SQLite can alter tables."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "db.migrate sets sqlalchemy.url"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            user_module_prefix="db.types.",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("bascule runs migrations online only: use `bascule db upgrade`")
run_migrations_online()
