"""/helpdesk (role helpdesk): one search box — an old Zoom, Teams or Webex link in any form the parsers know, a
meeting id or number, a SIP address, a host's e-mail or name — answered by the same lookup as `bascule links
lookup` (db.helpdesk); and "resend the invitation" (web.resend, as `bascule links resend`), to the attendees or to
one address, audited and limited to `resend_per_minute` per agent (counted in the audit trail, so every worker
shares the limit)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from connectors.errors import ConnectorError
from core.links import MAX_REFERENCE
from db.helpdesk import HelpdeskRepository
from db.repositories import AuditRepository
from web.auth import HelpdeskCaller, checked_csrf
from web.pages import render
from web.resend import ResendRefused, resend_invitation

__all__ = ["router"]

log = logging.getLogger(__name__)

RESENT = "invitation.resent"


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    def page(request: Request, caller: HelpdeskCaller, q: str, *, status_code: int = 200, **extra: object
             ) -> Response:
        answer = None
        if q.strip():
            with request.app.state.sessions() as session:
                answer = HelpdeskRepository(session, caller.tenant_id).lookup(q[:MAX_REFERENCE])
        can_resend = caller.tenant_id in request.app.state.services.senders
        return render(request, "helpdesk.html", {"title": "Assistance", "caller": caller, "q": q,
                                                 "answer": answer, "can_resend": can_resend, **extra},
                      status_code=status_code)

    @routes.get("")
    def search(request: Request, caller: HelpdeskCaller, q: str = "") -> Response:
        return page(request, caller, q)

    @routes.post("/resend", dependencies=[Depends(checked_csrf)])
    def resend(request: Request, caller: HelpdeskCaller, q: Annotated[str, Form(max_length=MAX_REFERENCE)],
               to: Annotated[str, Form(max_length=320)] = "") -> Response:
        sender = request.app.state.services.senders.get(caller.tenant_id)
        if sender is None:
            return page(request, caller, q, status_code=409, error="Ce service n'a pas de relais de messagerie "
                        "pour cette organisation : les invitations ne peuvent pas être renvoyées d'ici.")
        actor = f"web:{caller.agent.email}"
        now = datetime.now(UTC)
        limit = request.app.state.settings.resend_per_minute
        with request.app.state.sessions.begin() as session:
            recent = AuditRepository(session, caller.tenant_id).count_since(
                actor=actor, action=RESENT, since=now - timedelta(minutes=1))
        if recent >= limit:
            return page(request, caller, q, status_code=429, error=f"Vous avez renvoyé {recent} invitations "
                        f"dans la dernière minute (au plus {limit}) : réessayez dans une minute.")
        try:
            resent = resend_invitation(request.app.state.sessions.begin, caller.tenant_id, q, sender=sender,
                                       to=to.strip() or None, actor=actor, now=now)
        except ResendRefused as refused:
            return page(request, caller, q, status_code=422, error=str(refused))
        except ConnectorError as error:
            log.warning("resend through the relay failed: %s", type(error).__name__)
            return page(request, caller, q, status_code=502, error="Le relais de messagerie n'a pas accepté "
                        "l'invitation ; réessayez plus tard.")
        whom = resent.to or f"{resent.recipients} destinataire(s)"
        return page(request, caller, q, done=f"Invitation renvoyée à {whom} (réunion {resent.platform} "
                    f"{resent.meeting_id}).")

    return routes
