"""connectors.livekit against the sandbox LiveKit: RoomService polling parsed into core.adoption records, and
webhook deliveries verified (genuine ones accepted, every kind of forgery rejected with its reason).

The simulator of the module's sandbox drives rooms; rooms are fresh UUIDs per test, so tests do not see each
other's. Fault injection is switched per attempt by an injected throttle, as in test_visio.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connectors.errors import ConnectorAuthError, RateLimited, TransientConnectorError
from connectors.livekit import LiveKitConfig, LiveKitRooms, WebhookVerifier, webhook_http_status
from connectors.retry import RetryPolicy, RetryStats
from connectors.throttle import NoThrottle
from core.adoption import (
    ActiveRoom,
    AdoptionEvent,
    LiveKitEventName,
    RoomParticipant,
    RoomRole,
    WebhookIgnored,
    WebhookOutcome,
    WebhookRejected,
    WebhookRejection,
)
from sandbox import livekit
from sandbox.faults import FaultRates
from sandbox.server import SandboxServer

KEY, SECRET = livekit.API_KEY, livekit.API_SECRET
OTHER_SECRET = "another-livekit-secret-0123456789abcdef"
SUB = "5b2f0c1e-8d4a-4f6b-9e3c-2a1d0f9e8c7b"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def server(livekit_server: SandboxServer) -> SandboxServer:
    return livekit_server


@pytest.fixture
def sim(server: SandboxServer) -> Iterator[livekit.LiveKitSimulator]:
    yield livekit.simulator(server.sandbox)
    server.sandbox.faults.configure(FaultRates())


def _room() -> str:
    return str(uuid.uuid4())


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class FaultPlan:
    """A throttle that sets the sandbox's fault rates before each attempt: the n-th attempt gets plan[n]."""

    def __init__(self, server: SandboxServer, plan: Sequence[FaultRates]) -> None:
        self._faults = server.sandbox.faults
        self._plan = list(plan)
        self.attempts = 0

    def acquire(self, key: str, cost: float = 1.0) -> None:
        self._faults.configure(self._plan[self.attempts] if self.attempts < len(self._plan) else FaultRates())
        self.attempts += 1


def rooms_client(server: SandboxServer, *, secret: str = SECRET, throttle: Any = None,
                 retry: RetryPolicy = FAST, stats: RetryStats | None = None, **config: Any) -> LiveKitRooms:
    return LiveKitRooms(LiveKitConfig(url=f"{server.url}/livekit", api_key=KEY, api_secret=secret, **config),
                        throttle=throttle or NoThrottle(), retry=retry, stats=stats or RetryStats())


def requests(server: SandboxServer) -> int:
    return server.sandbox.stats["livekit:requests"]


# ----------------------------------------------------------------------------------------------- RoomService

def test_active_rooms_parse_into_active_room_records(server: SandboxServer, sim: livekit.LiveKitSimulator) -> None:
    busy, quiet, closed = _room(), _room(), _room()
    sim.join(busy, SUB, room_role="owner")
    sim.join(busy, name="Invité")
    sim.join(quiet, "sub-member", room_role="member")
    sim.join(closed, "sub-gone")
    sim.leave(closed, "sub-gone")
    started = {item.name: item.creation_time for item in sim.rooms([busy, quiet])}

    found = rooms_client(server).fetch_active_rooms([busy, quiet, closed, _room(), "", busy])
    assert sorted(found, key=lambda item: item.participants) == [
        ActiveRoom(name=quiet, participants=1, started_at=_at(started[quiet])),
        ActiveRoom(name=busy, participants=2, started_at=_at(started[busy]))]


def test_room_names_are_asked_in_chunks(server: SandboxServer, sim: livekit.LiveKitSimulator) -> None:
    names = [_room() for _ in range(5)]
    for name in names:
        sim.join(name, f"sub-{name}")
    before = requests(server)
    found = rooms_client(server, names_per_request=2).fetch_active_rooms([*names, _room()])
    assert sorted(item.name for item in found) == sorted(names)
    assert requests(server) - before == 3                                   # 6 names, 2 per ListRooms


def test_nothing_asked_is_nothing_requested(server: SandboxServer) -> None:
    before = requests(server)
    client = rooms_client(server)
    assert client.fetch_active_rooms([]) == [] and client.fetch_active_rooms([""]) == []
    assert client.fetch_participants([]) == {}
    assert requests(server) == before


def test_participants_parse_into_room_participant_records(server: SandboxServer,
                                                          sim: livekit.LiveKitSimulator) -> None:
    room, other, empty = _room(), _room(), _room()
    sim.join(room, SUB, name="Claire Martin", room_role="owner")
    guest = sim.join(room, name="Invité")
    sim.join(room, "sub-odd-role", room_role="superviseur")
    sim.join(other, "sub-admin", room_role="administrator", authenticated=False)
    joined = {item.identity: _at(item.joined_at) for name in (room, other) for item in sim.participants(name) or []}

    people = rooms_client(server, concurrency=2).fetch_participants([room, other, empty, room])
    assert set(people) == {room, other, empty}
    assert set(people[room]) == {
        RoomParticipant(identity=SUB, authenticated=True, room_role=RoomRole.OWNER, joined_at=joined[SUB]),
        RoomParticipant(identity=guest, authenticated=False, room_role=None, joined_at=joined[guest]),
        RoomParticipant(identity="sub-odd-role", authenticated=True, room_role=None,
                        joined_at=joined["sub-odd-role"])}
    assert people[other] == (RoomParticipant(identity="sub-admin", authenticated=False,
                                             room_role=RoomRole.ADMINISTRATOR, joined_at=joined["sub-admin"]),)
    assert people[empty] == ()                                              # not in use: LiveKit says not_found


def test_a_wrong_secret_is_an_auth_error_not_retried(server: SandboxServer, sim: livekit.LiveKitSimulator) -> None:
    before = requests(server)
    with pytest.raises(ConnectorAuthError) as raised:
        rooms_client(server, secret=OTHER_SECRET).fetch_active_rooms([_room()])
    assert requests(server) - before == 1
    assert OTHER_SECRET not in str(raised.value) and "unauthenticated" in str(raised.value)


@pytest.mark.parametrize(("fault", "error"), [(FaultRates(throttle=1.0), RateLimited),
                                              (FaultRates(server_error=1.0), TransientConnectorError)],
                         ids=["throttled", "unavailable"])
def test_persistent_faults_are_retried_then_raised(server: SandboxServer, sim: livekit.LiveKitSimulator,
                                                   fault: FaultRates, error: type[Exception]) -> None:
    stats = RetryStats()
    plan = FaultPlan(server, [fault] * FAST.attempts)
    with pytest.raises(error):
        rooms_client(server, throttle=plan, stats=stats).fetch_active_rooms([_room()])
    assert plan.attempts == FAST.attempts
    assert sum(stats.counts.values()) == FAST.attempts - 1


@pytest.mark.parametrize("operation", ["rooms", "participants"])
def test_a_transient_fault_is_retried_to_success(server: SandboxServer, sim: livekit.LiveKitSimulator,
                                                 operation: str) -> None:
    room = _room()
    sim.join(room, SUB, room_role="owner")
    stats = RetryStats()
    plan = FaultPlan(server, [FaultRates(throttle=1.0), FaultRates(server_error=1.0), FaultRates(truncate=1.0)])
    client = rooms_client(server, throttle=plan, stats=stats, retry=RetryPolicy(attempts=4, base_delay=0.01,
                                                                               max_delay=0.05))
    if operation == "rooms":
        assert [item.name for item in client.fetch_active_rooms([room])] == [room]
    else:
        assert [item.identity for item in client.fetch_participants([room])[room]] == [SUB]
    assert plan.attempts == 4 and stats.throttled == 1 and stats.counts["transient"] == 2


# ----------------------------------------------------------------------------------------------- webhooks

@pytest.fixture
def verifier() -> WebhookVerifier:
    return WebhookVerifier(api_key=KEY, api_secret=SECRET)


def test_genuine_deliveries_become_adoption_events(sim: livekit.LiveKitSimulator, verifier: WebhookVerifier) -> None:
    room = _room()
    start = len(sim.deliveries)
    sim.join(room, SUB, name="Claire Martin", room_role="owner")
    guest = sim.join(room)
    sim.leave(room, guest, aborted=True)
    sim.leave(room, SUB)
    deliveries = sim.deliveries[start:]

    outcomes = [verifier.verify(item.body, item.authorization) for item in deliveries]
    assert all(isinstance(outcome, AdoptionEvent) for outcome in outcomes)
    assert [(o.event, o.participant_identity, o.authenticated, o.room_role) for o in outcomes
            if isinstance(o, AdoptionEvent)] == [
        (LiveKitEventName.ROOM_STARTED, None, False, None),
        (LiveKitEventName.PARTICIPANT_JOINED, SUB, True, RoomRole.OWNER),
        (LiveKitEventName.PARTICIPANT_JOINED, guest, False, None),
        (LiveKitEventName.PARTICIPANT_CONNECTION_ABORTED, guest, False, None),
        (LiveKitEventName.PARTICIPANT_LEFT, SUB, True, RoomRole.OWNER),
        (LiveKitEventName.ROOM_FINISHED, None, False, None)]
    for outcome, delivery in zip(outcomes, deliveries, strict=True):
        assert isinstance(outcome, AdoptionEvent)
        assert (outcome.event_id, outcome.room_name, outcome.num_dropped) == (delivery.event_id, room, 0)
        assert outcome.created_at == delivery.created_at.replace(microsecond=0)
    assert "Claire" not in repr(outcomes)                                   # display names are not kept
    assert all(webhook_http_status(outcome) == 200 for outcome in outcomes)


def _signed(sim: livekit.LiveKitSimulator, body: bytes, **options: Any) -> tuple[bytes, str]:
    return body, sim.sign(body, **options)


def _joined(sim: livekit.LiveKitSimulator) -> livekit.Delivery:
    sim.join(_room(), SUB, room_role="owner")
    return sim.deliveries[-1]


def _claims_token(claims: dict[str, Any], secret: str = SECRET) -> str:
    return livekit.encode_jwt(claims, secret)


def _digest(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _now() -> datetime:
    return datetime.now(UTC)


Forge = Callable[[livekit.LiveKitSimulator, livekit.Delivery], tuple[bytes, str | None]]

# (id, the delivery as received, the rejection)
FORGERIES: list[tuple[str, Forge, WebhookRejection]] = [
    ("body changed after signing", lambda _s, d: (d.body.replace(b"ACTIVE", b"JOINED"), d.authorization),
     WebhookRejection.HASH_MISMATCH),
    ("body re-serialised", lambda _s, d: (json.dumps(json.loads(d.body), indent=1).encode(), d.authorization),
     WebhookRejection.HASH_MISMATCH),
    ("another delivery's token", lambda s, d: (d.body, s.deliveries[-2].authorization),
     WebhookRejection.HASH_MISMATCH),
    ("signed with another secret", lambda s, d: _signed(s, d.body, api_secret=OTHER_SECRET),
     WebhookRejection.BAD_SIGNATURE),
    ("signed by another key", lambda s, d: _signed(s, d.body, api_key="another-key"), WebhookRejection.UNKNOWN_KEY),
    ("expired", lambda s, d: _signed(s, d.body, issued_at=_now() - timedelta(minutes=7)), WebhookRejection.EXPIRED),
    ("not yet valid", lambda s, d: _signed(s, d.body, issued_at=_now() + timedelta(minutes=5)),
     WebhookRejection.NOT_YET_VALID),
    ("no sha256 claim", lambda s, d: _signed(s, d.body, with_sha256=False), WebhookRejection.MISSING_SHA256),
    ("no header", lambda _s, d: (d.body, None), WebhookRejection.MISSING_AUTHORIZATION),
    ("empty header", lambda _s, d: (d.body, "  "), WebhookRejection.MISSING_AUTHORIZATION),
    ("a bare Bearer", lambda _s, d: (d.body, "Bearer "), WebhookRejection.MISSING_AUTHORIZATION),
    ("garbage token", lambda _s, d: (d.body, "not.a.jwt"), WebhookRejection.MALFORMED_TOKEN),
    ("token without exp", lambda _s, d: (d.body, _claims_token({"iss": KEY, "sha256": _digest(d.body)})),
     WebhookRejection.MALFORMED_TOKEN),
    ("sha256 not base64", lambda _s, d: (d.body, _claims_token({"iss": KEY, "exp": int(_now().timestamp()) + 60,
                                                                "sha256": "%%not-base64%%"})),
     WebhookRejection.MALFORMED_TOKEN),
    ("non-UTF-8 bytes, forged", lambda s, _d: (b"\xff\xfe{}", s.sign(b"{}")), WebhookRejection.HASH_MISMATCH),
    ("non-UTF-8 bytes, bad key", lambda s, _d: _signed(s, b"\xff\xfe{}", api_secret=OTHER_SECRET),
     WebhookRejection.BAD_SIGNATURE),
    ("non-UTF-8 bytes, signed", lambda s, _d: _signed(s, b"\xff\xfe{}"), WebhookRejection.MALFORMED_BODY),
    ("signed, not JSON", lambda s, _d: _signed(s, b"participant_joined"), WebhookRejection.MALFORMED_BODY),
    ("signed, not a WebhookEvent", lambda s, _d: _signed(s, b'{"event": ["x"]}'), WebhookRejection.MALFORMED_BODY),
    ("signed, a join without participant",
     lambda s, _d: _signed(s, b'{"event": "participant_joined", "id": "EV_1", "createdAt": "1788768012", '
                              b'"room": {"name": "r"}}'), WebhookRejection.MALFORMED_BODY),
    ("signed, an event without id", lambda s, _d: _signed(s, b'{"event": "room_started", "room": {"name": "r"}}'),
     WebhookRejection.MALFORMED_BODY),
]


@pytest.mark.parametrize(("forge", "reason"), [case[1:] for case in FORGERIES], ids=[case[0] for case in FORGERIES])
def test_forged_or_broken_deliveries_are_rejected_with_their_reason(
        sim: livekit.LiveKitSimulator, verifier: WebhookVerifier, forge: Forge, reason: WebhookRejection) -> None:
    body, authorization = forge(sim, _joined(sim))
    outcome = verifier.verify(body, authorization)
    assert isinstance(outcome, WebhookRejected), outcome
    assert outcome.reason is reason
    assert webhook_http_status(outcome) == (401 if reason is WebhookRejection.MISSING_AUTHORIZATION else 400)


def test_a_verifier_with_another_secret_rejects_genuine_deliveries(sim: livekit.LiveKitSimulator) -> None:
    delivery = _joined(sim)
    outcome = WebhookVerifier(api_key=KEY, api_secret=OTHER_SECRET).verify(delivery.body, delivery.authorization)
    assert outcome == WebhookRejected(WebhookRejection.BAD_SIGNATURE)
    other_key = WebhookVerifier(api_key="another-key", api_secret=SECRET).verify(delivery.body,
                                                                                 delivery.authorization)
    assert other_key == WebhookRejected(WebhookRejection.UNKNOWN_KEY)


@pytest.mark.parametrize("authorization", [
    lambda d: f"Bearer {d.authorization}",
    lambda d: f"  bearer {d.authorization} ",
], ids=["Bearer prefix", "lower-case prefix and spaces"])
def test_a_bearer_prefix_is_tolerated(sim: livekit.LiveKitSimulator, verifier: WebhookVerifier,
                                      authorization: Callable[[livekit.Delivery], str]) -> None:
    delivery = _joined(sim)
    outcome = verifier.verify(delivery.body, authorization(delivery))
    assert isinstance(outcome, AdoptionEvent) and outcome.event_id == delivery.event_id


def test_a_token_expired_within_the_leeway_is_accepted(sim: livekit.LiveKitSimulator,
                                                       verifier: WebhookVerifier) -> None:
    delivery = _joined(sim)
    late = sim.sign(delivery.body, issued_at=_now() - timedelta(minutes=5, seconds=30))
    assert isinstance(verifier.verify(delivery.body, late), AdoptionEvent)
    strict = WebhookVerifier(api_key=KEY, api_secret=SECRET, leeway=timedelta(0))
    assert strict.verify(delivery.body, late) == WebhookRejected(WebhookRejection.EXPIRED)


def test_authentic_events_adoption_does_not_read_are_ignored(sim: livekit.LiveKitSimulator,
                                                             verifier: WebhookVerifier) -> None:
    body = b'{"event": "track_published", "id": "EV_track", "createdAt": "1788768012", "room": {"name": "r"}}'
    outcome = verifier.verify(body, sim.sign(body))
    assert outcome == WebhookIgnored(event_name="track_published", event_id="EV_track")
    assert webhook_http_status(outcome) == 200


def test_dropped_event_counts_are_read(sim: livekit.LiveKitSimulator, verifier: WebhookVerifier) -> None:
    body = b'{"event": "room_started", "id": "EV_gap", "createdAt": "1788768012", "room": {"name": "r"}, ' \
           b'"numDropped": 3, "someFutureField": true}'
    outcome = verifier.verify(body, sim.sign(body))
    assert isinstance(outcome, AdoptionEvent)
    assert (outcome.num_dropped, outcome.created_at) == (3, _at(1788768012))


@pytest.mark.parametrize("outcome", [
    *(WebhookRejected(reason) for reason in WebhookRejection),
    WebhookIgnored(event_name="egress_started", event_id="EV_1"),
    AdoptionEvent(event_id="EV_2", event=LiveKitEventName.ROOM_STARTED, room_name="r", created_at=_at(1)),
], ids=[*(f"rejected {reason}" for reason in WebhookRejection), "ignored", "accepted"])
def test_webhook_http_status_maps_every_outcome(outcome: WebhookOutcome) -> None:
    """Meet's own endpoint: 401 without Authorization, 400 for a bad signature or payload, 200 otherwise."""
    expected = 200
    if isinstance(outcome, WebhookRejected):
        expected = 401 if outcome.reason is WebhookRejection.MISSING_AUTHORIZATION else 400
    assert webhook_http_status(outcome) == expected


def test_an_event_name_livekit_does_not_send_is_422() -> None:
    assert webhook_http_status(WebhookIgnored(event_name="room_exploded", event_id="EV_3")) == 422
    assert webhook_http_status(WebhookIgnored(event_name="track_published", event_id="EV_4")) == 200


# ----------------------------------------------------------------------------------------------- over HTTP

class _Endpoint(BaseHTTPRequestHandler):
    """A webhook endpoint as a web app would write one: verify the raw body, answer webhook_http_status."""

    verifier: WebhookVerifier
    outcomes: list[WebhookOutcome]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        outcome = self.verifier.verify(body, self.headers.get("Authorization"))
        self.outcomes.append(outcome)
        self.send_response(webhook_http_status(outcome))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def endpoint(verifier: WebhookVerifier) -> Iterator[tuple[str, list[WebhookOutcome]]]:
    outcomes: list[WebhookOutcome] = []
    handler = type("Endpoint", (_Endpoint,), {"verifier": verifier, "outcomes": outcomes})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/webhooks/livekit", outcomes
    httpd.shutdown()
    httpd.server_close()


def test_posted_deliveries_are_verified_by_an_endpoint(sim: livekit.LiveKitSimulator,
                                                       endpoint: tuple[str, list[WebhookOutcome]]) -> None:
    url, outcomes = endpoint
    room = _room()
    sim.webhook_urls = [url]
    try:
        sim.join(room, SUB, room_role="owner")
        sim.leave(room, SUB)
        joined = next(item for item in sim.deliveries if item.room == room and item.event == "participant_joined")
        sim.replay(joined.event_id, resign=True)
        tampered = livekit.Delivery(joined.event_id, joined.event, room, joined.created_at,
                                    joined.body.replace(SUB.encode(), b"someone-else"), joined.authorization)
        forged = sim.deliver(tampered)
    finally:
        sim.webhook_urls = []
    statuses = [posted.status for posted in sim.posted if posted.url == url]
    assert statuses == [200, 200, 200, 200, 200, 400]  # a tampered body: 400, as Meet answers a bad signature
    assert [posted.status for posted in forged] == [400]
    events = [outcome for outcome in outcomes if isinstance(outcome, AdoptionEvent)]
    assert [event.event for event in events] == [
        LiveKitEventName.ROOM_STARTED, LiveKitEventName.PARTICIPANT_JOINED, LiveKitEventName.PARTICIPANT_LEFT,
        LiveKitEventName.ROOM_FINISHED, LiveKitEventName.PARTICIPANT_JOINED]
    assert outcomes[-1] == WebhookRejected(WebhookRejection.HASH_MISMATCH)
