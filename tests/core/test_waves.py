"""Waves as data: states and their transitions, selections, flags, access levels, the plan of one host."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core import ActionKind, ActionState, Meeting, MeetingKind, Platform
from core.visio import AccessLevel
from core.waves import (
    Channel,
    Flag,
    HeldEvent,
    Host,
    WaveSelection,
    WaveState,
    access_level_for,
    check_transition,
    flags_for,
    plan_host,
)

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
HOST = Host("anchor-1", "anne.martin@culture.example.gouv.fr")


def meeting(**changes: object) -> Meeting:
    base = Meeting(platform=Platform.ZOOM, external_id="81234567890", host_account_id="zoom-user-1",
                   host_email="anne.martin@culture.example.gouv.fr", topic="Point hebdo", kind=MeetingKind.WEEKLY,
                   timezone="Europe/Paris", join_url="https://zoom.us/j/81234567890", link_key="zoom:81234567890",
                   start=NOW, duration_minutes=60, invitees=("a@culture.example.gouv.fr",))
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "target", "allowed"), [
    (WaveState.PLANNED, WaveState.PLANNED, True),
    (WaveState.PLANNED, WaveState.FROZEN, True),
    (WaveState.PLANNED, WaveState.CUT_OVER, False),
    (WaveState.FROZEN, WaveState.CUT_OVER, True),
    (WaveState.FROZEN, WaveState.PLANNED, False),      # only with unfreeze
    (WaveState.CUT_OVER, WaveState.CUT_OVER, True),    # a re-run finishes held actions
    (WaveState.CUT_OVER, WaveState.VERIFIED, True),
    (WaveState.CUT_OVER, WaveState.PLANNED, False),
    (WaveState.VERIFIED, WaveState.ROLLED_BACK, True),
    (WaveState.VERIFIED, WaveState.CUT_OVER, False),
    (WaveState.ROLLED_BACK, WaveState.PLANNED, False),
    (WaveState.ROLLED_BACK, WaveState.CUT_OVER, False),
])
def test_transitions(current: WaveState, target: WaveState, allowed: bool) -> None:
    assert (check_transition(current, target, now=NOW) is None) is allowed


def test_unfreezing_is_explicit_and_rollback_is_guarded() -> None:
    assert check_transition(WaveState.FROZEN, WaveState.PLANNED, now=NOW, unfreeze=True) is None
    inside = check_transition(WaveState.CUT_OVER, WaveState.ROLLED_BACK, now=NOW, guard_until=NOW + timedelta(hours=1))
    assert inside is None
    late = check_transition(WaveState.CUT_OVER, WaveState.ROLLED_BACK, now=NOW, guard_until=NOW - timedelta(hours=1))
    assert late is not None and "rollback window closed" in str(late)


@pytest.mark.parametrize(("department", "selected"), [
    ("DGCA", True), ("DGCA/SDSPEC/B4", True), ("DGCAX/B1", False), ("IGAC/MISSIONS", True), ("IGAC", False),
    (None, False),
])
def test_a_direction_selects_its_sub_units(department: str | None, selected: bool) -> None:
    selection = WaveSelection(departments=("DGCA", "IGAC/MISSIONS/"))
    assert selection.includes_department(department) is selected
    assert WaveSelection.from_json(selection.to_json()) == selection


def test_a_selection_selects_someone() -> None:
    with pytest.raises(ValueError, match="at least one"):
        WaveSelection()


@pytest.mark.parametrize(("changes", "level"), [
    ({}, AccessLevel.TRUSTED),
    ({"waiting_room": True}, AccessLevel.RESTRICTED),
    ({"passcode": True}, AccessLevel.RESTRICTED),
    ({"waiting_room": True, "external_invitees": 2}, AccessLevel.TRUSTED),   # externals: never restricted
    ({"external_invitees": 1}, AccessLevel.TRUSTED),
])
def test_access_levels(changes: dict[str, object], level: AccessLevel) -> None:
    assert access_level_for(meeting(**changes)) is level


@pytest.mark.parametrize(("changes", "host", "flags"), [
    ({}, HOST, ()),
    ({"invitees": tuple(f"p{i}@x.gouv.fr" for i in range(151))}, HOST, (Flag.OVER_CAPACITY,)),
    ({"invitees": tuple(f"p{i}@x.gouv.fr" for i in range(150))}, HOST, ()),
    ({"webinar": True}, HOST, (Flag.WEBINAR,)),
    ({}, Host(None, None, None, "zoom-user-9"), (Flag.HOST_UNMATCHED,)),
    ({}, Host("anchor-2", None), (Flag.HOST_IN_CONFLICT,)),
    ({}, Host("anchor-2", "x@y.gouv.fr", "DEPARTED_OR_DISABLED"), (Flag.HOST_IN_CONFLICT,)),
    ({"external_invitees": 3, "dial_in": True}, HOST, (Flag.EXTERNAL_GUESTS, Flag.DIAL_IN)),
    ({"kind": MeetingKind.NO_FIXED_TIME}, HOST, (Flag.NO_FIXED_TIME,)),
])
def test_flags(changes: dict[str, object], host: Host, flags: tuple[Flag, ...]) -> None:
    assert flags_for(meeting(**changes), host) == flags


def _kinds(actions: list[object]) -> list[tuple[str, str, str | None]]:
    return [(a.kind.value, a.state.value, a.reason) for a in actions]  # type: ignore[attr-defined]


def test_a_weekly_zoom_series_gets_a_room_then_an_invitation() -> None:
    actions = plan_host("w1", HOST, [meeting(waiting_room=True)], now=NOW)
    room, invite = actions
    assert (room.kind, room.key, room.state) == (ActionKind.CREATE_ROOM, "w1:room:zoom:81234567890",
                                                 ActionState.PENDING)
    assert room.payload["access_level"] == "restricted"
    assert room.payload["owner_email"] == HOST.visio_email
    assert room.payload["links"] == [{"platform": "zoom", "meeting_id": "81234567890", "old_key": "zoom:81234567890",
                                      "old_url": "https://zoom.us/j/81234567890", "topic": "Point hebdo"}]
    assert (invite.kind, invite.key, invite.depends_on) == (ActionKind.SEND_INVITATION, "w1:invite:zoom:81234567890",
                                                            room.key)
    assert plan_host("w1", HOST, [meeting(waiting_room=True)], now=NOW) == actions  # deterministic


def test_a_teams_series_is_rewritten_in_place() -> None:
    teams = meeting(platform=Platform.TEAMS, external_id="AAMkEvent", host_account_id="graph-user-1",
                    join_url="https://teams.microsoft.com/meet/123456789012?p=abc", link_key="teams:meet:123456789012")
    room, rewrite = plan_host("w1", HOST, [teams], now=NOW)
    assert rewrite.kind is ActionKind.REWRITE_EVENT and rewrite.depends_on == room.key
    assert rewrite.payload == {"mailbox": "graph-user-1", "event_id": "AAMkEvent", "join_url": teams.join_url,
                               "channel": "calendar_in_place"}


def _held(schedules: bool | None, external_id: str = "81234567890") -> dict[tuple[str, str], HeldEvent]:
    return {("zoom", external_id): HeldEvent("caldav", "anne.martin@culture.example.gouv.fr",
                                             "https://dav.example/cal/anne.martin/a.ics", "orig-uid@zoom",
                                             "zoom:81234567890", schedules)}


@pytest.mark.parametrize(("schedules", "channel"), [(True, Channel.CALENDAR_IN_PLACE),
                                                    (False, Channel.ITIP_ORIGINAL_UID),
                                                    (None, Channel.CALENDAR_IN_PLACE)])
def test_a_zoom_series_held_by_its_organiser_s_calendar_is_rewritten_there(schedules: bool | None,
                                                                          channel: Channel) -> None:
    """The series' event in the organiser's calendar is rewritten under its original UID; who tells the attendees
    follows the server: itself (RFC 6638), else bascule's iTIP; unknown never risks telling them twice."""
    room, rewrite = plan_host("w1", HOST, [meeting()], now=NOW, held=_held(schedules))
    assert rewrite.kind is ActionKind.REWRITE_CALENDAR and rewrite.depends_on == room.key
    assert rewrite.key == "w1:calendar:zoom:81234567890"
    assert rewrite.payload["uid"] == "orig-uid@zoom" and rewrite.payload["channel"] == channel.value
    assert rewrite.payload["href"] == "https://dav.example/cal/anne.martin/a.ics"
    assert Flag.UID_UNKNOWN not in room.flags + rewrite.flags


def test_a_series_no_calendar_holds_is_mailed_under_a_new_uid_and_flagged() -> None:
    """Another meeting's event does not count; one-off and personal rooms get no update, hence no flag."""
    room, mail = plan_host("w1", HOST, [meeting()], now=NOW, held=_held(True, external_id="999"))
    assert mail.kind is ActionKind.SEND_INVITATION and mail.payload["channel"] == Channel.MAIL_INVENTED_UID.value
    assert Flag.UID_UNKNOWN in room.flags and Flag.UID_UNKNOWN in mail.flags
    for quiet in (meeting(kind=MeetingKind.ONE_OFF), meeting(kind=MeetingKind.PERSONAL_ROOM, start=None),
                  meeting(kind=MeetingKind.NO_FIXED_TIME, start=None), meeting(webinar=True)):
        assert all(Flag.UID_UNKNOWN not in action.flags for action in plan_host("w1", HOST, [quiet], now=NOW))


def test_personal_rooms_of_one_host_share_one_room() -> None:
    zoom_pmr = meeting(kind=MeetingKind.PERSONAL_ROOM, external_id="pmi-1", link_key="zoom:5551234567",
                       start=None, invitees=())
    webex_pmr = meeting(platform=Platform.WEBEX, kind=MeetingKind.PERSONAL_ROOM, external_id="webex-room-1",
                        link_key="webex:room:culture/anne.martin", start=None, invitees=())
    (room,) = plan_host("w1", HOST, [webex_pmr, zoom_pmr], now=NOW)
    assert room.key == "w1:room:personal:anchor-1"
    assert sorted(link["old_key"] for link in room.payload["links"]) == ["webex:room:culture/anne.martin",  # type: ignore[union-attr,index]
                                                                          "zoom:5551234567"]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"kind": MeetingKind.ONE_OFF}, "one_off"),
    ({"kind": MeetingKind.EXPIRED_SERIES}, "expired_series"),
    ({"ends_at": NOW - timedelta(days=1)}, "expired_series"),
    ({"webinar": True}, "webinar"),
    ({"invitees": tuple(f"p{i}@x.gouv.fr" for i in range(200))}, "over_150_invitees"),
])
def test_what_is_not_migrated_is_skipped_with_its_reason(changes: dict[str, object], reason: str) -> None:
    (skipped,) = plan_host("w1", HOST, [meeting(**changes)], now=NOW)
    assert (skipped.state, skipped.reason) == (ActionState.SKIPPED, reason)
    assert skipped.payload["links"]


def test_a_host_in_conflict_gets_nothing_migrated() -> None:
    actions = plan_host("w1", Host("anchor-3", None, "VISIO_EMAIL_COLLISION"), [meeting(), meeting(external_id="2")],
                        now=NOW)
    assert _kinds(actions) == [("create_room", "skipped", "host_in_conflict")] * 2


def test_no_fixed_time_gets_a_room_and_no_calendar_action() -> None:
    (room,) = plan_host("w1", HOST, [meeting(kind=MeetingKind.NO_FIXED_TIME, start=None)], now=NOW)
    assert room.kind is ActionKind.CREATE_ROOM and Flag.NO_FIXED_TIME in room.flags
