"""What a calendar update must say when a Zoom or Webex series moves to Visio, or moves back: values, no I/O.

Teams series are rewritten in place through Graph; Zoom and Webex organisers' attendees get an iCalendar update
(iTIP METHOD:REQUEST) mailed on the organiser's behalf. This module decides its content; connectors.mail renders
it with the icalendar library and sends it.

UID: an update only replaces the attendee's copy when it carries the UID of the original invitation. Zoom and
Webex do not expose the UID their invitations were sent with (and an organiser may have pasted the link into an
event of their own), so unless the caller knows it, the UID is derived from the platform meeting id:
`zoom-84120036571@bascule`, `webex-<series id>@bascule`. It is stable across runs, so the cutover update, a
resend and the rollback all address the same event; the first bascule invitation then appears next to the old
one, and its description says the old link is replaced.

SEQUENCE: the caller passes the sequence it last sent for that UID (0 when bascule never sent one); the update
carries that + 1, and so does the rollback after it. DTSTART is the series' own first start in its IANA zone (so
COUNT rules and past instances stay what they were) and the RRULE text is copied verbatim.

Exceptions: a migrated series keeps them. Occurrences the organiser deleted travel as exclusions (EXDATE), moved or
resized ones as overrides (one more VEVENT each, with the RECURRENCE-ID of the occurrence they replace), all in the
series' zone; without them the update would bring back a cancelled meeting or move a moved one back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.records import JsonValue, Meeting, MeetingKind, OccurrenceChange, Platform

__all__ = [
    "DEFAULT_DURATION",
    "InvitationPurpose",
    "InvitationUpdate",
    "NotInvitable",
    "NotInvitableReason",
    "SentInvitation",
    "build_invitation_update",
    "build_rollback_update",
    "calendar_update_text",
    "invitation_from_payload",
    "invitation_payload",
    "invitation_uid",
]

UID_DOMAIN = "bascule"
DEFAULT_DURATION = timedelta(minutes=60)   # Zoom's own default, for the rare meeting stored without a duration
_PLATFORM_NAMES = {Platform.ZOOM: "Zoom", Platform.WEBEX: "Webex", Platform.TEAMS: "Teams"}
_NOT_SCHEDULED = frozenset({MeetingKind.NO_FIXED_TIME, MeetingKind.PERSONAL_ROOM})


class InvitationPurpose(StrEnum):
    """Why the update is sent."""

    CUTOVER = "cutover"      # the series now meets in Visio
    ROLLBACK = "rollback"    # the series goes back to its old link


class NotInvitableReason(StrEnum):
    """Why a meeting gets no ICS update."""

    TEAMS_SERIES = "teams_series"          # rewritten in place through Graph instead
    NOT_SCHEDULED = "not_scheduled"        # no fixed time or a personal room: no calendar event to update
    EXPIRED_SERIES = "expired_series"
    NO_START = "no_start"
    NO_ORGANISER = "no_organiser"


@dataclass(frozen=True, slots=True)
class NotInvitable:
    """A meeting for which no update is built, and why."""

    meeting_id: str
    reason: NotInvitableReason


@dataclass(frozen=True, slots=True)
class InvitationUpdate:
    """An iTIP REQUEST updating one event: everything the rendered VEVENT and its e-mail carry.

    `start` is aware and expressed in `timezone` (the TZID); `link` is what LOCATION, URL and the description now
    point to, `replaced_link` the one it replaces. `idempotency_key` is the plan action's key: the e-mail's
    Message-ID derives from it, so a second send of the same action is recognisable. `exclusions` (EXDATE) and
    `exceptions` (overrides with a RECURRENCE-ID) are the series' deleted and moved occurrences, in `timezone`.
    """

    purpose: InvitationPurpose
    platform: Platform
    meeting_id: str
    uid: str
    sequence: int
    summary: str
    start: datetime
    timezone: str
    duration: timedelta
    rrule: str | None
    organiser: str
    attendees: tuple[str, ...]
    link: str
    replaced_link: str
    subject: str
    description: str
    idempotency_key: str
    organiser_name: str | None = None
    exclusions: tuple[datetime, ...] = ()
    exceptions: tuple[OccurrenceChange, ...] = ()

    @property
    def end(self) -> datetime:
        """DTEND: the same wall-clock arithmetic as the start, in the same zone."""
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class SentInvitation:
    """What the mail relay accepted for one update."""

    message_id: str
    uid: str
    sequence: int
    recipients: int
    refused: tuple[str, ...] = ()


def invitation_uid(platform: Platform, meeting_id: str) -> str:
    """The stable UID bascule gives a series whose original invitation UID is unknown."""
    return f"{platform.value}-{meeting_id}@{UID_DOMAIN}"


def build_invitation_update(meeting: Meeting, *, visio_url: str, previous_sequence: int, idempotency_key: str,
                            uid: str | None = None,
                            organiser_name: str | None = None) -> InvitationUpdate | NotInvitable:
    """The cutover update of a Zoom or Webex meeting: same series, same times, the Visio link instead of the old one."""
    if previous_sequence < 0:
        raise ValueError("previous_sequence must be 0 or more")
    if not visio_url:
        raise ValueError("visio_url is required")
    refusal = _refusal(meeting)
    if refusal is not None:
        return NotInvitable(meeting.external_id, refusal)
    assert meeting.start is not None  # checked by _refusal
    zone_name = _zone_name(meeting)
    zone = ZoneInfo(zone_name)
    start = meeting.start.astimezone(zone).replace(microsecond=0)
    series = meeting.recurrence is not None
    organiser = meeting.host_email.strip()
    subject, description = calendar_update_text(meeting.topic, meeting.platform, visio_url)
    return InvitationUpdate(
        purpose=InvitationPurpose.CUTOVER,
        platform=meeting.platform,
        meeting_id=meeting.external_id,
        uid=uid or invitation_uid(meeting.platform, meeting.external_id),
        sequence=previous_sequence + 1,
        summary=meeting.topic,
        start=start,
        timezone=zone_name,
        duration=timedelta(minutes=meeting.duration_minutes) if meeting.duration_minutes else DEFAULT_DURATION,
        rrule=meeting.recurrence.rrule if meeting.recurrence is not None else None,
        organiser=organiser,
        attendees=_attendees(meeting.invitees, organiser),
        link=visio_url,
        replaced_link=meeting.join_url,
        subject=subject,
        description=description,
        idempotency_key=idempotency_key,
        organiser_name=organiser_name,
        exclusions=tuple(moment.astimezone(zone) for moment in meeting.exclusions) if series else (),
        exceptions=tuple(OccurrenceChange(change.original.astimezone(zone), change.start.astimezone(zone),
                                          change.duration_minutes) for change in meeting.exceptions) if series else (),
    )


def calendar_update_text(summary: str, platform: Platform, link: str, *, rollback: bool = False) -> tuple[str, str]:
    """(subject, text) of the iTIP bascule mails for an organiser's event rewritten in place (or put back)."""
    name = _PLATFORM_NAMES[platform]
    if rollback:
        return (f"Mise à jour : {summary} reste sur {name}",
                f"Le passage de cette réunion sur Visio est annulé : elle reste sur {name}.\n\n"
                f"Rejoindre la réunion : {link}\n\nL'horaire et la récurrence ne changent pas.")
    return (f"Mise à jour : {summary} a lieu désormais sur Visio",
            f"Cette réunion a lieu désormais sur Visio, le service de visioconférence de l'État.\n\n"
            f"Rejoindre la réunion : {link}\n\nCe lien remplace l'ancien lien {name}. L'horaire et la récurrence "
            "ne changent pas.")


def build_rollback_update(sent: InvitationUpdate, *, idempotency_key: str,
                          previous_sequence: int | None = None) -> InvitationUpdate:
    """The update that puts back the link `sent` replaced: same UID and series, SEQUENCE + 1 again.

    `previous_sequence` defaults to the sequence `sent` carried; pass the latest one if other updates followed.
    """
    if sent.purpose is not InvitationPurpose.CUTOVER:
        raise ValueError("only a cutover update can be rolled back")
    last = sent.sequence if previous_sequence is None else previous_sequence
    if last < sent.sequence:
        raise ValueError("previous_sequence is older than the update being rolled back")
    subject, description = calendar_update_text(sent.summary, sent.platform, sent.replaced_link, rollback=True)
    return replace(
        sent,
        purpose=InvitationPurpose.ROLLBACK,
        sequence=last + 1,
        link=sent.replaced_link,
        replaced_link=sent.link,
        subject=subject,
        description=description,
        idempotency_key=idempotency_key,
    )


def invitation_payload(update: InvitationUpdate) -> dict[str, JsonValue]:
    """The update as JSON values, for a plan action or the record of what was sent."""
    return {
        "purpose": update.purpose.value, "platform": update.platform.value, "meeting_id": update.meeting_id,
        "uid": update.uid, "sequence": update.sequence, "summary": update.summary,
        "start": update.start.isoformat(), "timezone": update.timezone,
        "duration_seconds": int(update.duration.total_seconds()), "rrule": update.rrule,
        "organiser": update.organiser, "organiser_name": update.organiser_name,
        "attendees": list(update.attendees), "link": update.link, "replaced_link": update.replaced_link,
        "subject": update.subject, "description": update.description, "idempotency_key": update.idempotency_key,
        "exclusions": [moment.isoformat() for moment in update.exclusions],
        "exceptions": [{"original": change.original.isoformat(), "start": change.start.isoformat(),
                        "duration_minutes": change.duration_minutes} for change in update.exceptions],
    }


def invitation_from_payload(payload: Mapping[str, JsonValue]) -> InvitationUpdate:
    """The inverse of invitation_payload; a payload that does not fit raises ValueError."""
    try:
        zone = str(payload["timezone"])
        start = datetime.fromisoformat(str(payload["start"])).astimezone(ZoneInfo(zone))
        attendees = payload["attendees"]
        if not isinstance(attendees, list):
            raise ValueError("attendees must be a list")
        duration = payload["duration_seconds"]
        sequence = payload["sequence"]
        if not isinstance(duration, int) or not isinstance(sequence, int):
            raise ValueError("duration_seconds and sequence must be integers")
        rrule, organiser_name = payload.get("rrule"), payload.get("organiser_name")
        exclusions, exceptions = payload.get("exclusions") or [], payload.get("exceptions") or []
        if not isinstance(exclusions, list) or not isinstance(exceptions, list):
            raise ValueError("exclusions and exceptions must be lists")
        return InvitationUpdate(
            purpose=InvitationPurpose(str(payload["purpose"])), platform=Platform(str(payload["platform"])),
            meeting_id=str(payload["meeting_id"]), uid=str(payload["uid"]), sequence=sequence,
            summary=str(payload["summary"]), start=start, timezone=zone, duration=timedelta(seconds=duration),
            rrule=None if rrule is None else str(rrule), organiser=str(payload["organiser"]),
            attendees=tuple(str(item) for item in attendees), link=str(payload["link"]),
            replaced_link=str(payload["replaced_link"]), subject=str(payload["subject"]),
            description=str(payload["description"]), idempotency_key=str(payload["idempotency_key"]),
            organiser_name=None if organiser_name is None else str(organiser_name),
            exclusions=tuple(datetime.fromisoformat(str(moment)).astimezone(ZoneInfo(zone)) for moment in exclusions),
            exceptions=tuple(_change_from_json(change, ZoneInfo(zone)) for change in exceptions),
        )
    except (KeyError, TypeError, ZoneInfoNotFoundError) as error:
        raise ValueError(f"not an invitation payload: {error!r}") from error


def _change_from_json(document: JsonValue, zone: ZoneInfo) -> OccurrenceChange:
    if not isinstance(document, dict):
        raise ValueError("an exception must be an object")
    duration = document.get("duration_minutes")
    if duration is not None and not isinstance(duration, int):
        raise ValueError("duration_minutes must be an integer")
    return OccurrenceChange(datetime.fromisoformat(str(document["original"])).astimezone(zone),
                            datetime.fromisoformat(str(document["start"])).astimezone(zone), duration)


def _refusal(meeting: Meeting) -> NotInvitableReason | None:
    if meeting.platform is Platform.TEAMS:
        return NotInvitableReason.TEAMS_SERIES
    if meeting.kind in _NOT_SCHEDULED:
        return NotInvitableReason.NOT_SCHEDULED
    if meeting.kind is MeetingKind.EXPIRED_SERIES:
        return NotInvitableReason.EXPIRED_SERIES
    if meeting.start is None:
        return NotInvitableReason.NO_START
    if not meeting.host_email.strip():
        return NotInvitableReason.NO_ORGANISER
    return None


def _zone_name(meeting: Meeting) -> str:
    """The series' IANA zone (the recurrence's, else the meeting's); UTC when the platform gave none usable."""
    for name in (meeting.recurrence.timezone if meeting.recurrence else None, meeting.timezone):
        if name:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
            return name
    return "UTC"


def _attendees(invitees: tuple[str, ...], organiser: str) -> tuple[str, ...]:
    """Invitees in their order, once each (case-insensitively), without the organiser."""
    seen = {organiser.casefold()}
    kept: list[str] = []
    for address in invitees:
        cleaned = address.strip()
        if cleaned and cleaned.casefold() not in seen:
            seen.add(cleaned.casefold())
            kept.append(cleaned)
    return tuple(kept)
