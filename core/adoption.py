"""Adoption evidence from Visio's media layer (LiveKit): verified webhook events as values, and what they prove.

A LiveKit room is named after the Meet room's UUID; a participant's identity is the agent's ProConnect `sub` when
they are logged in (attribute `is_authenticated == "true"`), a random UUID for a guest (shared/contracts/livekit.md
section 1). Webhooks may arrive twice, late, or out of order: `assess_events` deduplicates on the event id, orders
by `created_at`, and says for each event whether it is evidence, and if not, why.

Display names are never kept: they are personal data and adoption does not need them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from core.release_policy import VISIO_DAY_ZONE

__all__ = [
    "ActiveRoom",
    "AdoptionAssessment",
    "AdoptionEvent",
    "DiscardReason",
    "Discarded",
    "Evidence",
    "EvidenceKind",
    "LiveKitEventName",
    "MigratedRoom",
    "PersonAdoption",
    "RoomParticipant",
    "RoomRole",
    "SubSighting",
    "WebhookIgnored",
    "WebhookOutcome",
    "WebhookRejected",
    "WebhookRejection",
    "assess_events",
    "observed_subs",
    "parse_authenticated",
    "parse_room_role",
    "poll_event_id",
    "polled_events",
    "summarise_adoption",
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


# ----------------------------------------------------------------------------------------------- polling

POLL_PREFIX = "poll:"


def poll_event_id(room_name: str, identity: str, day: date) -> str:
    """The id of "this identity was in this room on this day" as polling sees it: polling the same room again the
    same day gives the same id, so it is stored once (`poll:<room>:<identity>:<YYYY-MM-DD>`)."""
    return f"{POLL_PREFIX}{room_name}:{identity}:{day.isoformat()}"


def polled_events(participants: Mapping[str, Sequence[RoomParticipant]], *, seen_at: datetime) -> list[AdoptionEvent]:
    """What one RoomService poll proves, as `participant_joined` events dated when the poll saw them (`seen_at`, so
    the day of the id is the day they were active). Guests are not evidence: their identity is a random id."""
    day = seen_at.date()
    events: list[AdoptionEvent] = []
    for room_name, people in participants.items():
        for person in people:
            if not person.authenticated or not person.identity:
                continue
            events.append(AdoptionEvent(event_id=poll_event_id(room_name, person.identity, day),
                                        event=LiveKitEventName.PARTICIPANT_JOINED, room_name=room_name,
                                        created_at=seen_at, participant_identity=person.identity,
                                        authenticated=True, room_role=person.room_role))
    return events


# ----------------------------------------------------------------------------------------------- sub observations

@dataclass(frozen=True, slots=True)
class MigratedRoom:
    """A Visio room bascule created: its Meet UUID (= the LiveKit room name) and the person it was created for."""

    meet_id: str
    host_anchor: str | None


@dataclass(frozen=True, slots=True)
class SubSighting:
    """A ProConnect `sub` seen for a person, first and last (an observation with history, never a key)."""

    person_anchor: str
    sub: str
    first_seen: datetime
    last_seen: datetime


def observed_subs(evidence: Iterable[Evidence], rooms: Iterable[MigratedRoom]) -> list[SubSighting]:
    """Which person a sub belongs to, as far as LiveKit shows it: the owner (`room_role` owner) of a migrated room
    whose host is a known person is that person. Other logged-in participants are not attributed: nothing says who
    they are (their sub is kept in the events, and matches later once the same sub owns a room)."""
    hosts = {room.meet_id: room.host_anchor for room in rooms if room.host_anchor}
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for item in evidence:
        anchor = hosts.get(item.room_name)
        if item.kind is not EvidenceKind.HOST_JOINED or item.sub is None or anchor is None:
            continue
        key = (anchor, item.sub)
        first, last = spans.get(key, (item.at, item.at))
        spans[key] = (min(first, item.at), max(last, item.at))
    return [SubSighting(anchor, sub, first, last) for (anchor, sub), (first, last) in sorted(spans.items())]


# ----------------------------------------------------------------------------------------------- per person

@dataclass(frozen=True, slots=True)
class PersonAdoption:
    """One person's use of Visio as LiveKit showed it, beside their last activity on each old platform."""

    person_anchor: str
    first_seen: datetime | None
    days_active: int                    # distinct days with evidence, in Paris time (the agents' calendar days)
    hosted: bool                        # joined their own migrated room, or joined a migrated room as its owner
    last_activity: tuple[tuple[str, datetime | None], ...] = ()   # (platform, last activity), None = not known

    @property
    def seen(self) -> bool:
        return self.first_seen is not None


def summarise_adoption(people: Iterable[str], rooms: Iterable[MigratedRoom], events: Iterable[AdoptionEvent], *,
                       subs: Mapping[str, Collection[str]] | None = None,
                       last_activity: Mapping[str, Mapping[str, datetime | None]] | None = None,
                       ) -> list[PersonAdoption]:
    """Per person (in the order given): first seen in Visio, distinct days active, whether they hosted.

    Only evidence counts (assess_events: deduplicated, on migrated rooms, logged-in participants). A person is
    recognised by their subs: those given (stored observations) and those the events themselves show (observed_subs).
    """
    room_list = list(rooms)
    host_of = {room.meet_id: room.host_anchor for room in room_list}
    assessment = assess_events(events, migrated_rooms=host_of.keys())
    joins = [item for item in assessment.evidence if item.sub is not None]
    owners: dict[str, set[str]] = {}
    for anchor, known in (subs or {}).items():
        owners.setdefault(anchor, set()).update(known)
    for sighting in observed_subs(joins, room_list):
        owners.setdefault(sighting.person_anchor, set()).add(sighting.sub)
    by_sub: dict[str, list[Evidence]] = {}
    for item in joins:
        by_sub.setdefault(item.sub or "", []).append(item)
    summaries: list[PersonAdoption] = []
    for anchor in people:
        mine = [item for sub in sorted(owners.get(anchor, ())) for item in by_sub.get(sub, ())]
        hosted = any(item.kind is EvidenceKind.HOST_JOINED or host_of.get(item.room_name) == anchor for item in mine)
        activity = tuple(sorted((last_activity or {}).get(anchor, {}).items()))
        summaries.append(PersonAdoption(
            person_anchor=anchor, first_seen=min((item.at for item in mine), default=None),
            days_active=len({item.at.astimezone(VISIO_DAY_ZONE).date() for item in mine}), hosted=hosted,
            last_activity=activity))
    return summaries
