"""How plans are read for people, on SQLite and PostgreSQL: one line per meeting and action across pages, hosts
waiting for their first Visio login, what each host receives, waves with their progress, departments and names."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from core import ActionKind, ActionState, Platform
from core.waves import WaveAction, WaveSelection
from db import models
from db.engine import make_engine, make_session_factory
from db.repositories import TenantRepository
from db.waves import (
    BATCH,
    ActionOutcome,
    CutoverRepository,
    HostReceipt,
    HostWaiting,
    PlanRepository,
    WaveRepository,
)

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
HOSTS = BATCH + 100  # two pages of room actions, three of all actions


def _person(anchor: str, department: str | None, *, excluded: str | None = None,
            provisioning: str = "first_login") -> models.Person:
    email = f"{anchor}@culture.gouv.fr"
    return models.Person(tenant_id="t1", anchor=anchor, primary_email=email.upper(), email_normalised=email,
                         display_name=anchor, department=department, population="agent", disabled=False,
                         proconnect_email=email, expected_idp=None, siret=None, visio_provisioning=provisioning,
                         login_hint_url=None, excluded_reason=excluded, content_hash="x", created_at=NOW,
                         updated_at=NOW, removed_at=None)


def _plan(sessions: sessionmaker[Session]) -> int:
    """Hosts h00000… each with a series room and its ICS update; h00000 also a personal room of two meetings and a
    one-off meeting skipped; h00001 known to Visio; h00002 held by a cutover run."""
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        units = ["DNUM/SDI/B1", "DNUM/SDI/B2", "DNUM", "SG/SDAF", None]
        session.add_all(_person(f"h{i:05d}", units[i % len(units)]) for i in range(HOSTS))
        session.add(_person("salle-1", "DNUM/SDI/B1", excluded="NON_PERSON_ACCOUNT"))
        session.add(models.VisioUser(tenant_id="t1", email="h00001@culture.gouv.fr", user_id="u1", rooms_before=[]))
        wave = WaveRepository(session, "t1").create("vague-1", WaveSelection(("DNUM",)), now=NOW)
        actions: list[WaveAction] = []
        for i in range(HOSTS):
            host, meeting = f"h{i:05d}", f"{8_000_000_000 + i}"
            room = f"vague-1:room:zoom:{meeting}"
            links = [{"platform": "zoom", "meeting_id": meeting, "old_key": f"k{i}", "old_url": "", "topic": f"=T{i}"}]
            actions += [WaveAction(ActionKind.CREATE_ROOM, room, Platform.ZOOM, meeting, host,
                                   payload={"owner_email": f"{host}@culture.gouv.fr", "links": links}),
                        WaveAction(ActionKind.SEND_INVITATION, f"vague-1:invite:zoom:{meeting}", Platform.ZOOM,
                                   meeting, host, depends_on=room)]
        actions += [WaveAction(ActionKind.CREATE_ROOM, "vague-1:room:personal:h00000", Platform.WEBEX, "p1", "h00000",
                               payload={"links": [{"platform": "webex", "meeting_id": "p1", "topic": "Perso"},
                                                  {"platform": "zoom", "meeting_id": "p2", "topic": "Perso"}]}),
                    WaveAction(ActionKind.CREATE_ROOM, "vague-1:skip:zoom:o1", Platform.ZOOM, "o1", "h00000",
                               ActionState.SKIPPED, reason="one_off",
                               payload={"links": [{"platform": "zoom", "meeting_id": "o1", "topic": "Une fois"}]})]
        plan = PlanRepository(session, "t1")
        plan.upsert(wave.id, actions, now=NOW)
        (held,) = [row for row in plan.iter_actions(wave.id, kinds=[ActionKind.CREATE_ROOM])
                   if row.host_anchor == "h00002"]
        (done,) = [row for row in plan.iter_actions(wave.id, kinds=[ActionKind.CREATE_ROOM])
                   if row.host_anchor == "h00003"]
        plan.record([ActionOutcome(held.id, ActionState.HELD, reason="WAITING_FIRST_LOGIN"),
                     ActionOutcome(done.id, ActionState.DONE, result={"url": "https://visio/abc"})], now=NOW)
        CutoverRepository(session, "t1").add_room(
            action_key=done.key, meet_id="m1", slug="abc", url="https://visio/abc", access_level="trusted",
            owner_email="h00003@culture.gouv.fr", owner_user_id="u3", telephony=None, wave_id=wave.id,
            host_anchor="h00003", adopted=False, now=NOW)
        WaveRepository(session, "t1").replace_members(wave.id, [f"h{i:05d}" for i in range(HOSTS)])
        return wave.id


def test_a_plan_reads_as_one_line_per_meeting_and_action_with_who_waits_and_who_receives(migrated_url: str) -> None:
    sessions = make_session_factory(make_engine(migrated_url))
    wave_id = _plan(sessions)
    with sessions() as session:
        plan = PlanRepository(session, "t1")
        lines = list(plan.iter_lines(wave_id))
        assert len(lines) == 2 * HOSTS + 3
        assert Counter((line.action_key, line.meeting_id) for line in lines).most_common(1)[0][1] == 1
        personal = [line for line in lines if line.action_key == "vague-1:room:personal:h00000"]
        assert [(line.platform, line.meeting_id, line.title) for line in personal] == [
            ("webex", "p1", "Perso"), ("zoom", "p2", "Perso")]
        by_key = {line.action_key: line for line in lines}
        assert by_key["vague-1:room:zoom:8000000003"].visio_room == "https://visio/abc"
        assert by_key["vague-1:invite:zoom:8000000003"].visio_room == "https://visio/abc"  # the room it waits for
        assert (by_key["vague-1:skip:zoom:o1"].state, by_key["vague-1:skip:zoom:o1"].reason) == (ActionState.SKIPPED,
                                                                                               "one_off")
        assert by_key["vague-1:room:zoom:8000000007"].host == "h00007@culture.gouv.fr"

        tally = plan.tally(wave_id)
        assert (tally.moving, tally.not_moving) == (HOSTS + 2, {"one_off": 1})
        waiting, first = plan.waiting_hosts(wave_id, limit=3)
        assert waiting == HOSTS - 2  # h00001 is known to Visio; h00003's room is done
        assert first == [HostWaiting("h00000", "h00000@culture.gouv.fr", False),
                         HostWaiting("h00002", "h00002@culture.gouv.fr", True),
                         HostWaiting("h00004", "h00004@culture.gouv.fr", False)]
        hosts, receipts = plan.host_receipts(wave_id, limit=2)
        assert hosts == HOSTS
        assert receipts == [HostReceipt("h00000", "h00000@culture.gouv.fr", 2, 0, 1),
                            HostReceipt("h00001", "h00001@culture.gouv.fr", 1, 0, 1)]

        waves = WaveRepository(session, "t1")
        (listed,) = waves.listing()
        assert (listed.name, listed.persons, listed.actions, listed.done, listed.held) == (
            "vague-1", HOSTS, 2 * HOSTS + 1, 1, 1)
        heads = dict((department, (chosen, excluded)) for department, chosen, excluded in waves.department_heads())
        assert heads["DNUM/SDI/B1"] == (HOSTS // 5, 1) and heads[None] == (HOSTS // 5, 0)
        assert set(waves.departments()) == {"DNUM/SDI/B1", "DNUM/SDI/B2", "DNUM", "SG/SDAF"}
        assert waves.known_emails(["h00009@culture.gouv.fr", "nobody@culture.gouv.fr"]) == {"h00009@culture.gouv.fr"}
        assert waves.known_anchors(["h00009", "zz"]) == {"h00009"}
        holders, near = waves.emails_near("h0000x@culture.gouv.fr", limit=50)
        assert holders == [] and len(near) == 50 and all(email.startswith("h0") for email in near)
        assert plan.started(wave_id) == 2
        assert plan.skip_pending(wave_id, reason="wave_cancelled", now=NOW) == 2 * HOSTS - 1
