"""Visio's media layer through livekit-api 1.2.2: RoomService polling and signed webhooks, as adoption evidence.

`LiveKitRooms` asks RoomService which migrated rooms are in use and who is in them. livekit-api is asynchronous
(aiohttp): each public call is one batch run on a private event loop (`asyncio.Runner`), with a `LiveKitAPI`
created on that loop and closed on it. The SDK retries (region failover) only for LiveKit Cloud hosts; it is
built with `failover=False` so the one retry layer is ours (connectors.retry). A fresh JWT is signed by the SDK for
every call. Errors (shared/contracts/livekit.md section 2): TwirpError 401/403 → ConnectorAuthError, `not_found`
→ NotFound (except for ListParticipants, where it means the room is not in use: no participants), 429 →
RateLimited, 5xx, transport errors and undecodable answers → TransientConnectorError, other 4xx →
PermanentConnectorError. Messages carry method names and Twirp codes only.

`WebhookVerifier` checks a delivery as the SDK's `WebhookReceiver` does: the token with the SDK's `TokenVerifier`
(HS256 from the configured key, `exp` required), the `sha256` claim against the SHA-256 of the body bytes exactly as
received (before any decoding, so an unauthenticated delivery is rejected as such whatever its bytes), then the
body parsed as protobuf JSON with unknown fields ignored. It becomes a core value: an AdoptionEvent, a
WebhookIgnored (authentic, but an event adoption does not read), or a WebhookRejected with its reason. An expected
rejection is never an exception. A `Bearer ` prefix (which LiveKit does not send, and which the SDK cannot decode)
is stripped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import jwt
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import webhook

from connectors.errors import (
    ConnectorAuthError,
    ConnectorError,
    NotFound,
    PermanentConnectorError,
    RateLimited,
    TransientConnectorError,
)
from connectors.retry import RetryPolicy, RetryStats, acall_with_retries
from connectors.throttle import Throttle
from core.adoption import (
    ActiveRoom,
    AdoptionEvent,
    LiveKitEventName,
    RoomParticipant,
    WebhookIgnored,
    WebhookOutcome,
    WebhookRejected,
    WebhookRejection,
    parse_authenticated,
    parse_room_role,
)

__all__ = ["LIVEKIT_EVENT_NAMES", "LiveKitConfig", "LiveKitRooms", "WebhookVerifier", "webhook_http_status"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM = "livekit"
WEBHOOK_CONTENT_TYPE = "application/webhook+json"
_PARTICIPANT_EVENTS = frozenset({LiveKitEventName.PARTICIPANT_JOINED, LiveKitEventName.PARTICIPANT_LEFT,
                                 LiveKitEventName.PARTICIPANT_CONNECTION_ABORTED})


@dataclass(frozen=True, slots=True)
class LiveKitConfig:
    """Visio's LiveKit server and the API key its operators gave bascule."""

    url: str                           # https://livekit.visio.numerique.gouv.fr (ws:// and wss:// work too)
    api_key: str
    api_secret: str = field(repr=False)
    timeout_seconds: float = 10.0
    names_per_request: int = 100       # room names per ListRooms call
    concurrency: int = 4               # ListParticipants calls in flight in one batch

    def __post_init__(self) -> None:
        if self.names_per_request < 1 or self.concurrency < 1:
            raise ValueError("names_per_request and concurrency must be positive")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")


class LiveKitRooms:
    """RoomService: which rooms are active now, and who is in them (identities, roles; never display names)."""

    def __init__(self, config: LiveKitConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._throttle_key = f"livekit:{urlsplit(config.url).netloc or config.url}"

    def fetch_active_rooms(self, names: Sequence[str]) -> list[ActiveRoom]:
        """The rooms among `names` that are in use right now (an empty `names` asks for none)."""
        wanted = list(dict.fromkeys(name for name in names if name))
        if not wanted:
            return []

        async def work(client: api.LiveKitAPI) -> list[ActiveRoom]:
            found: list[ActiveRoom] = []
            for chunk in _chunks(wanted, self.config.names_per_request):
                request = api.ListRoomsRequest(names=chunk)
                response = await self._call("ListRooms", _bind(client.room.list_rooms, request))
                found.extend(_active_room(room) for room in response.rooms)
            return found

        return self._run(work)

    def fetch_participants(self, rooms: Sequence[str]) -> dict[str, tuple[RoomParticipant, ...]]:
        """Who is in each room now; a room not in use has nobody (LiveKit answers not_found for it)."""
        wanted = list(dict.fromkeys(name for name in rooms if name))

        async def work(client: api.LiveKitAPI) -> dict[str, tuple[RoomParticipant, ...]]:
            gate = asyncio.Semaphore(self.config.concurrency)

            async def one(room: str) -> tuple[str, tuple[RoomParticipant, ...]]:
                request = api.ListParticipantsRequest(room=room)
                async with gate:
                    try:
                        response = await self._call("ListParticipants",
                                                    _bind(client.room.list_participants, request))
                    except NotFound:
                        return room, ()
                return room, tuple(_participant(item) for item in response.participants)

            return dict(await asyncio.gather(*(one(room) for room in wanted)))

        return self._run(work) if wanted else {}

    # ------------------------------------------------------------------------------------------ plumbing

    def _run(self, work: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
        async def batch() -> T:
            client = api.LiveKitAPI(url=self.config.url, api_key=self.config.api_key,
                                    api_secret=self.config.api_secret, failover=False,
                                    timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds))
            try:
                return await work(client)
            finally:
                await client.aclose()

        with asyncio.Runner() as runner:
            return runner.run(batch())

    async def _call(self, method: str, action: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            self._throttle.acquire(self._throttle_key)
            try:
                return await action()
            except api.TwirpError as error:
                raise _mapped(method, error) from error
            except (aiohttp.ClientError, TimeoutError) as error:
                raise TransientConnectorError(SYSTEM, f"{method} failed ({type(error).__name__})") from error
            except DecodeError as error:
                raise TransientConnectorError(SYSTEM, f"{method} answer could not be decoded") from error

        return await acall_with_retries(attempt, self._retry, stats=self._stats)


def _mapped(method: str, error: Any) -> ConnectorError:
    code, status = str(error.code), int(error.status)
    message = f"{method} refused: {code} ({status})"
    if status in (401, 403) or code in ("unauthenticated", "permission_denied"):
        return ConnectorAuthError(SYSTEM, message)
    if code == "not_found":
        return NotFound(SYSTEM, message)
    if status == 429 or code == "resource_exhausted":
        return RateLimited(SYSTEM, message, retry_after=None)
    if status >= 500:
        return TransientConnectorError(SYSTEM, message)
    return PermanentConnectorError(SYSTEM, message)


def _bind(method: Callable[[Any], Awaitable[T]], request: Any) -> Callable[[], Awaitable[T]]:
    return lambda: method(request)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _instant(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def _active_room(room: Any) -> ActiveRoom:
    return ActiveRoom(name=str(room.name), participants=int(room.num_participants),
                      started_at=_instant(int(room.creation_time)))


def _participant(info: Any) -> RoomParticipant:
    attributes = dict(info.attributes)
    return RoomParticipant(identity=str(info.identity),
                           authenticated=parse_authenticated(attributes.get("is_authenticated")),
                           room_role=parse_room_role(attributes.get("room_role")),
                           joined_at=_instant(int(info.joined_at)))


# ----------------------------------------------------------------------------------------------- webhooks

class WebhookVerifier:
    """Checks a LiveKit webhook delivery (raw body bytes + Authorization header) and reads it as adoption data."""

    def __init__(self, *, api_key: str, api_secret: str, leeway: timedelta = timedelta(minutes=1)) -> None:
        self._verifier = api.TokenVerifier(api_key, api_secret, leeway=leeway)

    def verify(self, body: bytes, authorization: str | None) -> WebhookOutcome:
        """An AdoptionEvent, a WebhookIgnored, or a WebhookRejected with its reason; never raises for bad input.

        The token and the body's hash are checked before the body is read, so a delivery that cannot be
        authenticated is always rejected as such, whatever its bytes.
        """
        token = (authorization or "").strip()
        scheme, _, rest = token.partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()  # a bare "Bearer" carries no token at all
        if not token:
            return WebhookRejected(WebhookRejection.MISSING_AUTHORIZATION)
        try:
            claims = self._verifier.verify(token)
        except jwt.ExpiredSignatureError:
            return WebhookRejected(WebhookRejection.EXPIRED)
        except jwt.ImmatureSignatureError:
            return WebhookRejected(WebhookRejection.NOT_YET_VALID)
        except jwt.InvalidSignatureError:
            return WebhookRejected(WebhookRejection.BAD_SIGNATURE)
        except jwt.InvalidIssuerError:
            return WebhookRejected(WebhookRejection.UNKNOWN_KEY)
        except jwt.PyJWTError as error:
            return WebhookRejected(WebhookRejection.MALFORMED_TOKEN, type(error).__name__)
        except (AttributeError, TypeError, ValueError):
            # Claims of the wrong shape (a `video` that is not an object…) break the SDK's Claims building.
            return WebhookRejected(WebhookRejection.MALFORMED_TOKEN, "unexpected claims")
        if not claims.sha256:
            return WebhookRejected(WebhookRejection.MISSING_SHA256)
        try:
            signed = base64.b64decode(claims.sha256, validate=True)
        except (binascii.Error, ValueError):
            return WebhookRejected(WebhookRejection.MALFORMED_TOKEN, "the sha256 claim is not base64")
        # WebhookReceiver's check, on the bytes as received rather than on a decoded-and-re-encoded text.
        if not hmac.compare_digest(signed, hashlib.sha256(body).digest()):
            return WebhookRejected(WebhookRejection.HASH_MISMATCH)
        try:
            event = json_format.Parse(body.decode("utf-8"), webhook.WebhookEvent(), ignore_unknown_fields=True)
        except UnicodeDecodeError:
            return WebhookRejected(WebhookRejection.MALFORMED_BODY, "the body is not UTF-8")
        except json_format.ParseError:
            return WebhookRejected(WebhookRejection.MALFORMED_BODY, "not a WebhookEvent in protobuf JSON")
        return _adoption_event(event)


def _adoption_event(event: Any) -> WebhookOutcome:
    name, event_id = str(event.event), str(event.id)
    try:
        known = LiveKitEventName(name)
    except ValueError:
        return WebhookIgnored(event_name=name, event_id=event_id)
    if not event_id or event.created_at <= 0 or not event.room.name:
        return WebhookRejected(WebhookRejection.MALFORMED_BODY, f"{name} without id, createdAt or room name")
    identity: str | None = None
    attributes: dict[str, str] = {}
    if known in _PARTICIPANT_EVENTS:
        if not event.HasField("participant") or not event.participant.identity:
            return WebhookRejected(WebhookRejection.MALFORMED_BODY, f"{name} without a participant")
        identity = str(event.participant.identity)
        attributes = dict(event.participant.attributes)
    return AdoptionEvent(event_id=event_id, event=known, room_name=str(event.room.name),
                         created_at=datetime.fromtimestamp(int(event.created_at), UTC),
                         participant_identity=identity,
                         authenticated=parse_authenticated(attributes.get("is_authenticated")),
                         room_role=parse_room_role(attributes.get("room_role")),
                         num_dropped=int(event.num_dropped))


# Every event name LiveKit sends (shared/contracts/livekit.md section 3); adoption reads a few of them.
LIVEKIT_EVENT_NAMES = frozenset({
    "room_started", "room_finished", "participant_joined", "participant_left", "participant_connection_aborted",
    "track_published", "track_unpublished", "egress_started", "egress_updated", "egress_ended", "ingress_started",
    "ingress_ended"})


def webhook_http_status(outcome: WebhookOutcome) -> int:
    """What a webhook endpoint answers, as Meet's own endpoint does (livekit.md section 1): 200 for what it accepted
    or ignores (so LiveKit stops retrying), 401 without an Authorization header, 400 for a delivery it cannot
    authenticate or read, 422 for an event name LiveKit does not send."""
    if isinstance(outcome, WebhookRejected):
        return 401 if outcome.reason is WebhookRejection.MISSING_AUTHORIZATION else 400
    if isinstance(outcome, WebhookIgnored) and outcome.event_name not in LIVEKIT_EVENT_NAMES:
        return 422
    return 200
