"""`bascule sandbox serve` in a process of its own, for tests and benchmarks that measure the client side.

A sandbox in the same interpreter as the flow shares its GIL and slows both; in production the systems are
elsewhere anyway.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Served:
    """Where the sandbox process answers."""

    url: str
    tls_url: str
    ca_file: Path
    smtp_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served_sandbox(data: Path, *, rate_limits: bool = True, zoom_plan: str = "business",
                   extra: Sequence[str] = ()) -> Iterator[Served]:
    """Serve `data` until the block ends (`extra`: more `sandbox serve` options); raise with the server's output if
    it does not come up. The process is stopped with SIGTERM unless the block already stopped it."""
    port, tls_port, smtp_port = _free_port(), _free_port(), _free_port()
    command = [sys.executable, "-m", "flows.cli", "sandbox", "serve", "--data", str(data), "--port", str(port),
               "--tls-port", str(tls_port), "--smtp-port", str(smtp_port), "--zoom-plan", zoom_plan]
    if not rate_limits:
        command.append("--no-rate-limits")
    command.extend(extra)
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/_sandbox/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"the sandbox did not start: {output[-2000:]}")
            time.sleep(0.2)
        yield Served(url, f"https://127.0.0.1:{tls_port}", data / "tls" / "cert.pem", smtp_port, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
