"""What a flow run needs from its process: Prefect settings before the import, and one engine per URL."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory
from flows.errors import OperatorError
from flows.settings import Settings


class StopRequested(Exception):
    """The operator asked the command to stop (Ctrl-C): raised at the next page or batch boundary."""


_STOP = threading.Event()


def request_stop() -> None:
    """Ask every stage loop of this process to stop at its next boundary (the first Ctrl-C)."""
    _STOP.set()


def stop_was_requested() -> bool:
    return _STOP.is_set()


def checkpoint() -> None:
    """A page or batch boundary: raise StopRequested when a stop was asked for. What was stored stays stored and
    the checkpoints hold the position, so running the command again resumes."""
    if _STOP.is_set():
        raise StopRequested("stopped by the operator (Ctrl-C): run the same command again to resume")


def cancelled(error: StopRequested) -> Any:
    """The Cancelled state a flow returns when it stopped on request (the caller gets prefect's CancelledRun)."""
    from prefect.states import Cancelled

    return Cancelled(message=str(error))


def run_name(stage: str) -> Callable[[], str]:
    """A flow run name an operator reads: `stage/tenant-id`, plus `/wave` for a wave (`cutover/min-culture/vague-1`).

    The tenant id is read from the tenant file the run was given (its file name when it cannot be read)."""
    def name() -> str:
        from prefect.runtime import flow_run

        parameters = flow_run.parameters
        parts = [stage, tenant_id_of(str(parameters.get("tenant_file", "tenant")))]
        if parameters.get("wave"):
            parts.append(str(parameters["wave"]))
        return "/".join(parts)
    return name


def tenant_id_of(tenant_file: str) -> str:
    """The `id` a tenant file declares (its file name when it cannot be read): cheap, for names and limits."""
    import tomllib

    try:
        with open(tenant_file, "rb") as handle:
            found = tomllib.load(handle).get("id")
    except (OSError, tomllib.TOMLDecodeError):
        found = None
    return str(found) if isinstance(found, str) and found else Path(tenant_file).stem


F = TypeVar("F", bound=Callable[..., Any])


def resolved_hints(wrapper: Callable[..., Any], function: Callable[..., Any]) -> Callable[..., Any]:
    """A wrapper under @flow with its function's annotations resolved where the function lives: Prefect validates
    parameters against the annotations, which `from __future__ import annotations` leaves as names that would
    otherwise be looked up in the wrapper's module."""
    import inspect
    import typing

    wrapper.__annotations__ = typing.get_type_hints(function)
    wrapper.__signature__ = inspect.signature(function, eval_str=True)  # type: ignore[attr-defined]
    return wrapper


def stoppable(function: F) -> F:
    """Under a flow decorator: a StopRequested raised anywhere in the run ends it Cancelled (see checkpoint)."""
    import functools

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except StopRequested as stop:
            return cancelled(stop)
    return resolved_hints(run, function)  # type: ignore[return-value]


class DataDirError(OperatorError, RuntimeError):
    """The data directory cannot be created or written to."""


def ensure_data_dir(settings: Settings) -> Path:
    """The data directory, created if needed and checked writable; DataDirError names the path otherwise."""
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DataDirError(f"cannot write to the data directory {path} ({reason.lower()}): set BASCULE_DATA_DIR "
                           "to a writable directory") from exc
    return path


def log_file_for(settings: Settings, command: str) -> Path:
    """Where one command run writes its log: DATA_DIR/logs/YYYYmmdd-HHMMSS-COMMAND-PID.log."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "-".join(part for part in "".join(c if c.isalnum() else "-" for c in command).split("-") if part)
    return ensure_data_dir(settings) / "logs" / f"{stamp}-{safe or 'bascule'}-{os.getpid()}.log"


def configure_prefect(settings: Settings, *, log_file: Path | None = None) -> None:
    """Settings the server-less mode needs, set before prefect is first imported (shared/contracts/prefect.md).

    With `log_file`, every log record (flows, tasks, the temporary server) goes to that file and none to the
    terminal (BASCULE_VERBOSE=1 shows them there too): the command prints its own progress, summary and errors.
    """
    ensure_data_dir(settings)
    settings.prefect_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_UI_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", settings.log_level)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_LOGGING_SETTINGS_PATH"] = str(Path(__file__).with_name("logging.yml"))
        os.environ["PREFECT_LOGGING_HANDLERS_FILE_FILENAME"] = str(log_file)
        if os.environ.get("BASCULE_VERBOSE") == "1":
            os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"


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
