"""The LiveKit stand-in against livekit-api 1.2.2 and shared/contracts/livekit.md.

RoomService answers are read with the SDK's own client and messages; auth failures come back as the Twirp errors
the SDK raises; webhooks are checked byte for byte (protobuf JSON, headers, token claims decoded with PyJWT, not
with the sandbox's code) and verified by the SDK's WebhookReceiver.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from livekit import api
from livekit.protocol import models

from sandbox import livekit
from sandbox.faults import FaultRates
from sandbox.server import SandboxConfig, SandboxServer

KEY, SECRET = livekit.API_KEY, livekit.API_SECRET
SUB = "5b2f0c1e-8d4a-4f6b-9e3c-2a1d0f9e8c7b"


def _room() -> str:
    return str(uuid.uuid4())


def _data_dir(directory: Path) -> Path:
    (directory / "manifest.json").write_text(json.dumps({"generator": {"as_of": "2026-11-23", "seed": 0}}),
                                             encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def lk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """The sandbox with only its LiveKit mount (the data directory holds no ministry)."""
    data = _data_dir(tmp_path_factory.mktemp("livekit-sandbox"))
    with SandboxServer(SandboxConfig(data_dir=data, tls_port=None, systems=frozenset({"livekit"}))) as started:
        yield started


@pytest.fixture
def sim(lk_server: SandboxServer) -> livekit.LiveKitSimulator:
    return livekit.simulator(lk_server.sandbox)


def _sdk(lk_server: SandboxServer, coroutine: Any) -> Any:
    async def run() -> Any:
        client = api.LiveKitAPI(url=lk_server.url + "/livekit", api_key=KEY, api_secret=SECRET)
        try:
            return await coroutine(client)
        finally:
            await client.aclose()
    return asyncio.run(run())


def _twirp(lk_server: SandboxServer, method: str, body: bytes, token: str | None, *,
           content_type: str = "application/protobuf") -> httpx.Response:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{lk_server.url}/livekit/twirp/livekit.RoomService/{method}", content=body, headers=headers)


# ----------------------------------------------------------------------------------------------- RoomService

def test_list_rooms_and_participants_parse_with_the_sdk(lk_server: SandboxServer,
                                                        sim: livekit.LiveKitSimulator) -> None:
    room, other = _room(), _room()
    sim.join(room, SUB, name="Claire Martin", room_role="owner")
    guest = sim.join(room, name="Invité")
    sim.join(other, "sub-other", room_role="member")

    async def calls(client: api.LiveKitAPI) -> tuple[Any, Any, Any]:
        named = await client.room.list_rooms(api.ListRoomsRequest(names=[room, _room()]))
        everything = await client.room.list_rooms(api.ListRoomsRequest())
        people = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        return named, everything, people

    named, everything, people = _sdk(lk_server, calls)
    assert [item.name for item in named.rooms] == [room]
    listed = named.rooms[0]
    assert listed.sid.startswith("RM_") and listed.num_participants == 2
    assert listed.creation_time > 0 and listed.creation_time_ms // 1000 == listed.creation_time
    assert listed.empty_timeout == 300 and [codec.mime for codec in listed.enabled_codecs][:1] == ["audio/opus"]
    assert {room, other} <= {item.name for item in everything.rooms}
    by_identity = {item.identity: item for item in people.participants}
    assert set(by_identity) == {SUB, guest}
    owner = by_identity[SUB]
    assert owner.state == models.ParticipantInfo.State.ACTIVE and owner.sid.startswith("PA_")
    assert owner.name == "Claire Martin" and owner.joined_at > 0
    assert dict(owner.attributes)["room_role"] == "owner" and owner.attributes["is_authenticated"] == "true"
    assert "room_role" not in by_identity[guest].attributes
    assert by_identity[guest].attributes["is_authenticated"] == "false"
    assert str(uuid.UUID(guest)) == guest


def test_rooms_exist_only_while_they_have_participants(lk_server: SandboxServer,
                                                       sim: livekit.LiveKitSimulator) -> None:
    room = _room()
    sim.join(room, SUB)
    sim.leave(room, SUB)

    async def calls(client: api.LiveKitAPI) -> Any:
        rooms = await client.room.list_rooms(api.ListRoomsRequest(names=[room]))
        assert list(rooms.rooms) == []
        return await client.room.list_participants(api.ListParticipantsRequest(room=room))

    with pytest.raises(api.TwirpError) as raised:
        _sdk(lk_server, calls)
    assert (raised.value.code, raised.value.status) == ("not_found", 404)


def test_a_wrong_secret_is_unauthenticated(lk_server: SandboxServer) -> None:
    async def calls(client: api.LiveKitAPI) -> Any:
        return await client.room.list_rooms(api.ListRoomsRequest())

    async def run() -> Any:
        client = api.LiveKitAPI(url=lk_server.url + "/livekit", api_key=KEY,
                                api_secret="another-secret-of-at-least-32-bytes")
        try:
            return await calls(client)
        finally:
            await client.aclose()

    with pytest.raises(api.TwirpError) as raised:
        asyncio.run(run())
    assert (raised.value.code, raised.value.status) == ("unauthenticated", 401)


@pytest.mark.parametrize(("grants", "method", "request_body", "code", "status"), [
    (api.VideoGrants(room_admin=True, room="x"), "ListRooms", api.ListRoomsRequest(), "permission_denied", 403),
    (api.VideoGrants(room_list=True), "ListParticipants", api.ListParticipantsRequest(room="r"),
     "permission_denied", 403),
    (api.VideoGrants(room_admin=True, room="other"), "ListParticipants", api.ListParticipantsRequest(room="r"),
     "permission_denied", 403),
    (api.VideoGrants(room_list=True), "CreateRoom", api.ListRoomsRequest(), "bad_route", 404),
], ids=["list rooms without roomList", "participants without roomAdmin", "participants of another room",
        "a method the sandbox does not serve"])
def test_missing_grants_are_permission_denied(lk_server: SandboxServer, grants: api.VideoGrants, method: str,
                                              request_body: Any, code: str, status: int) -> None:
    token = api.AccessToken(KEY, SECRET).with_grants(grants).to_jwt()
    response = _twirp(lk_server, method, request_body.SerializeToString(), token)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["msg"]


@pytest.mark.parametrize("variant", ["no header", "expired", "other key", "garbage"])
def test_bad_tokens_are_unauthenticated(lk_server: SandboxServer, variant: str) -> None:
    grants = api.VideoGrants(room_list=True)
    token: str | None = {
        "no header": None,
        "expired": api.AccessToken(KEY, SECRET).with_grants(grants).with_ttl(timedelta(minutes=-5)).to_jwt(),
        "other key": api.AccessToken("other-key", SECRET).with_grants(grants).to_jwt(),
        "garbage": "not.a.jwt",
    }[variant]
    response = _twirp(lk_server, "ListRooms", b"", token)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_twirp_edges_malformed_body_content_type_and_json(lk_server: SandboxServer,
                                                          sim: livekit.LiveKitSimulator) -> None:
    room = _room()
    sim.join(room, SUB)
    token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True)).to_jwt()
    assert _twirp(lk_server, "ListRooms", b"\xff\xff\xff", token).json()["code"] == "malformed"
    refused = _twirp(lk_server, "ListRooms", b"", token, content_type="text/plain")
    assert (refused.status_code, refused.json()["code"]) == (404, "bad_route")
    as_json = _twirp(lk_server, "ListRooms", json.dumps({"names": [room]}).encode(), token,
                     content_type="application/json")
    assert as_json.status_code == 200
    assert [item["name"] for item in as_json.json()["rooms"]] == [room]
    assert isinstance(as_json.json()["rooms"][0]["creationTime"], str)      # int64 as a string


def test_injected_throttling_is_a_twirp_resource_exhausted(tmp_path: Path) -> None:
    config = SandboxConfig(data_dir=_data_dir(tmp_path), tls_port=None, faults=FaultRates(throttle=1.0),
                           systems=frozenset({"livekit"}))
    with SandboxServer(config) as throttled:
        token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_list=True)).to_jwt()
        response = _twirp(throttled, "ListRooms", b"", token)
    assert (response.status_code, response.json()["code"]) == (429, "resource_exhausted")


# ----------------------------------------------------------------------------------------------- webhooks

def test_join_and_leave_emit_the_events_livekit_sends_in_order() -> None:
    sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(seed=1))
    room = _room()
    sim.join(room, SUB, room_role="owner")
    guest = sim.join(room)
    sim.leave(room, guest, aborted=True)
    sim.leave(room, SUB)
    assert [(item.event, item.room) for item in sim.deliveries] == [
        ("room_started", room), ("participant_joined", room), ("participant_joined", room),
        ("participant_connection_aborted", room), ("participant_left", room), ("room_finished", room)]
    assert len({item.event_id for item in sim.deliveries}) == 6
    assert sim.rooms([room]) == [] and sim.participants(room) is None
    with pytest.raises(KeyError):
        sim.leave(room, SUB)


def test_a_delivery_is_protobuf_json_signed_over_its_exact_bytes() -> None:
    sim = livekit.LiveKitSimulator()
    room = _room()
    sim.join(room, SUB, name="Hélène Lefèvre", room_role="owner")
    delivery = sim.deliveries[1]

    assert delivery.headers == {"Authorization": delivery.authorization, "Content-Type": "application/webhook+json"}
    assert not delivery.authorization.startswith("Bearer")
    body = json.loads(delivery.body)
    assert body["event"] == "participant_joined" and body["id"] == delivery.event_id
    assert isinstance(body["createdAt"], str) and isinstance(body["room"]["creationTime"], str)
    assert body["room"]["name"] == room and body["room"]["numParticipants"] == 1
    participant = body["participant"]
    assert participant["identity"] == SUB and participant["state"] == "ACTIVE"
    assert isinstance(participant["joinedAt"], str)
    assert participant["attributes"]["room_role"] == "owner"
    assert participant["attributes"]["is_authenticated"] == "true"
    assert "Hélène Lefèvre".encode() in delivery.body                   # UTF-8, not \u escapes
    assert "numDropped" not in body                                      # default values are omitted

    claims = jwt.decode(delivery.authorization, SECRET, algorithms=["HS256"], issuer=KEY)
    assert claims["sha256"] == base64.b64encode(hashlib.sha256(delivery.body).digest()).decode()
    assert claims["exp"] - claims["nbf"] == 300

    event = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET)).receive(delivery.body.decode(),
                                                                         delivery.authorization)
    assert event.event == "participant_joined" and event.participant.identity == SUB
    assert event.participant.name == "Hélène Lefèvre" and event.room.name == room


def test_the_sdk_refuses_a_body_changed_after_signing() -> None:
    """The check the connector relies on, seen failing: re-serialised JSON is not the signed body."""
    sim = livekit.LiveKitSimulator()
    sim.join(_room(), SUB)
    delivery = sim.deliveries[-1]
    reserialised = json.dumps(json.loads(delivery.body), indent=1)
    with pytest.raises(Exception, match="hash mismatch"):
        api.WebhookReceiver(api.TokenVerifier(KEY, SECRET)).receive(reserialised, delivery.authorization)


class _Capture(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Capture,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/webhooks", received
    httpd.shutdown()
    httpd.server_close()


def test_deliveries_are_posted_to_every_url(capture: tuple[str, list[tuple[dict[str, str], bytes]]]) -> None:
    url, received = capture
    sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=(url, url + "?copy=1")))
    sim.join(_room(), SUB)
    assert [posted.status for posted in sim.posted] == [200, 200, 200, 200]
    assert [body for _headers, body in received] == [d.body for d in sim.deliveries for _ in range(2)]
    headers = received[0][0]
    assert headers["Content-Type"] == "application/webhook+json"
    assert headers["Authorization"] == sim.deliveries[0].authorization
    sim.webhook_urls = ["http://127.0.0.1:9/unreachable"]
    sim.join(_room(), SUB)
    assert sim.posted[-1].status is None and sim.posted[-1].error


def test_held_deliveries_can_be_reordered_replayed_and_resigned() -> None:
    posted: list[tuple[str, bytes, dict[str, str]]] = []

    def post(url: str, body: bytes, headers: Any) -> int:
        posted.append((url, body, dict(headers)))
        return 200

    sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=("http://receiver",), auto_deliver=False),
                                   post=post)
    room = _room()
    sim.join(room, SUB)
    sim.leave(room, SUB)
    assert posted == [] and len(sim.held) == 4
    sim.flush("reversed")
    assert [json.loads(body)["event"] for _url, body, _headers in posted] == [
        "room_finished", "participant_left", "participant_joined", "room_started"]
    joined = sim.deliveries[1]
    posted.clear()
    sim.replay(joined.event_id, times=2)
    assert [(body, headers["Authorization"]) for _url, body, headers in posted] == [
        (joined.body, joined.authorization)] * 2
    posted.clear()
    later = datetime.now(UTC) + timedelta(seconds=5)
    sim_later = livekit.LiveKitSimulator(sim.options, token_clock=lambda: later, post=post)
    sim_later.deliveries.append(joined)
    sim_later.webhook_urls = ["http://receiver"]
    sim_later.replay(joined.event_id, resign=True)
    assert posted[0][1] == joined.body and posted[0][2]["Authorization"] != joined.authorization


def test_shuffled_flush_is_reproducible() -> None:
    orders = []
    for _ in range(2):
        sim = livekit.LiveKitSimulator(livekit.LiveKitOptions(webhook_urls=("http://r",), auto_deliver=False, seed=4),
                                       post=lambda _u, _b, _h: 200)
        for index in range(4):
            sim.join("room", f"sub-{index}")
        sim.flush("shuffled", seed=9)
        orders.append([posted.event_id for posted in sim.posted])
    assert orders[0] == orders[1]
    assert orders[0] != [d.event_id for d in sim.deliveries]
