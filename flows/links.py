"""Old link → new link, for the helpdesk: what a pasted Zoom, Teams or Webex link, meeting id or number, or SIP
address became; and the calendar update of a moved meeting, sent again.

A lookup names the meetings the reference may be (a bare 11-digit number may be a Zoom id or a Webex number: both
are tried) by their link key, their number key (Webex: the number on the invitation and in the SIP address) or
their platform id; a meeting with a Visio link answers with it, any other says where it stands — skipped by a plan
and why (it will not move), refused, held, planned, or not planned yet (core.helpdesk). What the helpdesk pasted is
never echoed back whole (a pasted e-mail can be long): at most its first 80 characters.

A resend is the calendar update the cutover mailed (same UID, SEQUENCE, DTSTAMP and content, stored before it was
sent) under a new Message-ID, so that mail systems deliver it again; to every recipient of the first one, or to
one address. It is audited (who, which meeting, to whom). A meeting that has not moved has nothing to resend, and
a Teams series was rewritten in place: Exchange already told its attendees.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core import Meeting, Platform
from core.emails import EmailAddress, parse_email
from core.helpdesk import meeting_status
from core.invitations import invitation_from_payload
from core.links import MAX_REFERENCE, lookup_keys, parse_meeting_reference
from db import models
from db.helpdesk import HelpdeskRepository
from db.repositories import AuditRepository
from db.waves import CutoverRepository
from flows.errors import OperatorError
from flows.runtime import transaction

log = logging.getLogger(__name__)

SHOWN = 80


class ResendRefused(OperatorError, ValueError):
    """Nothing to resend, or not by bascule (the message fits on one line)."""


def shown(reference: str) -> str:
    """What the helpdesk pasted, as it is shown back: one line, at most SHOWN characters."""
    text = " ".join(reference.split())
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def _named(session: Any, tenant_id: str, reference: str) -> tuple[list[tuple[models.Link, models.Room | None]],
                                                                     list[Meeting]]:
    """The links and the meetings a reference names (links of the meetings included)."""
    keys = lookup_keys(reference)
    repo = CutoverRepository(session, tenant_id)
    found: list[tuple[models.Link, models.Room | None]] = []
    for key in keys:
        found = repo.lookup(old_key=key)
        if found:
            break
    meeting_id = reference.strip() if len(reference) <= MAX_REFERENCE else None
    meetings = HelpdeskRepository(session, tenant_id).meetings_named(keys, meeting_id=meeting_id)
    if not found:
        for meeting in meetings:
            found += [(link, room) for link, room in repo.lookup(meeting_id=meeting.external_id)
                      if link.platform == meeting.platform.value]
    if not found and meeting_id:
        found = repo.lookup(meeting_id=meeting_id)
    return found, meetings


def lookup_link(database_url: str, tenant_id: str, reference: str) -> dict[str, Any]:
    """Every link the reference names, with the Visio room, its owner and the status; or where the meeting stands
    (will it move, and if not why); or why there is none."""
    with transaction(database_url) as session:
        found, meetings = _named(session, tenant_id, reference)
        results = [{"old_key": link.old_key, "platform": link.platform, "old_url": link.old_url,
                    "meeting_id": link.meeting_external_id, "topic": link.topic, "status": link.status,
                    "visio_url": room.url if room else None, "owner": room.owner_email if room else None,
                    "room_id": room.meet_id if room else None} for link, room in found]
        if results:
            return {"reference": shown(reference), "found": True, "links": results}
        statuses = [(meeting, meeting_status(HelpdeskRepository(session, tenant_id).room_plans(meeting)))
                    for meeting in meetings]
    if statuses:
        answers = [{"platform": meeting.platform.value, "meeting_id": meeting.external_id, "topic": meeting.topic,
                    "status": status.fate.value, "will_move": status.will_move, "wave": status.wave,
                    "reason_code": status.reason, "reason": status.explanation} for meeting, status in statuses]
        return {"reference": shown(reference), "found": False, "known_meeting": True, **answers[0],
                "meetings": answers}
    parsed = parse_meeting_reference(reference)
    reason = "no meeting of this tenant has this link" if lookup_keys(reference) else getattr(parsed, "reason", "")
    return {"reference": shown(reference), "found": False, "known_meeting": False, "reason": reason}


def render_lookup(answer: dict[str, Any]) -> str:
    """The answer as the helpdesk reads it."""
    if not answer["found"]:
        if answer.get("known_meeting"):
            return "\n".join(f"{item['platform']} meeting {item['meeting_id']} ({item['topic'] or 'no title'}): "
                             f"{item['reason']}" for item in answer["meetings"])
        return f"no Visio link for “{answer['reference']}”: {answer['reason']}"
    lines = []
    for link in answer["links"]:
        status = {"mapped": "moved to Visio", "reverted": "rolled back: the old link is valid again"}.get(
            link["status"], link["status"])
        lines += [f"{link['platform']} meeting {link['meeting_id']} — {link['topic'] or '(no title)'}",
                  f"  Visio link : {link['visio_url'] or '(none)'}", f"  owner      : {link['owner'] or '(unknown)'}",
                  f"  status     : {status}"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- resend

@dataclass(frozen=True, slots=True)
class Resent:
    """A calendar update sent again: which meeting, the new Message-ID, how many recipients took it."""

    platform: str
    meeting_id: str
    topic: str
    message_id: str
    first_message_id: str | None
    recipients: int
    refused: int
    to: str | None


def resend_invitation(database_url: str, tenant_id: str, reference: str, *, sender: Any, to: str | None = None,
                      actor: str = "bascule", now: datetime | None = None) -> Resent:
    """Send the calendar update the cutover mailed for the meeting `reference` names again (to everyone it went
    to, or to `to` only), under a new Message-ID; audited. ResendRefused when there is nothing to resend."""
    address: str | None = None
    if to is not None:
        parsed = parse_email(to)
        if not isinstance(parsed, EmailAddress):
            raise ResendRefused(f"--to {shown(to)}: not an e-mail address ({parsed.reason})")
        address = str(parsed)
    with transaction(database_url) as session:
        found, meetings = _named(session, tenant_id, reference)
        moved = [link for link, room in found if link.status == "mapped" and room is not None]
    if not moved:
        lookup = lookup_link(database_url, tenant_id, reference)
        if lookup["found"]:
            raise ResendRefused(f"“{shown(reference)}” was rolled back to its old link: nothing to resend")
        raise ResendRefused(f"“{shown(reference)}”: {lookup['reason']}: nothing to resend")
    link = moved[0]
    with transaction(database_url) as session:
        if link.platform == Platform.TEAMS.value:
            raise ResendRefused(f"teams meeting {link.meeting_external_id}: its series was rewritten in the "
                                "organiser's calendar, and Exchange already told its attendees: nothing to resend")
        helpdesk = HelpdeskRepository(session, tenant_id)
        meeting = next((m for m in meetings if m.platform.value == link.platform
                        and m.external_id == link.meeting_external_id), None)
        if meeting is None:
            meeting = next(iter(helpdesk.meetings_named((), meeting_id=link.meeting_external_id)), None)
        sent = helpdesk.invitation_sent(meeting, wave_id=link.wave_id) if meeting is not None else None
        if sent is None or not sent.payload:
            raise ResendRefused(f"{link.platform} meeting {link.meeting_external_id}: the cutover mailed no "
                                "calendar update for it (a personal room or a meeting without a fixed time: give "
                                "the Visio link; or not sent yet: the cutover will send it)")
        update = invitation_from_payload(sent.payload)
        first_message_id, stamp = sent.message_id, sent.stamp
    # The same update under a new key: a new Message-ID, so that mail systems do not drop it as a duplicate.
    again = replace(update, idempotency_key=f"{update.idempotency_key}:resend:{uuid.uuid4().hex}")
    result = sender.send(again, stamp=stamp, only=[address] if address else None)
    log.info("calendar update of %s meeting %s sent again as %s (%d recipients)", update.platform.value,
             update.meeting_id, result.message_id, result.recipients)
    with transaction(database_url) as session:
        AuditRepository(session, tenant_id).record(
            actor=actor, action="invitation.resent", target_kind="meeting",
            target_id=f"{update.platform.value}:{update.meeting_id}", now=now or datetime.now(UTC),
            before={"message_id": first_message_id},
            after={"message_id": result.message_id, "uid": update.uid, "sequence": update.sequence,
                   "to": address or "every recipient", "recipients": result.recipients,
                   "refused": len(result.refused)})
    return Resent(update.platform.value, update.meeting_id, update.summary, result.message_id, first_message_id,
                  result.recipients, len(result.refused), address)


def render_resent(resent: Resent) -> str:
    """One line for the helpdesk."""
    whom = resent.to or f"{resent.recipients} recipient(s)"
    refused = f", {resent.refused} refused by the relay" if resent.refused else ""
    return (f"{resent.platform} meeting {resent.meeting_id} ({resent.topic or 'no title'}): calendar update sent "
            f"again to {whom}{refused} (Message-ID {resent.message_id})")
