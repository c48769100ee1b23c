"""The deployment of prefect.yaml, end to end: a real Prefect server, a process worker, a run that completes.

Acceptance test of the documented procedure: `prefect work-pool create bascule --type process`,
`prefect --no-prompt deploy --all` from the repo root, `prefect worker start --pool bascule`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AS_OF, REPO, unavailable, write_tenant

SERVER_READY_TIMEOUT = 90.0  # ~16 s on a fresh SQLite database, measured (shared/contracts/prefect.md)
RUN_TIMEOUT = 240.0
CLI_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _prefect_executable() -> str | None:
    """The `prefect` next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "prefect"
    return str(beside) if beside.exists() else shutil.which("prefect")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"({path.name}: no output)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return f"--- last lines of {path.name} ---\n" + "\n".join(text[-lines:])


def _descendants(pid: int) -> list[int]:
    """Every live descendant of pid, from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the fields that follow start after the last ')'.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the process group, SIGTERM then SIGKILL, and whatever it started in sessions of its own."""
    # The process worker starts each flow run in a new session (so killing the worker's group misses it) and a dead
    # worker's children are re-parented: list them while they are still the worker's.
    strays = _descendants(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in strays:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # A flow-run process leads its own session; ending its group ends what it started too.
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _service(args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running CLI command in its own process group, stopped on exit whatever happened."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            _stop(process)


def _cli(prefect: str, args: list[str], *, env: dict[str, str], cwd: Path) -> str:
    """Run a short prefect command; fail the test with its output when it fails."""
    done = subprocess.run([prefect, *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT, check=False)
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wait_for_api(api: httpx.Client, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited with {server.returncode} before answering\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError, ValueError):  # not up yet, or not JSON yet
            # A short timeout: a port that accepts but never answers must not eat the whole budget.
            if api.get("/health", timeout=2).json() is True:
                return
        time.sleep(0.5)
    pytest.fail(f"prefect server did not answer within {SERVER_READY_TIMEOUT:.0f} s\n{_tail(log)}")


def _wait_for_final_state(api: httpx.Client, run_id: str, worker: subprocess.Popen[bytes],
                          log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = api.get(f"/flow_runs/{run_id}").json()
        if run["state_type"] in FINAL_STATES:
            return run
        if worker.poll() is not None:
            pytest.fail(f"prefect worker exited with {worker.returncode}, run still {run['state_type']}\n"
                        f"{_tail(log)}")
        time.sleep(1)
    pytest.fail(f"flow run still {run.get('state_type')} after {RUN_TIMEOUT:.0f} s\n{_tail(log)}")


def _subprocess_env(prefect_home: Path, database_url: str, data_dir: Path) -> dict[str, str]:
    """This session's environment without its Prefect and bascule settings, plus the server's."""
    # tests/conftest.py points PREFECT_HOME at the session's ephemeral-mode home: the server gets a home of its own.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "BASCULE_"))}
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # else a 'database is locked' traceback on SQLite
        "PREFECT_UI_ENABLED": "false",
        # The flow-run process inherits the worker's environment: the state database comes from there, as the
        # header of prefect.yaml says for real workers (a connection string may hold a password, and job variables
        # are stored in Prefect's database). BASCULE_DATA_DIR keeps anything else out of the checkout.
        "BASCULE_DATABASE_URL": database_url,
        "BASCULE_DATA_DIR": str(data_dir),
    })
    return env


@pytest.mark.prefect_server
@pytest.mark.slow
def test_load_directory_deployment_runs_on_a_process_worker(tmp_path: Path) -> None:
    """Deploy prefect.yaml to a real server; a process worker runs load-directory to Completed."""
    from db.migrate import upgrade
    from sandbox.generator.directory import Flavour
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry

    prefect = _prefect_executable()
    if prefect is None:
        unavailable("the prefect executable is not installed")
        return

    ministry = tmp_path / "ministry"
    ministry.mkdir()
    manifest = generate_ministry(ministry, GeneratorOptions(agents=300, seed=1, flavour=Flavour.AD, as_of=AS_OF))
    ldif = ministry / "directory.ldif"
    tenant = write_tenant(tmp_path, manifest, ldif_path=ldif)
    database = tmp_path / "bascule.db"
    upgrade(f"sqlite:///{database}")

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = _subprocess_env(tmp_path / "prefect-home", f"sqlite:///{database}", tmp_path / "data")
    # Only the CLI commands get PREFECT_API_URL; this process talks to the API with plain httpx, so nothing in
    # the session's Prefect settings changes (other tests use the ephemeral mode).
    client_env = {**env, "PREFECT_API_URL": url}
    # The worker's default is a poll every ~10 s; a shorter one keeps the test short without changing what runs.
    worker_env = {**client_env, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"

    with (
        httpx.Client(base_url=url, timeout=30) as api,
        _service([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 env=env, cwd=tmp_path, log=server_log) as server,
    ):
        _wait_for_api(api, server, server_log)
        _cli(prefect, ["work-pool", "create", "bascule", "--type", "process"], env=client_env, cwd=tmp_path)
        _cli(prefect, ["--no-prompt", "deploy", "--all"], env=client_env, cwd=REPO)

        deployment = api.get("/deployments/name/load-directory/load-directory").json()
        assert deployment["entrypoint"] == "flows/directory.py:load_directory"
        # The pull step recorded at deploy time is what makes the worker find flows/ at all.
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO.resolve())}}]

        # The run exists before the worker starts, so the worker's first poll picks it up.
        created = api.post(f"/deployments/{deployment['id']}/create_flow_run", json={
            "parameters": {"tenant_file": str(tenant), "ldif_path": str(ldif), "page_size": 100}})
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        with _service([prefect, "worker", "start", "--pool", "bascule"], env=worker_env, cwd=tmp_path,
                      log=worker_log) as worker:
            run = _wait_for_final_state(api, run_id, worker, worker_log)
        assert run["state_type"] == "COMPLETED", (
            f"flow run ended {run['state_type']}: {run['state'].get('message')}\n{_tail(worker_log)}")

    with contextlib.closing(sqlite3.connect(database)) as connection:
        (entries,) = connection.execute("select count(*) from directory_entry").fetchone()
    assert entries == manifest["directory"]["people"]


def test_every_deployment_names_a_flow_and_its_parameters() -> None:
    """Each entry point of prefect.yaml is a Prefect flow; its parameters exist on the flow; no secret values."""
    import importlib
    import inspect

    import yaml
    from prefect import Flow
    from prefect.utilities.callables import parameter_schema

    document = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    names = set()
    for deployment in document["deployments"]:
        path, _, attribute = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), attribute)
        assert isinstance(flow, Flow), deployment["name"]
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
        schema = parameter_schema(flow)  # what `prefect deploy` stores: every parameter must have one
        assert set(deployment.get("parameters", {})) <= set(schema.properties), deployment["name"]
        assert deployment["work_pool"]["name"] == "bascule"
        names.add(flow.name)
    assert {"load-directory", "onboard", "extract", "map-identities", "plan-wave", "freeze-wave", "cutover",
            "verify-wave", "rollback-wave"} <= names

    def keys(node: object) -> list[str]:
        if isinstance(node, dict):
            return [str(key) for key in node] + [k for value in node.values() for k in keys(value)]
        return [k for value in node for k in keys(value)] if isinstance(node, list) else []

    assert not [key for key in keys(document) if any(word in key.lower() for word in ("secret", "password", "token"))]
