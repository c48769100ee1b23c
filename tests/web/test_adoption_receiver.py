"""The LiveKit webhook receiver served over HTTP and fed by the sandbox's LiveKit simulator: verified before read,
stored once per event id, answered as Meet's own endpoint answers. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from connectors.livekit import WebhookVerifier
from sandbox import livekit
from web.adoption import WEBHOOK_PATH, adoption_app

TENANT = "min-adoption-test"
SUB = "sub-claire-martin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver(migrated_url: str) -> Iterator[tuple[str, str]]:
    """The receiver for TENANT on a free port: its webhook URL and the database it stores into."""
    _register(migrated_url, TENANT)
    verifier = WebhookVerifier(api_key=livekit.API_KEY, api_secret=livekit.API_SECRET)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(adoption_app(migrated_url, TENANT, verifier), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}", migrated_url
    server.should_exit = True
    thread.join(timeout=10)


def _register(database_url: str, tenant_id: str) -> None:
    from db.engine import make_engine, make_session_factory
    from db.repositories import TenantRepository

    engine = make_engine(database_url)
    with make_session_factory(engine).begin() as session:
        TenantRepository(session).ensure(tenant_id, name="Test", siret=None, config_path=None, config_hash=None,
                                         now=datetime.now(UTC))
    engine.dispose()


def _stored(database_url: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                "select event_id, event, participant_identity from adoption_event where tenant_id = :t "
                "order by event_id"), {"t": TENANT})]
    finally:
        engine.dispose()


def test_signed_events_are_stored_once_and_forged_or_replayed_ones_change_nothing(
        receiver: tuple[str, str]) -> None:
    url, database = receiver
    sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=(url,)))
    room = str(uuid.uuid4())
    sim.join(room, SUB, room_role="owner")
    sim.leave(room, SUB)
    assert sim.posted and all(posted.status == 200 for posted in sim.posted), sim.posted
    stored = _stored(database)
    assert {event_id for event_id, *_ in stored} == {delivery.event_id for delivery in sim.deliveries}
    assert (any(event == "participant_joined" and identity == SUB for _, event, identity in stored))

    joined = next(item for item in sim.deliveries if item.event == "participant_joined")
    assert [posted.status for posted in sim.replay(joined.event_id, times=2)] == [200, 200]    # duplicates
    assert [posted.status for posted in sim.replay(joined.event_id, resign=True)] == [200]     # a sender retry
    tampered = livekit.Delivery(joined.event_id, joined.event, room, joined.created_at,
                                joined.body.replace(SUB.encode(), b"someone-else"), joined.authorization)
    assert [posted.status for posted in sim.deliver(tampered)] == [400]                          # forged
    assert _stored(database) == stored                                                          # nothing changed

    unsigned = httpx.post(url, content=joined.body, headers={"Content-Type": "application/webhook+json"})
    assert (unsigned.status_code, unsigned.json()) == (401, {"status": "error"})
    other_key = livekit.LiveKitSimulator(livekit.LiveKitOptions(api_key="another-key", api_secret="x" * 32))
    foreign = httpx.post(url, content=joined.body, headers={"Authorization": other_key.sign(joined.body)})
    assert foreign.status_code == 400
    assert _stored(database) == stored


def test_unknown_and_unused_event_names(receiver: tuple[str, str]) -> None:
    url, database = receiver
    sim = livekit.LiveKitSimulator()

    def post(event: str) -> httpx.Response:
        body = json.dumps({"event": event, "id": f"EV_{uuid.uuid4().hex[:12]}", "createdAt": str(int(time.time())),
                           "room": {"name": str(uuid.uuid4()), "sid": "RM_x"}}).encode()
        return httpx.post(url, content=body, headers={"Authorization": sim.sign(body),
                                                      "Content-Type": "application/webhook+json"})

    unknown = post("room_exploded")
    assert (unknown.status_code, unknown.json()) == (422, {"status": "error"})
    unused = post("egress_started")  # a LiveKit event adoption does not read: accepted, not stored
    assert (unused.status_code, unused.json()) == (200, {"status": "success"})
    started = post("room_started")
    assert started.status_code == 200
    assert [event for _, event, _ in _stored(database)] == ["room_started"]


def test_the_command_serves_the_tenant_and_refuses_a_tenant_without_livekit(
        tmp_path: Path, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """`bascule adoption serve` as an operator runs it: a delivery posted to the URL it prints is stored."""
    from db.migrate import upgrade
    from tests.conftest import REPO, write_tenant

    tenant = write_tenant(tmp_path, contract_ministry[1], ldif_path=contract_ministry[0] / "directory.ldif")
    database = tmp_path / "bascule.db"
    upgrade(f"sqlite:///{database}")
    env = {**os.environ, "BASCULE_DATABASE_URL": f"sqlite:///{database}", "BASCULE_DATA_DIR": str(tmp_path),
           "BASCULE_LIVEKIT_API_SECRET": livekit.API_SECRET}
    _register(f"sqlite:///{database}", "min-culture-exemple")
    port = _free_port()
    command = [sys.executable, "-m", "flows.cli", "adoption", "serve", "--tenant", str(tenant), "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        assert f"at {url}" in line, line + (process.stderr.read() if process.poll() is not None else "")
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "the receiver did not start"
                time.sleep(0.1)
        sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=(url,)))
        sim.join(str(uuid.uuid4()), SUB)
        assert sim.posted and all(posted.status == 200 for posted in sim.posted)
        with sqlite3.connect(database) as connection:
            assert connection.execute("select count(*) from adoption_event").fetchone()[0] == len(sim.deliveries)
    finally:
        process.terminate()
        process.wait(timeout=20)

    bare = tmp_path / "bare.toml"
    bare.write_text(re.sub(r"\[visio\.livekit\][^\[]*", "", tenant.read_text(encoding="utf-8")), encoding="utf-8")
    refused = subprocess.run([*command[:6], str(bare)], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 2 and "no [visio.livekit] section" in refused.stderr, refused.stderr
