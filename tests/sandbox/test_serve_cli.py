"""`bascule sandbox serve` seeds what the in-process MeetOptions can: extra applications, an inactive user, no base
URL, the Meet version — checked by starting the command and calling the server it runs, then stopping it while it
holds a request (an injected timeout) to see the stop does not hang."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.support.served import served_sandbox

DOMAIN = "culture.example.gouv.fr"
ALIAS = "culture.example.fr"
ALIAS_ONLY = ("bascule-sandbox-visio-application-000003", "e" * 128)
ANY_DOMAIN = ("bascule-sandbox-visio-application-000004", "a" * 128)
SWITCHED_OFF = ("bascule-sandbox-visio-application-000005", "o" * 128)
DISABLED_USER = f"desactive.agent@{DOMAIN}"


@pytest.fixture
def served(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The command running with every Meet seeding option; its URL and process (stopped by SIGTERM afterwards)."""
    options = ["--meet-application", f"{ALIAS_ONLY[0]}:{ALIAS_ONLY[1]}:{ALIAS.upper()}",
               "--meet-application", f"{ANY_DOMAIN[0]}:{ANY_DOMAIN[1]}:*",
               "--meet-application", f"{SWITCHED_OFF[0]}:{SWITCHED_OFF[1]}:inactive",
               "--meet-inactive-user", DISABLED_USER, "--meet-no-base-url", "--meet-version", "main"]
    with served_sandbox(contract_ministry[0], rate_limits=False, extra=options) as server:
        assert server.process is not None
        yield server.url, server.process


def _seed(url: str, email: str) -> None:
    response = httpx.post(f"{url}/_sandbox/meet/users", json={"email": email, "sub": email[::-1]})
    assert response.status_code == 201


def _token(url: str, application: tuple[str, str], email: str, encoding: str = "form") -> httpx.Response:
    fields = {"client_id": application[0], "client_secret": application[1], "grant_type": "client_credentials",
              "scope": email}
    token_url = f"{url}/meet/external-api/v1.0/application/token/"
    if encoding == "multipart":
        return httpx.post(token_url, files={name: (None, value) for name, value in fields.items()})
    return httpx.post(token_url, data=fields) if encoding == "form" else httpx.post(token_url, json=fields)


def test_serve_seeds_what_meet_options_can(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, process = served
    rooms = f"{url}/meet/external-api/v1.0/rooms/"
    settings = httpx.get(f"{url}/_sandbox/meet/settings").json()
    assert settings["version"] == "main"

    # --meet-version main: a form body is accepted on the token endpoint, multipart refused.
    agent, outsider, alias_agent = f"agent.cli@{DOMAIN}", "agent.cli@autre.example.org", f"agent.cli@{ALIAS}"
    for email in (agent, outsider, alias_agent):
        _seed(url, email)
    default = (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    assert _token(url, default, agent, "form").status_code == 200
    assert _token(url, default, agent, "multipart").status_code == 415

    # --meet-application: domains (case-insensitive), '*' for any domain, inactive.
    assert _token(url, ALIAS_ONLY, alias_agent).status_code == 200
    assert _token(url, ALIAS_ONLY, agent).json() == {
        "error": "This application is not authorized for this email domain."}
    assert _token(url, ANY_DOMAIN, outsider).status_code == 200
    assert _token(url, default, outsider).status_code == 403          # the default keeps the ministry's domains
    switched_off = _token(url, SWITCHED_OFF, agent)
    assert (switched_off.status_code, switched_off.json()) == (401, {"detail": "Application is inactive"})
    assert switched_off.headers["www-authenticate"] == "Session"

    # --meet-inactive-user: a token is issued, every room call is refused.
    disabled = _token(url, default, DISABLED_USER).json()["access_token"]
    refused = httpx.get(rooms, headers={"Authorization": f"Bearer {disabled}"})
    assert (refused.status_code, refused.json()) == (401, {"detail": "User account is disabled."})

    # --meet-no-base-url: rooms have no url, and a 201 no Location.
    token = _token(url, default, agent).json()["access_token"]
    created = httpx.post(rooms, json={}, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201
    assert "url" not in created.json() and "location" not in created.headers

    # A stop while a request is held (an injected timeout) does not wait for it.
    assert httpx.post(f"{url}/_sandbox/faults", json={"timeout": 1.0}).json()["timeout_seconds"] is None
    outcome: list[object] = []

    def patient() -> None:
        try:
            outcome.append(httpx.get(rooms, headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code)
        except httpx.HTTPError as error:
            outcome.append(type(error).__name__)

    client = threading.Thread(target=patient)
    client.start()
    time.sleep(0.5)
    assert client.is_alive()                                               # held
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    client.join(timeout=10)
    assert outcome == [200]                                                # released with a late answer


@pytest.mark.parametrize(("options", "message"), [
    (["--meet-application", "only-an-id"], "--meet-application: expected ID:SECRET"),
    (["--meet-application", "id:secret:a.fr:b.fr"], "--meet-application: expected ID:SECRET"),
    (["--meet-version", "v9"], "--meet-version must be one of v1.27.0, main"),
])
def test_serve_refuses_malformed_meet_options(contract_ministry: tuple[Path, dict[str, Any]], options: list[str],
                                              message: str) -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["sandbox", "serve", "--data", str(contract_ministry[0]), *options])
    assert result.exit_code == 2
    assert message in result.output
