"""Run a flow-running command in a process group of its own, and end the whole group when it ends.

Prefect's server-less mode starts a temporary API server as a child process; a killed parent leaves it behind
(shared/contracts/prefect.md). The command re-runs itself as a child in a new session; the parent waits,
forwards Ctrl-C/SIGTERM, and terminates everything left in the group when the child is done.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

_CHILD_MARK = "BASCULE_JOB_CHILD"


def in_job_group() -> bool:
    """True inside the child that does the work."""
    return os.environ.get(_CHILD_MARK) == "1"


def run_in_job_group(argv: list[str]) -> int:
    """Re-run `bascule argv…` as a process-group leader; return its exit code."""
    env = dict(os.environ, **{_CHILD_MARK: "1"})
    child = subprocess.Popen([sys.executable, "-m", "flows.cli", *argv], env=env, start_new_session=True)  # noqa: S603

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:  # to the command alone: it stops at a boundary, its Prefect server stays up
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)
            return
        _signal_group(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _end_group(child.pid)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _end_group(pgid: int) -> None:
    """TERM what is left of the group (the temporary Prefect server), then KILL it after a grace period."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
