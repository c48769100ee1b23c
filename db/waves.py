"""Repositories of waves and their cutover: the wave and its members, the plan as an outbox, rooms, links, calendar
rewrites, invitations and Visio hosts. Like db.repositories they never commit: the task boundary does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from core import ActionKind, ActionState, Meeting, MeetingKind, Platform, Recurrence, normalise_email
from core.waves import CUTOVER_KINDS, Channel, Host, WaveAction, WaveSelection, WaveState
from db import models
from db.models import table_of
from db.repositories import occurrence_change_of
from db.upsert import dialect_insert, upsert_plain

BATCH = 1000
_CUTOVER_KINDS = tuple(kind.value for kind in CUTOVER_KINDS)


@dataclass(frozen=True, slots=True)
class WaveRow:
    """A wave as the flows read it."""

    id: int
    name: str
    state: WaveState
    selection: WaveSelection
    cut_over_at: datetime | None
    guard_until: datetime | None


@dataclass(frozen=True, slots=True)
class ActionRow:
    """A claimed (or listed) plan action."""

    id: int
    key: str
    kind: ActionKind
    state: ActionState
    platform: Platform | None
    meeting_id: str | None
    host_anchor: str | None
    depends_on: str | None
    flags: tuple[str, ...]
    reason: str | None
    payload: dict[str, Any]
    result: dict[str, Any] | None
    attempts: int


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What executing one action gave: its new state, a reason code, a detail without personal data, a result."""

    id: int
    state: ActionState
    reason: str | None = None
    detail: str | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WaveListing:
    """A wave in the list of a tenant's waves: its state, persons, dates and how far its cutover went (actions of
    the cutover that are not skipped: `done` of `actions`, `held` waiting for a first login, `failed`)."""

    name: str
    state: WaveState
    persons: int
    created_at: datetime
    updated_at: datetime
    cut_over_at: datetime | None
    actions: int
    done: int
    held: int
    failed: int


@dataclass(frozen=True, slots=True)
class PlanLine:
    """One meeting of one plan action, as the plan is read and exported (a personal room action carries several
    meetings: one line each). `host` is the e-mail Visio will know the host by (the source account's when the host
    matched nobody); `visio_room` is the room's URL once it exists."""

    action_key: str
    action: ActionKind
    state: ActionState
    reason: str | None
    platform: str
    meeting_id: str
    title: str
    series: str
    recurrence: str
    host_anchor: str
    host: str
    visio_room: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HostWaiting:
    """A host whose rooms wait for their first Visio login: `held` by a cutover run already, or not yet seen in
    Visio on an instance that does not pre-create users."""

    anchor: str
    email: str
    held: bool


@dataclass(frozen=True, slots=True)
class HostReceipt:
    """What one host will receive: rooms, calendar events rewritten in place (Teams series masters, Zoom and Webex
    series in their own calendar), ICS updates mailed (actions not skipped)."""

    anchor: str
    email: str
    rooms: int
    events: int
    invitations: int


@dataclass(frozen=True, slots=True)
class MeetingTally:
    """The meetings of a plan: those that move, those that do not by reason, flagged ones by flag."""

    moving: int
    not_moving: dict[str, int]
    flagged: dict[str, int]


def _in(column: Any, values: Sequence[Any]) -> Any:
    return column.in_(list(values))


class WaveRepository:
    """Waves of one tenant and who is in them."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def id_of(self, name: str) -> int | None:
        """The wave's id (without reading its selection)."""
        found: int | None = self._session.execute(select(models.Wave.id).where(
            models.Wave.tenant_id == self._tenant_id, models.Wave.name == name)).scalar_one_or_none()
        return found

    def get(self, name: str) -> WaveRow | None:
        row = self._session.execute(select(models.Wave).where(
            models.Wave.tenant_id == self._tenant_id, models.Wave.name == name)).scalar_one_or_none()
        if row is None:
            return None
        return WaveRow(row.id, row.name, WaveState(row.state), WaveSelection.from_json(row.selection),
                       row.cut_over_at, row.guard_until)

    def create(self, name: str, selection: WaveSelection, *, now: datetime) -> WaveRow:
        self._session.add(models.Wave(tenant_id=self._tenant_id, name=name, state=WaveState.PLANNED.value,
                                      selection=selection.to_json(), created_at=now, updated_at=now))
        self._session.flush()
        found = self.get(name)
        assert found is not None
        return found

    def set_selection(self, wave_id: int, selection: WaveSelection, *, now: datetime) -> None:
        self._session.execute(update(models.Wave).where(models.Wave.id == wave_id)
                              .values(selection=selection.to_json(), updated_at=now))

    def set_state(self, wave_id: int, state: WaveState, *, now: datetime, **columns: Any) -> None:
        self._session.execute(update(models.Wave).where(models.Wave.id == wave_id)
                              .values(state=state.value, updated_at=now, **columns))

    def replace_members(self, wave_id: int, anchors: Sequence[str]) -> int:
        table = table_of(models.WaveMember)
        self._session.execute(delete(table).where(table.c.wave_id == wave_id))
        rows = [{"tenant_id": self._tenant_id, "wave_id": wave_id, "person_anchor": anchor}
                for anchor in dict.fromkeys(anchors)]
        for start in range(0, len(rows), BATCH):
            self._session.execute(table.insert(), rows[start:start + BATCH])
        return len(rows)

    def member_count(self, wave_id: int) -> int:
        table = table_of(models.WaveMember)
        return int(self._session.execute(select(func.count()).select_from(table)
                                         .where(table.c.wave_id == wave_id)).scalar_one())

    def member_page(self, wave_id: int, *, after: str | None, limit: int) -> list[str]:
        table = table_of(models.WaveMember)
        query = select(table.c.person_anchor).where(table.c.wave_id == wave_id)
        if after is not None:
            query = query.where(table.c.person_anchor > after)
        return list(self._session.execute(query.order_by(table.c.person_anchor).limit(limit)).scalars())

    def selected_anchors(self, selection: WaveSelection) -> list[str]:
        """Current persons the selection names (departments with their sub-units, anchors, e-mails in any
        spelling), without those no wave moves (rooms, shared mailboxes, administrators: see excluded_selected)."""
        person = table_of(models.Person)
        query = (select(person.c.anchor).where(*self._named_by(selection), person.c.excluded_reason.is_(None))
                 .order_by(person.c.anchor))
        return list(self._session.execute(query).scalars())

    def excluded_selected(self, selection: WaveSelection) -> list[tuple[str, str, str]]:
        """(anchor, normalised e-mail, reason) of the current persons the selection names that no wave moves."""
        person = table_of(models.Person)
        query = (select(person.c.anchor, person.c.email_normalised, person.c.excluded_reason)
                 .where(*self._named_by(selection), person.c.excluded_reason.is_not(None))
                 .order_by(person.c.anchor))
        return [(anchor, email, reason) for anchor, email, reason in self._session.execute(query).all()]

    def _named_by(self, selection: WaveSelection) -> list[Any]:
        person = table_of(models.Person)
        conditions = []
        for department in selection.departments:
            prefix = department.rstrip("/")
            conditions += [person.c.department == prefix, person.c.department.like(_like_prefix(prefix), escape="\\")]
        if selection.anchors:
            conditions.append(_in(person.c.anchor, selection.anchors))
        if selection.emails:
            conditions.append(_in(person.c.email_normalised,
                                  [normalise_email(e) or e.strip().lower() for e in selection.emails]))
        return [person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None), or_(*conditions)]

    def listing(self) -> list[WaveListing]:
        """Every wave of the tenant, oldest first, with its persons and the progress of its cutover."""
        wave, member, action = table_of(models.Wave), table_of(models.WaveMember), table_of(models.PlanAction)
        persons: dict[int, int] = dict(self._session.execute(
            select(member.c.wave_id, func.count()).where(member.c.tenant_id == self._tenant_id)
            .group_by(member.c.wave_id)).all())
        states: dict[int, dict[str, int]] = {}
        for wave_id, state, count in self._session.execute(
                select(action.c.wave_id, action.c.state, func.count())
                .where(action.c.tenant_id == self._tenant_id, _in(action.c.kind, _CUTOVER_KINDS))
                .group_by(action.c.wave_id, action.c.state)).all():
            states.setdefault(wave_id, {})[state] = int(count)
        found = []
        for row in self._session.execute(select(wave).where(wave.c.tenant_id == self._tenant_id)
                                         .order_by(wave.c.created_at, wave.c.id)).mappings():
            counts = states.get(row["id"], {})
            found.append(WaveListing(
                row["name"], WaveState(row["state"]), int(persons.get(row["id"], 0)), row["created_at"],
                row["updated_at"], row["cut_over_at"],
                actions=sum(n for state, n in counts.items() if state != ActionState.SKIPPED.value),
                done=counts.get(ActionState.DONE.value, 0), held=counts.get(ActionState.HELD.value, 0),
                failed=counts.get(ActionState.FAILED.value, 0)))
        return found

    def department_heads(self) -> list[tuple[str | None, int, int]]:
        """(department, persons a wave can select, entries no wave moves) of the current persons."""
        person = table_of(models.Person)
        selectable = func.sum(case((person.c.excluded_reason.is_(None), 1), else_=0))
        query = (select(person.c.department, selectable, func.count())
                 .where(person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None))
                 .group_by(person.c.department))
        return [(department, int(chosen or 0), int(total) - int(chosen or 0))
                for department, chosen, total in self._session.execute(query).all()]

    def departments(self) -> list[str]:
        """The distinct departments of the current persons."""
        person = table_of(models.Person)
        return list(self._session.execute(
            select(person.c.department).where(person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None),
                                              person.c.department.is_not(None)).distinct()).scalars())

    def known_anchors(self, anchors: Sequence[str]) -> set[str]:
        """Which of these anchors are current persons."""
        person = table_of(models.Person)
        found: set[str] = set()
        wanted = sorted(set(anchors))
        for start in range(0, len(wanted), BATCH):
            found.update(self._session.execute(select(person.c.anchor).where(
                person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None),
                _in(person.c.anchor, wanted[start:start + BATCH]))).scalars())
        return found

    def known_emails(self, emails: Sequence[str]) -> set[str]:
        """Which of these normalised e-mails a current person or a current source account has."""
        person, account = table_of(models.Person), table_of(models.SourceAccount)
        found: set[str] = set()
        wanted = sorted(set(emails))
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            found.update(self._session.execute(select(person.c.email_normalised).where(
                person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None),
                _in(person.c.email_normalised, chunk))).scalars())
            found.update(self._session.execute(select(account.c.email_normalised).where(
                account.c.tenant_id == self._tenant_id, account.c.removed_at.is_(None),
                _in(account.c.email_normalised, chunk))).scalars())
        return found

    def emails_near(self, email: str, *, limit: int = 5000) -> tuple[list[str], list[str]]:
        """Persons' e-mails for one that is no person's: (those of the persons holding it as an alias or former
        address, at most `limit` candidates sharing its local part or its first two characters)."""
        person, key = table_of(models.Person), table_of(models.IdentityKey)
        local = email.partition("@")[0]
        holders = list(self._session.execute(
            select(person.c.email_normalised).join(key, (key.c.tenant_id == person.c.tenant_id)
                                                   & (key.c.anchor == person.c.anchor))
            .where(person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None), key.c.value == email)
            .distinct()).scalars())
        near = list(self._session.execute(
            select(person.c.email_normalised).where(
                person.c.tenant_id == self._tenant_id, person.c.removed_at.is_(None),
                or_(person.c.email_normalised.like(_escape(local) + "@%", escape="\\"),
                    person.c.email_normalised.like(_escape(local[:2]) + "%", escape="\\")))
            .order_by(person.c.email_normalised).limit(limit)).scalars())
        return holders, near

    def unmatched_accounts(self, emails: Sequence[str]) -> list[tuple[str, str]]:
        """(platform, account id) of accounts the selection names by e-mail that matched no person."""
        if not emails:
            return []
        account, match = table_of(models.SourceAccount), table_of(models.IdentityMatch)
        matched = select(match.c.account_external_id).where(match.c.tenant_id == self._tenant_id,
                                                            match.c.platform == account.c.platform)
        query = (select(account.c.platform, account.c.external_id)
                 .where(account.c.tenant_id == self._tenant_id, account.c.removed_at.is_(None),
                        _in(account.c.email_normalised, [normalise_email(e) or e.strip().lower() for e in emails]),
                        account.c.external_id.not_in(matched))
                 .order_by(account.c.platform, account.c.external_id))
        return [(platform, external_id) for platform, external_id in self._session.execute(query).all()]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(prefix: str) -> str:
    return _escape(prefix) + "/%"


class HostRepository:
    """Hosts (persons behind source accounts) and the meetings they host, as the planner takes them."""

    # Conflicts of the person that keep bascule from acting for them.
    BLOCKING_PERSON_CONFLICTS = ("DEPARTED_OR_DISABLED", "VISIO_EMAIL_COLLISION", "SUB_DRIFT")

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def hosts_of(self, anchors: Sequence[str]) -> dict[str, Host]:
        """The Host record of each current person (visio e-mail, a blocking conflict)."""
        person, conflict = table_of(models.Person), table_of(models.IdentityConflict)
        rows = self._session.execute(
            select(person.c.anchor, person.c.proconnect_email, person.c.disabled)
            .where(person.c.tenant_id == self._tenant_id, _in(person.c.anchor, anchors),
                   person.c.removed_at.is_(None))).all()
        blocked = dict(self._session.execute(
            select(conflict.c.subject, func.min(conflict.c.kind))
            .where(conflict.c.tenant_id == self._tenant_id, conflict.c.status == "open",
                   _in(conflict.c.kind, self.BLOCKING_PERSON_CONFLICTS), _in(conflict.c.subject, anchors))
            .group_by(conflict.c.subject)).all())
        hosts = {}
        for anchor, email, disabled in rows:
            reason = blocked.get(anchor) or ("DEPARTED_OR_DISABLED" if disabled else None)
            hosts[anchor] = Host(anchor, email, reason)
        return hosts

    def meetings_of(self, anchors: Sequence[str]) -> Iterator[tuple[str, Meeting]]:
        """(host anchor, meeting) for every current meeting of the accounts matched to these persons."""
        match, meeting = table_of(models.IdentityMatch), table_of(models.Meeting)
        query = (select(match.c.person_anchor, meeting)
                 .join(meeting, (meeting.c.tenant_id == match.c.tenant_id) & (meeting.c.platform == match.c.platform)
                       & (meeting.c.host_account_id == match.c.account_external_id))
                 .where(match.c.tenant_id == self._tenant_id, _in(match.c.person_anchor, anchors),
                        meeting.c.removed_at.is_(None))
                 .order_by(match.c.person_anchor, meeting.c.platform, meeting.c.external_id))
        for row in self._session.execute(query).mappings():
            yield str(row["person_anchor"]), meeting_from_row(row)

    def meetings_of_accounts(self, accounts: Sequence[tuple[str, str]]) -> Iterator[Meeting]:
        meeting = table_of(models.Meeting)
        for platform, account in accounts:
            query = (select(meeting).where(meeting.c.tenant_id == self._tenant_id, meeting.c.platform == platform,
                                           meeting.c.host_account_id == account, meeting.c.removed_at.is_(None))
                     .order_by(meeting.c.external_id))
            for row in self._session.execute(query).mappings():
                yield meeting_from_row(row)

    def meeting(self, platform: str, external_id: str) -> Meeting | None:
        table = table_of(models.Meeting)
        row = self._session.execute(select(table).where(
            table.c.tenant_id == self._tenant_id, table.c.platform == platform,
            table.c.external_id == external_id)).mappings().first()
        return meeting_from_row(row) if row is not None else None


def meeting_from_row(row: Any) -> Meeting:
    """A meeting row back into the core record."""
    flags = row["flags"] or {}
    return Meeting(
        platform=Platform(row["platform"]), external_id=row["external_id"], host_account_id=row["host_account_id"],
        host_email=row["host_email"], topic=row["topic"], kind=MeetingKind(row["kind"]), timezone=row["timezone"],
        join_url=row["join_url"], link_key=row["link_key"], start=row["start_at"],
        duration_minutes=row["duration_minutes"],
        recurrence=Recurrence(row["rrule"], row["rrule_timezone"] or row["timezone"]) if row["rrule"] else None,
        ends_at=row["ends_at"], waiting_room=bool(flags.get("waiting_room")), passcode=bool(flags.get("passcode")),
        alternative_hosts=tuple(row["alternative_hosts"] or ()), invitees=tuple(row["invitees"] or ()),
        external_invitees=int(flags.get("external_invitees") or 0), webinar=bool(flags.get("webinar")),
        dial_in=bool(flags.get("dial_in")), registration=bool(flags.get("registration")),
        exclusions=tuple(datetime.fromisoformat(str(moment)) for moment in row["exclusions"] or ()),
        exceptions=tuple(occurrence_change_of(change) for change in row["exceptions"] or ()),
        invitees_known=bool(flags.get("invitees_known", True)), number_key=row["number_key"])


class PlanRepository:
    """The plan of a wave as an outbox: actions upserted by key, claimed, recorded with their outcome."""

    REPLANNABLE = (ActionState.PENDING.value, ActionState.SKIPPED.value)

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._table: Table = table_of(models.PlanAction)

    def upsert(self, wave_id: int, actions: Sequence[WaveAction], *, now: datetime) -> None:
        """New actions inserted; pending or skipped ones of this wave refreshed; applied ones never touched."""
        if not actions:
            return
        rows = [{"tenant_id": self._tenant_id, "wave_id": wave_id, "idempotency_key": action.key,
                 "kind": action.kind.value, "platform": action.platform.value if action.platform else None,
                 "meeting_external_id": action.meeting_id, "host_anchor": action.host_anchor,
                 "depends_on": action.depends_on, "flags": [str(flag) for flag in action.flags],
                 "reason": action.reason, "payload": dict(action.payload), "state": action.state.value,
                 "attempts": 0, "created_at": now, "updated_at": now} for action in actions]
        insert = dialect_insert(self._session, self._table)
        refreshed = ("kind", "platform", "meeting_external_id", "host_anchor", "depends_on", "flags", "reason",
                     "payload", "state", "updated_at")
        statement = insert.on_conflict_do_update(
            index_elements=["tenant_id", "idempotency_key"],
            set_={name: insert.excluded[name] for name in refreshed},
            # (no IN here: an expanding parameter cannot go with executemany)
            where=(self._table.c.wave_id == insert.excluded.wave_id)
            & or_(*(self._table.c.state == state for state in self.REPLANNABLE)))
        for start in range(0, len(rows), BATCH):
            self._session.execute(statement, rows[start:start + BATCH])

    def drop_unplanned(self, wave_id: int, *, planned_before: datetime) -> int:
        """Pending or skipped actions a new planning pass did not produce again (the member left the wave)."""
        table = self._table
        result = self._session.execute(delete(table).where(
            table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id, table.c.state.in_(self.REPLANNABLE),
            table.c.updated_at < planned_before))
        return int(getattr(result, "rowcount", 0) or 0)

    def planned_elsewhere(self, wave_id: int, meetings: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(platform, meeting id) → name of another live wave whose plan already gives it a room."""
        if not meetings:
            return {}
        table, wave = self._table, table_of(models.Wave)
        found: dict[tuple[str, str], str] = {}
        ids = sorted({meeting_id for _, meeting_id in meetings})
        for start in range(0, len(ids), BATCH):
            query = (select(table.c.platform, table.c.meeting_external_id, wave.c.name)
                     .join(wave, wave.c.id == table.c.wave_id)
                     .where(table.c.tenant_id == self._tenant_id, table.c.wave_id != wave_id,
                            table.c.kind == ActionKind.CREATE_ROOM.value,
                            table.c.state != ActionState.SKIPPED.value,
                            wave.c.state.not_in([WaveState.ROLLED_BACK.value, WaveState.CANCELLED.value]),
                            _in(table.c.meeting_external_id, ids[start:start + BATCH])))
            for platform, meeting_id, name in self._session.execute(query).all():
                found[(platform, meeting_id)] = name
        return found

    def claim(self, wave_id: int, *, kinds: Sequence[ActionKind], states: Sequence[ActionState], limit: int,
              run_id: str, now: datetime) -> list[ActionRow]:
        """Up to `limit` actions of these kinds and states whose dependency is done, grouped by host, claimed."""
        table = self._table
        dependency = aliased(table)
        ready = or_(table.c.depends_on.is_(None), table.c.depends_on.in_(
            select(dependency.c.idempotency_key).where(dependency.c.tenant_id == self._tenant_id,
                                                       dependency.c.state == ActionState.DONE.value)))
        # An action this run already tried (and left pending after a transient error) waits for the next run.
        fresh = or_(table.c.claimed_by.is_(None), table.c.claimed_by != run_id)
        query = (select(table.c.id).where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
                                          _in(table.c.kind, [k.value for k in kinds]),
                                          _in(table.c.state, [s.value for s in states]), ready, fresh)
                 .order_by(table.c.host_anchor, table.c.idempotency_key).limit(limit))
        ids = list(self._session.execute(query).scalars())
        if not ids:
            return []
        self._session.execute(update(table).where(_in(table.c.id, ids)).values(
            state=ActionState.CLAIMED.value, claimed_by=run_id, claimed_at=now, attempts=table.c.attempts + 1,
            updated_at=now))
        return self.by_ids(ids)

    def by_ids(self, ids: Sequence[int]) -> list[ActionRow]:
        table = self._table
        rows = self._session.execute(select(table).where(_in(table.c.id, ids))
                                     .order_by(table.c.host_anchor, table.c.idempotency_key)).mappings().all()
        return [_action(row) for row in rows]

    def by_key(self, key: str) -> ActionRow | None:
        table = self._table
        row = self._session.execute(select(table).where(
            table.c.tenant_id == self._tenant_id, table.c.idempotency_key == key)).mappings().first()
        return _action(row) if row is not None else None

    def stale_claims(self, wave_id: int, *, run_id: str) -> list[ActionRow]:
        """Actions a killed run claimed and never recorded."""
        table = self._table
        query = select(table.c.id).where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
                                         table.c.state == ActionState.CLAIMED.value, table.c.claimed_by != run_id)
        return self.by_ids(list(self._session.execute(query).scalars()))

    def record(self, outcomes: Sequence[ActionOutcome], *, now: datetime) -> None:
        table = self._table
        for outcome in outcomes:
            values: dict[str, Any] = {"state": outcome.state.value, "reason": outcome.reason,
                                      "last_error": outcome.detail, "updated_at": now}
            if outcome.result is not None:
                values["result"] = outcome.result
            if outcome.state is ActionState.DONE:
                values["done_at"] = now
            self._session.execute(update(table).where(table.c.id == outcome.id).values(**values))

    def iter_actions(self, wave_id: int, *, kinds: Sequence[ActionKind] = (),
                     states: Sequence[ActionState] = ()) -> Iterator[ActionRow]:
        """The wave's actions in key order, streamed."""
        table = self._table
        after = ""
        while True:
            query = select(table).where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
                                        table.c.idempotency_key > after)
            if kinds:
                query = query.where(_in(table.c.kind, [k.value for k in kinds]))
            if states:
                query = query.where(_in(table.c.state, [s.value for s in states]))
            rows = self._session.execute(query.order_by(table.c.idempotency_key).limit(BATCH)).mappings().all()
            if not rows:
                return
            for row in rows:
                yield _action(row)
            after = str(rows[-1]["idempotency_key"])

    def counts(self, wave_id: int) -> dict[str, dict[str, int]]:
        """kind → state → actions."""
        table = self._table
        query = (select(table.c.kind, table.c.state, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id)
                 .group_by(table.c.kind, table.c.state))
        found: dict[str, dict[str, int]] = {}
        for kind, state, count in self._session.execute(query).all():
            found.setdefault(kind, {})[state] = int(count)
        return found

    def reasons(self, wave_id: int, *, states: Sequence[ActionState]) -> dict[str, int]:
        """reason → actions, among actions in these states."""
        table = self._table
        query = (select(table.c.reason, func.count())
                 .where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
                        _in(table.c.state, [s.value for s in states]))
                 .group_by(table.c.reason))
        return {str(reason or "unknown"): int(count) for reason, count in self._session.execute(query).all()}

    def flag_counts(self, wave_id: int) -> dict[str, int]:
        """Meetings flagged, by flag (a room action counts each meeting it carries)."""
        return self.tally(wave_id).flagged

    def tally(self, wave_id: int) -> MeetingTally:
        """The plan's meetings in one streamed pass: moving, not moving by reason, flagged by flag."""
        flagged: dict[str, int] = {}
        not_moving: dict[str, int] = {}
        moving = 0
        for action in self.iter_actions(wave_id, kinds=[ActionKind.CREATE_ROOM]):
            meetings = len(action.payload.get("links") or []) or 1
            for flag in action.flags:
                flagged[flag] = flagged.get(flag, 0) + meetings
            if action.state is ActionState.SKIPPED:
                reason = action.reason or "unknown"
                not_moving[reason] = not_moving.get(reason, 0) + meetings
            else:
                moving += meetings
        return MeetingTally(moving, dict(sorted(not_moving.items())), dict(sorted(flagged.items())))

    def series_by_channel(self, wave_id: int, *, states: Sequence[ActionState] = ()) -> dict[str, int]:
        """Series by how their attendees learn the new link (core.waves.Channel), actions not skipped (or in
        `states`): Teams masters in place, Zoom/Webex series in their organiser's calendar by channel, mails."""
        wanted = {state.value for state in states} or {state.value for state in ActionState
                                                          if state is not ActionState.SKIPPED}
        counts = self.counts(wave_id)

        def n(kind: ActionKind) -> int:
            return sum(count for state, count in counts.get(kind.value, {}).items() if state in wanted)

        channels = {Channel.CALENDAR_IN_PLACE.value: n(ActionKind.REWRITE_EVENT),
                    Channel.ITIP_ORIGINAL_UID.value: 0, Channel.MAIL_INVENTED_UID.value: n(ActionKind.SEND_INVITATION)}
        if n(ActionKind.REWRITE_CALENDAR):
            for action in self.iter_actions(wave_id, kinds=[ActionKind.REWRITE_CALENDAR]):
                if action.state.value in wanted:
                    channel = str(action.payload.get("channel") or Channel.CALENDAR_IN_PLACE.value)
                    channels[channel] = channels.get(channel, 0) + 1
        return channels

    def started(self, wave_id: int) -> int:
        """Cutover actions a run has touched (anything but pending or skipped)."""
        table = self._table
        return int(self._session.execute(select(func.count()).select_from(table).where(
            table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id, _in(table.c.kind, _CUTOVER_KINDS),
            table.c.state.not_in([ActionState.PENDING.value, ActionState.SKIPPED.value]))).scalar_one())

    def skip_pending(self, wave_id: int, *, reason: str, now: datetime) -> int:
        """Every pending action of the wave skipped with this reason (a cancelled wave moves nothing)."""
        table = self._table
        result = self._session.execute(update(table).where(
            table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
            table.c.state == ActionState.PENDING.value).values(state=ActionState.SKIPPED.value, reason=reason,
                                                                updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def iter_lines(self, wave_id: int, *, kinds: Sequence[ActionKind] = (),
                   states: Sequence[ActionState] = ()) -> Iterator[PlanLine]:
        """The plan one meeting and action a line, in key order, streamed a page at a time (each page's meetings,
        hosts and rooms read in one query each)."""
        page: list[ActionRow] = []
        for action in self.iter_actions(wave_id, kinds=kinds, states=states):
            page.append(action)
            if len(page) == BATCH:
                yield from self._lines(page)
                page = []
        if page:
            yield from self._lines(page)

    def _lines(self, actions: Sequence[ActionRow]) -> list[PlanLine]:
        meeting, person, room = table_of(models.Meeting), table_of(models.Person), table_of(models.Room)
        targets = {action.key: _meetings_of(action) for action in actions}
        ids = sorted({meeting_id for found in targets.values() for _platform, meeting_id, _topic in found
                      if meeting_id})
        meetings = {(row["platform"], row["external_id"]): row for row in self._session.execute(
            select(meeting.c.platform, meeting.c.external_id, meeting.c.topic, meeting.c.kind, meeting.c.rrule,
                   meeting.c.host_email)
            .where(meeting.c.tenant_id == self._tenant_id, _in(meeting.c.external_id, ids))).mappings()}
        anchors = sorted({action.host_anchor for action in actions if action.host_anchor})
        emails = {anchor: email or primary for anchor, email, primary in self._session.execute(
            select(person.c.anchor, person.c.proconnect_email, person.c.primary_email)
            .where(person.c.tenant_id == self._tenant_id, _in(person.c.anchor, anchors))).all()}
        keys = sorted({action.depends_on or action.key for action in actions})
        urls = {key: url for key, url in self._session.execute(
            select(room.c.action_key, room.c.url).where(room.c.tenant_id == self._tenant_id,
                                                        _in(room.c.action_key, keys))).all()}
        lines = []
        for action in actions:
            url = urls.get(action.depends_on or action.key) or str((action.result or {}).get("url") or "")
            for platform, meeting_id, topic in targets[action.key]:
                found = meetings.get((platform, meeting_id))
                host = emails.get(action.host_anchor or "") or (str(found["host_email"] or "") if found else "")
                lines.append(PlanLine(
                    action.key, action.kind, action.state, action.reason, platform, meeting_id,
                    topic or (str(found["topic"] or "") if found else ""), str(found["kind"]) if found else "",
                    str(found["rrule"] or "") if found else "", action.host_anchor or "", host, url or "",
                    action.flags))
        return lines

    def waiting_hosts(self, wave_id: int, *, limit: int) -> tuple[int, list[HostWaiting]]:
        """Hosts whose rooms wait for their first Visio login: held by a run, or (before any run) persons the
        identity mapping says must log in first and whom Visio has not been seen to know; the count and the first
        `limit` by anchor."""
        table, person, user = self._table, table_of(models.Person), table_of(models.VisioUser)
        known = select(user.c.email).where(user.c.tenant_id == self._tenant_id, user.c.user_id.is_not(None))
        held = func.max(case((table.c.state == ActionState.HELD.value, 1), else_=0))
        query = (select(person.c.anchor, person.c.proconnect_email, held)
                 .join(person, (person.c.tenant_id == table.c.tenant_id) & (person.c.anchor == table.c.host_anchor))
                 .where(table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id,
                        table.c.kind == ActionKind.CREATE_ROOM.value,
                        or_(table.c.state == ActionState.HELD.value,
                            and_(_in(table.c.state, [ActionState.PENDING.value, ActionState.CLAIMED.value]),
                                 person.c.visio_provisioning == "first_login",
                                 func.lower(person.c.proconnect_email).not_in(known))))
                 .group_by(person.c.anchor, person.c.proconnect_email))
        count = int(self._session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
        rows = self._session.execute(query.order_by(person.c.anchor).limit(limit)).all()
        return count, [HostWaiting(anchor, email or "", bool(flag)) for anchor, email, flag in rows]

    def host_receipts(self, wave_id: int, *, limit: int) -> tuple[int, list[HostReceipt]]:
        """What hosts will receive (actions not skipped): how many hosts, and the first `limit` by anchor."""
        table, person = self._table, table_of(models.Person)
        live = (table.c.tenant_id == self._tenant_id, table.c.wave_id == wave_id, _in(table.c.kind, _CUTOVER_KINDS),
                table.c.state != ActionState.SKIPPED.value, table.c.host_anchor.is_not(None))
        count = int(self._session.execute(select(func.count(func.distinct(table.c.host_anchor))).where(*live))
                    .scalar_one())
        first = (select(table.c.host_anchor).where(*live).distinct().order_by(table.c.host_anchor).limit(limit)
                 .subquery())
        by_kind = self._session.execute(
            select(table.c.host_anchor, table.c.kind, func.count()).where(*live, table.c.host_anchor.in_(
                select(first.c.host_anchor))).group_by(table.c.host_anchor, table.c.kind)).all()
        anchors = sorted({anchor for anchor, _kind, _n in by_kind})
        emails = {anchor: email or primary for anchor, email, primary in self._session.execute(
            select(person.c.anchor, person.c.proconnect_email, person.c.primary_email)
            .where(person.c.tenant_id == self._tenant_id, _in(person.c.anchor, anchors))).all()}
        counts: dict[str, dict[str, int]] = {}
        for anchor, kind, n in by_kind:
            counts.setdefault(anchor, {})[kind] = int(n)
        return count, [HostReceipt(anchor, emails.get(anchor, ""), counts[anchor].get(ActionKind.CREATE_ROOM.value, 0),
                                   counts[anchor].get(ActionKind.REWRITE_EVENT.value, 0)
                                   + counts[anchor].get(ActionKind.REWRITE_CALENDAR.value, 0),
                                   counts[anchor].get(ActionKind.SEND_INVITATION.value, 0)) for anchor in anchors]


def _meetings_of(action: ActionRow) -> list[tuple[str, str, str | None]]:
    """(platform, meeting id, title) of each meeting an action concerns: the links a room carries, or its own."""
    links = action.payload.get("links") if action.kind is ActionKind.CREATE_ROOM else None
    if links:
        return [(str(link.get("platform") or ""), str(link.get("meeting_id") or ""),
                 str(link["topic"]) if link.get("topic") else None) for link in links]
    return [(action.platform.value if action.platform else "", action.meeting_id or "", None)]


def _action(row: Any) -> ActionRow:
    return ActionRow(id=int(row["id"]), key=str(row["idempotency_key"]), kind=ActionKind(row["kind"]),
                     state=ActionState(row["state"]), platform=Platform(row["platform"]) if row["platform"] else None,
                     meeting_id=row["meeting_external_id"], host_anchor=row["host_anchor"],
                     depends_on=row["depends_on"], flags=tuple(row["flags"] or ()), reason=row["reason"],
                     payload=dict(row["payload"] or {}), result=dict(row["result"]) if row["result"] else None,
                     attempts=int(row["attempts"] or 0))


class CutoverRepository:
    """What the cutover leaves behind: Visio hosts, rooms, links, calendar rewrites, invitations."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id

    # ---- Visio hosts

    def visio_user(self, email: str) -> models.VisioUser | None:
        return self._session.execute(select(models.VisioUser).where(
            models.VisioUser.tenant_id == self._tenant_id, models.VisioUser.email == email.lower())
        ).scalar_one_or_none()

    def save_visio_user(self, email: str, *, user_id: str | None, rooms_before: Sequence[str], run_id: str,
                        now: datetime) -> None:
        """Record a listing of the host's Visio rooms, keeping only what it taught.

        `user_id` None (not learned this time) keeps the stored one; rooms bascule created or adopted (recorded in
        `room`) are never among the host's rooms before — that snapshot is what tells a room a killed run created
        from one the host had, so it must hold the host's own rooms only.
        """
        table = table_of(models.VisioUser)
        if user_id is None:
            user_id = self._session.execute(select(table.c.user_id).where(
                table.c.tenant_id == self._tenant_id, table.c.email == email.lower())).scalar_one_or_none()
        listed = list(dict.fromkeys(rooms_before))
        ours = self.recorded_rooms(listed)
        row = {"tenant_id": self._tenant_id, "email": email.lower(), "user_id": user_id,
               "rooms_before": [room for room in listed if room not in ours], "listed_run": run_id,
               "listed_at": now}
        upsert_plain(self._session, table, [row], key=["tenant_id", "email"],
                     update=["user_id", "rooms_before", "listed_run", "listed_at"])

    def recorded_rooms(self, meet_ids: Sequence[str]) -> set[str]:
        """Which of these Meet room ids bascule recorded (created or adopted), whoever owns them."""
        table = table_of(models.Room)
        found: set[str] = set()
        for start in range(0, len(meet_ids), BATCH):
            found.update(self._session.execute(select(table.c.meet_id).where(
                table.c.tenant_id == self._tenant_id, _in(table.c.meet_id, meet_ids[start:start + BATCH]))).scalars())
        return found

    # ---- rooms and links

    def room_ids_of(self, owner_email: str) -> set[str]:
        table = table_of(models.Room)
        return set(self._session.execute(select(table.c.meet_id).where(
            table.c.tenant_id == self._tenant_id, func.lower(table.c.owner_email) == owner_email.lower())).scalars())

    def room_of(self, action_key: str) -> models.Room | None:
        return self._session.execute(select(models.Room).where(
            models.Room.tenant_id == self._tenant_id, models.Room.action_key == action_key)).scalar_one_or_none()

    def room_known_elsewhere(self, *, meet_id: str, slug: str, action_key: str) -> str | None:
        """The action key of another room bascule recorded with this Meet id or slug (an id as given or in lower
        case, Meet's canonical form); None when the id and the slug are new, or are this action's own."""
        table = table_of(models.Room)
        query = (select(table.c.action_key).where(
            table.c.tenant_id == self._tenant_id, table.c.action_key != action_key,
            or_(table.c.meet_id.in_(sorted({meet_id, meet_id.lower()})), table.c.slug == slug))
            .order_by(table.c.action_key).limit(1))
        found = self._session.execute(query).scalar_one_or_none()
        return str(found) if found is not None else None

    def add_room(self, *, action_key: str, meet_id: str, slug: str, url: str | None, access_level: str,
                 owner_email: str, owner_user_id: str | None, telephony: dict[str, Any] | None, wave_id: int,
                 host_anchor: str | None, adopted: bool, now: datetime) -> int:
        row = {"tenant_id": self._tenant_id, "meet_id": meet_id, "action_key": action_key, "slug": slug, "url": url,
               "access_level": access_level, "owner_email": owner_email, "owner_user_id": owner_user_id,
               "telephony": telephony, "wave_id": wave_id, "host_anchor": host_anchor, "adopted": adopted,
               "created_at": now}
        upsert_plain(self._session, table_of(models.Room), [row], key=["tenant_id", "action_key"], update=[])
        room = self.room_of(action_key)
        assert room is not None
        return room.id

    def map_links(self, links: Sequence[dict[str, Any]], *, room_id: int, wave_id: int, host_anchor: str | None,
                  now: datetime) -> None:
        rows = [{"tenant_id": self._tenant_id, "old_key": link["old_key"], "platform": link["platform"],
                 "old_url": link["old_url"], "meeting_external_id": link["meeting_id"], "topic": link.get("topic"),
                 "host_anchor": host_anchor, "room_id": room_id, "wave_id": wave_id, "status": "mapped",
                 "updated_at": now} for link in links]
        upsert_plain(self._session, table_of(models.Link), rows, key=["tenant_id", "old_key"],
                     update=["room_id", "wave_id", "status", "updated_at", "host_anchor", "topic"])

    def set_link_status(self, wave_id: int, status: str, *, now: datetime) -> int:
        table = table_of(models.Link)
        result = self._session.execute(update(table).where(table.c.tenant_id == self._tenant_id,
                                                           table.c.wave_id == wave_id)
                                       .values(status=status, updated_at=now))
        return int(getattr(result, "rowcount", 0) or 0)

    def links_by_room(self, room_id: int) -> list[models.Link]:
        return list(self._session.execute(select(models.Link).where(
            models.Link.tenant_id == self._tenant_id, models.Link.room_id == room_id)).scalars())

    def lookup(self, *, old_key: str | None = None, meeting_id: str | None = None) -> list[tuple[models.Link,
                                                                                                  models.Room | None]]:
        """Links by their old key or by the source meeting id, with the room each points to."""
        query = (select(models.Link, models.Room).outerjoin(models.Room, models.Room.id == models.Link.room_id)
                 .where(models.Link.tenant_id == self._tenant_id))
        if old_key is not None:
            query = query.where(models.Link.old_key == old_key)
        if meeting_id is not None:
            query = query.where(models.Link.meeting_external_id == meeting_id)
        return [(link, room) for link, room in self._session.execute(query.order_by(models.Link.old_key)).all()]

    def rooms_of_wave(self, wave_id: int) -> Iterator[models.Room]:
        query = (select(models.Room).where(models.Room.tenant_id == self._tenant_id, models.Room.wave_id == wave_id)
                 .order_by(models.Room.id).execution_options(yield_per=BATCH))
        yield from self._session.scalars(query)

    def mark_room_verified(self, room_ids: Sequence[int], *, now: datetime) -> None:
        if room_ids:
            self._session.execute(update(models.Room).where(_in(models.Room.id, room_ids)).values(verified_at=now))

    # ---- calendar rewrites

    def rewrite_of(self, action_key: str) -> models.CalendarRewrite | None:
        return self._session.execute(select(models.CalendarRewrite).where(
            models.CalendarRewrite.tenant_id == self._tenant_id,
            models.CalendarRewrite.action_key == action_key)).scalar_one_or_none()

    def prepare_rewrite(self, *, action_key: str, mailbox: str, event_id: str, before: dict[str, Any],
                        after: dict[str, Any], now: datetime, platform: Platform = Platform.TEAMS) -> None:
        """The exact previous event (a Teams body and location; a calendar object's bytes), stored before the write
        goes (state `prepared`)."""
        row = {"tenant_id": self._tenant_id, "action_key": action_key, "platform": platform.value,
               "mailbox": mailbox, "event_id": event_id, "before": before, "after": after, "state": "prepared",
               "prepared_at": now, "rewritten_at": None, "reverted_at": None}
        upsert_plain(self._session, table_of(models.CalendarRewrite), [row], key=["tenant_id", "action_key"],
                     update=["before", "after", "state", "prepared_at"])

    def set_rewrite_state(self, action_key: str, state: str, *, now: datetime) -> None:
        column = {"rewritten": "rewritten_at", "reverted": "reverted_at"}.get(state)
        values: dict[str, Any] = {"state": state}
        if column:
            values[column] = now
        self._session.execute(update(models.CalendarRewrite).where(
            models.CalendarRewrite.tenant_id == self._tenant_id,
            models.CalendarRewrite.action_key == action_key).values(**values))

    # ---- invitations

    def notification_of(self, action_key: str) -> models.Notification | None:
        return self._session.execute(select(models.Notification).where(
            models.Notification.tenant_id == self._tenant_id,
            models.Notification.action_key == action_key)).scalar_one_or_none()

    def last_sequence(self, uid: str) -> int:
        """The highest SEQUENCE bascule has sent (or prepared) for this UID; 0 when none."""
        table = table_of(models.Notification)
        found = self._session.execute(select(func.max(table.c.sequence)).where(
            table.c.tenant_id == self._tenant_id, table.c.ical_uid == uid)).scalar_one()
        return int(found or 0)

    def prepare_notification(self, *, action_key: str, kind: str, uid: str, sequence: int, recipients: int,
                             message_id: str, payload: dict[str, Any], stamp: datetime) -> None:
        """What will be sent, stored before it is sent, so that a resend is the same message (state `prepared`)."""
        row = {"tenant_id": self._tenant_id, "action_key": action_key, "kind": kind, "ical_uid": uid,
               "sequence": sequence, "recipient_count": recipients, "message_id": message_id, "state": "prepared",
               "payload": payload, "stamp": stamp, "sent_at": None}
        upsert_plain(self._session, table_of(models.Notification), [row], key=["tenant_id", "action_key"], update=[])

    def mark_sent(self, action_key: str, *, recipients: int, now: datetime) -> None:
        self._session.execute(update(models.Notification).where(
            models.Notification.tenant_id == self._tenant_id, models.Notification.action_key == action_key)
            .values(state="sent", recipient_count=recipients, sent_at=now))
