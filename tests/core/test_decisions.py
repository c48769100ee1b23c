"""Decisions a realistic change would silently flip, pinned exactly at their boundaries: the access level of a series
and of a merged personal room, the registration flag, the end of the rollback guard, employee and immutable ids in
another case, the zone of an ICS update, the rounding of an annual unit cost."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.mail import build_calendar
from connectors.zoom import meeting_from_zoom
from core import AccountStatus, AnchorKind, DirectoryEntry, MatchMethod, Platform, SourceAccount
from core.identity import (
    AccountMatched,
    AccountUnmatched,
    IdentityKey,
    IdentityPolicy,
    Lookup,
    directory_keys,
    lookup_of,
    lookup_values,
    match_account,
    owners,
)
from core.invitations import InvitationUpdate, build_invitation_update
from core.licences import annual_unit_cost
from core.records import ActionKind, ActionState, ConflictKind, HostRef, Meeting, MeetingKind, Recurrence
from core.recurrence import last_occurrence, next_occurrence
from core.visio import AccessLevel
from core.waves import BLOCKING_FLAGS, Flag, Host, WaveState, access_level_for, check_transition, plan_host

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
HOST = Host("anchor-1", "anne.martin@culture.example.gouv.fr")


def series(**changes: Any) -> Meeting:
    base = Meeting(platform=Platform.ZOOM, external_id="81234567890", host_account_id="zoom-user-1",
                   host_email="anne.martin@culture.example.gouv.fr", topic="Point hebdo", kind=MeetingKind.WEEKLY,
                   timezone="Europe/Paris", join_url="https://zoom.us/j/81234567890", link_key="zoom:81234567890",
                   start=NOW, duration_minutes=60, invitees=("a@culture.example.gouv.fr",))
    return replace(base, **changes)


# ----------------------------------------------------------------------------------------------- access level

# (external guests, waiting room, passcode) → level. Guests always win (they wait in the lobby of a trusted room;
# a restricted one admits nobody without a role), screening decides otherwise; 0 → 1 guest is the boundary.
LEVELS = [
    (0, False, False, AccessLevel.TRUSTED),
    (0, True, False, AccessLevel.RESTRICTED),
    (0, False, True, AccessLevel.RESTRICTED),
    (0, True, True, AccessLevel.RESTRICTED),
    (1, False, False, AccessLevel.TRUSTED),
    (1, True, False, AccessLevel.TRUSTED),
    (1, False, True, AccessLevel.TRUSTED),
    (1, True, True, AccessLevel.TRUSTED),
    (2, True, False, AccessLevel.TRUSTED),
]


@pytest.mark.parametrize(("guests", "waiting_room", "passcode", "level"), LEVELS)
def test_the_access_level_of_a_series(guests: int, waiting_room: bool, passcode: bool, level: AccessLevel) -> None:
    meeting = series(external_invitees=guests, waiting_room=waiting_room, passcode=passcode)
    assert access_level_for(meeting) is level
    room, invitation = plan_host("w1", HOST, [meeting], now=NOW)
    assert (room.kind, room.state, room.payload["access_level"]) == (ActionKind.CREATE_ROOM, ActionState.PENDING,
                                                                      level.value)
    assert (Flag.EXTERNAL_GUESTS in room.flags) is (guests > 0)
    assert invitation.kind is ActionKind.SEND_INVITATION and invitation.flags == room.flags


def _personal(index: int, *, guests: int = 0, waiting_room: bool = False, passcode: bool = False,
              platform: Platform = Platform.ZOOM) -> Meeting:
    return series(platform=platform, kind=MeetingKind.PERSONAL_ROOM, external_id=f"room-{index}", start=None,
                  link_key=f"{platform.value}:room-{index}", invitees=(), external_invitees=guests,
                  waiting_room=waiting_room, passcode=passcode)


OPEN: dict[str, Any] = {}
SCREENED = {"waiting_room": True}
LOCKED = {"passcode": True}
GUEST = {"guests": 1}
SCREENED_GUEST = {"guests": 1, "waiting_room": True}

# The personal meetings merged into one room → its level: a guest of any of them keeps the room trusted (guests
# must not be locked out); otherwise one screened meeting (waiting room or passcode) screens the room; open
# meetings only → trusted.
MERGED = [
    ([OPEN, OPEN], AccessLevel.TRUSTED),
    ([SCREENED], AccessLevel.RESTRICTED),
    ([SCREENED, SCREENED], AccessLevel.RESTRICTED),
    ([SCREENED, OPEN], AccessLevel.RESTRICTED),
    ([LOCKED, OPEN, OPEN], AccessLevel.RESTRICTED),
    ([SCREENED, GUEST], AccessLevel.TRUSTED),
    ([SCREENED_GUEST, SCREENED], AccessLevel.TRUSTED),
    ([OPEN, GUEST], AccessLevel.TRUSTED),
    ([LOCKED, SCREENED, GUEST], AccessLevel.TRUSTED),
]


@pytest.mark.parametrize(("settings", "level"), MERGED)
def test_a_merged_personal_room_takes_one_level_whatever_the_order(settings: list[dict[str, Any]],
                                                                  level: AccessLevel) -> None:
    """Every order of the meetings and every assignment of ids (which one sorts first) gives the same room."""
    count = len(settings)
    for order in itertools.permutations(range(count)):
        meetings = [_personal(index, **settings[position]) for index, position in enumerate(order)]
        for shuffled in itertools.permutations(meetings):
            (room,) = plan_host("w1", HOST, shuffled, now=NOW)
            assert room.key == "w1:room:personal:anchor-1"
            assert room.payload["access_level"] == level.value, (order, [m.external_id for m in shuffled])
            links = room.payload["links"]
            assert isinstance(links, list) and len(links) == count
            assert (Flag.EXTERNAL_GUESTS in room.flags) is any(s.get("guests") for s in settings)


def test_personal_rooms_of_several_platforms_merge_with_the_same_rule() -> None:
    zoom = _personal(1, waiting_room=True)
    webex = _personal(2, platform=Platform.WEBEX)
    for meetings in ([zoom, webex], [webex, zoom]):
        (room,) = plan_host("w1", HOST, meetings, now=NOW)
        assert room.payload["access_level"] == AccessLevel.RESTRICTED.value


# ----------------------------------------------------------------------------------------------- registration

ZOOM_HOST = HostRef("kQ3bR8sXTyOe1cV2mP0aLw", "claire.martin@culture.example.gouv.fr")


def _zoom_body(**settings: Any) -> dict[str, Any]:
    """A Get meeting body as zoom.md §4.6 shows it (invented values)."""
    return {"id": 84120036571, "uuid": "q3yW0sJXQm2Lk7y3n1Z8VQ==", "host_id": ZOOM_HOST.external_id,
            "host_email": ZOOM_HOST.email, "topic": "Comité de pilotage", "type": 8,
            "start_time": "2026-12-07T08:00:00Z", "duration": 60, "timezone": "Europe/Paris",
            "join_url": "https://zoom.us/j/84120036571", "recurrence": {"type": 2, "repeat_interval": 1,
                                                                        "weekly_days": "2", "end_times": 20},
            "settings": {"waiting_room": False, "audio": "voip", **settings}}


# zoom.md §4.5: approval_type 0 automatic, 1 manual (registration on), 2 no registration required.
@pytest.mark.parametrize(("settings", "registration"), [
    ({"approval_type": 0}, True),
    ({"approval_type": 1}, True),
    ({"approval_type": 2}, False),
    ({}, False),                          # absent: nothing says registration is on
    ({"approval_type": False}, False),    # a boolean is not the integer 0
    ({"approval_type": True}, False),     # nor the integer 1
    ({"approval_type": "0"}, False),      # a string is not a documented value
])
def test_zoom_approval_type_decides_the_registration_flag(settings: dict[str, Any], registration: bool) -> None:
    meeting = meeting_from_zoom(_zoom_body(**settings), host=ZOOM_HOST, webinar=False, now=NOW,
                                internal_domains=frozenset({"culture.example.gouv.fr"}))
    assert isinstance(meeting, Meeting)
    assert meeting.registration is registration


def test_registration_is_reported_and_never_blocks_a_migration() -> None:
    assert Flag.REGISTRATION not in BLOCKING_FLAGS
    plain, registered = (plan_host("w1", HOST, [series(registration=flag)], now=NOW) for flag in (False, True))
    assert [(a.kind, a.key, a.state, a.reason) for a in registered] == [(a.kind, a.key, a.state, a.reason)
                                                                        for a in plain]
    # No calendar holds these series: their update goes under a made-up UID (uid_unknown), registration or not.
    assert [a.flags for a in plain] == [(Flag.UID_UNKNOWN,), (Flag.UID_UNKNOWN,)]
    assert [a.flags for a in registered] == [(Flag.REGISTRATION, Flag.UID_UNKNOWN)] * 2
    assert registered[0].state is ActionState.PENDING and registered[0].reason is None


# ----------------------------------------------------------------------------------------------- rollback guard

GUARD = datetime(2026, 11, 24, 8, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize("current", [WaveState.FROZEN, WaveState.CUT_OVER, WaveState.VERIFIED])
@pytest.mark.parametrize(("now", "allowed"), [
    (GUARD - timedelta(hours=24), True),
    (GUARD - TICK, True),
    (GUARD, True),                 # the window closes after guard_until, not at it
    (GUARD + TICK, False),
    (GUARD + timedelta(days=30), False),
])
def test_the_rollback_guard_ends_exactly_at_guard_until(current: WaveState, now: datetime, allowed: bool) -> None:
    refused = check_transition(current, WaveState.ROLLED_BACK, now=now, guard_until=GUARD)
    if allowed:
        assert refused is None
    else:
        assert refused is not None and (refused.current, refused.target) == (current, WaveState.ROLLED_BACK)
        assert str(refused) == (f"wave is {current}, cannot go to rolled_back: the rollback window closed at "
                                "2026-11-24T08:00:00+00:00")


def test_the_guard_only_concerns_rollback_and_no_guard_means_no_deadline() -> None:
    late = GUARD + timedelta(days=365)
    assert check_transition(WaveState.CUT_OVER, WaveState.VERIFIED, now=late, guard_until=GUARD) is None
    assert check_transition(WaveState.CUT_OVER, WaveState.ROLLED_BACK, now=late, guard_until=None) is None
    assert check_transition(WaveState.ROLLED_BACK, WaveState.ROLLED_BACK, now=GUARD - TICK,
                            guard_until=GUARD) is not None


# ----------------------------------------------------------------------------------------------- ids and case

POLICY = IdentityPolicy.build(idp_by_domain={"culture.gouv.fr": "fi-culture"})


def _match(directory_employee: str | None, account_employee: str | None, *, directory_immutable: str | None = None,
           account_immutable: str | None = None) -> AccountMatched | AccountUnmatched:
    person = DirectoryEntry(anchor="A", anchor_kind=AnchorKind.OBJECT_GUID, dn="CN=A",
                            primary_email="jean.dupont@culture.gouv.fr", employee_id=directory_employee,
                            immutable_id=directory_immutable)
    account = SourceAccount(Platform.TEAMS, "u1", "ancien.nom@culture.gouv.fr", AccountStatus.ACTIVE,
                            employee_id=account_employee, immutable_id=account_immutable)
    wanted = set(lookup_values(account))
    holders: dict[tuple[Lookup, str], list[IdentityKey]] = {pair: [] for pair in wanted}
    for key in directory_keys(person):
        if (lookup_of(key.kind), key.value) in holders:
            holders[(lookup_of(key.kind), key.value)].append(key)
    outcome = match_account(account, lookups=owners(holders), policy=POLICY)
    assert isinstance(outcome, AccountMatched | AccountUnmatched)
    return outcome


# Employee numbers are typed by people (HR exports, Zoom SSO employee_unique_id): any case. The e-mail of the
# account matches nobody, so only the id can tie it.
@pytest.mark.parametrize(("directory", "account"), [
    ("ab123", "AB123"), ("AB123", "ab123"), ("aB123", "Ab123"), (" ab123 ", "AB123"), ("ab123", "ab123"),
])
def test_an_employee_id_matches_whatever_its_case(directory: str, account: str) -> None:
    outcome = _match(directory, account)
    assert isinstance(outcome, AccountMatched)
    assert (outcome.anchor, outcome.method) == ("A", MatchMethod.EMPLOYEE_ID)


def test_different_employee_ids_do_not_match() -> None:
    outcome = _match("ab123", "AB124")
    assert isinstance(outcome, AccountUnmatched) and outcome.conflict.kind is ConflictKind.SOURCE_UNMATCHED


# An immutable id (objectGUID in base64, as Entra's onPremisesImmutableId carries it) is case-sensitive: two values
# differing only in case are two different GUIDs, so they must never tie an account to a person.
@pytest.mark.parametrize(("directory", "account", "matched"), [
    ("Wm9vYmFyQmF6MTIzNDU2Nw==", "Wm9vYmFyQmF6MTIzNDU2Nw==", True),
    ("Wm9vYmFyQmF6MTIzNDU2Nw==", " Wm9vYmFyQmF6MTIzNDU2Nw== ", True),
    ("Wm9vYmFyQmF6MTIzNDU2Nw==", "wm9vYmFyQmF6MTIzNDU2Nw==", False),
    ("Wm9vYmFyQmF6MTIzNDU2Nw==", "WM9VYMFYQMF6MTIZNDU2NW==", False),
])
def test_an_immutable_id_matches_only_in_its_exact_case(directory: str, account: str, matched: bool) -> None:
    outcome = _match(None, None, directory_immutable=directory, account_immutable=account)
    if matched:
        assert isinstance(outcome, AccountMatched) and outcome.method is MatchMethod.IMMUTABLE_ID
    else:
        assert isinstance(outcome, AccountUnmatched) and outcome.conflict.kind is ConflictKind.SOURCE_UNMATCHED


# ----------------------------------------------------------------------------------------------- ICS zone

def _update(meeting_zone: str, recurrence_zone: str) -> InvitationUpdate:
    meeting = series(timezone=meeting_zone, start=datetime(2026, 1, 5, 9, tzinfo=UTC),
                     recurrence=Recurrence("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", recurrence_zone),
                     exclusions=(datetime(2026, 1, 12, 9, tzinfo=UTC),))
    update = build_invitation_update(meeting, visio_url="https://visio.example.gouv.fr/abc-defg-hij",
                                     previous_sequence=0, idempotency_key="w1:invite:zoom:81234567890")
    assert isinstance(update, InvitationUpdate)
    return update


# (meeting's zone, recurrence's zone) → the zone of DTSTART and the wall-clock start there (09:00 UTC on 5 Jan).
@pytest.mark.parametrize(("meeting_zone", "recurrence_zone", "zone", "wall_clock"), [
    ("UTC", "Europe/Paris", "Europe/Paris", "20260105T100000"),
    ("Europe/Paris", "Indian/Reunion", "Indian/Reunion", "20260105T130000"),
    ("Europe/Paris", "America/Cayenne", "America/Cayenne", "20260105T060000"),
    ("Pacific/Noumea", "Europe/Paris", "Europe/Paris", "20260105T100000"),
    ("Europe/Paris", "Europe/Paris", "Europe/Paris", "20260105T100000"),
    ("Indian/Reunion", "Not/AZone", "Indian/Reunion", "20260105T130000"),  # unusable rule zone: the meeting's
])
def test_an_ics_update_takes_the_recurrence_zone(meeting_zone: str, recurrence_zone: str, zone: str,
                                                 wall_clock: str) -> None:
    update = _update(meeting_zone, recurrence_zone)
    assert update.timezone == zone
    assert update.start.tzinfo == ZoneInfo(zone)
    assert update.start.strftime("%Y%m%dT%H%M%S") == wall_clock
    assert update.start == datetime(2026, 1, 5, 9, tzinfo=UTC)  # the same instant
    assert [moment.tzinfo for moment in update.exclusions] == [ZoneInfo(zone)]
    rendered = build_calendar(update, mailbox="migration@culture.example.gouv.fr", stamp=NOW).to_ical().decode()
    lines = rendered.replace("\r\n ", "").splitlines()
    assert f"DTSTART;TZID={zone}:{wall_clock}" in lines
    assert f"TZID:{zone}" in lines  # the VTIMEZONE the TZID refers to


# ----------------------------------------------------------------------------------------------- series zone

# Two series with the same rule and the same first start instant, in two zones that share that instant's offset
# but not their daylight-saving rules (UTC and London in January, Paris and Algiers in January): after the
# change of time each keeps its own wall clock. Both orders are checked, so whichever the process expanded first,
# the other one must not take its zone.
@pytest.mark.parametrize(("first", "second", "start", "wall_clock"), [
    ("UTC", "Europe/London", datetime(2026, 1, 5, 9, tzinfo=UTC), (9, 0)),
    ("Europe/London", "UTC", datetime(2026, 1, 5, 9, tzinfo=UTC), (9, 0)),
    ("Europe/Paris", "Africa/Algiers", datetime(2026, 1, 5, 9, tzinfo=UTC), (10, 0)),
    ("Africa/Algiers", "Europe/Paris", datetime(2026, 1, 5, 9, tzinfo=UTC), (10, 0)),
])
def test_each_series_expands_in_its_own_zone_whatever_was_expanded_before(first: str, second: str, start: datetime,
                                                                         wall_clock: tuple[int, int]) -> None:
    rule = "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;COUNT=20"
    for zone in (first, second):
        recurrence = Recurrence(rule, zone)
        last = last_occurrence(recurrence, start)
        summer = next_occurrence(recurrence, start, after=datetime(2026, 5, 1, tzinfo=UTC))
        for moment in (last, summer):
            assert moment is not None
            local = moment.astimezone(ZoneInfo(zone))
            assert (local.hour, local.minute) == wall_clock, (zone, moment)
        assert last is not None and last.date() == datetime(2026, 5, 18).date()


# ----------------------------------------------------------------------------------------------- unit cost

# annual unit cost = unit price × 12 / billing months (savings.md §2), kept to a hundredth of a cent (0.0001 €).
# Half a cent is kept, not rounded to a cent; a tie at the hundredth of a cent goes to the even digit (banker's
# rounding) — savings.md names no rounding mode, so this pins the code's choice until finance names one.
@pytest.mark.parametrize(("unit_price", "months", "expected"), [
    (Decimal("1.005"), 12, Decimal("1.0050")),        # half a cent stays
    (Decimal("0.335"), 1, Decimal("4.0200")),
    (Decimal("0.12345"), 12, Decimal("0.1234")),      # tie → even (ROUND_HALF_UP would give 0.1235)
    (Decimal("0.12355"), 12, Decimal("0.1236")),      # tie → even (ROUND_HALF_DOWN would give 0.1235)
    (Decimal("10.0001"), 24, Decimal("5.0000")),      # 5.00005 → even
    (Decimal("10.0003"), 24, Decimal("5.0002")),      # 5.00015 → even
    (Decimal("10.00011"), 24, Decimal("5.0001")),     # just above the tie: up
    (Decimal("10.00009"), 24, Decimal("5.0000")),     # just below the tie: down
    (Decimal("100"), 36, Decimal("33.3333")),
])
def test_the_annual_unit_cost_rounds_ties_to_even_at_a_hundredth_of_a_cent(unit_price: Decimal, months: int,
                                                                           expected: Decimal) -> None:
    result = annual_unit_cost(unit_price, months)
    assert result == expected
    assert result.as_tuple().exponent == -4  # always four decimals: sums and CSV exports stay comparable
