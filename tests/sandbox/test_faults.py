"""Injected faults as they really happen: a timeout outlasts the client, the request is processed anyway, and a
stopping server releases what it holds (sandbox.faults, the fault middleware of sandbox.server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.faults import Fault, FaultInjector, FaultRates
from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, state_of
from sandbox.server import SHUTDOWN_GRACE_SECONDS, SandboxConfig, SandboxServer

ROOMS = "/meet/external-api/v1.0/rooms/"


@pytest.fixture
def server(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"meet"}))
    with SandboxServer(config) as started:
        yield started


def _token(server: SandboxServer, email: str) -> str:
    response = httpx.post(f"{server.url}/meet/external-api/v1.0/application/token/", json={
        "client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET, "grant_type": "client_credentials",
        "scope": email})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_the_default_timeout_outlasts_any_client() -> None:
    rates = FaultRates()
    assert rates.timeout_seconds is None and rates.timeout_cap_seconds >= 120


def test_a_held_request_ends_when_the_client_gives_up_and_is_processed_anyway(server: SandboxServer) -> None:
    meet = state_of(server.sandbox)
    email = "hote.tenu@culture.example.gouv.fr"
    owner = meet.add_user(email, sub="sub-tenu")
    token = _token(server, email)
    server.sandbox.faults.inject(Fault.TIMEOUT)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + ROOMS, json={"access_level": "restricted"},
                   headers={"Authorization": f"Bearer {token}"}, timeout=0.5)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while not meet.rooms_of(owner.id) and time.monotonic() < deadline:
        time.sleep(0.02)
    (room,) = meet.rooms_of(owner.id)                                    # the POST was executed after all
    assert room.access_level == "restricted"
    assert server.sandbox.stats["meet:timeout:client_gave_up"] == 1
    assert server.sandbox.stats["meet:timeout:answered_late"] == 0


def test_a_client_that_waits_past_the_cap_gets_a_late_answer(server: SandboxServer) -> None:
    server.sandbox.faults.configure(FaultRates(timeout=1.0, timeout_cap_seconds=0.3))
    started = time.monotonic()
    response = httpx.get(server.url + ROOMS, timeout=10)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 401                                   # the normal answer, only late
    assert server.sandbox.stats["meet:timeout:answered_late"] == 1


def test_a_fixed_delay_answers_normally(server: SandboxServer) -> None:
    server.sandbox.faults.configure(FaultRates(timeout=1.0, timeout_seconds=0.2))
    started = time.monotonic()
    response = httpx.get(server.url + ROOMS, timeout=10)
    assert time.monotonic() - started >= 0.2 and response.status_code == 401
    assert server.sandbox.stats["meet:timeout:client_gave_up"] == server.sandbox.stats["meet:timeout:answered_late"] \
        == 0


def test_stopping_the_server_releases_held_requests(contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    server = SandboxServer(SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"meet"})))
    server.start()
    server.sandbox.faults.inject(Fault.TIMEOUT)
    outcome: list[object] = []

    def patient() -> None:
        try:
            outcome.append(httpx.get(server.url + ROOMS, timeout=60).status_code)
        except httpx.HTTPError as error:
            outcome.append(type(error).__name__)

    client = threading.Thread(target=patient)
    client.start()
    deadline = time.monotonic() + 5
    while not server.sandbox.stats["meet:injected:timeout"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < SHUTDOWN_GRACE_SECONDS             # released at once, not waited out
    client.join(timeout=5)
    assert not client.is_alive() and outcome == [401]                      # answered late, not dropped


def test_queued_faults_come_first_in_order() -> None:
    injector = FaultInjector(FaultRates(throttle=1.0))
    injector.inject(Fault.TIMEOUT, Fault.TRUNCATE)
    assert [injector.draw() for _ in range(3)] == [Fault.TIMEOUT, Fault.TRUNCATE, Fault.THROTTLE]
    assert injector.injected == {"throttle": 1, "server_error": 0, "timeout": 1, "truncate": 1}
    injector.inject(Fault.SERVER_ERROR)
    injector.configure(FaultRates())                                       # new rates clear the queue
    assert injector.draw() is None


@pytest.mark.parametrize("changes", [{"timeout_seconds": -1.0}, {"timeout_cap_seconds": 0.0}])
def test_rates_refuse_impossible_timeouts(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="timeout"):
        FaultRates(**changes)
