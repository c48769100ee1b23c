"""A long stage's progress, where its operator looks: the Prefect progress artifact (the UI), and a bar on the
terminal when the command runs in one (instead of a log line per task run)."""

from __future__ import annotations

import sys
import threading
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

_lock = threading.Lock()
_bars: Any = None  # one rich Progress for the process: stages running side by side (extract's platforms) share it
_open = 0


class Progress:
    """Percent done of one stage (or one platform of a stage), 0 to 100."""

    def __init__(self, key: str, description: str, *, label: str | None = None) -> None:
        self._id = cast(UUID, create_progress_artifact(progress=0.0, key=key, description=description))
        self._sent = 0.0
        self._value = 0.0
        self._task: int | None = None
        self._guard = threading.Lock()
        if _terminal():
            self._task = _add_bar(label or key)

    def set(self, percent: float) -> None:
        value = max(0.0, min(100.0, percent))
        with self._guard:
            self._value = value
            if value - self._sent >= 1.0 or (value == 100.0 and self._sent < 100.0):  # not one API call per page
                update_progress_artifact(self._id, progress=value)
                self._sent = value
            if self._task is not None:
                _bars.update(self._task, completed=value)

    def done(self) -> None:
        self.set(100.0)
        if self._task is not None:
            _remove_bar(self._task)
            self._task = None


def _terminal() -> bool:
    """Bars only for a person at a terminal running a bascule command (not in workers, tests or pipes)."""
    import os

    return os.environ.get("BASCULE_JOB_CHILD") == "1" and sys.stderr.isatty()


def _add_bar(label: str) -> int:
    global _bars, _open
    from rich.console import Console
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    with _lock:
        if _bars is None:
            _bars = Bars(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                         console=Console(stderr=True), transient=False)
            _bars.start()
        _open += 1
        return int(_bars.add_task(label, total=100.0))


def _remove_bar(task: int) -> None:
    global _bars, _open
    with _lock:
        _open -= 1
        if _open == 0 and _bars is not None:
            _bars.stop()
            _bars = None
