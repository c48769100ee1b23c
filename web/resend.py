"""The calendar update of a moved meeting, sent again — one piece of code for `bascule links resend` and the
helpdesk page.

A resend is the calendar update the cutover mailed (same UID, SEQUENCE, DTSTAMP and content, stored before it was
sent) under a new Message-ID, so that mail systems deliver it again; to every recipient of the first one, or to
one address. It is audited (who, which meeting, to whom). A meeting that has not moved has nothing to resend, and
a Teams series was rewritten in place: Exchange already told its attendees.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from connectors.mail import SmtpInvitationSender
from core import Platform
from core.emails import EmailAddress, parse_email
from core.helpdesk import shown
from core.invitations import invitation_from_payload
from db.helpdesk import HelpdeskRepository
from db.repositories import AuditRepository

__all__ = ["ResendRefused", "Resent", "render_resent", "resend_invitation"]

log = logging.getLogger(__name__)


class ResendRefused(ValueError):
    """Nothing to resend, or not by bascule (the message fits on one line and names no address)."""


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


def resend_invitation(transaction: Callable[[], AbstractContextManager[Session]], tenant_id: str, reference: str,
                      *, sender: SmtpInvitationSender, to: str | None = None, actor: str = "bascule",
                      now: datetime | None = None) -> Resent:
    """Send the calendar update the cutover mailed for the meeting `reference` names again (to everyone it went
    to, or to `to` only), under a new Message-ID; audited. ResendRefused when there is nothing to resend.
    `transaction()` opens a transaction (committed on exit); the mail goes out between two of them."""
    address: str | None = None
    if to is not None:
        parsed = parse_email(to)
        if not isinstance(parsed, EmailAddress):
            raise ResendRefused(f"--to {shown(to)}: not an e-mail address ({parsed.reason})")
        address = str(parsed)
    with transaction() as session:
        helpdesk = HelpdeskRepository(session, tenant_id)
        found, meetings, _ = helpdesk.named(reference)
        moved = [link for link, room in found if link.status == "mapped" and room is not None]
        if not moved:
            lookup = helpdesk.lookup(reference)
            if lookup.found:
                raise ResendRefused(f"“{shown(reference)}” was rolled back to its old link: nothing to resend")
            reason = lookup.reason or (lookup.meetings[0].status.explanation if lookup.meetings else "")
            raise ResendRefused(f"“{shown(reference)}”: {reason}: nothing to resend")
        link = moved[0]
        if link.platform == Platform.TEAMS.value:
            raise ResendRefused(f"teams meeting {link.meeting_external_id}: its series was rewritten in the "
                                "organiser's calendar, and Exchange already told its attendees: nothing to resend")
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
    with transaction() as session:
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
