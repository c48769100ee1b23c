"""The extract flow end to end: sandbox servers on loopback, the real connectors, the state database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import HostRef
from db.migrate import upgrade
from flows.demo import render_sandbox_tenant
from sandbox.generator.directory import Flavour
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from sandbox.server import Credentials
from tests.conftest import AS_OF
from tests.connectors.contract import AccountHarness, MeetingHarness, harnesses
from tests.support.served import Served, served_sandbox

NOW = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 8, tzinfo=UTC).isoformat()
PLATFORMS = sorted({str(h.platform) for h in harnesses(AccountHarness)})
SECRETS = {"BASCULE_ZOOM_CLIENT_SECRET": Credentials().zoom_client_secret,
           "BASCULE_GRAPH_CLIENT_SECRET": Credentials().graph_client_secret,
           "BASCULE_WEBEX_ACCESS_TOKEN": Credentials().webex_access_token}


@pytest.fixture(scope="module")
def ministry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("extract-ministry")
    return out, generate_ministry(out, GeneratorOptions(agents=400, seed=17, flavour=Flavour.AD, as_of=AS_OF))


@pytest.fixture(scope="module")
def sandbox(ministry: tuple[Path, dict[str, Any]]) -> Iterator[Served]:
    with served_sandbox(ministry[0]) as served:
        yield served


def _tenant(directory: Path, ministry: tuple[Path, dict[str, Any]], server: Served) -> Path:
    tenant = directory / "tenant.toml"
    tenant.write_text(render_sandbox_tenant(ministry[1], ldif_path=str(ministry[0] / "directory.ldif"),
                                            sandbox_url=server.url, tls_url=server.tls_url,
                                            ca_file=str(server.ca_file)), encoding="utf-8")
    return tenant


def _database(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as connection:
        return {
            "accounts": connection.execute("select platform, external_id, content_hash from source_account "
                                           "where removed_at is null order by 1, 2").fetchall(),
            "meetings": connection.execute("select platform, external_id, kind, rrule, link_key, content_hash "
                                           "from meeting where removed_at is null order by 1, 2").fetchall(),
            "skus": connection.execute("select platform, sku_key, consumed_units, annual_unit_cost "
                                       "from licence_sku order by 1, 2").fetchall(),
            "quarantine": connection.execute("select source, record_key, reason from quarantine "
                                             "where resolved_at is null order by 1, 2").fetchall(),
            "assignments": connection.execute("select platform, account_external_id, sku_key, state "
                                              "from licence_assignment order by 1, 2, 3").fetchall(),
        }


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    database = tmp_path / "state.db"
    upgrade(f"sqlite:///{database}")
    monkeypatch.setenv("BASCULE_DATABASE_URL", f"sqlite:///{database}")
    return database


def test_extraction_delivers_every_record_then_a_second_run_changes_nothing(
        tmp_path: Path, ministry: tuple[Path, dict[str, Any]], sandbox: Served, environment: Path) -> None:
    from flows.extract import extract

    summary = extract(str(_tenant(tmp_path, ministry, sandbox)), now=NOW, force=True)
    state = _database(environment)
    for platform in PLATFORMS:
        account_harness = next(h for h in harnesses(AccountHarness) if str(h.platform) == platform)
        ids, quarantined = account_harness.expected(ministry[0])
        assert {i for p, i, _ in state["accounts"] if p == platform} == ids, platform
        assert {k for s, k, _ in state["quarantine"] if s == f"{platform}:users"} == set(quarantined), platform

        meeting_harness = next(h for h in harnesses(MeetingHarness) if str(h.platform) == platform)
        with sqlite3.connect(environment) as connection:
            hosts = [HostRef(i, e) for i, e in connection.execute(
                "select external_id, email from source_account where platform = ? and licensed and status = 'active' "
                "order by external_id", (platform,))]
        meeting_ids, meeting_quarantine = meeting_harness.expected(ministry[0], hosts)
        assert {i for p, i, *_ in state["meetings"] if p == platform} == meeting_ids, platform
        assert {k for s, k, _ in state["quarantine"] if s == f"{platform}:meetings"} == set(meeting_quarantine)
        assert summary[platform]["error"] is None
        assert summary[platform]["licences"] > 0

    again = extract(str(_tenant(tmp_path, ministry, sandbox)), now=NOW, force=True)
    for platform in PLATFORMS:
        for stream in ("users", "meetings"):
            assert again[platform][stream]["inserted"] == again[platform][stream]["updated"] == 0, (platform, stream)
            assert again[platform][stream]["removed"] == 0, (platform, stream)
    assert _database(environment) == state


def _cli(args: list[str], env: dict[str, str], cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _meeting_pages_stored(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=1) as connection:
            return int(connection.execute("select count(*) from meeting").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_killed_extraction_resumes_to_the_same_database(tmp_path: Path, ministry: tuple[Path, dict[str, Any]],
                                                       sandbox: Served) -> None:
    tenant = _tenant(tmp_path, ministry, sandbox)
    base_env = {**os.environ, **SECRETS, "BASCULE_DATA_DIR": str(tmp_path / "data"),
                "PREFECT_HOME": str(tmp_path / "prefect"), "BASCULE_JOB_CHILD": "1"}
    reference, killed = tmp_path / "reference.db", tmp_path / "killed.db"
    for database in (reference, killed):
        upgrade(f"sqlite:///{database}")

    done = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], {**base_env,
                "BASCULE_DATABASE_URL": f"sqlite:///{reference}"}, tmp_path)
    _out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-3000:]

    env = {**base_env, "BASCULE_DATABASE_URL": f"sqlite:///{killed}"}
    job = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], env, tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and _meeting_pages_stored(killed) < 30:
        time.sleep(0.05)
    assert job.poll() is None, "the extraction ended before it could be killed"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()

    rerun = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], env, tmp_path)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert any(summary[p]["meetings"]["resumed"] or summary[p]["users"]["resumed"] for p in summary)
    assert _database(killed) == _database(reference)


def test_a_host_whose_listing_fails_is_quarantined_and_the_next_pass_picks_it_up(
        tmp_path: Path, ministry: tuple[Path, dict[str, Any]], sandbox: Served, environment: Path) -> None:
    """One Zoom host's listing refused, another's never ending: both quarantined with their reason, their meetings
    kept as they were, every other host's meetings extracted; once the listings work again, a pass resolves it."""
    import httpx

    from flows.extract import extract

    tenant = str(_tenant(tmp_path, ministry, sandbox))
    extract(tenant, platforms=["zoom"], now=NOW, force=True)
    before = _database(environment)
    with sqlite3.connect(environment) as connection:
        busy = [host for (host,) in connection.execute(
            "select host_account_id from meeting where platform = 'zoom' and removed_at is null "
            "group by host_account_id having count(*) >= 2 order by host_account_id limit 2")]
    refused, malformed = busy
    bugs = [f"refuse_meetings_of:{refused}", f"malformed_meetings_of:{malformed}"]
    httpx.post(sandbox.url + "/_sandbox/broken", json={"add": bugs}).raise_for_status()
    try:
        failing = extract(tenant, platforms=["zoom"], now=NOW, force=True)
    finally:
        httpx.post(sandbox.url + "/_sandbox/broken", json={"remove": bugs}).raise_for_status()
    during = _database(environment)
    meetings = failing["zoom"]["meetings"]
    assert failing["zoom"]["error"] is None and meetings["incomplete_hosts"] == 2 and meetings["removed"] == 0
    assert meetings["quarantined"]["LISTING_REFUSED"] == 1 and meetings["quarantined"]["LISTING_MALFORMED"] == 1
    assert during["meetings"] == before["meetings"]  # nothing of the two hosts was lost, nothing else changed
    assert set(during["quarantine"]) - set(before["quarantine"]) == {
        ("zoom:meetings", f"zoom:host:{refused}:meetings", "LISTING_REFUSED"),
        ("zoom:meetings", f"zoom:host:{malformed}:meetings", "LISTING_MALFORMED")}

    again = extract(tenant, platforms=["zoom"], now=NOW, force=True)
    assert again["zoom"]["meetings"]["incomplete_hosts"] == 0
    assert _database(environment) == before  # the two hosts listed again; their quarantine entries resolved
