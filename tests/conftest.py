"""Shared fixtures: databases, the synthetic ministry, slapd, Prefect.

A test that needs a service skips with the reason when the service cannot exist here; with
BASCULE_REQUIRE_SERVICES=1 (set by .ci/run) a missing service is a failure instead, so nothing skips silently.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Prefect reads its settings at import: keep test runs away from ~/.prefect and quiet.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="bascule-prefect-"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from sandbox.generator.directory import Flavour  # noqa: E402
from sandbox.generator.ministry import GeneratorOptions, generate_ministry  # noqa: E402
from tests.support import slapd  # noqa: E402

AS_OF = date(2026, 11, 23)
REQUIRE_SERVICES = os.environ.get("BASCULE_REQUIRE_SERVICES") == "1"
REPO = Path(__file__).resolve().parent.parent


def unavailable(reason: str) -> None:
    """Skip, or fail when the run requires every service (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


# ----------------------------------------------------------------------------------------------- databases

def _postgres_admin_url() -> str:
    return os.environ.get("BASCULE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    """An engine on the PostgreSQL server's admin database (used to create and drop test databases)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        engine.dispose()
        unavailable(f"PostgreSQL not reachable at {_postgres_admin_url()}: {type(exc).__name__}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Any) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import text

    name = f"bascule_t_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'create database "{name}"'))
    url = postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    from flows.runtime import dispose_engines

    dispose_engines()
    with postgres_admin.connect() as connection:
        connection.execute(text(f'drop database if exists "{name}" with (force)'))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bascule.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bascule.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def migrated_url(database_url: str) -> str:
    from db.migrate import upgrade

    upgrade(database_url)
    return database_url


# ----------------------------------------------------------------------------------------------- ministry

@pytest.fixture(scope="session")
def ministry_ad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 2,000-agent ministry with an Active Directory export (seed 42)."""
    out = tmp_path_factory.mktemp("ministry-ad")
    return out, generate_ministry(out, GeneratorOptions(agents=2000, seed=42, flavour=Flavour.AD, as_of=AS_OF))


@pytest.fixture(scope="session")
def ministry_supann(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 2,000-agent ministry with an OpenLDAP/SupAnn export (seed 7)."""
    out = tmp_path_factory.mktemp("ministry-supann")
    return out, generate_ministry(out, GeneratorOptions(agents=2000, seed=7, flavour=Flavour.SUPANN, as_of=AS_OF))


# ----------------------------------------------------------------------------------------------- slapd

@pytest.fixture(scope="session")
def slapd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slapd.SlapdServer]:
    """The slapd of .ci/run (BASCULE_TEST_LDAP_URI), else a private one; skipped only without slapd."""
    uri = os.environ.get("BASCULE_TEST_LDAP_URI")
    if uri:
        yield slapd.SlapdServer(uri, os.environ["BASCULE_TEST_LDAP_SUFFIX"],
                                os.environ["BASCULE_TEST_LDAP_BIND_DN"], os.environ["BASCULE_TEST_LDAP_PASSWORD"])
        return
    if not slapd.available():
        unavailable("OpenLDAP slapd is not installed (Debian package slapd; .ci/run installs it)")
    directory = tmp_path_factory.mktemp("slapd")
    server, process = slapd.start(directory, port=slapd.free_port())
    yield server
    slapd.stop(process, directory)


# ----------------------------------------------------------------------------------------------- tenant

def write_tenant(directory: Path, manifest: dict[str, Any], *, ldif_path: Path) -> Path:
    """A tenant file for a generated ministry, as the demo writes it (with a certificate of its own for the
    sandbox's Entra endpoint: a tenant file naming a file that does not exist is refused)."""
    from flows.demo import render_sandbox_tenant
    from sandbox.tls import self_signed_certificate

    (directory / "tls").mkdir(parents=True, exist_ok=True)
    certificate, _key = self_signed_certificate(directory / "tls")
    tenant = directory / "tenant.toml"
    tenant.write_text(render_sandbox_tenant(manifest, ldif_path=str(ldif_path), ca_file=str(certificate)),
                      encoding="utf-8")
    return tenant


# ----------------------------------------------------------------------------------------------- sandbox

@pytest.fixture(scope="session")
def contract_ministry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 400-agent ministry for the contract suites: small pages make many pages of it."""
    out = tmp_path_factory.mktemp("contract-ministry")
    return out, generate_ministry(out, GeneratorOptions(agents=400, seed=3, flavour=Flavour.AD, as_of=AS_OF))


@pytest.fixture
def sandbox_factory(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[Any]:
    """Start sandbox servers over the contract ministry, with any SandboxConfig changes; stopped after the test."""
    from sandbox.server import SandboxConfig, SandboxServer

    started: list[SandboxServer] = []

    def start(**changes: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(data_dir=contract_ministry[0], **changes))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def livekit_server(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[Any]:
    """The sandbox serving LiveKit alone (RoomService and the webhook simulator) over the contract ministry."""
    from sandbox.server import SandboxConfig, SandboxServer

    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"livekit"}))
    with SandboxServer(config) as started:
        yield started
