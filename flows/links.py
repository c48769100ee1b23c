"""Old link → new link, for the helpdesk (`bascule links`): what a pasted Zoom, Teams or Webex link, meeting id or
number, SIP address, or a host's e-mail or name became — the answer db.helpdesk gives the web page too — and the
calendar update of a moved meeting, sent again (web.resend, shared with the page). What the helpdesk pasted is never
echoed back whole: at most its first 80 characters.
"""

from __future__ import annotations

from typing import Any

from core.helpdesk import LINK_STATUS
from db.helpdesk import HelpdeskRepository
from flows.runtime import transaction
from web.resend import ResendRefused, Resent, render_resent, resend_invitation

__all__ = ["ResendRefused", "Resent", "lookup_link", "render_lookup", "render_resent", "resend_invitation"]


def lookup_link(database_url: str, tenant_id: str, reference: str) -> dict[str, Any]:
    """Every link the reference names, with the Visio room, its owner and the status; or where the meeting stands
    (will it move, and if not why); or why there is none — as JSON."""
    with transaction(database_url) as session:
        return HelpdeskRepository(session, tenant_id).lookup(reference).as_json()


def render_lookup(answer: dict[str, Any]) -> str:
    """The answer as the helpdesk reads it."""
    lines: list[str] = []
    for link in answer.get("links", []):
        status = LINK_STATUS.get(link["status"], link["status"])
        lines += [f"{link['platform']} meeting {link['meeting_id']} — {link['topic'] or '(no title)'}",
                  f"  Visio link : {link['visio_url'] or '(none)'}", f"  owner      : {link['owner'] or '(unknown)'}",
                  f"  status     : {status}"]
    lines += [f"{item['platform']} meeting {item['meeting_id']} ({item['topic'] or 'no title'}): {item['reason']}"
              for item in answer.get("meetings", [])]
    if not lines:
        return f"no Visio link for “{answer['reference']}”: {answer['reason']}"
    return "\n".join(lines)
