"""Sandbox LiveKit: a simulator of Visio's media layer, its RoomService over Twirp and its signed webhooks.

Follows shared/contracts/livekit.md (section 6 is the checklist):

- `LiveKitSimulator.join(room, identity, ...)` / `.leave(...)` simulate people entering and leaving Meet rooms. A
  LiveKit room exists only while it has participants: the first join emits `room_started` then
  `participant_joined`, the last leave `participant_left` then `room_finished`. Room name = Meet room UUID;
  identity = the user's ProConnect `sub` when logged in, a random UUID for a guest; attributes `color`,
  `room_role` (absent without a role) and `is_authenticated` as Meet sets them.
- Each event becomes a `Delivery`: body = the `WebhookEvent` in protobuf JSON (lowerCamelCase, 64-bit integers as
  strings, enums by name, UTF-8), `Content-Type: application/webhook+json`, `Authorization` = the raw JWT (no
  `Bearer `) signed HS256 with the API secret, `iss` = the API key, claim `sha256` = standard base64 of the body's
  SHA-256, valid five minutes. Deliveries are posted to the configured URLs at once, or held for `flush` (in
  emission, reversed or shuffled order); `replay` posts one again (same token, or re-signed like a later retry).
- `mount(sandbox)` serves RoomService `ListRooms` and `ListParticipants` under /livekit:
  `POST /livekit/twirp/livekit.RoomService/<Method>` with a protobuf body (JSON is answered too, as Twirp allows),
  after checking the bearer JWT (HS256, `iss` a known key, `nbf`/`exp` with a minute of leeway, the grant the
  method needs: `roomList`, or `roomAdmin` + `room`). Errors are Twirp JSON `{"code", "msg"}`: unauthenticated 401,
  permission_denied 403, not_found 404 (a room nobody is in), bad_route 404, malformed 400.

The JWT code here is deliberately independent of livekit-api (a fake that shared the client's code would agree
with its bugs); the message classes are the protocol's own (`livekit.protocol`), i.e. the wire schema.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import models, webhook
from livekit.protocol import room as room_proto
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import Sandbox, SystemMount

__all__ = ["API_KEY", "API_SECRET", "PREFIX", "Delivery", "LiveKitOptions", "LiveKitSimulator", "Posted", "mount",
           "simulator", "twirp_app"]

PREFIX = "/livekit"
SERVICE_PATH = "/twirp/livekit.RoomService/"
API_KEY = "sandbox-livekit-key"
API_SECRET = "sandbox-livekit-secret-0123456789abcdef"  # noqa: S105 — a sandbox value, published on purpose
WEBHOOK_CONTENT_TYPE = "application/webhook+json"
TOKEN_LEEWAY_SECONDS = 60          # go-jose's default leeway, which LiveKit's server uses
EMPTY_TIMEOUT = 300                # LiveKit's defaults for an auto-created room
DEPARTURE_TIMEOUT = 20
ENABLED_CODECS = ("audio/opus", "audio/red", "video/VP8", "video/H264", "video/VP9", "video/AV1")
COLORS = ("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LiveKitOptions:
    """How the simulator signs, where it posts, and whether it posts at once."""

    api_key: str = API_KEY
    api_secret: str = field(default=API_SECRET, repr=False)
    webhook_urls: tuple[str, ...] = ()
    webhook_ttl: timedelta = timedelta(minutes=5)
    auto_deliver: bool = True          # False: deliveries wait in `held` until flush()
    post_timeout_seconds: float = 5.0
    seed: int | None = None            # sids, event ids and guest identities from a seeded generator


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook as LiveKit sends it: the exact body bytes and the token that signs them."""

    event_id: str
    event: str
    room: str
    created_at: datetime
    body: bytes
    authorization: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization, "Content-Type": WEBHOOK_CONTENT_TYPE}


@dataclass(frozen=True, slots=True)
class Posted:
    """One POST of a delivery to one URL, and how the receiver answered (None: no answer)."""

    url: str
    event_id: str
    status: int | None
    error: str | None = None


@dataclass
class _Participant:
    info: models.ParticipantInfo


@dataclass
class _Room:
    sid: str
    name: str
    created_at: datetime
    participants: dict[str, _Participant] = field(default_factory=dict)


Post = Callable[[str, bytes, Mapping[str, str]], int]


class LiveKitSimulator:
    """Rooms, participants and webhook deliveries of a simulated LiveKit server.

    `clock` dates events (`createdAt`, `joinedAt`: the sandbox's time); `token_clock` dates the JWTs, which real
    verifiers check against the real time. `post` sends one delivery to one URL and returns the HTTP status
    (default: httpx).
    """

    def __init__(self, options: LiveKitOptions | None = None, *, clock: Callable[[], datetime] = _utc_now,
                 token_clock: Callable[[], datetime] = _utc_now, post: Post | None = None) -> None:
        self.options = options or LiveKitOptions()
        self.webhook_urls: list[str] = list(self.options.webhook_urls)
        self._clock = clock
        self._token_clock = token_clock
        self._post = post or self._http_post
        self._random = random.Random(self.options.seed) if self.options.seed is not None else None
        self._rooms: dict[str, _Room] = {}
        self._lock = threading.RLock()
        self._version = 0
        self.deliveries: list[Delivery] = []
        self.held: list[Delivery] = []
        self.posted: list[Posted] = []
        self._http: httpx.Client | None = None

    # ------------------------------------------------------------------------------------------ simulation

    def join(self, room: str, identity: str | None = None, *, name: str = "", room_role: str | None = None,
             authenticated: bool | None = None) -> str:
        """Someone enters `room` (a Meet room UUID); returns their identity (a random UUID for a guest).

        `authenticated` defaults to whether an identity (a ProConnect sub) was given.
        """
        logged_in = identity is not None if authenticated is None else authenticated
        identity = identity or self._uuid()
        emitted: list[Delivery] = []
        with self._lock:
            now = self._now()
            current = self._rooms.get(room)
            if current is None:
                current = _Room(sid="RM_" + self._token(12), name=room, created_at=now)
                self._rooms[room] = current
                emitted.append(self._emit("room_started", current, None, now))
            if identity in current.participants:
                raise ValueError("this identity is already in the room (LiveKit would replace the session)")
            attributes = {"color": self._choice(COLORS), "is_authenticated": "true" if logged_in else "false"}
            if room_role:
                attributes["room_role"] = room_role
            self._version += 1
            info = models.ParticipantInfo(
                sid="PA_" + self._token(12), identity=identity, name=name,
                state=models.ParticipantInfo.State.ACTIVE, joined_at=int(now.timestamp()),
                joined_at_ms=int(now.timestamp() * 1000), version=self._version,
                permission=models.ParticipantPermission(can_subscribe=True, can_publish=True,
                                                        can_publish_data=True),
                kind=models.ParticipantInfo.Kind.STANDARD, attributes=attributes)
            current.participants[identity] = _Participant(info)
            emitted.append(self._emit("participant_joined", current, info, now))
        self._dispatch(emitted)
        return identity

    def leave(self, room: str, identity: str, *, aborted: bool = False) -> None:
        """Someone leaves (or loses their connection); the room closes when it empties."""
        emitted: list[Delivery] = []
        with self._lock:
            now = self._now()
            current = self._rooms.get(room)
            if current is None or identity not in current.participants:
                raise KeyError("no such participant in that room")
            info = current.participants.pop(identity).info
            info.state = models.ParticipantInfo.State.DISCONNECTED
            name = "participant_connection_aborted" if aborted else "participant_left"
            emitted.append(self._emit(name, current, info, now))
            if not current.participants:
                del self._rooms[room]
                emitted.append(self._emit("room_finished", current, None, now))
        self._dispatch(emitted)

    def rooms(self, names: Sequence[str] = ()) -> list[models.Room]:
        """The active rooms (all of them, or those named), as ListRooms returns them."""
        with self._lock:
            wanted = [self._rooms[name] for name in names if name in self._rooms] if names else list(
                self._rooms.values())
            return [self._room_message(item) for item in wanted]

    def participants(self, room: str) -> list[models.ParticipantInfo] | None:
        """Who is in `room`; None when the room does not exist (nobody is in it)."""
        with self._lock:
            current = self._rooms.get(room)
            if current is None:
                return None
            return [_copy(entry.info) for entry in current.participants.values()]

    # ------------------------------------------------------------------------------------------ webhooks

    def sign(self, body: bytes, *, issued_at: datetime | None = None, ttl: timedelta | None = None,
             api_key: str | None = None, api_secret: str | None = None, with_sha256: bool = True) -> str:
        """The Authorization value for `body`; the keyword arguments make the invalid variants tests need."""
        issued = issued_at or self._token_clock()
        claims: dict[str, Any] = {"iss": api_key or self.options.api_key, "sub": "",
                                  "nbf": int(issued.timestamp()),
                                  "exp": int((issued + (ttl or self.options.webhook_ttl)).timestamp())}
        if with_sha256:
            claims["sha256"] = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        return encode_jwt(claims, api_secret or self.options.api_secret)

    def flush(self, order: Literal["emitted", "reversed", "shuffled"] = "emitted", *, seed: int = 0) -> list[Posted]:
        """Post the held deliveries, in emission order, reversed, or shuffled (seeded)."""
        with self._lock:
            batch, self.held = self.held, []
        if order == "reversed":
            batch.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(batch)
        return [posted for delivery in batch for posted in self.deliver(delivery)]

    def replay(self, event_id: str, *, times: int = 1, resign: bool = False) -> list[Posted]:
        """Post a delivery again: the same bytes and token (a duplicate), or re-signed now (a sender retry)."""
        delivery = next(item for item in self.deliveries if item.event_id == event_id)
        if resign:
            delivery = Delivery(delivery.event_id, delivery.event, delivery.room, delivery.created_at,
                                delivery.body, self.sign(delivery.body))
        return [posted for _ in range(times) for posted in self.deliver(delivery)]

    def deliver(self, delivery: Delivery) -> list[Posted]:
        """Post one delivery to every configured URL."""
        results: list[Posted] = []
        for url in list(self.webhook_urls):
            try:
                result = Posted(url, delivery.event_id, self._post(url, delivery.body, delivery.headers))
            except httpx.HTTPError as error:
                result = Posted(url, delivery.event_id, None, type(error).__name__)
            results.append(result)
        with self._lock:
            self.posted.extend(results)
        return results

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ------------------------------------------------------------------------------------------ internals

    def _emit(self, name: str, current: _Room, participant: models.ParticipantInfo | None,
              now: datetime) -> Delivery:
        event = webhook.WebhookEvent(event=name, id="EV_" + self._token(12), created_at=int(now.timestamp()),
                                     room=self._room_message(current))
        if participant is not None:
            event.participant.CopyFrom(participant)
        body = json_format.MessageToJson(event, indent=None, ensure_ascii=False).encode("utf-8")
        delivery = Delivery(event.id, name, current.name, now, body, self.sign(body))
        self.deliveries.append(delivery)
        return delivery

    def _dispatch(self, emitted: list[Delivery]) -> None:
        if not self.options.auto_deliver:
            with self._lock:
                self.held.extend(emitted)
            return
        for delivery in emitted:
            self.deliver(delivery)

    def _room_message(self, current: _Room) -> models.Room:
        created = current.created_at
        return models.Room(sid=current.sid, name=current.name, empty_timeout=EMPTY_TIMEOUT,
                           departure_timeout=DEPARTURE_TIMEOUT, creation_time=int(created.timestamp()),
                           creation_time_ms=int(created.timestamp() * 1000),
                           enabled_codecs=[models.Codec(mime=mime) for mime in ENABLED_CODECS],
                           num_participants=len(current.participants))

    def _http_post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._http is None:
            self._http = httpx.Client(timeout=self.options.post_timeout_seconds)
        return self._http.post(url, content=body, headers=dict(headers)).status_code

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    def _token(self, length: int) -> str:
        if self._random is not None:
            return "".join(self._random.choice(_ALPHABET) for _ in range(length))
        return "".join(secrets.choice(_ALPHABET) for _ in range(length))

    def _uuid(self) -> str:
        if self._random is not None:
            return str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        return str(uuid.uuid4())

    def _choice(self, values: Sequence[str]) -> str:
        return (self._random or random).choice(values)


def _copy(info: models.ParticipantInfo) -> models.ParticipantInfo:
    duplicate = models.ParticipantInfo()
    duplicate.CopyFrom(info)
    return duplicate


# ----------------------------------------------------------------------------------------------- JWT (HS256)

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_jwt(claims: Mapping[str, Any], secret: str) -> str:
    """A compact JWS, HS256, as LiveKit's servers and SDKs sign them."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class _TokenRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _verify_jwt(token: str, secrets_by_key: Mapping[str, str], *, now: float) -> dict[str, Any]:
    try:
        header_part, payload_part, signature_part = token.split(".")
        header = json.loads(_unb64url(header_part))
        claims = json.loads(_unb64url(payload_part))
        signature = _unb64url(signature_part)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise _TokenRefused("unauthenticated", "invalid token") from error
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        raise _TokenRefused("unauthenticated", "invalid token")
    secret = secrets_by_key.get(str(claims.get("iss", "")))
    if secret is None:
        raise _TokenRefused("unauthenticated", "invalid API key")
    expected = hmac.new(secret.encode(), f"{header_part}.{payload_part}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise _TokenRefused("unauthenticated", "invalid token signature")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or now > exp + TOKEN_LEEWAY_SECONDS:
        raise _TokenRefused("unauthenticated", "token is expired")
    if isinstance(nbf, int | float) and now < nbf - TOKEN_LEEWAY_SECONDS:
        raise _TokenRefused("unauthenticated", "token is not valid yet")
    return claims


# ----------------------------------------------------------------------------------------------- Twirp server

_TWIRP_STATUS = {"unauthenticated": 401, "permission_denied": 403, "not_found": 404, "bad_route": 404,
                 "malformed": 400, "invalid_argument": 400, "resource_exhausted": 429, "internal": 500,
                 "unavailable": 503}


def _twirp_error(code: str, message: str, meta: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "msg": message}
    if meta:
        body["meta"] = dict(meta)
    return Response(json.dumps(body), status_code=_TWIRP_STATUS[code], media_type="application/json")


_Handler = Callable[[Message, Mapping[str, Any]], "Message | Response"]


def twirp_app(simulator: LiveKitSimulator, *, token_clock: Callable[[], float] = time.time) -> Starlette:
    """RoomService ListRooms and ListParticipants over Twirp, reading `simulator`'s rooms."""
    keys = {simulator.options.api_key: simulator.options.api_secret}

    def list_rooms(request: Message, video: Mapping[str, Any]) -> Message | Response:
        if video.get("roomList") is not True:
            return _twirp_error("permission_denied", "permissions denied")
        assert isinstance(request, room_proto.ListRoomsRequest)
        return room_proto.ListRoomsResponse(rooms=simulator.rooms(list(request.names)))

    def list_participants(request: Message, video: Mapping[str, Any]) -> Message | Response:
        assert isinstance(request, room_proto.ListParticipantsRequest)
        if video.get("roomAdmin") is not True or video.get("room") != request.room:
            return _twirp_error("permission_denied", "permissions denied")
        found = simulator.participants(request.room)
        if found is None:
            return _twirp_error("not_found", "requested room does not exist")
        return room_proto.ListParticipantsResponse(participants=found)

    methods: dict[str, tuple[type[Message], _Handler]] = {
        "ListRooms": (room_proto.ListRoomsRequest, list_rooms),
        "ListParticipants": (room_proto.ListParticipantsRequest, list_participants),
    }

    async def endpoint(request: Request) -> Response:
        method = request.path_params["method"]
        if request.method != "POST":
            return _twirp_error("bad_route", f"unsupported method {request.method} (only POST is allowed)")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/protobuf", "application/json"):
            return _twirp_error("bad_route", f"unexpected Content-Type: {content_type!r}")
        if method not in methods:
            return _twirp_error("bad_route", f"no handler for path \"/twirp/livekit.RoomService/{method}\"")
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _twirp_error("unauthenticated", "missing or malformed Authorization header")
        try:
            claims = _verify_jwt(authorization[len("Bearer "):], keys, now=token_clock())
        except _TokenRefused as refused:
            return _twirp_error(refused.code, str(refused))
        message_type, handler = methods[method]
        body = await request.body()
        try:
            if content_type == "application/json":
                decoded = json_format.Parse(body or b"{}", message_type(), ignore_unknown_fields=False)
            else:
                decoded = message_type.FromString(body)
        except (DecodeError, json_format.ParseError, UnicodeDecodeError):
            return _twirp_error("malformed", "the request could not be decoded")
        video = claims.get("video")
        answer = handler(decoded, video if isinstance(video, dict) else {})
        if isinstance(answer, Response):
            return answer
        if content_type == "application/json":
            return Response(json_format.MessageToJson(answer, indent=None), media_type="application/json")
        return Response(answer.SerializeToString(), media_type="application/protobuf")

    return Starlette(routes=[Route(SERVICE_PATH + "{method}", endpoint, methods=["POST", "GET", "PUT"])])


# ----------------------------------------------------------------------------------------------- mounting

_SIMULATORS: weakref.WeakKeyDictionary[Sandbox, LiveKitSimulator] = weakref.WeakKeyDictionary()
_SIMULATORS_LOCK = threading.Lock()


def simulator(sandbox: Sandbox, options: LiveKitOptions | None = None) -> LiveKitSimulator:
    """The one simulator of a sandbox (created on first use, dated by the sandbox clock): what tests and the Meet
    stand-in drive with join/leave, and what the RoomService mount reads."""
    with _SIMULATORS_LOCK:
        found = _SIMULATORS.get(sandbox)
        if found is None:
            found = LiveKitSimulator(options, clock=sandbox.now)
            _SIMULATORS[sandbox] = found
        return found


def mount(sandbox: Sandbox, options: LiveKitOptions | None = None) -> SystemMount:
    """The LiveKit stand-in, mounted under /livekit (LiveKitAPI url = sandbox url + /livekit)."""
    app = twirp_app(simulator(sandbox, options))
    return SystemMount(name="livekit", prefix=PREFIX, app=app,
                       throttled=lambda _seconds: _twirp_error("resource_exhausted", "rate limit exceeded"),
                       server_error=lambda: _twirp_error("unavailable", "service unavailable"))
