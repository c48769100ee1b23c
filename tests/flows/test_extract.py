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

    # Teams activity: the sign-ins read apart on the pass, for every user (the first pass and the delta pass).
    with sqlite3.connect(environment) as connection:
        active = dict(connection.execute("select external_id, last_activity from source_account "
                                         "where platform = 'teams'").fetchall())
    assert active and all(active.values()), "every Teams user's last sign-in was read"
    assert summary["teams"]["users"]["activity_read"] == len(active)
    assert summary["teams"]["users"]["activity_unknown"] is None

    again = extract(str(_tenant(tmp_path, ministry, sandbox)), now=NOW, force=True)
    for platform in PLATFORMS:
        for stream in ("users", "meetings"):
            assert again[platform][stream]["inserted"] == again[platform][stream]["updated"] == 0, (platform, stream)
            assert again[platform][stream]["removed"] == 0, (platform, stream)
    assert again["teams"]["users"]["delta"] and again["teams"]["users"]["activity_read"] == len(active)
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


def _environment(tmp_path: Path, database: Path, *, job_child: bool = True) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "BASCULE_JOB_CHILD"}
    env.update(SECRETS, BASCULE_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect"),
               BASCULE_DATABASE_URL=f"sqlite:///{database}")
    if job_child:  # the work process itself, without the parent that owns the process group
        env["BASCULE_JOB_CHILD"] = "1"
    upgrade(f"sqlite:///{database}")
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, ministry: tuple[Path, dict[str, Any]],
              sandbox: Served) -> dict[str, Any]:
    """The database an uninterrupted `bascule extract` leaves (what an interrupted one must end at)."""
    tmp_path = tmp_path_factory.mktemp("reference")
    tenant = _tenant(tmp_path, ministry, sandbox)
    database = tmp_path / "reference.db"
    done = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], _environment(tmp_path, database),
                tmp_path)
    _out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err[-3000:]
    return _database(database)


def _resumes_to(reference: dict[str, Any], tenant: Path, env: dict[str, str], database: Path, cwd: Path) -> None:
    rerun = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force", "--json"], env, cwd)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert any(summary[p]["meetings"]["resumed"] or summary[p]["users"]["resumed"] for p in summary)
    assert _database(database) == reference


def _mid_run(job: subprocess.Popen[str], database: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None and _meeting_pages_stored(database) < 30:
        time.sleep(0.05)
    assert job.poll() is None, "the extraction ended before it could be interrupted"


@pytest.mark.slow
def test_killed_extraction_resumes_to_the_same_database(tmp_path: Path, ministry: tuple[Path, dict[str, Any]],
                                                       sandbox: Served, reference: dict[str, Any]) -> None:
    tenant = _tenant(tmp_path, ministry, sandbox)
    killed = tmp_path / "killed.db"
    env = _environment(tmp_path, killed)
    job = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], env, tmp_path, start_new_session=True)
    _mid_run(job, killed)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    _resumes_to(reference, tenant, env, killed, tmp_path)


@pytest.mark.slow
def test_ctrl_c_stops_the_extraction_cancelled_and_the_rerun_completes(
        tmp_path: Path, ministry: tuple[Path, dict[str, Any]], sandbox: Served, reference: dict[str, Any]) -> None:
    """SIGINT to the command's process group, as a terminal sends Ctrl-C: the command stops at the next page within
    10 s, says so on stderr without a traceback, exits 130, its flow run ends Cancelled; the re-run completes."""
    tenant = _tenant(tmp_path, ministry, sandbox)
    interrupted = tmp_path / "interrupted.db"
    env = _environment(tmp_path, interrupted, job_child=False)
    job = _cli(["extract", "--tenant", str(tenant), "--now", NOW, "--force"], env, tmp_path, start_new_session=True)
    _mid_run(job, interrupted)
    os.killpg(job.pid, signal.SIGINT)
    try:
        _out, err = job.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        job.terminate()  # the command passes it on to its own process group (the work and its Prefect server)
        job.communicate(timeout=60)
        pytest.fail("the extraction did not stop within 10 s of Ctrl-C")
    assert job.returncode == 130, err[-3000:]
    assert "stopping after the current page" in err and "run the same command again to resume" in err
    assert "Traceback" not in err and "bascule: error" not in err
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as prefect_database:
        states = prefect_database.execute("select name, state_type from flow_run").fetchall()
    assert states == [("extract/min-culture-exemple", "CANCELLED")], states
    _resumes_to(reference, tenant, env, interrupted, tmp_path)


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


def test_a_tenant_without_sign_in_activity_is_extracted_with_teams_activity_not_known(
        tmp_path: Path, ministry: tuple[Path, dict[str, Any]], environment: Path) -> None:
    """Without Entra ID P1 (Graph's 403 on signInActivity) the extraction goes on; Teams activity stays unknown
    (None, never a date made up) and the summary says why, once."""
    from flows.extract import extract
    from flows.reports import render_extract

    with served_sandbox(ministry[0], extra=["--graph-without-premium"]) as served:
        summary = extract(str(_tenant(tmp_path, ministry, served)), platforms=["teams"], now=NOW, force=True)
    teams = summary["teams"]
    assert teams["error"] is None and teams["users"]["inserted"] > 0 and teams["meetings"]["inserted"] > 0
    assert "signInActivity needs the AuditLog.Read.All permission and an Entra ID P1" in teams["users"][
        "activity_unknown"]
    with sqlite3.connect(environment) as connection:
        assert connection.execute("select count(*) from source_account where platform = 'teams' and "
                                  "last_activity is not null").fetchone() == (0,)
    assert "activity   NOT KNOWN" in render_extract(summary)
