"""What the helpdesk says about a meeting that has no Visio link: will it move, when, or why not — values, no I/O.

The plan of every wave that took the meeting is evidence (db.helpdesk reads it): a room action applied, refused,
held or still to run, or the meeting skipped with its reason (a webinar, over 150 invitees, a host bascule cannot
act for, a one-off). A wave that was rolled back says nothing any more, and a meeting skipped because another
wave moves it follows that wave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.records import ActionState
from core.waves import SKIP_MEANING, SkipReason, WaveState

__all__ = ["ALREADY_IN_WAVE", "SKIP_MEANING", "MeetingFate", "MeetingStatus", "PlannedRoom", "meeting_status"]

ALREADY_IN_WAVE = SkipReason.ALREADY_IN_WAVE.value


class MeetingFate(StrEnum):
    """Where a meeting without a Visio link stands."""

    WILL_NOT_MOVE = "will_not_move"    # a plan skipped it, with a reason
    FAILED = "failed"                  # its room was refused at cutover (a reason; --retry-failed once fixed)
    HELD = "held"                      # its host must log in to Visio once first
    PLANNED = "planned"                # a wave will move it, not cut over yet (or its room is being created)
    MOVED = "moved"                    # its room exists (its link is being recorded)
    NOT_PLANNED = "not_planned"        # no wave has taken it yet


@dataclass(frozen=True, slots=True)
class PlannedRoom:
    """What one wave's plan holds about one meeting: its room action's state and reason."""

    wave: str
    wave_state: WaveState
    state: ActionState
    reason: str | None = None
    other_wave: str | None = None      # for ALREADY_IN_WAVE: the wave that moves it


@dataclass(frozen=True, slots=True)
class MeetingStatus:
    """The answer: the fate, the wave it comes from, the reason code, and one sentence for people."""

    fate: MeetingFate
    explanation: str
    wave: str | None = None
    reason: str | None = None

    @property
    def will_move(self) -> bool:
        return self.fate in (MeetingFate.PLANNED, MeetingFate.HELD, MeetingFate.MOVED, MeetingFate.NOT_PLANNED)


_WAVE_STAGE = {WaveState.PLANNED: "whose plan is not frozen yet", WaveState.FROZEN: "frozen, before its cutover",
               WaveState.CUT_OVER: "being cut over", WaveState.VERIFIED: "cut over"}

# The strongest evidence first: what was applied, then refused, held, to run, skipped.
_ORDER = (ActionState.DONE, ActionState.FAILED, ActionState.HELD, ActionState.CLAIMED, ActionState.PENDING,
          ActionState.SKIPPED)


def meeting_status(plans: Sequence[PlannedRoom]) -> MeetingStatus:
    """The status of a meeting without a Visio link, from the plans of the waves that took it."""
    live = [plan for plan in plans if plan.wave_state is not WaveState.ROLLED_BACK
            and not (plan.state is ActionState.SKIPPED and plan.reason == ALREADY_IN_WAVE)]
    if not live:
        elsewhere = next((plan.other_wave for plan in plans if plan.reason == ALREADY_IN_WAVE and plan.other_wave),
                         None)
        if elsewhere is not None:
            return MeetingStatus(MeetingFate.PLANNED, f"not moved yet: wave {elsewhere} will move it", elsewhere)
        return MeetingStatus(MeetingFate.NOT_PLANNED, "not moved yet: no wave has planned it")
    plan = min(live, key=lambda item: (_ORDER.index(item.state), item.wave))
    wave = plan.wave
    if plan.state is ActionState.DONE:
        return MeetingStatus(MeetingFate.MOVED, f"moved to Visio in wave {wave}", wave)
    if plan.state is ActionState.FAILED:
        return MeetingStatus(MeetingFate.FAILED, f"not moved: Visio refused its room in wave {wave} ({plan.reason}); "
                             "the migration team retries once the cause is fixed", wave, plan.reason)
    if plan.state is ActionState.HELD:
        return MeetingStatus(MeetingFate.HELD, f"not moved yet: wave {wave} waits for its host to log in to Visio "
                             "once (ProConnect)", wave, plan.reason)
    if plan.state in (ActionState.PENDING, ActionState.CLAIMED):
        when = _WAVE_STAGE.get(plan.wave_state, str(plan.wave_state))
        return MeetingStatus(MeetingFate.PLANNED, f"not moved yet: planned in wave {wave}, {when}", wave)
    reason = plan.reason or "unknown"
    meaning = SKIP_MEANING.get(reason, reason)
    return MeetingStatus(MeetingFate.WILL_NOT_MOVE, f"will not move to Visio: {meaning} (wave {wave})", wave, reason)
