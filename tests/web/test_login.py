"""Logging in with ProConnect, end to end: the web application (its real OIDC client, authlib + joserfc) against
the sandbox's ProConnect on loopback. The whole login and logout; then each attack the contract names refused —
a replayed code, a forged callback state, a wrong nonce, a tampered ID token or userinfo, a userinfo about someone
else, another issuer —; `next` kept local; and no secret, code or token in the logs or in any page."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert

from core.access import Role
from db import models
from db.access import AccessRepository
from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from db.models import table_of
from sandbox.proconnect import ProConnectClient, provider_of
from sandbox.server import SandboxConfig, SandboxServer
from web.app import create_app
from web.settings import WebSettings

TENANT = "min-login-test"
CLIENT_ID = "bascule-web-test"
CLIENT_SECRET = "web-client-secret-" + "s3cr3t" * 6
SESSION_SECRET = "session-signing-key-" + "k" * 40
PUBLIC = "http://testserver"


@pytest.fixture(scope="module")
def provider(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"proconnect"}))
    with SandboxServer(config) as server:
        provider_of(server.sandbox).register_client(ProConnectClient(
            CLIENT_ID, CLIENT_SECRET, (f"{PUBLIC}/login/callback",), (f"{PUBLIC}/logout/callback",),
            extra_scopes=("organizational_unit",)))
        yield server


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, provider: SandboxServer) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('login') / 'bascule.db'}"
    upgrade(url)
    now = datetime.now(UTC)
    helpdesk, finance = (agent.email for agent in provider_of(provider.sandbox).agents(limit=2))
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        session.execute(insert(table_of(models.Tenant)), [{"id": TENANT, "name": "Ministère", "registered_at": now,
                                                           "updated_at": now}])
        access = AccessRepository(session)
        access.grant(TENANT, helpdesk, Role.HELPDESK, actor="test", now=now)
        access.grant(TENANT, finance, Role.FINANCE, actor="test", now=now)
    engine.dispose()
    return url


def _app(database: str, provider: SandboxServer) -> TestClient:
    settings = WebSettings(database_url=database, public_url=PUBLIC, session_secret=SecretStr(SESSION_SECRET),
                           oidc_discovery_url=f"{provider.url}/proconnect/api/v2/.well-known/openid-configuration",
                           oidc_client_id=CLIENT_ID, oidc_client_secret=SecretStr(CLIENT_SECRET))
    return TestClient(create_app(settings))


def _helpdesk_agent(provider: SandboxServer) -> Any:
    return provider_of(provider.sandbox).agents(limit=1)[0]


def _to_callback(provider: SandboxServer, client: TestClient, email: str, next_path: str = "/helpdesk") -> str:
    """/login → ProConnect (the agent chosen) → the callback URL the browser would be sent to (not yet opened)."""
    login = client.get("/login", params={"next": next_path}, follow_redirects=False)
    assert login.status_code in (302, 303)
    provider_of(provider.sandbox).set_next_identity(email)
    back = httpx.get(login.headers["location"], follow_redirects=False)
    assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(f"{PUBLIC}/login/callback?")
    return location.removeprefix(PUBLIC)


def _logged_in(client: TestClient) -> bool:
    return bool(client.get("/helpdesk", follow_redirects=False).status_code == 200)


def test_a_whole_login_and_logout(provider: SandboxServer, database: str) -> None:
    client = _app(database, provider)
    agent = _helpdesk_agent(provider)
    login = client.get("/login", params={"next": "/helpdesk"}, follow_redirects=False)
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
    assert "client_secret" not in query and query["redirect_uri"] == [f"{PUBLIC}/login/callback"]
    provider_of(provider.sandbox).set_next_identity(agent.email)
    callback = httpx.get(login.headers["location"], follow_redirects=False).headers["location"].removeprefix(PUBLIC)
    done = client.get(callback, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/helpdesk"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    page = client.get("/helpdesk")
    assert page.status_code == 200 and agent.given_name in page.text
    assert client.get("/finance", follow_redirects=False).status_code == 403
    # Logout: a form POST with the CSRF token → ProConnect's end-session → back with the state → anonymous.
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    end = urlsplit(out.headers["location"])
    assert end.path == "/proconnect/api/v2/session/end"
    sent = parse_qs(end.query)
    assert sent["post_logout_redirect_uri"] == [f"{PUBLIC}/logout/callback"] and len(sent["state"][0]) >= 32
    back = httpx.get(out.headers["location"], follow_redirects=False)
    assert back.status_code == 303 and parse_qs(urlsplit(back.headers["location"]).query)["state"] == sent["state"]
    home = client.get(back.headers["location"].removeprefix(PUBLIC), follow_redirects=False)
    assert home.headers["location"] == "/?logged_out=1"
    assert not _logged_in(client)


def test_a_replayed_code_is_refused(provider: SandboxServer, database: str) -> None:
    first = _app(database, provider)
    callback = _to_callback(provider, first, _helpdesk_agent(provider).email)
    # A second browser holding the same pre-callback session (state, nonce, verifier): only the code differs from
    # a legitimate callback in that it was already used.
    second = _app(database, provider)
    second.cookies.update(first.cookies)
    assert first.get(callback, follow_redirects=False).status_code == 303 and _logged_in(first)
    replay = second.get(callback, follow_redirects=False)
    assert replay.status_code == 400 and "invalid_grant" in replay.text
    assert not _logged_in(second)
    tokens = provider_of(provider.sandbox).issued_tokens()
    assert tokens[-1]["revoked"]        # ProConnect revoked what the code gave


def test_a_callback_with_another_state_or_no_login_is_refused(provider: SandboxServer, database: str) -> None:
    client = _app(database, provider)
    callback = _to_callback(provider, client, _helpdesk_agent(provider).email)
    forged = callback.replace("state=", "state=x" + secrets.token_urlsafe(8))
    answer = client.get(forged, follow_redirects=False)
    assert answer.status_code == 400 and not _logged_in(client)
    stranger = _app(database, provider)                # a callback nobody started here (login CSRF)
    assert stranger.get(callback, follow_redirects=False).status_code == 400 and not _logged_in(stranger)


@pytest.mark.parametrize("bug", ["proconnect_wrong_nonce", "proconnect_tampered_id_token",
                                 "proconnect_tampered_userinfo", "proconnect_userinfo_other_sub",
                                 "proconnect_userinfo_wrong_audience", "proconnect_wrong_issuer"])
def test_a_forged_or_mismatched_answer_is_refused(provider: SandboxServer, database: str, bug: str) -> None:
    client = _app(database, provider)
    callback = _to_callback(provider, client, _helpdesk_agent(provider).email)
    provider.sandbox.set_bugs(add=[bug])
    try:
        answer = client.get(callback, follow_redirects=False)
    finally:
        provider.sandbox.set_bugs(remove=[bug])
    assert answer.status_code == 400 and "Connexion refusée" in answer.text, bug
    assert not _logged_in(client)


@pytest.mark.parametrize("next_path, landed", [("/finance?month=2026-11", "/finance?month=2026-11"),
                                               ("https://evil.example/", "/"), ("//evil.example/x", "/"),
                                               ("/\\evil.example", "/"), ("javascript:alert(1)", "/")])
def test_after_login_only_a_local_path(provider: SandboxServer, database: str, next_path: str, landed: str) -> None:
    client = _app(database, provider)
    callback = _to_callback(provider, client, _helpdesk_agent(provider).email, next_path)
    assert client.get(callback, follow_redirects=False).headers["location"] == landed


def _session_of(client: TestClient) -> dict[str, Any]:
    value = client.cookies["bascule_session"].split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))
    return decoded


def test_no_secret_code_or_token_reaches_a_log_or_a_page(provider: SandboxServer, database: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = _app(database, provider)
    agent = _helpdesk_agent(provider)
    pages: list[str] = []
    callback = _to_callback(provider, client, agent.email)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    landed = client.get(callback)
    pages += [landed.text, client.get("/").text, client.get("/finance").text]
    id_token = _session_of(client)["id_token"]
    access_token = provider_of(provider.sandbox).issued_tokens()[-1]["access_token"]
    # A refused login logs and shows its reason, never what it was given.
    refused = _app(database, provider)
    bad = _to_callback(provider, refused, agent.email)
    provider.sandbox.set_bugs(add=["proconnect_tampered_id_token"])
    try:
        pages.append(refused.get(bad).text)
    finally:
        provider.sandbox.set_bugs(remove=["proconnect_tampered_id_token"])
    # What the application logged: not the test's own HTTP client (the browser), whose requests name the callback.
    logged = "\n".join(record.getMessage() for record in caplog.records
                       if not record.name.startswith(("httpx", "httpcore")) or PUBLIC not in record.getMessage())
    assert "logged in" in logged and "login refused" in logged          # the events are logged, by id
    for secret in (CLIENT_SECRET, SESSION_SECRET, code, id_token, access_token, agent.email):
        assert secret not in logged, secret[:12]
        assert all(secret not in page for page in pages if secret != agent.email), secret[:12]
