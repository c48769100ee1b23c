"""What every command shares: options, the error line, the settings, the job boundary."""

from __future__ import annotations

import sys
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


def load_tenant(path: Path) -> Any:
    from flows.tenant import TenantConfig, TenantFileError

    try:
        return TenantConfig.load(path)
    except TenantFileError as exc:
        fail(str(exc))


def as_job(work: Any) -> None:
    """Run `work` in a process group of its own (see flows.jobs), with errors on one line."""
    from flows.jobs import in_job_group, run_in_job_group

    if not in_job_group():
        code = run_in_job_group(sys.argv[1:])
        raise typer.Exit(code)
    try:
        work()
    except typer.Exit:  # a command's own exit code (click's Exit is a RuntimeError)
        raise
    except Exception as exc:  # the boundary: one line for people, the chain for logs
        fail(one_line(exc))


def one_line(exc: BaseException) -> str:
    from db.engine import DatabaseUrlError
    from flows.tenant import TenantFileError

    if isinstance(exc, TenantFileError | DatabaseUrlError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def flow_function(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)
