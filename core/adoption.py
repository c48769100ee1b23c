"""Adoption evidence from Visio's media layer (LiveKit): verified webhook events as values, and what they prove.

A LiveKit room is named after the Meet room's UUID; a participant's identity is the agent's ProConnect `sub` when
they are logged in (attribute `is_authenticated == "true"`), a random UUID for a guest (shared/contracts/livekit.md
section 1). Webhooks may arrive twice, late, or out of order: `assess_events` deduplicates on the event id, orders
by `created_at`, and says for each event whether it is evidence, and if not, why.

Display names are never kept: they are personal data and adoption does not need them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "ActiveRoom",
    "AdoptionAssessment",
    "AdoptionEvent",
    "DiscardReason",
    "Discarded",
    "Evidence",
    "EvidenceKind",
    "LiveKitEventName",
    "RoomParticipant",
    "RoomRole",
    "WebhookIgnored",
    "WebhookOutcome",
    "WebhookRejected",
    "WebhookRejection",
    "assess_events",
    "parse_authenticated",
    "parse_room_role",
]


class LiveKitEventName(StrEnum):
    """The webhook events adoption reads; LiveKit sends others (tracks, egress, ingress), which are ignored."""

    ROOM_STARTED = "room_started"
    ROOM_FINISHED = "room_finished"
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"


class RoomRole(StrEnum):
    """A participant's role in the Meet room (LiveKit attribute `room_role`)."""

    OWNER = "owner"
    ADMINISTRATOR = "administrator"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class AdoptionEvent:
    """One verified LiveKit webhook: what happened, in which room, to whom, and when LiveKit says it happened."""

    event_id: str
    event: LiveKitEventName
    room_name: str
    created_at: datetime
    participant_identity: str | None = None
    authenticated: bool = False
    room_role: RoomRole | None = None
    num_dropped: int = 0          # events the sender dropped before this one (its queue was full)


class WebhookRejection(StrEnum):
    """Why a webhook delivery was not accepted as coming from Visio's LiveKit."""

    MISSING_AUTHORIZATION = "missing_authorization"
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105 — a reason code, not a secret
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"            # signed by an API key other than the one configured
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_SHA256 = "missing_sha256"
    HASH_MISMATCH = "hash_mismatch"        # the body is not the one that was signed
    MALFORMED_BODY = "malformed_body"


@dataclass(frozen=True, slots=True)
class WebhookRejected:
    """A delivery refused, with its reason (never a token or a body in `detail`)."""

    reason: WebhookRejection
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WebhookIgnored:
    """An authentic delivery of an event adoption does not read (track, egress, ingress, or a future name)."""

    event_name: str
    event_id: str


WebhookOutcome = AdoptionEvent | WebhookRejected | WebhookIgnored


@dataclass(frozen=True, slots=True)
class ActiveRoom:
    """A LiveKit room in use right now (LiveKit only knows rooms that have participants)."""

    name: str
    participants: int
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RoomParticipant:
    """Someone in a LiveKit room right now."""

    identity: str
    authenticated: bool
    room_role: RoomRole | None
    joined_at: datetime | None = None


def parse_room_role(value: str | None) -> RoomRole | None:
    """`room_role` as Meet sets it; empty, absent or unknown values mean no role."""
    if not value:
        return None
    try:
        return RoomRole(value.strip().lower())
    except ValueError:
        return None


def parse_authenticated(value: str | None) -> bool:
    """`is_authenticated` is the string "true" for a logged-in user; anything else is a guest."""
    return (value or "").strip().lower() == "true"


# ----------------------------------------------------------------------------------------------- assessment

class EvidenceKind(StrEnum):
    """What an event proves about a migrated room."""

    HOST_JOINED = "host_joined"        # the room's owner joined it: the host adopted Visio for this series
    AGENT_JOINED = "agent_joined"      # a logged-in agent joined: their ProConnect sub is observed
    ROOM_USED = "room_used"            # the room started: someone used the migrated room


class DiscardReason(StrEnum):
    """Why an authentic event is not evidence."""

    DUPLICATE = "duplicate"                    # same event id seen before (sender retry, replay)
    UNKNOWN_ROOM = "unknown_room"              # not a room bascule migrated
    ANONYMOUS = "anonymous_participant"        # a guest: their identity is a random id, not a sub
    NOT_EVIDENCE = "not_evidence"              # leaving or finishing proves nothing new


@dataclass(frozen=True, slots=True)
class Evidence:
    """An event that counts, dated when LiveKit says it happened (not when it arrived)."""

    kind: EvidenceKind
    event_id: str
    room_name: str
    at: datetime
    sub: str | None = None


@dataclass(frozen=True, slots=True)
class Discarded:
    """An event that does not count, with the reason."""

    event_id: str
    reason: DiscardReason


@dataclass(frozen=True, slots=True)
class AdoptionAssessment:
    """What a batch of events proves, in `created_at` order, and who is still in a migrated room afterwards."""

    evidence: tuple[Evidence, ...]
    discarded: tuple[Discarded, ...]
    present: frozenset[tuple[str, str]]    # (room name, participant identity)
    dropped: int = 0                       # events the sender says it dropped: a gap polling may fill


_LEAVING = frozenset({LiveKitEventName.PARTICIPANT_LEFT, LiveKitEventName.PARTICIPANT_CONNECTION_ABORTED})


def assess_events(events: Iterable[AdoptionEvent], *, migrated_rooms: Collection[str],
                  seen_event_ids: Collection[str] = ()) -> AdoptionAssessment:
    """Deduplicate on id, order by `created_at` (ties keep arrival order), and classify each event.

    Delivery order is not event order: a `participant_joined` that arrives after the matching `participant_left`
    is still evidence, dated at its own `created_at`, and presence is decided by the later event of the two.
    """
    seen = set(seen_event_ids)
    unique: list[AdoptionEvent] = []
    discarded: list[Discarded] = []
    for event in events:
        if event.event_id in seen:
            discarded.append(Discarded(event.event_id, DiscardReason.DUPLICATE))
            continue
        seen.add(event.event_id)
        unique.append(event)
    evidence: list[Evidence] = []
    present: set[tuple[str, str]] = set()
    dropped = 0
    for event in sorted(unique, key=lambda item: item.created_at):
        dropped += event.num_dropped
        if event.room_name not in migrated_rooms:
            discarded.append(Discarded(event.event_id, DiscardReason.UNKNOWN_ROOM))
            continue
        _track_presence(event, present)
        verdict = _classify(event)
        if isinstance(verdict, Evidence):
            evidence.append(verdict)
        else:
            discarded.append(Discarded(event.event_id, verdict))
    return AdoptionAssessment(evidence=tuple(evidence), discarded=tuple(discarded), present=frozenset(present),
                              dropped=dropped)


def _track_presence(event: AdoptionEvent, present: set[tuple[str, str]]) -> None:
    if event.event is LiveKitEventName.ROOM_FINISHED:
        present.difference_update({entry for entry in present if entry[0] == event.room_name})
    elif event.participant_identity is not None:
        entry = (event.room_name, event.participant_identity)
        if event.event is LiveKitEventName.PARTICIPANT_JOINED:
            present.add(entry)
        elif event.event in _LEAVING:
            present.discard(entry)


def _classify(event: AdoptionEvent) -> Evidence | DiscardReason:
    if event.event is LiveKitEventName.ROOM_STARTED:
        return Evidence(EvidenceKind.ROOM_USED, event.event_id, event.room_name, event.created_at)
    if event.event is not LiveKitEventName.PARTICIPANT_JOINED:
        return DiscardReason.NOT_EVIDENCE
    if not event.authenticated or not event.participant_identity:
        return DiscardReason.ANONYMOUS
    kind = EvidenceKind.HOST_JOINED if event.room_role is RoomRole.OWNER else EvidenceKind.AGENT_JOINED
    return Evidence(kind, event.event_id, event.room_name, event.created_at, sub=event.participant_identity)
