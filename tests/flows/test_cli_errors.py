"""Every failure a user can cause ends in one line on stderr naming what failed and the next step, exit code 2;
the traceback goes to the command's log file, whose path the line gives. Run as a user runs bascule: a process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from db.migrate import upgrade
from sandbox.server import Credentials
from tests.conftest import REPO

SECRETS = {"BASCULE_ZOOM_CLIENT_SECRET": Credentials().zoom_client_secret,
           "BASCULE_GRAPH_CLIENT_SECRET": Credentials().graph_client_secret,
           "BASCULE_WEBEX_ACCESS_TOKEN": Credentials().webex_access_token,
           "BASCULE_VISIO_CLIENT_SECRET": "x" * 32}
LOG_FILE = re.compile(r"\(details: (\S+\.log)\)$")


def _bascule(args: list[str], data_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BASCULE_", "PREFECT_"))}
    env.update(SECRETS, BASCULE_DATA_DIR=str(data_dir), **extra)
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The error line, checked to be the only thing on stderr and to say it is an error."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("bascule: error: ") and "Traceback" not in done.stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


@pytest.fixture
def tenant(tmp_path: Path, contract_ministry: tuple[Path, dict[str, Any]]) -> Path:
    """The contract ministry's tenant, its services on a port where nothing answers."""
    from tests.conftest import write_tenant

    path = write_tenant(tmp_path / "tenant", contract_ministry[1], ldif_path=contract_ministry[0] / "directory.ldif")
    path.write_text(path.read_text(encoding="utf-8").replace("127.0.0.1:8700", f"127.0.0.1:{_closed_port()}"),
                    encoding="utf-8")
    return path


def test_a_missing_database_is_named_and_not_created(tmp_path: Path, tenant: Path) -> None:
    line = _one_line(_bascule(["extract", "--tenant", str(tenant), "--force"], tmp_path / "data"))
    database = tmp_path / "data" / "bascule.db"
    assert f"no database at {database}" in line and "run `bascule db upgrade`" in line
    assert not database.exists()  # looking did not create an empty one


def test_a_database_behind_the_schema_is_told_to_upgrade(tmp_path: Path, tenant: Path) -> None:
    database = tmp_path / "data" / "bascule.db"
    database.parent.mkdir()
    upgrade(f"sqlite:///{database}", "0003")
    line = _one_line(_bascule(["identities", "map", "--tenant", str(tenant), "--force"], tmp_path / "data"))
    assert "is at schema revision 0003" in line and "run `bascule db upgrade`" in line


def test_an_unwritable_data_directory_is_named(tmp_path: Path, tenant: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    line = _one_line(_bascule(["extract", "--tenant", str(tenant)], blocker / "data"))
    assert f"cannot write to the data directory {blocker / 'data'}" in line and "BASCULE_DATA_DIR" in line


def test_a_missing_tenant_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    (tmp_path / "data").mkdir()
    upgrade(f"sqlite:///{tmp_path / 'data' / 'bascule.db'}")
    line = _one_line(_bascule(["extract", "--tenant", str(missing)], tmp_path / "data"))
    assert str(missing) in line


@pytest.mark.slow
def test_an_unreachable_service_is_named_and_the_traceback_goes_to_the_log(tmp_path: Path, tenant: Path) -> None:
    """Raised inside the flow, after Prefect started: no Prefect traceback or chatter on the terminal."""
    data = tmp_path / "data"
    data.mkdir()
    upgrade(f"sqlite:///{data / 'bascule.db'}")
    done = _bascule(["extract", "--tenant", str(tenant), "--force", "--platform", "zoom"], data)
    line = _one_line(done)
    port = re.search(r"127\.0\.0\.1:(\d+)", tenant.read_text(encoding="utf-8"))
    assert port is not None
    assert f"zoom is unreachable: cannot connect to http://127.0.0.1:{port.group(1)}" in line
    assert "check that the service is up" in line
    found = LOG_FILE.search(line)
    assert found is not None, line
    log = Path(found.group(1))
    assert log.parent == data / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "Unreachable" in text
    assert "Flow run 'extract/min-culture-exemple'" in text  # run named after the tenant, not a random name
