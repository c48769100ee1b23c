"""What every command shares: options, the error line, the settings, the job boundary."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

TenantOption = Annotated[Path, typer.Option("--tenant", help="Tenant (ministry) TOML file.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Run even if the tenant is not onboarded and ready.")]
WaveOption = Annotated[str, typer.Option("--wave", help="Wave name, e.g. vague-1-dgca.")]


def fail(message: str) -> NoReturn:
    """One line on stderr, exit code 2."""
    print(f"bascule: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def settings() -> Any:
    from flows.settings import Settings

    return Settings()


def state_database() -> str:
    """The state database's URL; refused in one line when it is missing or not at the current schema (looking at
    a SQLite file that does not exist would create an empty one)."""
    from db.engine import DatabaseUrlError
    from db.migrate import SchemaNotReady, require_current

    url: str = settings().database
    try:
        require_current(url)
    except (SchemaNotReady, DatabaseUrlError) as exc:
        fail(str(exc))
    return url


def load_tenant(path: Path) -> Any:
    from flows.tenant import TenantConfig, TenantFileError

    try:
        return TenantConfig.load(path)
    except TenantFileError as exc:
        fail(str(exc))


def as_job(work: Callable[[], None], *, tenant: Path | None = None, command: str | None = None,
           database: bool = True) -> None:
    """Run `work` as a job: in a process group of its own (flows.jobs), its log in a file of its own, the first
    Ctrl-C stopping it at the next page or batch (the run ends Cancelled and resumes when run again), every failure
    ending in one line on stderr that names the log file. `tenant` is checked first, then (`database`) the state
    database's schema, before anything starts."""
    from flows.jobs import in_job_group, run_in_job_group

    if not in_job_group():
        code = run_in_job_group(sys.argv[1:])
        raise typer.Exit(code)
    from flows.runtime import DataDirError, StopRequested, configure_prefect, log_file_for

    options = settings()
    try:
        log_file = log_file_for(options, command or _command_words())
    except DataDirError as exc:
        fail(str(exc))
    signal.signal(signal.SIGINT, _interrupted)
    try:
        configure_prefect(options, log_file=log_file)
        if tenant is not None:
            load_tenant(tenant)
        if database:
            from db.migrate import require_current

            require_current(options.database)
        work()
    except typer.Exit:  # a command's own exit code (click's Exit is a RuntimeError)
        raise
    except (KeyboardInterrupt, StopRequested) as exc:
        _log_failure(log_file, exc)
        _stopped(log_file)
    except Exception as exc:  # the boundary: one line for people, the chain in the log file
        _log_failure(log_file, exc)
        if type(exc).__name__ == "CancelledRun":  # prefect.exceptions: the flow stopped on the operator's request
            _stopped(log_file)
        fail(f"{one_line(exc)} (details: {log_file})")


def _command_words() -> str:
    """`wave plan` for `bascule wave plan --tenant …`: the words before the first option."""
    words = []
    for word in sys.argv[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return "-".join(words[:2]) or "bascule"


def _interrupted(_signum: int, _frame: object) -> None:
    """First Ctrl-C: stop at the next boundary; the second: abandon the current page now."""
    from flows.runtime import request_stop, stop_was_requested

    if stop_was_requested():
        raise KeyboardInterrupt
    request_stop()
    print("bascule: stopping after the current page (Ctrl-C again to abandon it now)", file=sys.stderr)


def _stopped(log_file: Path) -> NoReturn:
    """Stopped on the operator's request: say so and leave at once. The run's Cancelled state is recorded; the
    logs are flushed; the temporary Prefect server is ended by the parent with the rest of the process group
    (its own orderly stop takes seconds nobody needs to wait for)."""
    import logging
    import os

    print(f"bascule: stopped on request; what was done is kept: run the same command again to resume "
          f"(log: {log_file})", file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _log_failure(log_file: Path, exc: BaseException) -> None:
    """The whole chain in the command's log file (the terminal gets one line)."""
    import traceback

    try:
        with log_file.open("a", encoding="utf-8") as log:
            log.write("bascule: the command ended on this error:\n")
            log.write("".join(traceback.format_exception(exc)))
    except OSError:
        pass


def one_line(exc: BaseException) -> str:
    """What failed and what to do next, on one line."""
    from connectors.errors import ConnectorAuthError, ConnectorError, Unreachable
    from db.engine import DatabaseUrlError
    from db.migrate import SchemaNotReady
    from flows.errors import OperatorError

    if isinstance(exc, Unreachable):
        return (f"{exc.system} is unreachable: cannot connect to {exc.origin}; check that the service is up and "
                "that the tenant file gives the right URL")
    if isinstance(exc, ConnectorAuthError):
        return (f"{_first_line(exc)}; check the credentials (the *_env variables the tenant file names), then run "
                "`bascule onboard`")
    if isinstance(exc, OperatorError | DatabaseUrlError | SchemaNotReady | ConnectorError):
        return _first_line(exc)
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def flow_function(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)
