"""What the helpdesk says about a meeting without a Visio link, from the plans of the waves that took it."""

from __future__ import annotations

import pytest

from core.helpdesk import ALREADY_IN_WAVE, SKIP_MEANING, MeetingFate, PlannedRoom, meeting_status
from core.records import ActionState
from core.waves import BLOCKING_FLAGS, Flag, SkipReason, WaveState

FROZEN, CUT, ROLLED = WaveState.FROZEN, WaveState.CUT_OVER, WaveState.ROLLED_BACK


def plan(wave: str, wave_state: WaveState, state: ActionState, reason: str | None = None,
         other: str | None = None) -> PlannedRoom:
    return PlannedRoom(wave, wave_state, state, reason, other)


@pytest.mark.parametrize(("plans", "fate", "wave", "words"), [
    ([], MeetingFate.NOT_PLANNED, None, "no wave has planned it"),
    ([plan("v1", FROZEN, ActionState.SKIPPED, "webinar")], MeetingFate.WILL_NOT_MOVE, "v1", "webinar"),
    ([plan("v1", FROZEN, ActionState.SKIPPED, "over_150_invitees")], MeetingFate.WILL_NOT_MOVE, "v1", "150"),
    ([plan("v1", FROZEN, ActionState.SKIPPED, "host_in_conflict")], MeetingFate.WILL_NOT_MOVE, "v1", "conflict"),
    ([plan("v1", FROZEN, ActionState.SKIPPED, "one_off")], MeetingFate.WILL_NOT_MOVE, "v1", "one-off"),
    ([plan("v1", FROZEN, ActionState.PENDING)], MeetingFate.PLANNED, "v1", "frozen, before its cutover"),
    ([plan("v1", WaveState.PLANNED, ActionState.PENDING)], MeetingFate.PLANNED, "v1", "not frozen yet"),
    ([plan("v1", CUT, ActionState.CLAIMED)], MeetingFate.PLANNED, "v1", "being cut over"),
    ([plan("v1", CUT, ActionState.HELD, "WAITING_FIRST_LOGIN")], MeetingFate.HELD, "v1", "log in to Visio"),
    ([plan("v1", CUT, ActionState.FAILED, "DOMAIN_NOT_ALLOWED")], MeetingFate.FAILED, "v1", "DOMAIN_NOT_ALLOWED"),
    # A later wave that plans it wins over an earlier skip; a rolled-back wave says nothing any more.
    ([plan("v1", FROZEN, ActionState.SKIPPED, "host_in_conflict"), plan("v2", FROZEN, ActionState.PENDING)],
     MeetingFate.PLANNED, "v2", "planned in wave v2"),
    ([plan("v1", ROLLED, ActionState.SKIPPED, "webinar")], MeetingFate.NOT_PLANNED, None, "no wave"),
    # Skipped because another wave moves it: that wave answers.
    ([plan("v2", FROZEN, ActionState.SKIPPED, ALREADY_IN_WAVE, "v1")], MeetingFate.PLANNED, "v1", "wave v1 will"),
    ([plan("v2", FROZEN, ActionState.SKIPPED, ALREADY_IN_WAVE, "v1"), plan("v1", CUT, ActionState.FAILED, "X")],
     MeetingFate.FAILED, "v1", "refused"),
])
def test_where_a_meeting_stands(plans: list[PlannedRoom], fate: MeetingFate, wave: str | None, words: str) -> None:
    status = meeting_status(plans)
    assert (status.fate, status.wave) == (fate, wave)
    assert words in status.explanation
    assert status.will_move is (fate not in (MeetingFate.WILL_NOT_MOVE, MeetingFate.FAILED))


def test_every_reason_a_plan_skips_for_is_explained() -> None:
    skips = {str(flag) for flag in BLOCKING_FLAGS} | {str(reason) for reason in SkipReason}
    assert skips <= set(SKIP_MEANING)
    assert Flag.WEBINAR in SKIP_MEANING and "not" in meeting_status(
        [plan("v1", FROZEN, ActionState.SKIPPED, "webinar")]).explanation
