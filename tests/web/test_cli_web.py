"""`bascule access` and `bascule web serve` as an operator runs them: grants audited and refused in one line when
wrong; the server answering over HTTP on the state database, anonymous callers sent to login."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from db import models
from db.engine import make_engine, make_session_factory

REPO = Path(__file__).resolve().parents[2]


def _bascule(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def operator(tmp_path: Path) -> tuple[dict[str, str], Path, str]:
    from db.migrate import upgrade
    from tests.flows.test_savings_report import _tenant

    url = f"sqlite:///{tmp_path / 'bascule.db'}"
    upgrade(url)
    tenant = _tenant(tmp_path)
    env = {**os.environ, "BASCULE_DATA_DIR": str(tmp_path / ".bascule"), "BASCULE_DATABASE_URL": url}
    env.pop("PREFECT_HOME", None)
    return env, tenant, url


def test_access_grant_is_audited_and_refuses_what_is_wrong(operator: tuple[dict[str, str], Path, str]) -> None:
    env, tenant, url = operator
    unregistered = _bascule(env, "access", "grant", "agent@chiffre.gouv.fr", "finance", "--tenant", str(tenant))
    assert unregistered.returncode == 2 and "not registered" in unregistered.stderr
    from datetime import UTC, datetime

    from db.repositories import TenantRepository

    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        TenantRepository(session).ensure("min-savings-test", name="Test", siret=None, config_path=None,
                                         config_hash=None, now=datetime.now(UTC))
    done = _bascule(env, "access", "grant", "Agent@Chiffre.gouv.fr", "finance", "--tenant", str(tenant),
                    "--by", "dsi")
    assert done.returncode == 0 and "granted" in done.stdout
    again = _bascule(env, "access", "grant", "agent@chiffre.gouv.fr", "finance", "--tenant", str(tenant))
    assert again.returncode == 0 and "already" in again.stdout
    bad_role = _bascule(env, "access", "grant", "agent@chiffre.gouv.fr", "boss", "--tenant", str(tenant))
    assert bad_role.returncode == 2 and "finance, helpdesk, migration, admin" in bad_role.stderr
    bad_mail = _bascule(env, "access", "grant", "not-an-address", "finance", "--tenant", str(tenant))
    assert bad_mail.returncode == 2 and bad_mail.stderr.count("\n") == 1
    listed = _bascule(env, "access", "list", "--tenant", str(tenant))
    assert "agent@chiffre.gouv.fr" in listed.stdout and "finance" in listed.stdout
    revoked = _bascule(env, "access", "revoke", "agent@chiffre.gouv.fr", "finance", "--tenant", str(tenant))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with make_session_factory(engine)() as session:
        actions = list(session.execute(select(models.AuditEvent.action, models.AuditEvent.actor)
                                       .order_by(models.AuditEvent.id)).all())
    engine.dispose()
    assert [tuple(row) for row in actions] == [("access.granted", "dsi"), ("access.revoked", os.environ.get(
        "USER") or "unknown")]


def test_web_serve_answers_over_http(operator: tuple[dict[str, str], Path, str]) -> None:
    env, _tenant, _url = operator
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "web", "serve", "--port", str(port)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read() if server.stderr \
                else ""
            time.sleep(0.3)
        anonymous = httpx.get(f"http://127.0.0.1:{port}/finance", follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Ffinance"
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 503 and "ProConnect" in login.text   # no client configured: said, not hidden
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
    assert "login DISABLED" in out
