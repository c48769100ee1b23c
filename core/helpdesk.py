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

__all__ = ["ALREADY_IN_WAVE", "SHOWN", "SKIP_MEANING", "FoundLink", "LinkLookup", "MeetingAnswer", "MeetingFate",
           "MeetingStatus", "PlannedRoom", "meeting_status", "shown"]

ALREADY_IN_WAVE = SkipReason.ALREADY_IN_WAVE.value
SHOWN = 80   # what the helpdesk pasted is shown back at most this long


def shown(reference: str) -> str:
    """What the helpdesk pasted, as it is shown back: one line, at most SHOWN characters."""
    text = " ".join(reference.split())
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


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


# ----------------------------------------------------------------------------------------------- the lookup's answer

LINK_STATUS = {"mapped": "moved to Visio", "reverted": "rolled back: the old link is valid again"}


@dataclass(frozen=True, slots=True)
class FoundLink:
    """An old link bascule recorded, and the Visio room it leads to (None once rolled back or not created)."""

    old_key: str
    platform: str
    old_url: str
    meeting_id: str
    topic: str | None
    status: str                  # mapped | reverted
    visio_url: str | None
    owner: str | None
    room_id: str | None

    @property
    def status_text(self) -> str:
        return LINK_STATUS.get(self.status, self.status)


@dataclass(frozen=True, slots=True)
class MeetingAnswer:
    """A meeting the reference names that has no Visio link: where it stands."""

    platform: str
    meeting_id: str
    topic: str | None
    status: MeetingStatus


@dataclass(frozen=True, slots=True)
class LinkLookup:
    """What the helpdesk gets for one pasted reference (a link, a meeting id or number, a SIP address, a host's
    e-mail or name): the links found, else the meetings named and where they stand, else why nothing was found.
    The CLI (`bascule links lookup`) and the web page read this same answer."""

    reference: str                          # as shown back (core.helpdesk.shown)
    links: tuple[FoundLink, ...] = ()
    meetings: tuple[MeetingAnswer, ...] = ()
    reason: str = ""
    by_host: bool = False                   # found as the meetings of a host (e-mail or name)

    @property
    def found(self) -> bool:
        return bool(self.links)

    def as_json(self) -> dict[str, object]:
        """The answer as `links lookup --json` prints it and the API returns it."""
        if self.links:
            return {"reference": self.reference, "found": True, "by_host": self.by_host, "links": [
                {"old_key": link.old_key, "platform": link.platform, "old_url": link.old_url,
                 "meeting_id": link.meeting_id, "topic": link.topic, "status": link.status,
                 "visio_url": link.visio_url, "owner": link.owner, "room_id": link.room_id} for link in self.links],
                **({"meetings": [_meeting_json(item) for item in self.meetings]} if self.meetings else {})}
        if self.meetings:
            answers = [_meeting_json(item) for item in self.meetings]
            return {"reference": self.reference, "found": False, "known_meeting": True, "by_host": self.by_host,
                    **answers[0], "meetings": answers}
        return {"reference": self.reference, "found": False, "known_meeting": False, "reason": self.reason}


def _meeting_json(item: MeetingAnswer) -> dict[str, object]:
    return {"platform": item.platform, "meeting_id": item.meeting_id, "topic": item.topic,
            "status": item.status.fate.value, "will_move": item.status.will_move, "wave": item.status.wave,
            "reason_code": item.status.reason, "reason": item.status.explanation}
