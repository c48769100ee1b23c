"""Adoption evidence from LiveKit events: duplicates, delivery order, guests and unknown rooms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.adoption import (
    AdoptionEvent,
    Discarded,
    DiscardReason,
    EvidenceKind,
    LiveKitEventName,
    RoomRole,
    assess_events,
    parse_authenticated,
    parse_room_role,
)

ROOM = "7c0e3b1a-5f2d-4c8e-9b6a-1d2e3f4a5b6c"
OTHER_ROOM = "00000000-0000-4000-8000-000000000000"
SUB = "5b2f0c1e-8d4a-4f6b-9e3c-2a1d0f9e8c7b"
T0 = datetime(2026, 11, 23, 9, tzinfo=UTC)


def event(event_id: str, name: LiveKitEventName, *, at: int = 0, room: str = ROOM, identity: str | None = SUB,
          authenticated: bool = True, role: RoomRole | None = None, dropped: int = 0) -> AdoptionEvent:
    participant = name not in (LiveKitEventName.ROOM_STARTED, LiveKitEventName.ROOM_FINISHED)
    return AdoptionEvent(event_id=event_id, event=name, room_name=room, created_at=T0 + timedelta(seconds=at),
                         participant_identity=identity if participant else None,
                         authenticated=authenticated and participant, room_role=role, num_dropped=dropped)


@pytest.mark.parametrize(("value", "expected"), [("owner", RoomRole.OWNER), ("Administrator", RoomRole.ADMINISTRATOR),
                                                 ("member", RoomRole.MEMBER), ("", None), (None, None),
                                                 ("None", None), ("guest", None)])
def test_room_role(value: str | None, expected: RoomRole | None) -> None:
    assert parse_room_role(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), ("false", False), ("", False),
                                                 (None, False), ("1", False)])
def test_is_authenticated(value: str | None, expected: bool) -> None:
    assert parse_authenticated(value) is expected


def test_owner_joining_is_host_evidence_and_agents_give_sub_observations() -> None:
    events = [event("EV_1", LiveKitEventName.ROOM_STARTED),
              event("EV_2", LiveKitEventName.PARTICIPANT_JOINED, at=1, role=RoomRole.OWNER),
              event("EV_3", LiveKitEventName.PARTICIPANT_JOINED, at=2, identity="sub-2", role=RoomRole.MEMBER)]
    result = assess_events(events, migrated_rooms={ROOM})
    assert [(item.kind, item.event_id, item.sub) for item in result.evidence] == [
        (EvidenceKind.ROOM_USED, "EV_1", None), (EvidenceKind.HOST_JOINED, "EV_2", SUB),
        (EvidenceKind.AGENT_JOINED, "EV_3", "sub-2")]
    assert result.discarded == ()
    assert result.present == {(ROOM, SUB), (ROOM, "sub-2")}


def test_duplicates_count_once_within_a_batch_and_across_batches() -> None:
    joined = event("EV_1", LiveKitEventName.PARTICIPANT_JOINED, role=RoomRole.OWNER)
    first = assess_events([joined, joined], migrated_rooms={ROOM})
    assert [item.event_id for item in first.evidence] == ["EV_1"]
    assert first.discarded == (Discarded("EV_1", DiscardReason.DUPLICATE),)
    later = assess_events([joined], migrated_rooms={ROOM}, seen_event_ids={"EV_1"})
    assert later.evidence == ()
    assert later.discarded == (Discarded("EV_1", DiscardReason.DUPLICATE),)


def test_a_join_delivered_after_its_leave_is_still_evidence_and_presence_follows_created_at() -> None:
    joined = event("EV_J", LiveKitEventName.PARTICIPANT_JOINED, at=10, role=RoomRole.OWNER)
    left = event("EV_L", LiveKitEventName.PARTICIPANT_LEFT, at=20)
    result = assess_events([left, joined], migrated_rooms={ROOM})
    assert [(item.event_id, item.at) for item in result.evidence] == [("EV_J", T0 + timedelta(seconds=10))]
    assert result.discarded == (Discarded("EV_L", DiscardReason.NOT_EVIDENCE),)
    assert result.present == frozenset()
    in_order = assess_events([joined, left], migrated_rooms={ROOM})
    assert in_order.evidence == result.evidence and in_order.present == result.present


def test_anonymous_guests_are_not_observations() -> None:
    guest = event("EV_G", LiveKitEventName.PARTICIPANT_JOINED, identity="0f7d7c2e-guest", authenticated=False)
    result = assess_events([guest], migrated_rooms={ROOM})
    assert result.evidence == ()
    assert result.discarded == (Discarded("EV_G", DiscardReason.ANONYMOUS),)
    assert result.present == {(ROOM, "0f7d7c2e-guest")}


def test_events_of_rooms_bascule_did_not_migrate_are_discarded() -> None:
    result = assess_events([event("EV_X", LiveKitEventName.PARTICIPANT_JOINED, room=OTHER_ROOM, role=RoomRole.OWNER),
                            event("EV_Y", LiveKitEventName.ROOM_STARTED, room=OTHER_ROOM)], migrated_rooms={ROOM})
    assert result.evidence == ()
    assert set(result.discarded) == {Discarded("EV_X", DiscardReason.UNKNOWN_ROOM),
                                     Discarded("EV_Y", DiscardReason.UNKNOWN_ROOM)}
    assert result.present == frozenset()


def test_room_finished_empties_presence_and_dropped_events_are_counted() -> None:
    result = assess_events([event("EV_1", LiveKitEventName.PARTICIPANT_JOINED, at=1),
                            event("EV_2", LiveKitEventName.PARTICIPANT_CONNECTION_ABORTED, at=2, identity="x"),
                            event("EV_3", LiveKitEventName.ROOM_FINISHED, at=3, dropped=2)], migrated_rooms={ROOM})
    assert result.present == frozenset()
    assert result.dropped == 2
    assert {item.reason for item in result.discarded} == {DiscardReason.NOT_EVIDENCE}
