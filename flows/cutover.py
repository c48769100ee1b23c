"""Flows cutover, verify-wave and rollback-wave: the frozen plan applied through an outbox, checked, undone.

The outbox is the plan_action table. A run claims a batch of actions (one Prefect task per batch, never per
action), then in three steps:

1. prepare — per host, in parallel: the reads and the records that must exist BEFORE an external write, committed
   together: the host's Visio rooms listed once per run (so that a room created by a killed run can be recognised:
   Meet rooms carry no reference bascule could set), the Teams event read and its exact body and location stored,
   the ICS update built and stored with its DTSTAMP (a resend is then the same message, same Message-ID);
2. apply — per host, in parallel (a host's actions one after the other: Graph allows 4 requests per mailbox, and
   a host's rooms must be told apart): create the room, PATCH the series master, send the update;
3. record — every outcome of the batch, rooms and links, in one transaction.

A run killed anywhere re-runs to the same end state: its claimed actions are reconciled first (rooms of the host
neither listed before nor recorded are adopted — rooms are interchangeable but for their access level; a prepared
rewrite is compared with the event as it now stands; a prepared update is sent again, identical). Documented
refusals fail their action with the reason (403 domain not allowed, 400 several users share the e-mail…), the rest
of the wave goes on; a host unknown to a Visio instance that does not pre-create users is held until they log in
once (held actions are tried again on every run). A refusal of the application itself stops the run. A room whose
id or slug bascule already recorded for another series (Meet's are random: a Visio that repeats one) is refused
too, VISIO_ID_REUSED, and never recorded: two series' links would lead to one room.

verify-wave reads back every room (exists, owned by the host's Visio user, right access level), every link, every
rewritten event (shows the Visio link) and invitation. rollback-wave, inside the guard window, restores rewritten
events byte for byte, mails the update that puts the old link back, marks links reverted, and lists the rooms the
External API cannot delete.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.errors import (
    ConnectorAuthError,
    ConnectorError,
    NotFound,
    PreconditionFailed,
    TransientConnectorError,
)
from core import ActionKind, ActionState, Platform, ReasonCode
from core.calendar import BodyRefused, CalendarEvent, rewrite_event, shows_visio
from core.ical_rewrite import IcalRefusal, IcalRefused, read_object
from core.invitations import (
    InvitationUpdate,
    NotInvitable,
    build_invitation_update,
    build_rollback_update,
    invitation_from_payload,
    invitation_payload,
)
from core.visio import AccessLevel, VisioRefusal, VisioRoom
from core.waves import CUTOVER_KINDS, ROLLBACK_KINDS, Channel, WaveState, check_transition
from db.waves import (
    ActionOutcome,
    ActionRow,
    CutoverRepository,
    HostRepository,
    PlanRepository,
    WaveRepository,
    WaveRow,
)
from flows.budget import ensure_limits, limit_name, one_per_tenant, slot
from flows.errors import OperatorError
from flows.progress import Progress
from flows.runtime import StopRequested, cancelled, checkpoint, run_name, stoppable, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig
from flows.waves import WaveError, audit_state, load_wave, plan_summary

log = logging.getLogger(__name__)

BATCH = 500
MAX_ATTEMPTS = 5
WAITING_FIRST_LOGIN = "WAITING_FIRST_LOGIN"
UNCERTAIN = "UNCERTAIN"


class ApplicationRefused(OperatorError, RuntimeError):
    """Visio (or another target) refused the application itself: nothing of the wave can go on."""


# ----------------------------------------------------------------------------------------------- targets

@dataclass
class Targets:
    """The systems a cutover writes to, built by flows.wiring from the tenant file."""

    visio: Any                       # connectors.visio.VisioRoomTarget
    calendar: Any | None = None      # connectors.graph.GraphCalendar (Teams)
    organisers: Any | None = None    # connectors.roles.OrganiserCalendar (Zoom and Webex series, [calendar])
    mail: Any | None = None          # connectors.mail.SmtpInvitationSender (Zoom, Webex)
    mail_domain: str = "bascule.invalid"
    hosts_in_parallel: int = 8


TargetsFactory = Callable[[TenantConfig, Settings], Any]  # a context manager yielding Targets


@contextmanager
def default_targets(tenant: TenantConfig, settings: Settings) -> Iterator[Targets]:
    from flows.wiring import build_targets

    with ExitStack() as stack:
        yield build_targets(tenant, settings, stack)


# ----------------------------------------------------------------------------------------------- the executor

@dataclass
class _Step:
    """One claimed action through prepare → apply → record."""

    action: ActionRow
    outcome: ActionOutcome | None = None            # decided without an external write
    write: Callable[[], Any] | None = None           # the external write
    record: Callable[[Session, Any], ActionOutcome] | None = None
    prepare: list[Callable[[Session], None]] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Context:
    """What one run knows: ids, the targets, what was read for the batch."""

    database_url: str
    tenant_id: str
    wave_id: int
    run_id: str
    targets: Targets
    now: Callable[[], datetime]
    budgets: dict[str, str] = field(default_factory=dict)         # system → Prefect global concurrency limit
    rooms: dict[str, Any] = field(default_factory=dict)          # room action key → Room row
    rewrites: dict[str, Any] = field(default_factory=dict)       # action key → CalendarRewrite row
    notifications: dict[str, Any] = field(default_factory=dict)  # action key → Notification row
    listed: dict[str, Any] = field(default_factory=dict)         # host e-mail → VisioUser row


def _done(action: ActionRow, result: dict[str, Any] | None = None) -> ActionOutcome:
    return ActionOutcome(action.id, ActionState.DONE, result=result)


def _failed(action: ActionRow, reason: str, detail: str | None = None) -> ActionOutcome:
    return ActionOutcome(action.id, ActionState.FAILED, reason=reason, detail=detail)


def _from_error(action: ActionRow, error: BaseException) -> ActionOutcome:
    """An exception of an external write as the action's outcome (the reason codes the report shows)."""
    from connectors.visio import RoomCreationUncertain

    if isinstance(error, RoomCreationUncertain):
        return ActionOutcome(action.id, ActionState.CLAIMED, reason=UNCERTAIN, detail=str(error))
    if isinstance(error, ConnectorAuthError):
        return ActionOutcome(action.id, ActionState.PENDING, reason="AUTH", detail=str(error))
    if isinstance(error, NotFound):
        return _failed(action, "NOT_FOUND", str(error))
    if isinstance(error, PreconditionFailed):
        return _failed(action, "EVENT_CHANGED_CONCURRENTLY", str(error))
    if isinstance(error, TransientConnectorError):
        if action.attempts >= MAX_ATTEMPTS:
            return _failed(action, "TRANSIENT_EXHAUSTED", str(error))
        return ActionOutcome(action.id, ActionState.PENDING, reason="TRANSIENT", detail=str(error))
    if isinstance(error, ConnectorError):
        return _failed(action, "PERMANENT", str(error))
    log.error("action %s failed unexpectedly: %s", action.key, type(error).__name__, exc_info=error)
    return _failed(action, "UNEXPECTED", type(error).__name__)


def _refused(action: ActionRow, refusal: VisioRefusal) -> ActionOutcome:
    if refusal.waits_for_first_login:
        return ActionOutcome(action.id, ActionState.HELD, reason=WAITING_FIRST_LOGIN,
                             detail="the host never logged in to Visio and the instance does not pre-create users")
    if not refusal.concerns_host:
        return ActionOutcome(action.id, ActionState.PENDING, reason=refusal.reason.value, detail=refusal.detail)
    return _failed(action, refusal.reason.value, refusal.detail)


def _owner(action: ActionRow) -> str:
    return str(action.payload.get("owner_email") or "")


# ---- create_room

def _room_steps(context: _Context, actions: Sequence[ActionRow]) -> list[_Step]:
    """A host's rooms: listed once per run (before any creation), then created one after the other."""
    steps = [_Step(action) for action in actions]
    email = _owner(actions[0])
    if not email:
        for step in steps:
            step.outcome = _failed(step.action, "NO_VISIO_EMAIL")
        return steps
    visio = context.targets.visio
    listed = context.listed.get(email.lower())
    if listed is None or listed.listed_run != context.run_id:
        try:
            rooms = [room.id for room in visio.iter_rooms(email)]
            token = visio.token_for(email)
        except ConnectorError as error:
            refusal = getattr(error, "refusal", None)
            for step in steps:
                step.outcome = _refused(step.action, refusal) if refusal is not None else _from_error(step.action,
                                                                                                      error)
            return steps
        user_id = token.user_id if not isinstance(token, VisioRefusal) else None
        snapshot = rooms

        def save(session: Session) -> None:
            CutoverRepository(session, context.tenant_id).save_visio_user(
                email, user_id=user_id, rooms_before=snapshot, run_id=context.run_id, now=context.now())

        steps[0].prepare.append(save)
    for step in steps:
        level = AccessLevel(str(step.action.payload.get("access_level") or "trusted"))
        step.write = (lambda lvl: lambda: visio.create_room(email, access_level=lvl))(level)
        step.record = (lambda act: lambda session, room: _record_room(context, session, act, room))(step.action)
    return steps


def _record_room(context: _Context, session: Session, action: ActionRow, room: VisioRoom | VisioRefusal,
                 *, adopted: bool = False) -> ActionOutcome:
    if isinstance(room, VisioRefusal):
        return _refused(action, room)
    repo = CutoverRepository(session, context.tenant_id)
    # Meet's ids are uuid4 and its slugs random: an id or slug bascule already recorded for another series is not
    # that series' room, and recording it would point two series' links at one room. The action is refused, the
    # batch recorded (a savepoint keeps a concurrent run's insert from aborting the transaction).
    known = repo.room_known_elsewhere(meet_id=room.id, slug=room.slug, action_key=action.key)
    if known is not None:
        return _id_reused(action, room, known)
    telephony = ({"pin_code": room.telephony.pin_code, "phone_number": room.telephony.phone_number,
                  "default_country": room.telephony.default_country} if room.telephony else None)
    # A savepoint on PostgreSQL (a failed INSERT aborts the transaction there). Not on SQLite: pysqlite starts no
    # transaction before the first write, so a SAVEPOINT would be the outermost one and its release would commit the
    # batch early (a run killed before its record would then not be reconciled); SQLite rolls back the failed
    # statement alone.
    nested = session.begin_nested() if session.get_bind().dialect.name == "postgresql" else contextlib.nullcontext()
    try:
        with nested:
            room_id = repo.add_room(action_key=action.key, meet_id=room.id, slug=room.slug, url=room.url,
                                    access_level=room.access_level.value, owner_email=room.owner_email,
                                    owner_user_id=room.owner_user_id, telephony=telephony, wave_id=context.wave_id,
                                    host_anchor=action.host_anchor, adopted=adopted, now=context.now())
            repo.map_links(list(action.payload.get("links") or []), room_id=room_id, wave_id=context.wave_id,
                           host_anchor=action.host_anchor, now=context.now())
    except IntegrityError:
        return _id_reused(action, room, "another run")
    return _done(action, {"meet_id": room.id, "slug": room.slug, "url": room.url, "user_id": room.owner_user_id,
                          "adopted": adopted})


def _id_reused(action: ActionRow, room: VisioRoom, known_for: str) -> ActionOutcome:
    log.warning("action %s: Visio gave room %s (slug %s), already recorded for %s", action.key, room.id, room.slug,
                known_for)
    return _failed(action, ReasonCode.VISIO_ID_REUSED.value,
                   f"Visio gave room id {room.id} (slug {room.slug}), already recorded for {known_for}: not recorded; "
                   "once the Visio operators have looked, run the cutover with --retry-failed")


# ---- rewrite_event and restore_event

MAX_EVENT_CONFLICTS = 3   # 412s in a row before an event is left as its organiser has it

def _event_steps(context: _Context, actions: Sequence[ActionRow]) -> list[_Step]:
    steps = []
    for action in actions:
        step = _Step(action)
        steps.append(step)
        try:
            planner = {ActionKind.REWRITE_EVENT: _plan_rewrite, ActionKind.RESTORE_EVENT: _plan_restore,
                       ActionKind.REWRITE_CALENDAR: _plan_calendar_rewrite,
                       ActionKind.RESTORE_CALENDAR: _plan_calendar_restore}[action.kind]
            planner(context, step)
        except ConnectorError as error:
            step.outcome = _from_error(action, error)
    return steps


def _event_state(event: CalendarEvent) -> dict[str, Any]:
    return {"body": event.body, "contentType": event.body_content_type, "location": dict(event.location),
            "locations": [dict(item) for item in event.locations]}


def _room_to_show(context: _Context, step: _Step, calendar: Any) -> Any | None:
    """The room whose link an event rewrite puts in; None (the step failed with the reason) when the calendar
    system is not configured or the room has no URL."""
    if calendar is None:
        step.outcome = _failed(step.action, "CALENDAR_NOT_CONFIGURED")
        return None
    room = context.rooms.get(step.action.depends_on or "")
    if room is None or not room.url:
        step.outcome = _failed(step.action, "ROOM_WITHOUT_URL")
        return None
    return room


def _plan_rewrite(context: _Context, step: _Step) -> None:
    action = step.action
    calendar = context.targets.calendar
    room = _room_to_show(context, step, calendar)
    if room is None or calendar is None:
        return
    mailbox, event_id = str(action.payload["mailbox"]), str(action.payload["event_id"])
    event = calendar.get_event(mailbox, event_id)
    existing = context.rewrites.get(action.key)
    if existing is not None:  # a run was killed after storing the previous body: where does the event stand?
        if event.body == existing.after["body"]:
            step.outcome = _done(action, {"event_id": event_id, "resumed": True})
            step.record = None
            step.prepare.append(lambda session: CutoverRepository(session, context.tenant_id).set_rewrite_state(
                action.key, "rewritten", now=context.now()))
            return
        if event.body != existing.before["body"]:
            step.outcome = _failed(action, "EVENT_CHANGED_DURING_CUTOVER",
                                   "the event changed between the stored read and now")
            return
        after = dict(existing.after)
    else:
        if shows_visio(event, room.url):
            step.outcome = _failed(action, "EVENT_ALREADY_SHOWS_VISIO")
            return
        telephony = room.telephony or {}
        rewritten = rewrite_event(event, visio_url=room.url, phone=telephony.get("phone_number"),
                                  pin=telephony.get("pin_code"))
        if isinstance(rewritten, BodyRefused):
            step.outcome = _failed(action, rewritten.reason.value, rewritten.detail)
            return
        body, location = rewritten
        after = {"body": body, "location": location}
        before = _event_state(event)
        step.prepare.append(lambda session: CutoverRepository(session, context.tenant_id).prepare_rewrite(
            action_key=action.key, mailbox=mailbox, event_id=event_id, before=before, after=after,
            now=context.now()))
    state = {"event": event, "conflicts": 0}

    def write() -> Any:
        """PATCH under If-Match; a 412 (the organiser changed the event since it was read): read it again, rewrite
        the fresh copy (their change kept), store its body as the one to restore, PATCH again."""
        while True:
            current: CalendarEvent = state["event"]
            try:
                return calendar.update_event(mailbox, event_id, body_html=after["body"],
                                             location=after["location"], if_match=current.change_key)
            except PreconditionFailed:
                state["conflicts"] += 1
                if state["conflicts"] >= MAX_EVENT_CONFLICTS:
                    raise
                fresh = calendar.get_event(mailbox, event_id)
                telephony = room.telephony or {}
                again = rewrite_event(fresh, visio_url=room.url or "", phone=telephony.get("phone_number"),
                                      pin=telephony.get("pin_code"))
                if isinstance(again, BodyRefused):
                    raise PreconditionFailed("graph", f"the event changed and its new body is refused "
                                                      f"({again.reason.value})") from None
                after["body"], after["location"] = again
                state["event"] = fresh

    step.write = write

    def record(session: Session, _event: Any) -> ActionOutcome:
        repository = CutoverRepository(session, context.tenant_id)
        if state["conflicts"]:    # rewritten on a fresh copy: that copy is what a rollback puts back
            repository.prepare_rewrite(action_key=action.key, mailbox=mailbox, event_id=event_id,
                                       before=_event_state(state["event"]), after=after, now=context.now())
        repository.set_rewrite_state(action.key, "rewritten", now=context.now())
        return _done(action, {"event_id": event_id, **({"conflicts": state["conflicts"]} if state["conflicts"]
                                                       else {})})

    step.record = record


def _plan_restore(context: _Context, step: _Step) -> None:
    action = step.action
    calendar = context.targets.calendar
    rewrite = context.rewrites.get(str(action.payload["rewrite_key"]))
    if calendar is None or rewrite is None:
        step.outcome = _failed(action, "NOTHING_TO_RESTORE")
        return
    event = calendar.get_event(rewrite.mailbox, rewrite.event_id)
    before = rewrite.before
    key = rewrite.action_key
    if event.body == before["body"]:
        step.outcome = _done(action, {"event_id": rewrite.event_id, "unchanged": True})
        step.prepare.append(lambda session: CutoverRepository(session, context.tenant_id).set_rewrite_state(
            key, "reverted", now=context.now()))
        return
    def write() -> Any:
        """PATCH the stored body back under If-Match; on a 412, only when the fresh copy is still exactly what the
        cutover wrote (an edit by the organiser since is theirs: the rollback of this event fails, nothing is
        overwritten)."""
        current = event
        for _attempt in range(MAX_EVENT_CONFLICTS):
            try:
                return calendar.update_event(rewrite.mailbox, rewrite.event_id, body_html=before["body"],
                                             location=before["location"], locations=before["locations"],
                                             if_match=current.change_key)
            except PreconditionFailed:
                current = calendar.get_event(rewrite.mailbox, rewrite.event_id)
                if current.body == before["body"]:
                    return current
                if current.body != rewrite.after["body"]:
                    raise PreconditionFailed("graph", "the organiser changed the event after the cutover: restore "
                                                      "it by hand from the stored body") from None
        raise PreconditionFailed("graph", "the event kept changing during the rollback")

    step.write = write

    def record(session: Session, _event: Any) -> ActionOutcome:
        CutoverRepository(session, context.tenant_id).set_rewrite_state(key, "reverted", now=context.now())
        return _done(action, {"event_id": rewrite.event_id})

    step.record = record


# ---- rewrite_calendar and restore_calendar: a Zoom or Webex series in its organiser's own calendar

def _raw(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _bytes_of(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _itip_attendees(data: bytes, organiser: str) -> list[str]:
    parsed = read_object(data)
    return [] if isinstance(parsed, IcalRefused) else [a for a in parsed.attendees if a != organiser.lower()]


def _prepare_itip(context: _Context, step: _Step, uid: str, sequence: int, recipients: int) -> datetime | None:
    """The iTIP's stamp and Message-ID, stored before anything is written (a resend is the same message); None when
    it was sent already."""
    from connectors.mail import message_id_for

    action = step.action
    prepared = context.notifications.get(action.key)
    if prepared is not None:
        return None if prepared.state == "sent" else prepared.stamp
    stamp = context.now()
    step.prepare.append(lambda session: CutoverRepository(session, context.tenant_id).prepare_notification(
        action_key=action.key, kind="itip_request", uid=uid, sequence=sequence, recipients=recipients,
        message_id=message_id_for(action.key, context.targets.mail_domain), payload={"channel": "itip"},
        stamp=stamp))
    return stamp


def _send_itip(context: _Context, action: ActionRow, data: bytes, stamp: datetime, *, link: str,
               rollback: bool = False) -> Any:
    from core.invitations import calendar_update_text

    organiser = str(action.payload["organiser"])
    parsed = read_object(data)
    summary = parsed.summary if not isinstance(parsed, IcalRefused) else ""
    platform = action.platform or Platform.ZOOM
    subject, text = calendar_update_text(summary, platform, link, rollback=rollback)
    mail = context.targets.mail
    assert mail is not None, "an iTIP is prepared only with a mail relay"
    return mail.send_itip(data, organiser=organiser, organiser_name=None, attendees=_itip_attendees(data, organiser),
                          subject=subject, text=text, idempotency_key=action.key, stamp=stamp)


def _plan_calendar_rewrite(context: _Context, step: _Step) -> None:
    """Read the organiser's event; store it as read before the PUT (the original a rollback puts back); PUT the
    rewrite under If-Match (the role re-reads and re-applies on a 412); then, where the server tells no attendee,
    mail the iTIP of the event as now stored, under its original UID."""
    action = step.action
    calendar, payload = context.targets.organisers, action.payload
    room = _room_to_show(context, step, calendar)
    if room is None or calendar is None:
        return
    itip = payload.get("channel") == Channel.ITIP_ORIGINAL_UID.value
    if itip and context.targets.mail is None:
        step.outcome = _failed(action, "MAIL_NOT_CONFIGURED")
        return
    organiser, href, join_key = str(payload["organiser"]), str(payload["href"]), str(payload["join_key"])
    event = calendar.read(organiser, href)
    if event is None:
        step.outcome = _failed(action, "EVENT_MISSING", "the organiser's event was deleted since the calendar scan")
        return
    existing = context.rewrites.get(action.key)
    if join_key in event.parsed.join_keys:      # not rewritten yet (a killed run's PUT never went): store it
        before = {"system": calendar.kind, "raw": _raw(event.data), "etag": event.etag}
        step.prepare.append(lambda session: CutoverRepository(session, context.tenant_id).prepare_rewrite(
            action_key=action.key, mailbox=organiser, event_id=href, before=before, after={"raw": None},
            now=context.now(), platform=action.platform or Platform.ZOOM))
    elif existing is None:
        reason = "EVENT_ALREADY_SHOWS_VISIO" if calendar.carries(event, room.url) else IcalRefusal.LINK_NOT_FOUND.value
        step.outcome = _failed(action, reason, "the event no longer carries the meeting's link")
        return
    stamp = _prepare_itip(context, step, event.parsed.uid, event.parsed.sequence + 1,
                          len(event.parsed.attendees) + 1) if itip else None
    telephony = room.telephony or {}

    def write() -> Any:
        written = calendar.rewrite(event, join_key=join_key, visio_url=room.url, phone=telephony.get("phone_number"),
                                   pin=telephony.get("pin_code"))
        if isinstance(written, IcalRefused) or stamp is None:
            return written, None
        return written, _send_itip(context, action, written.after, stamp, link=room.url)

    step.write = write

    def record(session: Session, result: Any) -> ActionOutcome:
        written, sent = result
        if isinstance(written, IcalRefused):
            return _failed(action, written.reason.value, written.detail)
        repository = CutoverRepository(session, context.tenant_id)
        after = {"raw": _raw(written.after), "etag": written.etag}
        if written.changed:   # the copy actually rewritten (a fresh one after a 412) is what a rollback puts back
            repository.prepare_rewrite(action_key=action.key, mailbox=organiser, event_id=href,
                                       before={"system": calendar.kind, "raw": _raw(written.before),
                                               "etag": event.etag}, after=after, now=context.now(),
                                       platform=action.platform or Platform.ZOOM)
        elif existing is not None and not existing.after.get("raw"):   # a killed run's PUT went, its record not
            repository.prepare_rewrite(action_key=action.key, mailbox=organiser, event_id=href,
                                       before=dict(existing.before), after=after, now=context.now(),
                                       platform=action.platform or Platform.ZOOM)
        repository.set_rewrite_state(action.key, "rewritten", now=context.now())
        if sent is not None:
            repository.mark_sent(action.key, recipients=int(sent.recipients), now=context.now())
        return _done(action, {"href": href, "channel": payload.get("channel"), "changed": written.changed,
                              **({"conflicts": written.conflicts} if written.conflicts else {}),
                              **({"itip": sent.message_id} if sent is not None else {})})

    step.record = record


def _plan_calendar_restore(context: _Context, step: _Step) -> None:
    """Put the organiser's event back as it was read before the cutover (its SEQUENCE above the rewrite's), under
    If-Match; an edit of theirs since the cutover is kept. The same channel tells the attendees."""
    action = step.action
    calendar = context.targets.organisers
    key = str(action.payload["rewrite_key"])
    rewrite = context.rewrites.get(key)
    if calendar is None or rewrite is None or not rewrite.after.get("raw"):
        step.outcome = _failed(action, "NOTHING_TO_RESTORE")
        return
    original, rewritten = _bytes_of(rewrite.before["raw"]), _bytes_of(rewrite.after["raw"])
    itip = action.payload.get("channel") == Channel.ITIP_ORIGINAL_UID.value
    current = calendar.read(rewrite.mailbox, rewrite.event_id)
    if current is None:
        step.outcome = _failed(action, "EVENT_MISSING", "the organiser's event was deleted after the cutover")
        return
    join_key = str(action.payload.get("join_key") or "")
    restored_already = join_key in current.parsed.join_keys
    stamp = _prepare_itip(context, step, current.parsed.uid, current.parsed.sequence + 1,
                          len(current.parsed.attendees) + 1) if itip and context.targets.mail is not None else None
    old_link = str(action.payload.get("old_url") or "")

    def write() -> Any:
        if restored_already:    # a killed run's PUT went: nothing to write again (no second update)
            written = current.data
        else:
            sequence = read_object(rewritten)
            written = calendar.restore(rewrite.mailbox, rewrite.event_id, original=original, rewritten=rewritten,
                                       sequence=0 if isinstance(sequence, IcalRefused) else sequence.sequence)
        data = written if isinstance(written, bytes) else written.after
        sent = _send_itip(context, action, data, stamp, link=old_link, rollback=True) if stamp is not None else None
        return written, sent

    step.write = write

    def record(session: Session, result: Any) -> ActionOutcome:
        written, sent = result
        repository = CutoverRepository(session, context.tenant_id)
        repository.set_rewrite_state(key, "reverted", now=context.now())
        if sent is not None:
            repository.mark_sent(action.key, recipients=int(sent.recipients), now=context.now())
        kept = list(getattr(written, "kept", ()))
        return _done(action, {"href": rewrite.event_id, **({"kept": kept} if kept else {}),
                              **({"itip": sent.message_id} if sent is not None else {})})

    step.record = record


# ---- send_invitation and send_rollback

def _mail_steps(context: _Context, actions: Sequence[ActionRow], session: Session) -> list[_Step]:
    """Updates built and stored before they are sent (no external read: runs in the main thread)."""
    from connectors.mail import message_id_for

    steps = []
    for action in actions:
        step = _Step(action)
        steps.append(step)
        mail = context.targets.mail
        if mail is None:
            step.outcome = _failed(action, "MAIL_NOT_CONFIGURED")
            continue
        prepared = context.notifications.get(action.key)
        if prepared is not None:
            update, stamp = invitation_from_payload(prepared.payload), prepared.stamp
        else:
            built = _build_update(context, session, action)
            if isinstance(built, ActionOutcome):
                step.outcome = built
                continue
            update, stamp = built, context.now()
            message_id = message_id_for(action.key, context.targets.mail_domain)
            step.prepare.append((lambda upd, stp, mid: lambda s: CutoverRepository(s, context.tenant_id)
                                 .prepare_notification(action_key=upd.idempotency_key, kind=upd.purpose.value,
                                                       uid=upd.uid, sequence=upd.sequence,
                                                       recipients=len(upd.attendees) + 1, message_id=mid,
                                                       payload=invitation_payload(upd), stamp=stp))(
                update, stamp, message_id))
        step.write = (lambda upd, stp, sender: lambda: sender.send(upd, stamp=stp))(update, stamp, mail)
        step.record = (lambda act: lambda s, sent: _record_sent(context, s, act, sent))(action)
    return steps


def _build_update(context: _Context, session: Session, action: ActionRow) -> InvitationUpdate | ActionOutcome:
    repo = CutoverRepository(session, context.tenant_id)
    if action.kind is ActionKind.SEND_ROLLBACK:
        sent = repo.notification_of(str(action.payload["invite_key"]))
        if sent is None or not sent.payload:
            return _failed(action, "NOTHING_TO_ROLL_BACK")
        original = invitation_from_payload(sent.payload)
        return build_rollback_update(original, idempotency_key=action.key,
                                     previous_sequence=max(original.sequence, repo.last_sequence(original.uid)))
    room = context.rooms.get(action.depends_on or "")
    meeting = HostRepository(session, context.tenant_id).meeting(action.platform.value if action.platform else "",
                                                                 action.meeting_id or "")
    if room is None or not room.url or meeting is None:
        return _failed(action, "ROOM_OR_MEETING_MISSING")
    from core.invitations import invitation_uid

    uid = invitation_uid(meeting.platform, meeting.external_id)
    built = build_invitation_update(meeting, visio_url=room.url, previous_sequence=repo.last_sequence(uid),
                                    idempotency_key=action.key)
    if isinstance(built, NotInvitable):
        return ActionOutcome(action.id, ActionState.SKIPPED, reason=f"not_invitable:{built.reason.value}")
    return built


def _record_sent(context: _Context, session: Session, action: ActionRow, sent: Any) -> ActionOutcome:
    CutoverRepository(session, context.tenant_id).mark_sent(action.key, recipients=int(sent.recipients),
                                                            now=context.now())
    return _done(action, {"message_id": sent.message_id, "sequence": sent.sequence, "recipients": sent.recipients,
                          "refused": len(sent.refused)})


# ---- the batch

def _by_host(actions: Sequence[ActionRow]) -> list[list[ActionRow]]:
    groups: dict[str, list[ActionRow]] = {}
    for action in actions:
        groups.setdefault(action.host_anchor or _owner(action) or action.key, []).append(action)
    return list(groups.values())


def _load_context(context: _Context, session: Session, actions: Sequence[ActionRow]) -> None:
    repo = CutoverRepository(session, context.tenant_id)
    for action in actions:
        if action.depends_on and action.depends_on not in context.rooms:
            context.rooms[action.depends_on] = repo.room_of(action.depends_on)
        if action.kind in (ActionKind.REWRITE_EVENT, ActionKind.REWRITE_CALENDAR):
            context.rewrites[action.key] = repo.rewrite_of(action.key)
        elif action.kind in (ActionKind.RESTORE_EVENT, ActionKind.RESTORE_CALENDAR):
            key = str(action.payload["rewrite_key"])
            context.rewrites[key] = repo.rewrite_of(key)
        if action.kind in (ActionKind.REWRITE_CALENDAR, ActionKind.RESTORE_CALENDAR, ActionKind.SEND_INVITATION,
                           ActionKind.SEND_ROLLBACK):   # the mail each sends (an iTIP, an update)
            context.notifications[action.key] = repo.notification_of(action.key)
        elif action.kind is ActionKind.CREATE_ROOM and (email := _owner(action)):
            context.listed[email.lower()] = repo.visio_user(email)
    context.rewrites = {key: row for key, row in context.rewrites.items() if row is not None}
    context.notifications = {key: row for key, row in context.notifications.items() if row is not None}


def _apply_host(steps: list[_Step]) -> None:
    for step in steps:
        if step.outcome is not None or step.write is None:
            continue
        try:
            step.result = step.write()
        except Exception as error:  # recorded as the action's outcome below, never swallowed
            step.error = error


def _systems_of(actions: Sequence[ActionRow]) -> set[str]:
    """The external systems a batch writes to (rooms: Visio; events: Teams; mails: the relay, not budgeted)."""
    systems = {"visio" for a in actions if a.kind is ActionKind.CREATE_ROOM}
    return systems | {"teams" for a in actions if a.kind in (ActionKind.REWRITE_EVENT, ActionKind.RESTORE_EVENT)}


@task(name="apply-actions", cache_policy=NO_CACHE)
def apply_actions(context: _Context, actions: list[ActionRow]) -> dict[str, int]:
    """Prepare, apply and record one batch of claimed actions; returns outcomes by state."""
    context.rooms, context.rewrites, context.notifications, context.listed = {}, {}, {}, {}
    with transaction(context.database_url) as session:
        _load_context(context, session, actions)
        mail_actions = [a for a in actions if a.kind in (ActionKind.SEND_INVITATION, ActionKind.SEND_ROLLBACK)]
        mail_steps = _mail_steps(context, mail_actions, session)
    groups = _by_host([a for a in actions if a not in mail_actions])

    def prepare(group: list[ActionRow]) -> list[_Step]:
        if group[0].kind is ActionKind.CREATE_ROOM:
            return _room_steps(context, group)
        return _event_steps(context, group)

    with ExitStack() as held, ThreadPoolExecutor(max_workers=context.targets.hosts_in_parallel) as pool:
        for system in sorted(_systems_of(actions) & set(context.budgets)):  # one order everywhere: no deadlock
            held.enter_context(slot(context.budgets[system]))
        per_host = list(pool.map(prepare, groups))
        steps = [step for host in per_host for step in host] + mail_steps
        with transaction(context.database_url) as session:
            for step in steps:
                for prepared in step.prepare:
                    prepared(session)
        per_host += [[step] for step in mail_steps]
        list(pool.map(_apply_host, per_host))
    outcomes = []
    stop: str | None = None
    with transaction(context.database_url) as session:
        for step in steps:
            if step.outcome is not None:
                outcome = step.outcome
            elif step.error is not None:
                outcome = _from_error(step.action, step.error)
            elif step.record is not None:
                outcome = step.record(session, step.result)
            else:
                outcome = _done(step.action)
            if outcome.reason == "AUTH" or (outcome.state is ActionState.PENDING and outcome.reason
                                            and outcome.reason not in ("TRANSIENT",)):
                stop = outcome.reason
            outcomes.append(outcome)
        PlanRepository(session, context.tenant_id).record(outcomes, now=context.now())
    if stop is not None:
        raise ApplicationRefused(f"the application was refused ({stop}): the run stops, nothing else is applied")
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.state.value] = counts.get(outcome.state.value, 0) + 1
    return counts


@task(name="reconcile-claims", cache_policy=NO_CACHE)
def reconcile(context: _Context) -> dict[str, int]:
    """Actions a killed run left claimed: rooms it created are adopted, everything else goes back to pending."""
    with transaction(context.database_url) as session:
        stale = PlanRepository(session, context.tenant_id).stale_claims(context.wave_id, run_id=context.run_id)
        if not stale:
            return {"stale": 0, "adopted": 0}
        _load_context(context, session, stale)
        known = {email: set(row.rooms_before) | CutoverRepository(session, context.tenant_id).room_ids_of(email)
                 for email, row in context.listed.items() if row is not None}
    rooms = [a for a in stale if a.kind is ActionKind.CREATE_ROOM]
    outcomes = [ActionOutcome(a.id, ActionState.PENDING, reason=a.reason) for a in stale if a not in rooms]
    adopted = 0
    groups: dict[str, list[ActionRow]] = {}
    for action in rooms:
        groups.setdefault(_owner(action).lower(), []).append(action)
    with transaction(context.database_url) as session:
        for email, actions in groups.items():
            if email not in known:  # never listed: nothing was created for this host
                outcomes += [ActionOutcome(a.id, ActionState.PENDING) for a in actions]
                continue
            listed = list(context.targets.visio.iter_rooms(email))
            orphans = [room for room in listed if room.id not in known[email]]
            for action in sorted(actions, key=lambda a: a.key):
                level = str(action.payload.get("access_level") or "trusted")
                match = next((room for room in orphans if room.access_level.value == level), None)
                if match is None:
                    outcomes.append(ActionOutcome(action.id, ActionState.PENDING))
                    continue
                orphans.remove(match)
                outcomes.append(_record_room(context, session, action, match, adopted=True))
                adopted += 1
            # Only what this listing taught: the host's user id (the token that listed was issued for it; kept when
            # unknown) and rooms that are not bascule's (the repository leaves out rooms created or adopted).
            token = context.targets.visio.token_for(email)
            CutoverRepository(session, context.tenant_id).save_visio_user(
                email, user_id=None if isinstance(token, VisioRefusal) else token.user_id,
                rooms_before=[r.id for r in listed], run_id=context.run_id, now=context.now())
        PlanRepository(session, context.tenant_id).record(outcomes, now=context.now())
    return {"stale": len(stale), "adopted": adopted}


def _drain(context: _Context, kinds: Sequence[ActionKind], *, batch: int, progress: Callable[[int], None]) -> int:
    """Claim and apply batches until nothing of these kinds is ready; returns actions attempted."""
    attempted = 0
    while True:
        checkpoint()  # the operator's Ctrl-C takes effect between batches; claims of a batch are never stranded
        with transaction(context.database_url) as session:
            claimed = PlanRepository(session, context.tenant_id).claim(
                context.wave_id, kinds=kinds, states=[ActionState.PENDING], limit=batch, run_id=context.run_id,
                now=context.now())
        if not claimed:
            return attempted
        apply_actions(context, claimed)
        attempted += len(claimed)
        progress(attempted)


def shared_budgets(tenant_id: str, settings: Settings) -> dict[str, str]:
    """With BASCULE_SHARED_LIMITS, the Prefect global concurrency limits a cutover's batches hold: the tenant's
    Visio application and its Graph tenant (the same limit extraction holds, so both share one Graph budget)."""
    if not settings.shared_limits:
        return {}
    budgets = {system: limit_name(tenant_id, system) for system in ("visio", "teams")}
    ensure_limits(sorted(budgets.values()), slots=settings.account_slots)
    return budgets


# ----------------------------------------------------------------------------------------------- summaries

def outcome_summary(database_url: str, tenant_id: str, wave_id: int) -> dict[str, Any]:
    """Rooms created, events rewritten, invitations sent, held, failed by reason, flagged by kind."""
    with transaction(database_url) as session:
        plan = PlanRepository(session, tenant_id)
        counts = plan.counts(wave_id)
        failed = plan.reasons(wave_id, states=[ActionState.FAILED])
        held = plan.reasons(wave_id, states=[ActionState.HELD])
        uncertain = sum(states.get(ActionState.CLAIMED.value, 0) for states in counts.values())
        flagged = plan.flag_counts(wave_id)
        channels = plan.series_by_channel(wave_id, states=[ActionState.DONE])

    def n(kind: ActionKind, state: ActionState = ActionState.DONE) -> int:
        return counts.get(kind.value, {}).get(state.value, 0)

    return {"rooms_created": n(ActionKind.CREATE_ROOM), "events_rewritten": n(ActionKind.REWRITE_EVENT),
            "calendar_events_rewritten": n(ActionKind.REWRITE_CALENDAR),
            "invitations_sent": n(ActionKind.SEND_INVITATION), "events_restored": n(ActionKind.RESTORE_EVENT),
            "calendar_events_restored": n(ActionKind.RESTORE_CALENDAR), "series_by_channel": channels,
            "rollback_invitations_sent": n(ActionKind.SEND_ROLLBACK),
            "held": sum(held.values()), "held_by_reason": held, "failed_by_reason": failed,
            "pending": sum(states.get(ActionState.PENDING.value, 0) for states in counts.values()),
            "uncertain": uncertain, "flagged": flagged, "actions": counts}


def render_outcome(summary: dict[str, Any]) -> str:
    lines = [f"wave {summary['wave']}: {summary['state']} — {summary['rooms_created']} rooms, "
             f"{summary['events_rewritten']} Teams events rewritten, {summary.get('calendar_events_rewritten', 0)} "
             f"Zoom/Webex events rewritten in their organiser's calendar, {summary['invitations_sent']} invitations "
             "sent"]
    channels = summary.get("series_by_channel") or {}
    if any(channels.values()):
        lines.append("  series by channel: " + ", ".join(f"{channel} {n}" for channel, n in channels.items())
                     + (f" ({channels['mail_invented_uid']} under a made-up UID: their attendees got a second event, "
                        "uid_unknown in the plan)" if channels.get("mail_invented_uid") else ""))
    if summary.get("events_restored") or summary.get("rollback_invitations_sent") or summary.get(
            "calendar_events_restored"):
        lines.append(f"  rolled back: {summary['events_restored']} Teams events and "
                     f"{summary.get('calendar_events_restored', 0)} organisers' events restored, "
                     f"{summary['rollback_invitations_sent']} updates with the old link sent")
    if summary["held"]:
        lines.append("  held: " + ", ".join(f"{k} {v}" for k, v in summary["held_by_reason"].items()))
    if summary["failed_by_reason"]:
        lines.append("  failed: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["failed_by_reason"].items())))
        if ReasonCode.VISIO_ID_REUSED in summary["failed_by_reason"]:
            lines.append(f"  {ReasonCode.VISIO_ID_REUSED}: Visio gave rooms ids or slugs bascule had recorded for "
                         "other series (tell the Visio operators), then run again with --retry-failed")
    if summary["pending"]:
        lines.append(f"  still pending: {summary['pending']} (waiting for a room that failed or is held, or "
                     "transient errors: run again)")
    if summary["uncertain"]:
        lines.append(f"  uncertain: {summary['uncertain']} room creations to reconcile: run the cutover again")
    return "\n".join(lines)


def _markdown(title: str, summary: dict[str, Any]) -> str:
    rows = ["| Outcome | Count |", "|---|---|"]
    for key in ("rooms_created", "events_rewritten", "calendar_events_rewritten", "invitations_sent",
                "events_restored", "calendar_events_restored", "rollback_invitations_sent", "held", "pending",
                "uncertain"):
        rows.append(f"| {key.replace('_', ' ')} | {summary.get(key, 0)} |")
    actions = ["| Action | State | Count |", "|---|---|---|"]
    actions += [f"| {kind} | {state} | {count} |" for kind, states in sorted(summary["actions"].items())
                for state, count in sorted(states.items())]
    held = ["| Held: reason | Actions |", "|---|---|"]
    held += [f"| {reason} | {count} |" for reason, count in sorted(summary["held_by_reason"].items())]
    failed = ["| Failed: reason | Actions |", "|---|---|"]
    failed += [f"| {reason} | {count} |" for reason, count in sorted(summary["failed_by_reason"].items())]
    channels = ["| Series by channel | Count |", "|---|---|"]
    channels += [f"| {channel} | {count} |" for channel, count in (summary.get("series_by_channel") or {}).items()]
    flagged = ["| Flag | Meetings |", "|---|---|"]
    flagged += [f"| {flag} | {count} |" for flag, count in summary["flagged"].items()]
    return "\n".join([f"## {title}: {summary.get('state', '')}", "", *rows, "", *actions, "", *held, "", *failed, "",
                      *channels, "", *flagged, "", "Every meeting and action: `bascule wave show --csv FILE`", ""])


# ----------------------------------------------------------------------------------------------- flows

def _instant(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _progress(key: str, total: int) -> Callable[[int], None]:
    bar = Progress(key, "Actions applied", label="cutover")

    def update(done: int) -> None:
        bar.set(100.0 * done / max(1, total))

    return update


def _key(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


@flow(name="cutover", flow_run_name=run_name("cutover"), log_prints=False)
@one_per_tenant("cutover")
def cutover(tenant_file: str, wave: str, apply: bool = False, retry_held: bool = True, retry_failed: bool = False,
            batch_size: int = BATCH,
            now: str | None = None, force: bool = False, targets: TargetsFactory | None = None) -> dict[str, Any]:
    """Apply the frozen plan (only with `apply`; without it, show what would be done: the dry run).

    Applying needs a tenant onboarded and ready with this very file (its credentials and scopes were checked), as
    the plan did, unless `force`.
    """
    from flows.onboard import require_ready

    logger = get_run_logger()
    settings = Settings()
    database_url = settings.database
    tenant = TenantConfig.load(Path(tenant_file))
    found = load_wave(database_url, tenant.id, wave)
    if not apply:
        from flows.plans import dry_run_markdown, would_apply

        plan = plan_summary(database_url, tenant.id, found)
        not_now = check_transition(found.state, WaveState.CUT_OVER, now=_instant(now))
        refusal = None if not_now is None else str(not_now) + (
            " (freeze it first: bascule wave freeze)" if found.state is WaveState.PLANNED else "")
        would = would_apply(plan.actions, retry_held=retry_held, retry_failed=retry_failed)
        create_markdown_artifact(key=f"cutover-dry-run-{tenant.id}-{_key(wave)}",
                                 markdown=dry_run_markdown(plan, would, refusal),
                                 description=f"Cutover of wave {wave}: dry run")
        return {"dry_run": True, **plan.__dict__, "would_apply": would, "apply_refused": refusal,
                "retry_failed": retry_failed}
    require_ready(database_url, tenant.id, force=force, config_hash=TenantConfig.file_hash(Path(tenant_file)))
    at = _instant(now)
    refused = check_transition(found.state, WaveState.CUT_OVER, now=at)
    if refused is not None:
        raise WaveError(f"wave {wave}: {refused}" + (" (freeze it first: bascule wave freeze)"
                                                     if found.state is WaveState.PLANNED else ""))
    run_id = uuid.uuid4().hex
    # Held actions (hosts who had not logged in) are tried again on every run; failed ones (a refusal, e.g. a domain
    # the Visio application did not allow yet) only when asked, once the cause is fixed.
    again = [state for state, wanted in ((ActionState.HELD, retry_held), (ActionState.FAILED, retry_failed))
             if wanted]
    with transaction(database_url) as session:
        if again:
            from sqlalchemy import update

            from db import models

            session.execute(update(models.PlanAction).where(
                models.PlanAction.tenant_id == tenant.id, models.PlanAction.wave_id == found.id,
                models.PlanAction.kind.in_([kind.value for kind in CUTOVER_KINDS]),
                models.PlanAction.state.in_([state.value for state in again])).values(
                state=ActionState.PENDING.value, claimed_by=None))
        total = sum(states.get(ActionState.PENDING.value, 0) + states.get(ActionState.CLAIMED.value, 0)
                    for kind, states in PlanRepository(session, tenant.id).counts(found.id).items()
                    if kind in {k.value for k in CUTOVER_KINDS})
    progress = _progress(f"cutover-{tenant.id}-{_key(wave)}", total)
    with (targets or default_targets)(tenant, settings) as built:
        context = _Context(database_url, tenant.id, found.id, run_id, built, lambda: datetime.now(UTC),
                           budgets=shared_budgets(tenant.id, settings))
        reconciled = reconcile(context)
        if reconciled["stale"]:
            logger.info("tenant %s wave %s: %d actions of a killed run reconciled (%d rooms adopted)", tenant.id,
                        wave, reconciled["stale"], reconciled["adopted"])
        try:
            done = _drain(context, [ActionKind.CREATE_ROOM], batch=batch_size, progress=progress)
            _drain(context, [ActionKind.REWRITE_EVENT, ActionKind.REWRITE_CALENDAR, ActionKind.SEND_INVITATION],
                   batch=batch_size,
                   progress=lambda n: progress(done + n))
        except StopRequested as stop:  # what was applied stays applied; the next run goes on from there
            return cancelled(stop)  # type: ignore[no-any-return]
    progress(total)
    summary = outcome_summary(database_url, tenant.id, found.id)
    with transaction(database_url) as session:
        current = WaveRepository(session, tenant.id).get(wave)
        assert current is not None
        if not summary["uncertain"] and current.state is not WaveState.CUT_OVER:
            cut_at = current.cut_over_at or at
            guard = cut_at + timedelta(hours=tenant.waves.rollback_guard_hours)
            audit_state(session, tenant.id, current, WaveState.CUT_OVER, now=at, run_id=run_id,
                        rooms=summary["rooms_created"], failed=sum(summary["failed_by_reason"].values()))
            WaveRepository(session, tenant.id).set_state(current.id, WaveState.CUT_OVER, now=at, cut_over_at=cut_at,
                                                         guard_until=guard)
    state = load_wave(database_url, tenant.id, wave).state
    summary = {"tenant": tenant.id, "wave": wave, "state": state.value, "run": run_id, **summary}
    create_markdown_artifact(key=f"cutover-{tenant.id}-{_key(wave)}", markdown=_markdown(f"Cutover of {wave}", summary),
                             description=f"Cutover of wave {wave}")
    logger.info("tenant %s wave %s: %d rooms, %d events rewritten, %d invitations, %d held, %d failed", tenant.id,
                wave, summary["rooms_created"], summary["events_rewritten"], summary["invitations_sent"],
                summary["held"], sum(summary["failed_by_reason"].values()))
    return summary


@task(name="verify-batch", cache_policy=NO_CACHE)
def verify_batch(context: _Context, actions: list[ActionRow]) -> dict[str, Any]:
    """Read back one batch of applied actions; returns counts and problems (ids only)."""
    problems: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    with transaction(context.database_url) as session:
        _load_context(context, session, actions)
        repo = CutoverRepository(session, context.tenant_id)
        rooms = {a.key: repo.room_of(a.key) for a in actions if a.kind is ActionKind.CREATE_ROOM}
        links = {a.key: [(link["old_key"], repo.lookup(old_key=str(link["old_key"])))
                         for link in a.payload.get("links") or []] for a in actions
                 if a.kind is ActionKind.CREATE_ROOM}

    def problem(kind: str, action: ActionRow, detail: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        problems.append({"problem": kind, "action": action.key, "detail": detail})

    def check(action: ActionRow) -> None:
        if action.kind is ActionKind.CREATE_ROOM:
            room = rooms.get(action.key)
            if room is None:
                problem("room_not_recorded", action, "")
                return
            found = context.targets.visio.retrieve_room(room.owner_email, room.meet_id)
            if isinstance(found, VisioRefusal):
                problem("room_missing" if found.reason.value == "NOT_FOUND" else "room_not_owned", action,
                        found.reason.value)
                return
            if room.owner_user_id and found.owner_user_id != room.owner_user_id:
                problem("room_owner_changed", action, room.meet_id)
            elif found.access_level.value != action.payload.get("access_level"):
                problem("room_access_level", action, room.meet_id)
            else:
                counts["rooms_ok"] = counts.get("rooms_ok", 0) + 1
            for old_key, found_links in links.get(action.key, []):
                if not any(link.room_id == room.id and link.status == "mapped" for link, _ in found_links):
                    problem("link_not_mapped", action, str(old_key))
                else:
                    counts["links_ok"] = counts.get("links_ok", 0) + 1
        elif action.kind is ActionKind.REWRITE_EVENT:
            room = context.rooms.get(action.depends_on or "")
            calendar = context.targets.calendar
            if calendar is None:
                problem("calendar_not_configured", action, "")
                return
            try:
                event = calendar.get_event(str(action.payload["mailbox"]), str(action.payload["event_id"]))
            except NotFound:
                problem("event_missing", action, "")
                return
            if room is None or not shows_visio(event, room.url):
                problem("event_without_visio_link", action, "")
            else:
                counts["events_ok"] = counts.get("events_ok", 0) + 1
        elif action.kind is ActionKind.REWRITE_CALENDAR:
            room = context.rooms.get(action.depends_on or "")
            organisers = context.targets.organisers
            if organisers is None:
                problem("calendar_not_configured", action, "")
                return
            stored = organisers.read(str(action.payload["organiser"]), str(action.payload["href"]))
            if stored is None:
                problem("event_missing", action, "")
            elif (room is None or not room.url or not organisers.carries(stored, room.url)
                  or str(action.payload["join_key"]) in stored.parsed.join_keys):
                problem("event_without_visio_link", action, "")
            elif action.payload.get("channel") == Channel.ITIP_ORIGINAL_UID.value and (
                    (sent := context.notifications.get(action.key)) is None or sent.state != "sent"):
                problem("itip_not_sent", action, "")
            else:
                counts["calendar_events_ok"] = counts.get("calendar_events_ok", 0) + 1
        elif action.kind is ActionKind.SEND_INVITATION:
            sent = context.notifications.get(action.key)
            if sent is None or sent.state != "sent":
                problem("invitation_not_sent", action, "")
            else:
                counts["invitations_ok"] = counts.get("invitations_ok", 0) + 1

    def check_host(group: list[ActionRow]) -> None:
        for action in group:
            check(action)

    with ThreadPoolExecutor(max_workers=context.targets.hosts_in_parallel) as pool:
        list(pool.map(check_host, _by_host(actions)))
    with transaction(context.database_url) as session:
        bad = {p["action"] for p in problems}
        CutoverRepository(session, context.tenant_id).mark_room_verified(
            [room.id for key, room in rooms.items() if room is not None and key not in bad], now=context.now())
    return {"counts": counts, "problems": problems}


def _towards(tenant_file: str, wave: str, target: WaveState,
             now: str | None) -> tuple[Settings, TenantConfig, WaveRow, datetime]:
    """Settings, tenant, wave and instant of a flow that moves the wave to `target`; refused out of order."""
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    found = load_wave(settings.database, tenant.id, wave)
    at = _instant(now)
    refused = check_transition(found.state, target, now=at, guard_until=found.guard_until)
    if refused is not None:
        raise WaveError(f"wave {wave}: {refused}")
    return settings, tenant, found, at


@flow(name="verify-wave", flow_run_name=run_name("verify-wave"), log_prints=False)
def verify_wave(tenant_file: str, wave: str, now: str | None = None,
                targets: TargetsFactory | None = None) -> dict[str, Any]:
    """Every room exists and is owned by the right user, every link is mapped, every event shows the new link."""
    settings, tenant, found, at = _towards(tenant_file, wave, WaveState.VERIFIED, now)
    database_url = settings.database
    counts: dict[str, int] = {}
    problems: list[dict[str, str]] = []
    with (targets or default_targets)(tenant, settings) as built:
        context = _Context(database_url, tenant.id, found.id, uuid.uuid4().hex, built, lambda: datetime.now(UTC))
        with transaction(database_url) as session:
            applied = list(PlanRepository(session, tenant.id).iter_actions(found.id, kinds=CUTOVER_KINDS,
                                                                            states=[ActionState.DONE]))
        for start in range(0, len(applied), BATCH):
            result = verify_batch(context, applied[start:start + BATCH])
            for key, value in result["counts"].items():
                counts[key] = counts.get(key, 0) + value
            problems += result["problems"]
    with transaction(database_url) as session:
        counts_by_kind = PlanRepository(session, tenant.id).counts(found.id)
    # What the cutover did not apply (held hosts, documented refusals, rooms they wait for) keeps the wave open.
    outstanding = {state.value: sum(counts_by_kind.get(kind.value, {}).get(state.value, 0) for kind in CUTOVER_KINDS)
                   for state in (ActionState.PENDING, ActionState.CLAIMED, ActionState.HELD, ActionState.FAILED)}
    outstanding = {state: count for state, count in outstanding.items() if count}
    verified = not problems and not outstanding
    with transaction(database_url) as session:
        if verified:
            audit_state(session, tenant.id, found, WaveState.VERIFIED, now=at, checked=counts)
            WaveRepository(session, tenant.id).set_state(found.id, WaveState.VERIFIED, now=at)
    report = {"tenant": tenant.id, "wave": wave, "verified": verified,
              "state": load_wave(database_url, tenant.id, wave).state.value, "checked": len(applied), "counts": counts,
              "problems": problems[:200], "problem_count": len(problems), "outstanding": outstanding}
    rows = ["| Check | Count |", "|---|---|", *(f"| {k} | {v} |" for k, v in sorted(counts.items()))]
    create_markdown_artifact(key=f"verify-{tenant.id}-{_key(wave)}", markdown="\n".join(
        [f"## Verification of {wave}: {'verified' if verified else f'{len(problems)} problems'}", "", *rows]),
        description=f"Verification of wave {wave}")
    return report


@flow(name="rollback-wave", flow_run_name=run_name("rollback-wave"), log_prints=False)
@one_per_tenant("rollback-wave")
@stoppable
def rollback_wave(tenant_file: str, wave: str, now: str | None = None, batch_size: int = BATCH,
                  targets: TargetsFactory | None = None) -> dict[str, Any]:
    """Inside the guard window: events restored exactly, old links mailed back, links reverted, rooms reported."""
    settings, tenant, found, at = _towards(tenant_file, wave, WaveState.ROLLED_BACK, now)
    database_url = settings.database
    _plan_rollback(database_url, tenant.id, found.id, wave)
    run_id = uuid.uuid4().hex
    with (targets or default_targets)(tenant, settings) as built:
        context = _Context(database_url, tenant.id, found.id, run_id, built, lambda: datetime.now(UTC),
                           budgets=shared_budgets(tenant.id, settings))
        reconcile(context)
        _drain(context, list(ROLLBACK_KINDS), batch=batch_size, progress=lambda _n: None)
    with transaction(database_url) as session:
        repo = CutoverRepository(session, tenant.id)
        rooms = [{"meet_id": room.meet_id, "url": room.url or "", "host": room.host_anchor or ""}
                 for room in repo.rooms_of_wave(found.id)]
    summary = outcome_summary(database_url, tenant.id, found.id)
    incomplete = sum(summary["actions"].get(kind.value, {}).get(state.value, 0) for kind in ROLLBACK_KINDS
                     for state in (ActionState.PENDING, ActionState.CLAIMED, ActionState.FAILED))
    with transaction(database_url) as session:
        reverted = CutoverRepository(session, tenant.id).set_link_status(found.id, "reverted", now=at)
        if not incomplete:
            audit_state(session, tenant.id, found, WaveState.ROLLED_BACK, now=at, rooms_left=len(rooms))
            WaveRepository(session, tenant.id).set_state(found.id, WaveState.ROLLED_BACK, now=at)
    state = load_wave(database_url, tenant.id, wave).state
    report = {"tenant": tenant.id, "wave": wave, "state": state.value, **summary, "links_reverted": reverted,
              "rooms_not_deleted": len(rooms), "rooms": rooms[:200], "incomplete": incomplete}
    lines = [f"## Rollback of {wave}: {state.value}", "",
             f"{summary['events_restored']} events restored, {summary['rollback_invitations_sent']} updates sent, "
             f"{reverted} links reverted.", "",
             f"**{len(rooms)} Visio rooms cannot be deleted through the External API**: ask the Visio operators "
             "to remove them (ids below).", "", "| Room | URL |", "|---|---|",
             *(f"| {room['meet_id']} | {room['url']} |" for room in rooms[:500])]
    create_markdown_artifact(key=f"rollback-{tenant.id}-{_key(wave)}", markdown="\n".join(lines),
                             description=f"Rollback of wave {wave}")
    return report


def _plan_rollback(database_url: str, tenant_id: str, wave_id: int, wave: str) -> None:
    """The rollback actions (keyed, so planning them again is a no-op); pending cutover actions will never run."""
    from core.waves import WaveAction

    with transaction(database_url) as session:
        plan = PlanRepository(session, tenant_id)
        repo = CutoverRepository(session, tenant_id)
        actions = []
        for action in plan.iter_actions(wave_id, kinds=[ActionKind.REWRITE_EVENT, ActionKind.REWRITE_CALENDAR,
                                                        ActionKind.SEND_INVITATION]):
            if action.kind is ActionKind.REWRITE_CALENDAR and repo.rewrite_of(action.key) is not None:
                meeting = HostRepository(session, tenant_id).meeting(action.platform.value if action.platform
                                                                     else "", action.meeting_id or "")
                actions.append(WaveAction(ActionKind.RESTORE_CALENDAR, f"{wave}:restore-calendar:{action.platform}:"
                                          f"{action.meeting_id}", action.platform, action.meeting_id,
                                          action.host_anchor, payload={
                                              "rewrite_key": action.key, "organiser": action.payload["organiser"],
                                              "href": action.payload["href"], "channel": action.payload["channel"],
                                              "join_key": action.payload["join_key"],
                                              "old_url": meeting.join_url if meeting is not None else ""}))
            elif action.kind is ActionKind.REWRITE_EVENT and repo.rewrite_of(action.key) is not None:
                actions.append(WaveAction(ActionKind.RESTORE_EVENT, f"{wave}:restore:{action.meeting_id}",
                                          action.platform, action.meeting_id, action.host_anchor,
                                          payload={"rewrite_key": action.key}))
            elif action.kind is ActionKind.SEND_INVITATION and repo.notification_of(action.key) is not None:
                actions.append(WaveAction(ActionKind.SEND_ROLLBACK, f"{wave}:uninvite:{action.platform}:"
                                          f"{action.meeting_id}", action.platform, action.meeting_id,
                                          action.host_anchor, payload={"invite_key": action.key}))
        plan.upsert(wave_id, actions, now=datetime.now(UTC))
        from sqlalchemy import update

        from db import models

        session.execute(update(models.PlanAction).where(
            models.PlanAction.tenant_id == tenant_id, models.PlanAction.wave_id == wave_id,
            models.PlanAction.kind.in_([k.value for k in CUTOVER_KINDS]),
            models.PlanAction.state.in_([ActionState.PENDING.value, ActionState.HELD.value]))
            .values(state=ActionState.SKIPPED.value, reason="rolled_back"))
