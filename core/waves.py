"""Cutover waves and their plans, as data: who moves, which rooms, links, calendar rewrites and invitations.

A wave selects persons (departments, a list of anchors or e-mails). Its plan is computed host by host from the
meetings they host: one Visio room per active recurring series (one per host for personal meeting rooms, whatever
the platform), the old links that will point to it, and how each series' attendees learn the new link — its
channel: the organiser's own event rewritten in place under its original UID (a Teams series master; a Zoom or
Webex series the calendar scan found in the organiser's calendar, the server then telling the attendees itself, or
bascule mailing the iTIP under the original UID when the server does not schedule), or, for a Zoom or Webex series
no calendar holds, an ICS update mailed under a UID bascule makes up (flagged `uid_unknown`: its attendees get a
second event beside the old one). Meetings Visio cannot take as they are (more than 150 invitees, webinars) and
hosts bascule cannot vouch for (unmatched, held back by an identity conflict) are flagged and skipped with the
reason, never silently migrated; informational flags (external guests, dial-in, no fixed time) travel with the
room. Every action has a deterministic key: planning again, or applying again, is a no-op.

The access level is decided here, once (the External API cannot change it): a waiting room or a passcode means the
organiser screened who came in → `restricted`; otherwise `trusted`; external guests always → `trusted` (they wait
in the lobby of either, and a restricted room admits nobody without a role directly); never `public`. A personal
room merged from several meetings is trusted if any has guests, else restricted if any was screened, whatever the
order of the meetings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from core.records import ActionKind, ActionState, JsonValue, Meeting, MeetingKind, Platform
from core.visio import MAX_PARTICIPANTS, AccessLevel

__all__ = ["BLOCKING_FLAGS", "CUTOVER_KINDS", "ROLLBACK_KINDS", "SKIP_MEANING", "Channel", "Flag", "HeldEvent", "Host",
           "SkipReason", "TransitionRefused", "WaveAction", "WaveSelection", "WaveState", "access_level_for",
           "check_transition", "flags_for", "merged_access_level", "plan_host", "room_key"]


# What a cutover applies, and what a rollback applies to undo it.
CUTOVER_KINDS = (ActionKind.CREATE_ROOM, ActionKind.REWRITE_EVENT, ActionKind.REWRITE_CALENDAR,
                 ActionKind.SEND_INVITATION)
ROLLBACK_KINDS = (ActionKind.RESTORE_EVENT, ActionKind.RESTORE_CALENDAR, ActionKind.SEND_ROLLBACK)


class WaveState(StrEnum):
    """Where a wave is: planned → frozen → cut over → verified (→ rolled back); cancelled before its cutover."""

    PLANNED = "planned"
    FROZEN = "frozen"
    CUT_OVER = "cut_over"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


# Replanning is allowed until the plan is frozen (unfreezing sends it back); a cutover may be re-run to finish
# held actions; a partial cutover (frozen, some actions applied) can be rolled back too. A wave is cancelled only
# before its cutover (the flow also refuses a frozen wave whose cutover already started: that one is rolled back).
_ALLOWED: dict[WaveState, frozenset[WaveState]] = {
    WaveState.PLANNED: frozenset({WaveState.PLANNED, WaveState.FROZEN, WaveState.CANCELLED}),
    WaveState.FROZEN: frozenset({WaveState.PLANNED, WaveState.FROZEN, WaveState.CUT_OVER, WaveState.ROLLED_BACK,
                                 WaveState.CANCELLED}),
    WaveState.CUT_OVER: frozenset({WaveState.CUT_OVER, WaveState.VERIFIED, WaveState.ROLLED_BACK}),
    WaveState.VERIFIED: frozenset({WaveState.VERIFIED, WaveState.ROLLED_BACK}),
    WaveState.ROLLED_BACK: frozenset(),
    WaveState.CANCELLED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class TransitionRefused:
    """Why a wave cannot go where it was asked to."""

    current: WaveState
    target: WaveState
    reason: str

    def __str__(self) -> str:
        return f"wave is {self.current}, cannot go to {self.target}: {self.reason}"


def check_transition(current: WaveState, target: WaveState, *, now: datetime,
                     guard_until: datetime | None = None, unfreeze: bool = False) -> TransitionRefused | None:
    """None when `current` → `target` is allowed now; rollback only inside the guard window."""
    if target not in _ALLOWED[current]:
        allowed = ", ".join(sorted(_ALLOWED[current])) or "nothing (final state)"
        return TransitionRefused(current, target, f"allowed from {current}: {allowed}")
    if current is WaveState.FROZEN and target is WaveState.PLANNED and not unfreeze:
        return TransitionRefused(current, target, "the plan is frozen: unfreeze it explicitly to plan again")
    if target is WaveState.ROLLED_BACK and guard_until is not None and now > guard_until:
        return TransitionRefused(current, target, f"the rollback window closed at {guard_until.isoformat()}")
    return None


@dataclass(frozen=True, slots=True)
class WaveSelection:
    """Who a wave moves: persons of these departments (a direction takes its sub-units), anchors or e-mails."""

    departments: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.departments or self.anchors or self.emails):
            raise ValueError("a wave selects at least one department, anchor or e-mail")

    def includes_department(self, department: str | None) -> bool:
        """`DGCA` selects `DGCA` and `DGCA/SDSPEC/B4`, not `DGCAX`."""
        if not department:
            return False
        roots = (chosen.rstrip("/") for chosen in self.departments)
        return any(department == root or department.startswith(root + "/") for root in roots)

    def to_json(self) -> dict[str, JsonValue]:
        return {"departments": list(self.departments), "anchors": list(self.anchors), "emails": list(self.emails)}

    @classmethod
    def from_json(cls, document: Mapping[str, JsonValue]) -> WaveSelection:
        def strings(name: str) -> tuple[str, ...]:
            value = document.get(name)
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        return cls(strings("departments"), strings("anchors"), strings("emails"))


class Flag(StrEnum):
    """What the migration team must know about a meeting (blocking flags skip it)."""

    OVER_CAPACITY = "over_150_invitees"
    WEBINAR = "webinar"
    HOST_UNMATCHED = "host_unmatched"
    HOST_IN_CONFLICT = "host_in_conflict"
    EXTERNAL_GUESTS = "external_guests"
    DIAL_IN = "dial_in"
    NO_FIXED_TIME = "no_fixed_time"
    REGISTRATION = "registration"
    UID_UNKNOWN = "uid_unknown"      # no calendar holds the series: the update goes under a made-up UID


class Channel(StrEnum):
    """How a series' attendees learn its new link (contracts/calendars.md §5.3)."""

    CALENDAR_IN_PLACE = "calendar_in_place"     # the organiser's event rewritten; the server tells the attendees
    ITIP_ORIGINAL_UID = "itip_original_uid"     # rewritten; bascule mails the iTIP under the original UID
    MAIL_INVENTED_UID = "mail_invented_uid"     # no calendar holds it: an update under a UID bascule makes up


BLOCKING_FLAGS = frozenset({Flag.OVER_CAPACITY, Flag.WEBINAR, Flag.HOST_UNMATCHED, Flag.HOST_IN_CONFLICT})


class SkipReason(StrEnum):
    """Why a meeting of a wave gets no room (blocking flags are reasons too)."""

    ONE_OFF = "one_off"
    EXPIRED = "expired_series"
    ALREADY_IN_WAVE = "already_in_wave"
    WAVE_CANCELLED = "wave_cancelled"
    ROLLED_BACK = "rolled_back"


# Why a meeting does not move, in words the migration team reads next to the code (plan, CSV, helpdesk).
SKIP_MEANING: dict[str, str] = {
    Flag.OVER_CAPACITY: f"more than {MAX_PARTICIPANTS} invitees: a Visio room holds {MAX_PARTICIPANTS}",
    Flag.WEBINAR: "a webinar: Visio has no webinar mode",
    Flag.HOST_UNMATCHED: "its host's account matched no person of the directory",
    Flag.HOST_IN_CONFLICT: "its host is held back by an identity conflict (bascule identities report)",
    SkipReason.ONE_OFF: "a one-off meeting: only recurring series and personal rooms move",
    SkipReason.EXPIRED: "the series has ended",
    SkipReason.ALREADY_IN_WAVE: "another wave already moves it",
    SkipReason.WAVE_CANCELLED: "the wave was cancelled",
    SkipReason.ROLLED_BACK: "the wave was rolled back",
}


@dataclass(frozen=True, slots=True)
class Host:
    """The person behind a source account, as the identity mapping left it.

    `anchor` None: the account matched nobody. `visio_email`: the e-mail ProConnect will assert (None when held
    back). `conflict`: the conflict kind that keeps bascule from acting for them (disabled, shared Visio e-mail…).
    """

    anchor: str | None
    visio_email: str | None
    conflict: str | None = None
    account_id: str = ""


@dataclass(frozen=True, slots=True)
class WaveAction:
    """One row of a plan: what to do, under which key, for which meeting and host, after which action."""

    kind: ActionKind
    key: str
    platform: Platform | None
    meeting_id: str | None
    host_anchor: str | None
    state: ActionState = ActionState.PENDING
    depends_on: str | None = None
    flags: tuple[Flag, ...] = ()
    reason: str | None = None
    payload: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """The organiser's own event the calendar scan found for a Zoom or Webex series (db organiser_event)."""

    system: str                  # "caldav", "graph"
    organiser: str
    href: str                    # where the event is (CalDAV URL, Graph event id)
    uid: str                     # its original UID
    join_key: str                # the link key it carries
    schedules: bool | None       # the server tells the attendees itself (None: unknown)

    @property
    def channel(self) -> Channel:
        """Unknown counts as scheduling: a server that schedules and bascule's iTIP would tell attendees twice."""
        return Channel.ITIP_ORIGINAL_UID if self.schedules is False else Channel.CALENDAR_IN_PLACE


_RECURRING = frozenset({MeetingKind.WEEKLY, MeetingKind.BIWEEKLY, MeetingKind.MONTHLY_NTH_WEEKDAY,
                        MeetingKind.MONTHLY_DAY, MeetingKind.DAILY, MeetingKind.NO_FIXED_TIME})


def access_level_for(meeting: Meeting) -> AccessLevel:
    """Lobby and passcode → restricted; external guests → trusted; otherwise trusted (module docstring)."""
    if meeting.external_invitees > 0:
        return AccessLevel.TRUSTED
    if meeting.waiting_room or meeting.passcode:
        return AccessLevel.RESTRICTED
    return AccessLevel.TRUSTED


def merged_access_level(meetings: Sequence[Meeting]) -> AccessLevel:
    """The level of the one room several meetings move to (a host's personal rooms), whatever their order: a guest
    of any keeps it trusted (guests must not be locked out), else one screened meeting screens it, else trusted."""
    if any(meeting.external_invitees > 0 for meeting in meetings):
        return AccessLevel.TRUSTED
    restricted = any(access_level_for(meeting) is AccessLevel.RESTRICTED for meeting in meetings)
    return AccessLevel.RESTRICTED if restricted else AccessLevel.TRUSTED


def flags_for(meeting: Meeting, host: Host) -> tuple[Flag, ...]:
    """Every flag of one meeting, blocking ones first."""
    found: list[Flag] = []
    if len(meeting.invitees) > MAX_PARTICIPANTS:
        found.append(Flag.OVER_CAPACITY)
    if meeting.webinar:
        found.append(Flag.WEBINAR)
    if host.anchor is None:
        found.append(Flag.HOST_UNMATCHED)
    elif host.conflict is not None or not host.visio_email:
        found.append(Flag.HOST_IN_CONFLICT)
    if meeting.external_invitees > 0:
        found.append(Flag.EXTERNAL_GUESTS)
    if meeting.dial_in:
        found.append(Flag.DIAL_IN)
    if meeting.kind is MeetingKind.NO_FIXED_TIME:
        found.append(Flag.NO_FIXED_TIME)
    if meeting.registration:
        found.append(Flag.REGISTRATION)
    return tuple(found)


def room_key(wave: str, meeting: Meeting, host: Host) -> str:
    """The key of the room a meeting moves to: one per series, one per host for personal rooms."""
    if meeting.kind is MeetingKind.PERSONAL_ROOM and host.anchor is not None:
        return f"{wave}:room:personal:{host.anchor}"
    return f"{wave}:room:{meeting.platform}:{meeting.external_id}"


def _link(meeting: Meeting) -> dict[str, JsonValue]:
    return {"platform": meeting.platform.value, "meeting_id": meeting.external_id, "old_key": meeting.link_key,
            "old_url": meeting.join_url, "topic": meeting.topic}


def plan_host(wave: str, host: Host, meetings: Iterable[Meeting], *, now: datetime,
              held: Mapping[tuple[str, str], HeldEvent] | None = None) -> list[WaveAction]:
    """The actions for every meeting one host hosts (their personal rooms share one room). `held`: the organisers'
    events the calendar scan found, by (platform, meeting id)."""
    actions: list[WaveAction] = []
    personal: list[Meeting] = []
    held = held or {}
    for meeting in sorted(meetings, key=lambda m: (m.platform.value, m.external_id)):
        event = held.get((meeting.platform.value, meeting.external_id))
        flags = flags_for(meeting, host)
        blocking = [flag for flag in flags if flag in BLOCKING_FLAGS]
        skip: str | None = str(blocking[0]) if blocking else None
        if skip is None and meeting.kind is MeetingKind.ONE_OFF:
            skip = str(SkipReason.ONE_OFF)
        if skip is None and (meeting.kind is MeetingKind.EXPIRED_SERIES
                             or (meeting.ends_at is not None and meeting.ends_at < now
                                 and meeting.kind in _RECURRING)):
            skip = str(SkipReason.EXPIRED)
        key = room_key(wave, meeting, host)
        if skip is None and _mailed_under_new_uid(meeting, event):
            flags += (Flag.UID_UNKNOWN,)
        if skip is not None:
            actions.append(WaveAction(ActionKind.CREATE_ROOM, f"{wave}:skip:{meeting.platform}:{meeting.external_id}",
                                      meeting.platform, meeting.external_id, host.anchor, ActionState.SKIPPED,
                                      flags=flags, reason=skip, payload={"links": [_link(meeting)]}))
            continue
        if meeting.kind is MeetingKind.PERSONAL_ROOM:
            personal.append(meeting)
            continue
        level = access_level_for(meeting)
        actions.append(WaveAction(ActionKind.CREATE_ROOM, key, meeting.platform, meeting.external_id, host.anchor,
                                  flags=flags, payload=_room_payload(host, level, [meeting])))
        follow = _follow_up(wave, meeting, key, host, flags, event)
        if follow is not None:
            actions.append(follow)
    if personal:
        first = personal[0]
        level = merged_access_level(personal)
        flags = tuple(dict.fromkeys(flag for meeting in personal for flag in flags_for(meeting, host)))
        actions.append(WaveAction(ActionKind.CREATE_ROOM, room_key(wave, first, host), first.platform,
                                  first.external_id, host.anchor, flags=flags,
                                  payload=_room_payload(host, level, personal)))
    return actions


def _room_payload(host: Host, level: AccessLevel, meetings: Sequence[Meeting]) -> dict[str, JsonValue]:
    return {"owner_email": host.visio_email, "access_level": level.value, "links": [_link(m) for m in meetings]}


def _mailed_under_new_uid(meeting: Meeting, event: HeldEvent | None) -> bool:
    """A scheduled Zoom or Webex series that no calendar holds: its update can only go under a made-up UID."""
    return (meeting.platform is not Platform.TEAMS and event is None and meeting.kind in _RECURRING
            and meeting.kind is not MeetingKind.NO_FIXED_TIME)


def _follow_up(wave: str, meeting: Meeting, room: str, host: Host, flags: tuple[Flag, ...],
               event: HeldEvent | None) -> WaveAction | None:
    """The calendar side: rewrite the organiser's event in place (a Teams series master, or the Zoom/Webex series
    the calendar scan found in their calendar), else mail the ICS update of a Zoom/Webex series."""
    if meeting.kind is MeetingKind.NO_FIXED_TIME:
        return None  # nothing is scheduled: the new link reaches attendees through the link map and the helpdesk
    if meeting.platform is Platform.TEAMS:
        return WaveAction(ActionKind.REWRITE_EVENT, f"{wave}:rewrite:teams:{meeting.external_id}", meeting.platform,
                          meeting.external_id, host.anchor, depends_on=room, flags=flags,
                          payload={"mailbox": meeting.host_account_id, "event_id": meeting.external_id,
                                   "join_url": meeting.join_url, "channel": Channel.CALENDAR_IN_PLACE.value})
    if event is not None:
        return WaveAction(ActionKind.REWRITE_CALENDAR, f"{wave}:calendar:{meeting.platform}:{meeting.external_id}",
                          meeting.platform, meeting.external_id, host.anchor, depends_on=room, flags=flags,
                          payload={"system": event.system, "organiser": event.organiser, "href": event.href,
                                   "uid": event.uid, "join_key": event.join_key, "channel": event.channel.value,
                                   "topic": meeting.topic})
    # The series' own exceptions travel with it: deleted occurrences stay deleted, moved ones stay where they are.
    return WaveAction(ActionKind.SEND_INVITATION, f"{wave}:invite:{meeting.platform}:{meeting.external_id}",
                      meeting.platform, meeting.external_id, host.anchor, depends_on=room, flags=flags,
                      payload={"channel": Channel.MAIL_INVENTED_UID.value,
                               "invitees": len(meeting.invitees), "invitees_known": meeting.invitees_known,
                               "exclusions": [moment.isoformat() for moment in meeting.exclusions],
                               "exceptions": [{"original": change.original.isoformat(),
                                               "start": change.start.isoformat(),
                                               "duration_minutes": change.duration_minutes}
                                              for change in meeting.exceptions]})
