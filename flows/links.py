"""Old link → new link, for the helpdesk: what a pasted Zoom, Teams or Webex link (or meeting id) became."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.links import JoinLink, parse_meeting_reference
from db import models
from db.waves import CutoverRepository
from flows.runtime import transaction


def lookup_link(database_url: str, tenant_id: str, reference: str) -> dict[str, Any]:
    """Every link the reference names, with the Visio room, its owner and the status; or why there is none."""
    parsed = parse_meeting_reference(reference)
    with transaction(database_url) as session:
        repo = CutoverRepository(session, tenant_id)
        found = repo.lookup(old_key=parsed.key) if isinstance(parsed, JoinLink) else []
        if not found:
            found = repo.lookup(meeting_id=reference.strip())
        results = [{"old_key": link.old_key, "platform": link.platform, "old_url": link.old_url,
                    "meeting_id": link.meeting_external_id, "topic": link.topic, "status": link.status,
                    "visio_url": room.url if room else None, "owner": room.owner_email if room else None,
                    "room_id": room.meet_id if room else None} for link, room in found]
        if results:
            return {"reference": reference, "found": True, "links": results}
        meeting = None
        if isinstance(parsed, JoinLink):
            meeting = session.execute(select(models.Meeting).where(
                models.Meeting.tenant_id == tenant_id, models.Meeting.link_key == parsed.key)).scalars().first()
    if meeting is not None:
        return {"reference": reference, "found": False, "known_meeting": True, "platform": meeting.platform,
                "meeting_id": meeting.external_id, "topic": meeting.topic,
                "reason": "this meeting has not moved to Visio yet (no wave has cut it over)"}
    reason = parsed.reason if not isinstance(parsed, JoinLink) else "no meeting of this tenant has this link"
    return {"reference": reference, "found": False, "known_meeting": False, "reason": reason}


def render_lookup(answer: dict[str, Any]) -> str:
    """The answer as the helpdesk reads it."""
    if not answer["found"]:
        if answer.get("known_meeting"):
            return (f"{answer['platform']} meeting {answer['meeting_id']} ({answer['topic']}): "
                    f"{answer['reason']}")
        return f"no Visio link for {answer['reference']!r}: {answer['reason']}"
    lines = []
    for link in answer["links"]:
        status = {"mapped": "moved to Visio", "reverted": "rolled back: the old link is valid again"}.get(
            link["status"], link["status"])
        lines += [f"{link['platform']} meeting {link['meeting_id']} — {link['topic'] or '(no title)'}",
                  f"  Visio link : {link['visio_url'] or '(none)'}", f"  owner      : {link['owner'] or '(unknown)'}",
                  f"  status     : {status}"]
    return "\n".join(lines)
