"""Polled evidence ids, sub observations and the per-person summary (days active, hosted) on crafted events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from core.adoption import (
    AdoptionEvent,
    LiveKitEventName,
    MigratedRoom,
    RoomParticipant,
    RoomRole,
    SubSighting,
    assess_events,
    observed_subs,
    poll_event_id,
    polled_events,
    summarise_adoption,
)

ALICE_ROOM, BOB_ROOM, UNKNOWN_ROOM = "room-alice", "room-bob", "room-nobody-migrated"
ALICE_SUB, BOB_SUB, GUEST = "sub-alice", "sub-bob", "guest-random-id"
ROOMS = [MigratedRoom(ALICE_ROOM, "anchor-alice"), MigratedRoom(BOB_ROOM, "anchor-bob")]
DAY1 = datetime(2026, 11, 23, 9, tzinfo=UTC)
JOINED = LiveKitEventName.PARTICIPANT_JOINED


def joined(event_id: str, room: str, identity: str, at: datetime, *, role: RoomRole | None = None,
           authenticated: bool = True) -> AdoptionEvent:
    return AdoptionEvent(event_id=event_id, event=JOINED, room_name=room, created_at=at,
                         participant_identity=identity, authenticated=authenticated, room_role=role)


def test_polled_events_have_day_ids_and_skip_guests() -> None:
    seen = {ALICE_ROOM: (RoomParticipant(ALICE_SUB, True, RoomRole.OWNER),
                         RoomParticipant(GUEST, False, None)),
            BOB_ROOM: ()}
    first = polled_events(seen, seen_at=DAY1)
    later_same_day = polled_events(seen, seen_at=DAY1 + timedelta(hours=5))
    next_day = polled_events(seen, seen_at=DAY1 + timedelta(days=1))
    assert [event.event_id for event in first] == [f"poll:{ALICE_ROOM}:{ALICE_SUB}:2026-11-23"]
    assert first[0].event_id == poll_event_id(ALICE_ROOM, ALICE_SUB, date(2026, 11, 23))
    assert [event.event_id for event in later_same_day] == [event.event_id for event in first]
    assert [event.event_id for event in next_day] == [f"poll:{ALICE_ROOM}:{ALICE_SUB}:2026-11-24"]
    assert first[0].room_role is RoomRole.OWNER and first[0].authenticated and first[0].created_at == DAY1


def test_sub_observations_come_from_owners_of_rooms_with_a_known_host() -> None:
    events = [joined("e1", ALICE_ROOM, ALICE_SUB, DAY1 + timedelta(days=2), role=RoomRole.OWNER),
              joined("e2", ALICE_ROOM, ALICE_SUB, DAY1, role=RoomRole.OWNER),
              joined("e3", ALICE_ROOM, BOB_SUB, DAY1, role=RoomRole.MEMBER),     # a member: not attributed
              joined("e4", UNKNOWN_ROOM, "sub-x", DAY1, role=RoomRole.OWNER),   # not a migrated room
              joined("e5", BOB_ROOM, GUEST, DAY1, role=RoomRole.OWNER, authenticated=False)]
    evidence = assess_events(events, migrated_rooms={room.meet_id for room in ROOMS}).evidence
    assert observed_subs(evidence, ROOMS) == [
        SubSighting("anchor-alice", ALICE_SUB, first_seen=DAY1, last_seen=DAY1 + timedelta(days=2))]
    assert observed_subs(evidence, [MigratedRoom(ALICE_ROOM, None)]) == []


def test_summary_counts_distinct_days_and_hosting() -> None:
    events = [
        joined("a1", ALICE_ROOM, ALICE_SUB, DAY1, role=RoomRole.OWNER),
        joined("a1", ALICE_ROOM, ALICE_SUB, DAY1 + timedelta(days=9), role=RoomRole.OWNER),   # duplicate id
        joined("a2", ALICE_ROOM, ALICE_SUB, DAY1 + timedelta(hours=3)),                       # same day again
        joined("a3", BOB_ROOM, ALICE_SUB, DAY1 + timedelta(days=2)),                          # Bob's room, member
        joined("b1", ALICE_ROOM, BOB_SUB, DAY1 + timedelta(days=1), role=RoomRole.MEMBER),    # Bob as a member
        joined("g1", BOB_ROOM, GUEST, DAY1, role=RoomRole.OWNER, authenticated=False),       # a guest: nothing
        joined("x1", UNKNOWN_ROOM, "sub-carol", DAY1, role=RoomRole.OWNER),                   # unknown room
    ]
    last = {"anchor-alice": {"zoom": DAY1 - timedelta(days=30), "teams": None}}
    rows = summarise_adoption(["anchor-alice", "anchor-bob", "anchor-carol"], ROOMS, events,
                              subs={"anchor-bob": {BOB_SUB}}, last_activity=last)
    alice, bob, carol = rows
    assert (alice.first_seen, alice.days_active, alice.hosted) == (DAY1, 2, True)
    assert alice.last_activity == (("teams", None), ("zoom", DAY1 - timedelta(days=30)))
    assert (bob.first_seen, bob.days_active, bob.hosted) == (DAY1 + timedelta(days=1), 1, False)
    assert bob.seen and bob.last_activity == ()
    assert (carol.seen, carol.days_active, carol.hosted) == (False, 0, False)


def test_joining_ones_own_room_without_the_owner_role_is_hosting() -> None:
    events = [joined("b1", BOB_ROOM, BOB_SUB, DAY1, role=RoomRole.ADMINISTRATOR)]
    (bob,) = summarise_adoption(["anchor-bob"], ROOMS, events, subs={"anchor-bob": [BOB_SUB]})
    assert bob.hosted and bob.days_active == 1
    (unknown,) = summarise_adoption(["anchor-bob"], ROOMS, events)   # no observation: the sub is nobody's yet
    assert not unknown.seen and not unknown.hosted


def test_days_are_the_agents_calendar_days_in_paris_across_midnight_and_daylight_saving() -> None:
    """23:30 and 00:30 in Paris are two days though one UTC day, in winter (UTC+1) and in summer (UTC+2); 00:30
    and 23:30 UTC the same evening are one Paris day. The release policy counts the same days."""
    cases = [
        ([datetime(2026, 12, 4, 22, 30, tzinfo=UTC), datetime(2026, 12, 4, 23, 30, tzinfo=UTC)], 2),  # winter
        ([datetime(2027, 7, 1, 21, 30, tzinfo=UTC), datetime(2027, 7, 1, 22, 30, tzinfo=UTC)], 2),    # summer
        ([datetime(2027, 7, 1, 22, 30, tzinfo=UTC), datetime(2027, 7, 1, 23, 30, tzinfo=UTC)], 1),    # 00:30, 01:30
        # The clocks go forward on 2027-03-28 at 02:00: 00:30 Paris (23:30 UTC on the 27th) and 03:30 Paris
        # (01:30 UTC) are one day; back on 2027-10-31: 23:30 Paris (21:30 UTC) and 00:30 (23:30 UTC) are two.
        ([datetime(2027, 3, 27, 23, 30, tzinfo=UTC), datetime(2027, 3, 28, 1, 30, tzinfo=UTC)], 1),
        ([datetime(2027, 10, 31, 21, 30, tzinfo=UTC), datetime(2027, 10, 31, 23, 30, tzinfo=UTC)], 2),
    ]
    for moments, days in cases:
        events = [joined(f"e{index}", ALICE_ROOM, ALICE_SUB, at, role=RoomRole.OWNER)
                  for index, at in enumerate(moments)]
        (alice,) = summarise_adoption(["anchor-alice"], ROOMS, events)
        assert alice.days_active == days, moments
