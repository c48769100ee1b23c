"""Engines and sessions: built on demand from a URL, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


class DatabaseUrlError(ValueError):
    """The database URL cannot be used (unknown scheme, unreachable directory)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite (file, WAL, foreign keys) or PostgreSQL (psycopg 3)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL inside; keep the message short
        raise DatabaseUrlError(f"not a database URL: {type(exc).__name__}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            if not folder.is_dir():
                raise DatabaseUrlError(f"SQLite directory does not exist: {folder}")
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend != "postgresql":
        raise DatabaseUrlError(f"unsupported database backend {backend!r} (use sqlite or postgresql)")
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that never expire loaded rows on commit (flows pass records on after committing)."""
    return sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
