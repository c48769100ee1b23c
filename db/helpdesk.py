"""What the helpdesk reads: the meetings a pasted reference names, what each wave's plan holds about them, and the
calendar update a cutover mailed for them. Like the other repositories it never commits.

`lookup` is the one answer the CLI (`bascule links lookup`) and the web page share. A reference is read as a link,
a SIP address or a meeting number first (a bare 11-digit number may be a Zoom id or a Webex number: both are
tried), then as a platform meeting id; failing those, as a host — an e-mail address, or part of a name (at least
MIN_NAME characters) — whose current meetings are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core import ActionKind, ActionState, Meeting, MeetingKind
from core.helpdesk import FoundLink, LinkLookup, MeetingAnswer, PlannedRoom, meeting_status, shown
from core.invitations import InvitationPurpose
from core.links import MAX_REFERENCE, lookup_keys, parse_meeting_reference
from core.waves import WaveState
from db import models
from db.models import table_of
from db.waves import CutoverRepository, meeting_from_row

LIMIT = 20
MIN_NAME = 3        # a host's name is searched from this many characters
HOSTS = 5           # at most this many hosts match a name


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

    # -- the lookup the CLI and the page share

    def named(self, reference: str) -> tuple[list[tuple[models.Link, models.Room | None]], list[Meeting], bool]:
        """The links and the meetings a reference names (links of the meetings included), and whether they were
        found as a host's meetings."""
        keys = lookup_keys(reference)
        cutover = CutoverRepository(self._session, self._tenant_id)
        found: list[tuple[models.Link, models.Room | None]] = []
        for key in keys:
            found = cutover.lookup(old_key=key)
            if found:
                break
        # A NUL names nothing (no stored id or name holds one; PostgreSQL refuses it in a text parameter).
        meeting_id = reference.strip() if len(reference) <= MAX_REFERENCE and "\x00" not in reference else None
        meetings = self.meetings_named(keys, meeting_id=meeting_id)
        by_host = False
        if not found and not meetings and not keys and meeting_id:
            meetings, by_host = self.meetings_hosted_by(meeting_id), True
        if not found:
            for meeting in meetings:
                found += [(link, room) for link, room in cutover.lookup(meeting_id=meeting.external_id)
                          if link.platform == meeting.platform.value]
        if not found and meeting_id and not by_host:
            found = cutover.lookup(meeting_id=meeting_id)
        return found, meetings, by_host

    def lookup(self, reference: str) -> LinkLookup:
        """Every link the reference names with its Visio room, owner and status; or where each meeting named
        stands (will it move, and if not why); or why nothing was found."""
        found, meetings, by_host = self.named(reference)
        links = tuple(FoundLink(link.old_key, link.platform, link.old_url, link.meeting_external_id, link.topic,
                                link.status, room.url if room else None, room.owner_email if room else None,
                                room.meet_id if room else None) for link, room in found)
        linked = {(link.platform, link.meeting_id) for link in links}
        answers = tuple(MeetingAnswer(meeting.platform.value, meeting.external_id, meeting.topic,
                                      meeting_status(self.room_plans(meeting)))
                        for meeting in meetings if (meeting.platform.value, meeting.external_id) not in linked)
        if links:
            return LinkLookup(shown(reference), links, answers if by_host else (), by_host=by_host)
        if answers:
            return LinkLookup(shown(reference), (), answers, by_host=by_host)
        if by_host:
            reason = "no meeting of this tenant is hosted by this address or name"
        elif lookup_keys(reference):
            reason = "no meeting of this tenant has this link"
        else:
            reason = getattr(parse_meeting_reference(reference), "reason", "")
        return LinkLookup(shown(reference), reason=reason, by_host=by_host)

    def meetings_hosted_by(self, text: str) -> list[Meeting]:
        """The current meetings of the host an e-mail address names, or of the hosts whose name contains `text`
        (at most HOSTS of them, MIN_NAME characters at least); at most LIMIT meetings."""
        accounts, meetings = table_of(models.SourceAccount), table_of(models.Meeting)
        wanted = text.strip().lower()
        if "@" in wanted:
            who = or_(accounts.c.email_normalised == wanted, func.lower(accounts.c.email) == wanted)
        elif len(wanted) >= MIN_NAME:
            pattern = "%" + wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            who = func.lower(accounts.c.display_name).like(pattern, escape="\\")
        else:
            return []
        hosts = self._session.execute(select(accounts.c.platform, accounts.c.external_id).where(
            accounts.c.tenant_id == self._tenant_id, accounts.c.removed_at.is_(None), who)
            .order_by(accounts.c.platform, accounts.c.external_id).limit(HOSTS)).all()
        if not hosts:
            return []
        query = (select(meetings).where(meetings.c.tenant_id == self._tenant_id, meetings.c.removed_at.is_(None),
                                        or_(*[and_(meetings.c.platform == platform,
                                                   meetings.c.host_account_id == account)
                                              for platform, account in hosts]))
                 .order_by(meetings.c.platform, meetings.c.external_id).limit(LIMIT))
        return [meeting_from_row(row) for row in self._session.execute(query).mappings()]


def redirect_target(session: Session, key: str) -> tuple[str | None, str]:
    """Where the public redirect sends an old link's key: the Visio room's URL when a tenant maps it, else None and
    why ("unknown", "reverted", "no_room"). Only URLs bascule stored are ever returned, and only http(s) ones."""
    link, room = table_of(models.Link), table_of(models.Room)
    rows = session.execute(select(link.c.status, room.c.url).select_from(link)
                           .outerjoin(room, room.c.id == link.c.room_id)
                           .where(link.c.old_key == key).limit(5)).all()
    if not rows:
        return None, "unknown"
    for status, url in rows:
        if status == "mapped" and isinstance(url, str) and url.startswith(("https://", "http://")):
            return url, "mapped"
    return None, "reverted" if any(status == "reverted" for status, _ in rows) else "no_room"
