"""The load-directory flow: idempotent, resumable after a kill, bad input reported on one line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from db.migrate import upgrade
from sandbox.generator.directory import Flavour
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from tests.conftest import AS_OF, REPO, write_tenant


def _rows(url: str) -> dict[str, Any]:
    """What the load leaves behind that must not depend on how many times or how it ran."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        entries = connection.execute(
            "select anchor, dn, primary_email, email_normalised, aliases, disabled, content_hash, removed_at "
            "from directory_entry order by anchor").fetchall()
        quarantine = connection.execute(
            "select record_key, reason, resolved_at is null from quarantine order by record_key, reason").fetchall()
        checkpoint = connection.execute("select status, cursor from checkpoint").fetchall()
    return {"entries": entries, "quarantine": quarantine, "checkpoint": checkpoint}


def test_running_twice_gives_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    from flows.directory import load_directory

    out, manifest = ministry_ad
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    tenant = write_tenant(tmp_path, manifest, ldif_path=out / "directory.ldif")

    first = load_directory(str(tenant), page_size=400)
    after_first = _rows(url)
    second = load_directory(str(tenant), page_size=400)

    people = manifest["directory"]["people"]
    assert (first["inserted"], first["updated"], first["removed"]) == (people, 0, 0)
    assert (second["inserted"], second["updated"], second["unchanged"], second["removed"]) == (0, 0, people, 0)
    assert second["quarantined"] == first["quarantined"] == manifest["directory"]["quarantine"]
    assert first["skipped_out_of_scope"] == manifest["directory"]["out_of_scope"]
    assert _rows(url) == after_first
    assert len(after_first["entries"]) == people


def test_an_entry_gone_from_the_export_is_marked_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.directory import load_directory

    manifest = generate_ministry(tmp_path / "m", GeneratorOptions(agents=120, seed=2, as_of=AS_OF,
                                                                  flavour=Flavour.SUPANN))
    export = tmp_path / "m" / "directory.ldif"
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    tenant = write_tenant(tmp_path, manifest, ldif_path=export)
    load_directory(str(tenant))

    records = export.read_text(encoding="utf-8").split("\n\n")
    people = [i for i, record in enumerate(records) if "\nuid: " in record]
    del records[people[3]]
    export.write_text("\n\n".join(records), encoding="utf-8")
    summary = load_directory(str(tenant))
    assert summary["removed"] == 1
    assert summary["entries_now"] == manifest["directory"]["people"] - 1


def _cli(*args: str, env: dict[str, str], cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def _checkpoint(db: Path) -> tuple[str, int] | None:
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            row = connection.execute("select status, cursor from checkpoint").fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[1] is None:
        return None
    return row[0], int(row[1])


@pytest.mark.slow
def test_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = generate_ministry(tmp_path / "m", GeneratorOptions(agents=3000, seed=21, as_of=AS_OF))
    export = tmp_path / "m" / "directory.ldif"
    tenant = write_tenant(tmp_path, manifest, ldif_path=export)

    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(reference)
    monkeypatch.setenv("BASCULE_DATABASE_URL", reference)
    from flows.directory import load_directory

    load_directory(str(tenant), page_size=150)

    killed_db = tmp_path / "killed.db"
    upgrade(f"sqlite:///{killed_db}")
    env = {**os.environ, "BASCULE_DATABASE_URL": f"sqlite:///{killed_db}", "BASCULE_DATA_DIR": str(tmp_path / "data"),
           "PREFECT_HOME": str(tmp_path / "prefect-home"), "BASCULE_JOB_CHILD": "1"}
    # The flow process leads its own group, so the kill takes Prefect's temporary server with it.
    job = _cli("directory", "load", "--tenant", str(tenant), "--page-size", "150", env=env, cwd=tmp_path,
               start_new_session=True)
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline and job.poll() is None:
        state = _checkpoint(killed_db)
        if state is not None and state[0] == "running" and state[1] >= 600:
            break
        time.sleep(0.05)
    assert job.poll() is None, f"the load ended before it could be killed: {job.communicate()[1][-2000:]}"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    killed_at = _checkpoint(killed_db)
    assert killed_at is not None and killed_at[0] == "running"

    rerun = _cli("directory", "load", "--tenant", str(tenant), "--page-size", "150", "--json", env=env, cwd=tmp_path)
    stdout, stderr = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] == killed_at[1]
    assert summary["inserted"] + summary["unchanged"] + summary["updated"] < manifest["directory"]["people"]

    killed_rows = _rows(f"sqlite:///{killed_db}")
    reference_rows = _rows(reference)
    assert killed_rows["entries"] == reference_rows["entries"]
    assert killed_rows["quarantine"] == reference_rows["quarantine"]
    assert killed_rows["checkpoint"] == reference_rows["checkpoint"] == [("complete", None)]


@pytest.mark.parametrize(("args", "expected"), [
    (["directory", "load", "--tenant", "nowhere.toml"], "tenant file not found: nowhere.toml"),
    (["directory", "load", "--tenant", "broken.toml"], "is not valid TOML"),
    (["directory", "load", "--tenant", "secretful.toml"], "client_secret_env"),
])
def test_bad_tenant_files_give_one_clear_line(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "broken.toml").write_text("id = [unclosed\n", encoding="utf-8")
    example = (REPO / "tenants" / "example.toml").read_text(encoding="utf-8")
    (tmp_path / "secretful.toml").write_text(
        example.replace('client_secret_env = "BASCULE_ZOOM_CLIENT_SECRET"', 'client_secret_env = "s3cr3t-value!"'),
        encoding="utf-8")
    env = {**os.environ, "BASCULE_DATA_DIR": str(tmp_path / "data")}
    done = _cli(*args, env=env, cwd=tmp_path)
    _stdout, stderr = done.communicate(timeout=60)
    assert done.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bascule: error: ") and expected in lines[0]
    assert "s3cr3t-value!" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://nobody@127.0.0.1/x", "unsupported database backend 'mysql'"),
    ("not a url", "not a database URL"),
    ("sqlite:////nonexistent-dir/sub/bascule.db", "SQLite directory does not exist"),
])
def test_bad_database_urls_give_one_clear_line(tmp_path: Path, url: str, expected: str) -> None:
    env = {**os.environ, "BASCULE_DATABASE_URL": url, "BASCULE_DATA_DIR": str(tmp_path)}
    done = _cli("db", "upgrade", env=env, cwd=tmp_path)
    _stdout, stderr = done.communicate(timeout=60)
    assert done.returncode == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], stderr


@pytest.mark.slapd
def test_a_live_ldap_directory_loads_the_same_rows_as_its_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 slapd_server: Any) -> None:
    import uuid

    from connectors.directory_mapping import DirectoryMapping
    from flows.directory import load_directory
    from tests.connectors.test_ldap_slapd import _load

    base = f"ou=flow-{uuid.uuid4().hex[:8]},{slapd_server.suffix}"
    manifest = generate_ministry(tmp_path / "m", GeneratorOptions(agents=300, seed=8, as_of=AS_OF,
                                                                  flavour=Flavour.SUPANN, base_dn=base))
    export = tmp_path / "m" / "directory.ldif"
    _load(slapd_server, export, DirectoryMapping.supann())

    from_export = f"sqlite:///{tmp_path / 'export.db'}"
    upgrade(from_export)
    monkeypatch.setenv("BASCULE_DATABASE_URL", from_export)
    load_directory(str(write_tenant(tmp_path, manifest, ldif_path=export)))

    live = tmp_path / "live"
    live.mkdir()
    tenant = write_tenant(live, manifest, ldif_path=export)
    text = tenant.read_text(encoding="utf-8").replace(
        f'kind = "ldif"\nflavour = "supann"\nldif_path = {json.dumps(str(export))}',
        f'kind = "ldap"\nflavour = "supann"\nurl = "{slapd_server.uri}"\nbase_dn = "{base}"\n'
        f'bind_dn = "{slapd_server.bind_dn}"\npassword_env = "BASCULE_TEST_BIND_PASSWORD"')
    assert 'kind = "ldap"' in text
    tenant.write_text(text, encoding="utf-8")
    from_ldap = f"sqlite:///{tmp_path / 'ldap.db'}"
    upgrade(from_ldap)
    monkeypatch.setenv("BASCULE_DATABASE_URL", from_ldap)
    monkeypatch.setenv("BASCULE_TEST_BIND_PASSWORD", slapd_server.password)
    summary = load_directory(str(tenant), page_size=120)

    assert summary["entries_now"] == manifest["directory"]["people"]
    assert _rows(from_ldap)["entries"] == _rows(from_export)["entries"]
