"""What a flow run needs from its process: Prefect settings before the import, and one engine per URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory
from flows.settings import Settings


def configure_prefect(settings: Settings) -> None:
    """Settings the server-less mode needs, set before prefect is first imported (shared/contracts/prefect.md)."""
    settings.prefect_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", settings.log_level)


_ENGINES: dict[str, tuple[Engine, sessionmaker[Session]]] = {}


def _factory(url: str) -> tuple[Engine, sessionmaker[Session]]:
    found = _ENGINES.get(url)
    if found is None:
        engine = make_engine(url)
        found = _ENGINES[url] = (engine, make_session_factory(engine))
    return found


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. The task boundary owns it."""
    _engine, factory = _factory(url)
    with factory.begin() as session:
        yield session


def dispose_engines() -> None:
    """Close pooled connections (end of a CLI command, tests)."""
    while _ENGINES:
        _url, (engine, _sessions) = _ENGINES.popitem()
        engine.dispose()
