"""What the helpdesk reads: the meetings a pasted reference names, what each wave's plan holds about them, and the
calendar update a cutover mailed for them. Like the other repositories it never commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from core import ActionKind, ActionState, Meeting, MeetingKind
from core.helpdesk import PlannedRoom
from core.invitations import InvitationPurpose
from core.waves import WaveState
from db import models
from db.models import table_of
from db.waves import meeting_from_row

LIMIT = 20


class HelpdeskRepository:
    """Read-only views over meetings, plans and invitations of one tenant."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def meetings_named(self, keys: Sequence[str], *, meeting_id: str | None = None) -> list[Meeting]:
        """Meetings whose link or number has one of these keys, or whose platform id is `meeting_id` (at most
        LIMIT, current ones first)."""
        table = table_of(models.Meeting)
        conditions: list[ColumnElement[bool]] = []
        if keys:
            conditions += [table.c.link_key.in_(list(keys)), table.c.number_key.in_(list(keys))]
        if meeting_id:
            conditions.append(table.c.external_id == meeting_id)
        if not conditions:
            return []
        query = (select(table).where(table.c.tenant_id == self._tenant_id, or_(*conditions))
                 .order_by(table.c.removed_at.is_not(None), table.c.platform, table.c.external_id).limit(LIMIT))
        return [meeting_from_row(row) for row in self._session.execute(query).mappings()]

    def room_plans(self, meeting: Meeting) -> list[PlannedRoom]:
        """The room action of every wave that took this meeting (a personal room: its host's personal room)."""
        action, wave, match = table_of(models.PlanAction), table_of(models.Wave), table_of(models.IdentityMatch)
        own = and_(action.c.platform == meeting.platform.value, action.c.meeting_external_id == meeting.external_id)
        condition = own
        if meeting.kind is MeetingKind.PERSONAL_ROOM:
            hosts = select(match.c.person_anchor).where(
                match.c.tenant_id == self._tenant_id, match.c.platform == meeting.platform.value,
                match.c.account_external_id == meeting.host_account_id)
            condition = or_(own, and_(action.c.idempotency_key.like("%:room:personal:%"),
                                      action.c.host_anchor.in_(hosts)))
        query = (select(wave.c.name, wave.c.state, action.c.state, action.c.reason, action.c.payload)
                 .join(wave, wave.c.id == action.c.wave_id)
                 .where(action.c.tenant_id == self._tenant_id, action.c.kind == ActionKind.CREATE_ROOM.value,
                        condition)
                 .order_by(wave.c.name))
        return [PlannedRoom(name, WaveState(wave_state), ActionState(state), reason,
                            other_wave=str((payload or {}).get("other_wave") or "") or None)
                for name, wave_state, state, reason, payload in self._session.execute(query).all()]

    def invitation_sent(self, meeting: Meeting, *, wave_id: int | None) -> models.Notification | None:
        """The calendar update the cutover of this wave mailed for this meeting, once sent."""
        action, notification = table_of(models.PlanAction), models.Notification
        key = select(action.c.idempotency_key).where(
            action.c.tenant_id == self._tenant_id, action.c.wave_id == wave_id,
            action.c.kind == ActionKind.SEND_INVITATION.value, action.c.platform == meeting.platform.value,
            action.c.meeting_external_id == meeting.external_id)
        found: models.Notification | None = self._session.execute(select(notification).where(
            notification.tenant_id == self._tenant_id, notification.action_key.in_(key),
            notification.kind == InvitationPurpose.CUTOVER.value, notification.state == "sent")).scalars().first()
        return found
