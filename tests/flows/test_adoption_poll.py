"""`bascule adoption poll` and `report` against the sandbox's LiveKit: logged-in participants of migrated rooms are
stored once per room, identity and day however often polled, guests are not evidence, ProConnect subs are observed
once with first/last seen (from polled and webhook events alike), and the per-person summary reads them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text

from connectors.livekit import LiveKitConfig, LiveKitRooms
from connectors.retry import RetryPolicy, RetryStats
from connectors.throttle import NoThrottle
from core.adoption import AdoptionEvent, LiveKitEventName, RoomRole
from sandbox import livekit
from sandbox.server import SandboxServer

TENANT = "min-culture-exemple"   # the id write_tenant's file carries
WAVE = "vague-adoption"
ALICE_SUB, BOB_SUB, CAROL_SUB = "sub-alice-0001", "sub-bob-0002", "sub-carol-0003"
T1 = datetime(2026, 11, 23, 10, tzinfo=UTC)


@dataclass
class State:
    url: str
    tenant: Path
    alice_room: str
    bob_room: str
    unmigrated_room: str


@pytest.fixture(scope="module")
def server(livekit_server: SandboxServer) -> SandboxServer:
    return livekit_server


@pytest.fixture
def sim(server: SandboxServer) -> livekit.LiveKitSimulator:
    return livekit.simulator(server.sandbox)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer,
          contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[State]:
    """A SQLite state database with one wave of three people (Alice and Bob host a migrated room each, Carol hosts
    none) and a tenant file whose [visio.livekit] points at the sandbox."""
    yield from _state(f"sqlite:///{tmp_path / 'state.db'}", tmp_path, monkeypatch, server, contract_ministry)


@pytest.fixture
def state_on_both(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer,
                  contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[State]:
    """The same on SQLite and on PostgreSQL."""
    yield from _state(migrated_url, tmp_path, monkeypatch, server, contract_ministry)


def _state(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: SandboxServer,
           contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[State]:
    from db import models
    from db.engine import make_engine, make_session_factory
    from db.migrate import upgrade
    from db.models import table_of
    from db.repositories import TenantRepository
    from flows.runtime import dispose_engines
    from tests.conftest import write_tenant

    tenant = write_tenant(tmp_path, contract_ministry[1], ldif_path=contract_ministry[0] / "directory.ldif")
    text = tenant.read_text(encoding="utf-8")
    text = re.sub(r'(\[visio\.livekit\][^\[]*?url = )"[^"]*"', rf'\1"{server.url}/livekit"', text)
    assert f'"{server.url}/livekit"' in text
    tenant.write_text(text, encoding="utf-8")
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    monkeypatch.setenv("BASCULE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASCULE_PACING", "false")
    monkeypatch.setenv("BASCULE_LIVEKIT_API_SECRET", livekit.API_SECRET)
    rooms = [str(uuid.uuid4()) for _ in range(3)]
    engine = make_engine(url)
    now = datetime.now(UTC)
    with make_session_factory(engine).begin() as session:
        TenantRepository(session).ensure(TENANT, name="Test", siret=None, config_path=None, config_hash=None, now=now)
        wave_id = session.execute(insert(table_of(models.Wave)).values(
            tenant_id=TENANT, name=WAVE, state="cut_over", selection={}, created_at=now, updated_at=now)
            .returning(table_of(models.Wave).c.id)).scalar_one()
        for anchor in ("anchor-alice", "anchor-bob", "anchor-carol"):
            session.execute(insert(table_of(models.WaveMember)).values(tenant_id=TENANT, wave_id=wave_id,
                                                                      person_anchor=anchor))
        for meet_id, anchor in ((rooms[0], "anchor-alice"), (rooms[1], "anchor-bob")):
            session.execute(insert(table_of(models.Room)).values(
                tenant_id=TENANT, meet_id=meet_id, action_key=f"room:{anchor}", slug=meet_id[:10],
                access_level="trusted", owner_email=f"{anchor}@example.gouv.fr", wave_id=wave_id,
                host_anchor=anchor, created_at=now))
    engine.dispose()
    yield State(url, tenant, *rooms)
    dispose_engines()


def _client(server: SandboxServer) -> LiveKitRooms:
    return LiveKitRooms(LiveKitConfig(url=f"{server.url}/livekit", api_key=livekit.API_KEY,
                                      api_secret=livekit.API_SECRET),
                        throttle=NoThrottle(), retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05),
                        stats=RetryStats())


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def _instant(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_polling_twice_stores_evidence_once_ignores_guests_and_observes_subs(
        state_on_both: State, server: SandboxServer, sim: livekit.LiveKitSimulator) -> None:
    from flows.adoption import poll_rooms

    state = state_on_both
    sim.join(state.alice_room, ALICE_SUB, room_role="owner")
    guest = sim.join(state.alice_room)                                # a guest: random identity, not evidence
    sim.join(state.alice_room, BOB_SUB, room_role="member")           # Bob in Alice's room
    sim.join(state.unmigrated_room, CAROL_SUB, room_role="owner")     # not a room bascule migrated
    try:
        first = poll_rooms(state.url, TENANT, _client(server), seen_at=T1, batch_size=1)
        again = poll_rooms(state.url, TENANT, _client(server), seen_at=T1 + timedelta(hours=4))
        stored = _rows(state.url, "select event_id, participant_identity, room_role from adoption_event "
                                 "order by event_id")
        assert (first.rooms, first.active_rooms, first.evidence_new, first.guests) == (2, 1, 2, 1)
        assert (again.evidence_new, again.evidence_known, again.observations_new) == (0, 2, 0)
        assert stored == sorted([(f"poll:{state.alice_room}:{ALICE_SUB}:2026-11-23", ALICE_SUB, "owner"),
                                 (f"poll:{state.alice_room}:{BOB_SUB}:2026-11-23", BOB_SUB, "member")])
        assert guest not in {identity for _, identity, _ in stored}
        observed = _rows(state.url, "select person_anchor, sub, source, first_seen_at, last_seen_at "
                                   "from proconnect_observation")
        assert [(anchor, sub, source) for anchor, sub, source, *_ in observed] == [
            ("anchor-alice", ALICE_SUB, "livekit")]
        assert (first.observations_new, _instant(observed[0][3]), _instant(observed[0][4])) == (1, T1, T1)

        next_day = poll_rooms(state.url, TENANT, _client(server), seen_at=T1 + timedelta(days=1))
        assert (next_day.evidence_new, next_day.observations_new) == (2, 0)
        observed = _rows(state.url, "select first_seen_at, last_seen_at from proconnect_observation")
        assert [(_instant(a), _instant(b)) for a, b in observed] == [(T1, T1 + timedelta(days=1))]
    finally:
        for room, identity in ((state.alice_room, ALICE_SUB), (state.alice_room, guest),
                               (state.alice_room, BOB_SUB), (state.unmigrated_room, CAROL_SUB)):
            sim.leave(room, identity)


def test_webhook_events_give_observations_and_the_summary_end_to_end(
        state_on_both: State, server: SandboxServer, sim: livekit.LiveKitSimulator) -> None:
    from db.adoption import AdoptionRepository
    from flows.adoption import poll_rooms, summarise
    from flows.runtime import transaction

    state = state_on_both
    # Bob hosted his room on day 1 (a webhook, stored by `adoption serve`), then joined Alice's as a member on day 2.
    with transaction(state.url) as session:
        AdoptionRepository(session, TENANT).record([AdoptionEvent(
            event_id="EV_bob_owner", event=LiveKitEventName.PARTICIPANT_JOINED, room_name=state.bob_room,
            created_at=T1, participant_identity=BOB_SUB, authenticated=True, room_role=RoomRole.OWNER)])
    sim.join(state.alice_room, BOB_SUB, room_role="member")
    try:
        first = poll_rooms(state.url, TENANT, _client(server), seen_at=T1 + timedelta(days=1))
        poll_rooms(state.url, TENANT, _client(server), seen_at=T1 + timedelta(days=3))
    finally:
        sim.leave(state.alice_room, BOB_SUB)
    assert first.observations_new == 1    # from the webhook event: polling saw Bob only as a member
    report = summarise(state.url, TENANT, WAVE)
    assert (report.people, report.seen, report.not_seen, report.hosted) == (3, 1, 2, 1)
    assert report.observations_new == 0
    rows = {row.person_anchor: row for row in report.rows}
    assert (rows["anchor-bob"].first_seen, rows["anchor-bob"].days_active, rows["anchor-bob"].hosted) == (T1, 3, True)
    assert not rows["anchor-alice"].seen and not rows["anchor-alice"].hosted   # she never joined
    assert rows["anchor-carol"].days_active == 0
    assert _rows(state.url, "select person_anchor, sub from proconnect_observation") == [("anchor-bob", BOB_SUB)]


def test_webhook_only_instances_get_their_observations_from_the_report(state: State) -> None:
    from db.adoption import AdoptionRepository
    from flows.adoption import summarise
    from flows.runtime import transaction

    with transaction(state.url) as session:
        AdoptionRepository(session, TENANT).record([AdoptionEvent(
            event_id="EV_alice_owner", event=LiveKitEventName.PARTICIPANT_JOINED, room_name=state.alice_room,
            created_at=T1, participant_identity=ALICE_SUB, authenticated=True, room_role=RoomRole.OWNER)])
    first, second = summarise(state.url, TENANT), summarise(state.url, TENANT)
    assert (first.observations_new, second.observations_new) == (1, 0)
    assert (first.seen, first.hosted, first.wave) == (1, 1, None)


def _cli(state: State, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    from tests.conftest import REPO

    return subprocess.run([sys.executable, "-m", "flows.cli", "adoption", *args, "--tenant", str(state.tenant)],
                          cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False)


def test_the_commands_poll_and_report(state: State, sim: livekit.LiveKitSimulator) -> None:
    """`bascule adoption poll` twice (the second stores nothing), then `report` as people read it and as JSON."""
    sim.join(state.alice_room, ALICE_SUB, room_role="owner")
    guest = sim.join(state.alice_room)
    try:
        polled = [_cli(state, "poll", "--json") for _ in range(2)]
    finally:
        sim.leave(state.alice_room, ALICE_SUB)
        sim.leave(state.alice_room, guest)
    assert all(done.returncode == 0 for done in polled), [done.stderr for done in polled]
    first, second = (json.loads(done.stdout.strip().splitlines()[-1]) for done in polled)
    assert (first["evidence_new"], first["guests"], second["evidence_new"], second["evidence_known"]) == (1, 1, 0, 1)
    human = _cli(state, "report", "--wave", WAVE)
    assert human.returncode == 0, human.stderr
    assert "3 people; seen in Visio 1, not seen 2, hosted their room 1" in human.stdout
    assert "anchor-alice  first seen" in human.stdout and "hosted;" in human.stdout
    assert "{" not in human.stdout and "datetime(" not in human.stdout
    as_json = json.loads(_cli(state, "report", "--json").stdout.strip().splitlines()[-1])
    assert (as_json["people"], as_json["seen"], as_json["hosted"]) == (3, 1, 1)
    unknown = _cli(state, "report", "--wave", "no-such-wave")
    assert unknown.returncode == 2 and "no wave 'no-such-wave'" in unknown.stderr, unknown.stderr
