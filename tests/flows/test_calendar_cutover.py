"""Zoom and Webex series moved in their organisers' own calendars (issue 14), end to end on the generated ministry:
the calendar scan, the plan's channel per series, the cutover's in-place rewrite under the original UID (Radicale:
bascule mails the iTIP; Xandikos: the server schedules), verification, a re-run that writes nothing twice, and the
rollback that puts every event back."""

from __future__ import annotations

import html
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.ical_rewrite import join_keys_in, read_object, restore_object, shows_link
from tests.flows.test_cutover import (  # noqa: F401  (planned: the module's fixture)
    WAVE,
    Killed,
    Pipeline,
    _cutover,
    _first_logins,
    _ics_text,
    _pipeline,
    planned,
)
from tests.support.caldav_servers import CalDAVServer


def _calendar_section(template: str) -> str:
    return f"""
[calendar]
system = "caldav"

[calendar.caldav]
calendar_url = "{template}"
remote_user_header = "X-Remote-User"
"""


def _calendar_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       contract_ministry: tuple[Path, dict[str, Any]], frozen: tuple[Path, list[str]],
                       section: str, **sandbox_options: Any) -> Iterator[Pipeline]:
    """The frozen wave's database copied, its tenant file with this [calendar] section from the start (onboarded
    once with it)."""
    db = tmp_path / "state.db"
    with sqlite3.connect(frozen[0]) as source, sqlite3.connect(db) as target:
        source.backup(target)
    return _pipeline(tmp_path, monkeypatch, contract_ministry, frozen, db, f"sqlite:///{db}", tenant_extra=section,
                     **sandbox_options)


@pytest.fixture
def radicale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract_ministry: tuple[Path, dict[str, Any]],
             planned: tuple[Path, list[str]]) -> Iterator[tuple[Pipeline, CalDAVServer]]:  # noqa: F811
    """The generated organisers' events seeded into a Radicale (no scheduling), the tenant pointing at it."""
    from sandbox.generator.calendars import organiser_events
    from tests.conftest import unavailable
    from tests.support.caldav_servers import seed_radicale, start_radicale

    with sqlite3.connect(planned[0]) as connection:
        hosts = {email.split("@")[0] for (email,) in connection.execute(
            "select distinct lower(host_email) from meeting where platform in ('zoom', 'webex') and host_email != ''")}
    seed_radicale(tmp_path / "radicale", organiser_events(contract_ministry[0]), users=hosts)
    try:
        server = start_radicale(tmp_path / "radicale", remote_user=True)
    except (OSError, RuntimeError) as exc:
        unavailable(f"radicale CalDAV server: {exc}")
    running = _calendar_pipeline(tmp_path, monkeypatch, contract_ministry, planned, _calendar_section(
        server.calendar_template.replace("{url}", server.url)))
    try:
        yield next(running), server
    finally:
        running.close()
        server.stop()


def _scan_and_replan(pipeline: Pipeline, emails: list[str] | None = None) -> dict[str, Any]:
    from flows.calendars import scan_calendars
    from flows.waves import freeze_wave, plan_wave

    scan_calendars(str(pipeline.tenant), now=f"{pipeline.manifest['generator']['as_of']}T00:00:00+00:00")
    plan: dict[str, Any] = plan_wave(str(pipeline.tenant), WAVE, emails=emails, unfreeze=True)
    freeze_wave(str(pipeline.tenant), WAVE)
    return plan


def _stored(server: CalDAVServer, organiser: str, href: str) -> bytes:
    with server.client(organiser.split("@")[0]) as client:
        answer = client.get(href)
    assert answer.status_code == 200, answer.status_code
    return answer.content


def _diff(got: bytes, wanted: bytes) -> str:
    import difflib

    return "\n".join(difflib.unified_diff(wanted.decode().splitlines(), got.decode().splitlines(), lineterm="", n=0))


def _room_telephony(pipeline: Pipeline, action_key: str) -> tuple[str | None, str | None]:
    (telephony,), = pipeline.rows("select room.telephony from plan_action a join room on room.action_key = "
                                  "a.depends_on where a.idempotency_key = ?", action_key)
    found = json.loads(telephony) if telephony else {}
    return found.get("phone_number"), found.get("pin_code")


def _calendar_actions(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [{"key": key, "state": state, "meeting": meeting, **json.loads(payload)}
            for key, _host, _platform, meeting, payload, _reason, state in pipeline.actions("rewrite_calendar")]


def _room_url(pipeline: Pipeline, action_key: str) -> str:
    (url,), = pipeline.rows("select room.url from plan_action a join room on room.action_key = a.depends_on "
                            "where a.idempotency_key = ?", action_key)
    return str(url)


def test_series_held_by_a_calendar_without_scheduling_are_rewritten_in_place_and_mailed_under_their_uid(
        radicale: tuple[Pipeline, CalDAVServer]) -> None:
    """Radicale does not schedule: each organiser's event is rewritten in place (same UID, SEQUENCE + 1, only the
    link block and location changed) and bascule mails the iTIP REQUEST under that original UID — so an attendee's
    calendar keeps one event per series. Series no calendar holds are mailed under a made-up UID and flagged
    uid_unknown. A second run writes and sends nothing; the rollback puts every event back as it was."""
    pipeline, radicale = radicale
    from flows.cutover import rollback_wave, verify_wave

    plan = _scan_and_replan(pipeline)
    channels = plan["series_by_channel"]
    actions = _calendar_actions(pipeline)
    mails = pipeline.actions("send_invitation")
    assert actions and all(a["channel"] == "itip_original_uid" and a["system"] == "caldav" for a in actions)
    live_mails = [m for m in mails if m[6] != "skipped"]
    assert channels["itip_original_uid"] == len(actions) and channels["mail_invented_uid"] == len(live_mails) > 0
    assert plan["flagged"]["uid_unknown"] == len(live_mails)    # who will get a second event, counted
    assert all("uid_unknown" in json.loads(flags) for (flags,) in pipeline.rows(
        "select flags from plan_action where kind = 'send_invitation'"))
    before = {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in actions}

    _cutover(pipeline)
    assert _first_logins(pipeline) > 0
    summary = _cutover(pipeline)
    done = [a for a in _calendar_actions(pipeline) if a["state"] == "done"]
    assert summary["calendar_events_rewritten"] == len(done) > 0
    assert summary["series_by_channel"]["itip_original_uid"] == len(done)
    itips = {message.message_id: message for message in pipeline.sink.messages}
    sent = dict(pipeline.rows("select action_key, message_id from notification where kind = 'itip_request'"))
    for action in done:
        original, now = before[action["key"]], _stored(radicale, action["organiser"], action["href"])
        was, is_ = read_object(original), read_object(now)
        assert not isinstance(was, Exception) and not isinstance(is_, Exception)
        url = _room_url(pipeline, action["key"])
        assert is_.uid == was.uid == action["uid"] and is_.sequence == was.sequence + 1      # type: ignore[union-attr]
        assert shows_link(now, url) and action["join_key"] not in is_.join_keys              # type: ignore[union-attr]
        assert is_.attendees == was.attendees and is_.summary == was.summary                 # type: ignore[union-attr]
        # The iTIP: METHOD:REQUEST, the original UID, the Visio link, to every attendee and the organiser.
        message = itips[sent[action["key"]]]
        ics = _ics_text(message)
        assert "METHOD:REQUEST" in ics and f"UID:{was.uid}" in ics.replace("\n ", "")      # type: ignore[union-attr]
        assert url in ics.replace("\n ", "")
        assert set(message.rcpt_tos) == {*was.attendees, action["organiser"]}               # type: ignore[union-attr]
    # No series reaches attendees under two UIDs: the calendar channel used the original one only.
    by_uid = Counter(read_object(_stored(radicale, a["organiser"], a["href"])).uid for a in done)  # type: ignore[union-attr]
    assert max(by_uid.values()) == 1

    report = verify_wave(str(pipeline.tenant), WAVE)
    assert report["counts"]["calendar_events_ok"] == len(done)
    assert not [p for p in report["problems"] if p["action"].startswith(f"{WAVE}:calendar:")]

    # Run again: nothing is written or sent twice.
    etags = {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in done}
    messages = len(pipeline.sink.messages)
    _cutover(pipeline, retry_failed=True)
    assert len(pipeline.sink.messages) == messages
    assert {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in done} == etags

    rolled = rollback_wave(str(pipeline.tenant), WAVE)
    assert rolled["calendar_events_restored"] == len(done)
    for action in done:
        restored = _stored(radicale, action["organiser"], action["href"])
        sequence = read_object(restored).sequence                                             # type: ignore[union-attr]
        assert sequence == read_object(before[action["key"]]).sequence + 2                   # type: ignore[union-attr]
        assert restored == restore_object(before[action["key"]], above=sequence - 1)
    rollback_itips = dict(pipeline.rows("select action_key, message_id from notification where action_key like ?",
                                        f"{WAVE}:restore-calendar:%"))
    assert len(rollback_itips) == len(done)
    assert all(message_id in {m.message_id for m in pipeline.sink.messages}
               for message_id in rollback_itips.values())


@pytest.mark.parametrize("crash", ["after_prepare", "after_write"])
def test_a_calendar_rewrite_killed_at_any_point_ends_rewritten_once(
        radicale: tuple[Pipeline, CalDAVServer], monkeypatch: pytest.MonkeyPatch, crash: str) -> None:
    """Killed after the originals were stored but before any PUT, or after the PUTs and iTIPs went but before
    anything was recorded: the re-run ends with every event rewritten exactly once (SEQUENCE + 1, not + 2: no
    second update), each iTIP sent once or again identical (same Message-ID and bytes), and a rollback still has
    the original to put back."""
    pipeline, radicale = radicale
    from db.waves import PlanRepository
    from flows import cutover as cutover_module
    from flows.cutover import rollback_wave

    _scan_and_replan(pipeline)
    actions = _calendar_actions(pipeline)
    before = {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in actions}
    _cutover(pipeline)
    _first_logins(pipeline)
    real_record, real_apply = PlanRepository.record, cutover_module._apply_host
    rewrites = {action_id for (action_id,) in pipeline.rows("select id from plan_action where kind = "
                                                            "'rewrite_calendar'")}

    def record(self: Any, outcomes: Any, **kwargs: Any) -> None:
        if crash == "after_write" and any(outcome.id in rewrites for outcome in outcomes):
            raise Killed("killed")
        real_record(self, outcomes, **kwargs)

    def apply(steps: Any) -> None:
        if crash == "after_prepare" and any(step.action.id in rewrites for step in steps):
            raise Killed("killed")
        real_apply(steps)

    monkeypatch.setattr(PlanRepository, "record", record)
    monkeypatch.setattr(cutover_module, "_apply_host", apply)
    with pytest.raises(Killed, match="killed"):
        _cutover(pipeline)
    monkeypatch.setattr(PlanRepository, "record", real_record)
    monkeypatch.setattr(cutover_module, "_apply_host", real_apply)
    assert pipeline.rows("select count(*) from calendar_rewrite where state = 'prepared'")[0][0] > 0
    written = {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in actions}
    summary = _cutover(pipeline)
    assert summary["calendar_events_rewritten"] == len(actions)
    after = {a["key"]: _stored(radicale, a["organiser"], a["href"]) for a in actions}
    assert all(after[key] == written[key] for key in written if written[key] != before[key])   # no second PUT
    for key in after:        # each event rewritten exactly once: one update for its attendees, never two
        assert read_object(after[key]).sequence == read_object(before[key]).sequence + 1      # type: ignore[union-attr]
    sent = Counter(m.message_id for m in pipeline.sink.messages)
    for message_id, count in sent.items():
        copies = {m.data.split(b"\r\n\r\n", 1)[1] for m in pipeline.sink.with_message_id(message_id)}
        assert len(copies) == 1, f"{message_id} sent {count} times with different content"
    itips = [mid for (mid,) in pipeline.rows("select message_id from notification where kind = 'itip_request'")]
    assert len(itips) == len(actions) and all(sent[mid] >= 1 for mid in itips)
    if crash == "after_prepare":
        assert all(sent[mid] == 1 for mid in itips)      # nothing had gone out: everything goes once
    rollback_wave(str(pipeline.tenant), WAVE)
    for action in actions:
        restored = _stored(radicale, action["organiser"], action["href"])
        assert action["join_key"] in read_object(restored).join_keys                          # type: ignore[union-attr]
        expected = restore_object(before[action["key"]], above=read_object(restored).sequence - 1)  # type: ignore[union-attr]
        assert restored == expected, _diff(restored, expected)


def test_an_organiser_s_edit_during_the_cutover_is_kept(radicale: tuple[Pipeline, CalDAVServer],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The organiser edits their event between bascule's read and its PUT: the 412 makes bascule read it again and
    rewrite the fresh copy — their edit survives, and the rollback restores that edited copy."""
    pipeline, radicale = radicale
    from connectors.caldav_calendar import CalDAVCalendar
    from flows.cutover import rollback_wave

    _scan_and_replan(pipeline)
    _cutover(pipeline)
    _first_logins(pipeline)
    target = next(a for a in _calendar_actions(pipeline) if a["state"] == "pending")   # its host logged in since
    real_put = CalDAVCalendar._put
    edited: list[bytes] = []

    def put(self: CalDAVCalendar, organiser: str, href: str, data: bytes, etag: str | None) -> int:
        if href == target["href"] and not edited:       # the organiser saves first: a new SUMMARY, a new ETag
            current = _stored(radicale, organiser, href)
            edited.append(current.replace(b"\r\nSUMMARY:", b"\r\nSUMMARY:[Modifi\xc3\xa9] ", 1))
            with radicale.client(organiser.split("@")[0]) as client:
                assert client.put(href, content=edited[0], headers={"Content-Type": "text/calendar"}
                                  ).status_code in (201, 204)
        return real_put(self, organiser, href, data, etag)

    monkeypatch.setattr(CalDAVCalendar, "_put", put)
    _cutover(pipeline)
    now = _stored(radicale, target["organiser"], target["href"])
    assert b"SUMMARY:[Modifi\xc3\xa9] " in now and shows_link(now, _room_url(pipeline, target["key"]))
    (result,), = pipeline.rows("select result from plan_action where idempotency_key = ?", target["key"])
    assert json.loads(result)["conflicts"] == 1
    rollback_wave(str(pipeline.tenant), WAVE)
    restored = _stored(radicale, target["organiser"], target["href"])
    assert b"SUMMARY:[Modifi\xc3\xa9] " in restored and target["join_key"] in read_object(restored).join_keys  # type: ignore[union-attr]


MINISTRY_DOMAINS = ("culture.example.gouv.fr", "patrimoines.example.gouv.fr")


def _register(server: CalDAVServer, address: str) -> None:
    """A Xandikos user for this address (its calendar made, its calendar-user-address-set the address)."""
    user = address.split("@")[0]
    body = ('<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:" '
            'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:calendar-user-address-set>'
            f"<d:href>mailto:{address}</d:href></c:calendar-user-address-set></d:prop></d:set></d:propertyupdate>")
    with server.client(user) as client:
        answer = client.request("PROPPATCH", f"{server.url}/{user}/", content=body,
                                headers={"Content-Type": "application/xml"})
    assert answer.status_code == 207, answer.text


def _copies(server: CalDAVServer, address: str, uid: str) -> list[bytes]:
    """The objects of this UID in an attendee's calendar."""
    import re

    user = address.split("@")[0]
    found = []
    with server.client(user) as client:
        listing = client.request("PROPFIND", server.calendar_url(user), headers={"Depth": "1"}).text
        for href in re.findall(r"<ns0:href>([^<]+\.ics)</ns0:href>", listing):
            body = client.get(server.url + href).content
            if f"UID:{uid}".encode() in body.replace(b"\r\n ", b""):
                found.append(body)
    return found


@pytest.fixture
def xandikos_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract_ministry: tuple[Path, dict[str, Any]],
                      planned: tuple[Path, list[str]]) -> Iterator[tuple[Pipeline, int]]:  # noqa: F811
    """The tenant pointing at a Xandikos to be started on a port chosen now (its iMIP goes to the pipeline's mail
    sink, which starts with the pipeline)."""
    from tests.support.caldav_servers import free_port

    port = free_port()
    running = _calendar_pipeline(tmp_path, monkeypatch, contract_ministry, planned,
                                 _calendar_section(f"http://127.0.0.1:{port}/{{user}}/calendars/calendar/"))
    try:
        yield next(running), port
    finally:
        running.close()


def test_on_a_scheduling_server_each_attendee_keeps_one_event_per_series_showing_visio(
        xandikos_pipeline: tuple[Pipeline, int], tmp_path: Path) -> None:
    """A pilot wave of organisers whose Zoom and Webex series live in Xandikos (RFC 6638): their events, PUT as the
    add-ins leave them, were delivered by the server to the ministry's attendees (and mailed to outside ones).
    After the cutover each internal attendee's calendar holds exactly one event per series, under the original
    UID, showing the Visio link — the server told them; bascule mailed nothing of its own for those series. The
    rollback brings the old link back the same way."""
    from flows.cutover import rollback_wave
    from sandbox.generator.calendars import organiser_events
    from tests.conftest import unavailable
    from tests.support.caldav_servers import start_xandikos

    pipeline, port = xandikos_pipeline
    events: dict[str, list[tuple[str, bytes]]] = {}
    for user, name, data in organiser_events(Path(pipeline.server.config.data_dir)):
        events.setdefault(user, []).append((name, data))
    hosts = [row for row in pipeline.rows(
        "select distinct lower(p.primary_email) from plan_action a join person p on p.anchor = a.host_anchor "
        "where a.kind = 'send_invitation' order by 1") if row[0].split("@")[0] in events][:4]
    pilot = [email for (email,) in hosts]
    assert len(pilot) == 4
    try:
        server = start_xandikos(tmp_path / "xandikos", smtp_port=pipeline.sink.port, port=port)
    except (OSError, RuntimeError) as exc:
        unavailable(f"xandikos CalDAV server: {exc}")
    try:
        internal: set[str] = set()
        for organiser in pilot:
            _register(server, organiser)
            for _name, data in events[organiser.split("@")[0]]:
                parsed = read_object(data)
                internal |= {a for a in parsed.attendees if a.endswith(MINISTRY_DOMAINS)}  # type: ignore[union-attr]
        for attendee in sorted(internal - set(pilot)):
            _register(server, attendee)
        for organiser in pilot:
            user = organiser.split("@")[0]
            for name, data in events[user]:
                with server.client(user) as client:
                    answer = client.put(server.calendar_url(user) + name, content=data,
                                        headers={"Content-Type": "text/calendar", "If-None-Match": "*"})
                assert answer.status_code == 201, answer.text
        plan = _scan_and_replan(pipeline, emails=pilot)
        actions = _calendar_actions(pipeline)
        assert actions and all(a["channel"] == "calendar_in_place" for a in actions)
        assert plan["series_by_channel"]["calendar_in_place"] >= len(actions)
        delivered = {a["key"]: {att: _copies(server, att, a["uid"]) for att in read_object(
            _stored(server, a["organiser"], a["href"])).attendees if att in internal} for a in actions}  # type: ignore[union-attr]
        assert all(len(copies) == 1 for by in delivered.values() for copies in by.values())   # as before the cutover
        assert sum(len(by) for by in delivered.values()) > 0
        mailed_before = len(pipeline.sink.messages)

        _cutover(pipeline)
        _first_logins(pipeline)
        summary = _cutover(pipeline)
        done = [a for a in _calendar_actions(pipeline) if a["state"] == "done"]
        assert len(done) == len(actions), pipeline.rows(
            "select state, reason, last_error from plan_action where kind = 'rewrite_calendar' and state != 'done'")
        assert summary["series_by_channel"]["calendar_in_place"] >= len(done)
        for action in done:
            url = _room_url(pipeline, action["key"])
            for attendee in delivered[action["key"]]:
                copies = _copies(server, attendee, action["uid"])
                assert len(copies) == 1, f"{len(copies)} events of one series in an attendee's calendar"
                assert shows_link(copies[0], url) and action["join_key"] not in read_object(copies[0]).join_keys  # type: ignore[union-attr]
        assert pipeline.rows("select count(*) from notification where kind = 'itip_request'") == [(0,)]
        outside = [m for m in pipeline.sink.messages[mailed_before:] if b"METHOD:REQUEST" in m.data]
        assert all(m.mail_from != "" for m in outside)      # the server's iMIP to outside attendees, if any

        rolled = rollback_wave(str(pipeline.tenant), WAVE)
        assert rolled["calendar_events_restored"] == len(done), pipeline.rows(
            "select state, reason, last_error from plan_action where kind = 'restore_calendar' and state != 'done'")
        for action in done:
            for attendee in delivered[action["key"]]:
                copies = _copies(server, attendee, action["uid"])
                assert len(copies) == 1 and action["join_key"] in read_object(copies[0]).join_keys  # type: ignore[union-attr]
    finally:
        server.stop()


@pytest.fixture
def outlook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract_ministry: tuple[Path, dict[str, Any]],
            planned: tuple[Path, list[str]]) -> Iterator[Pipeline]:  # noqa: F811
    """The ministry keeps its calendars in Exchange Online: the organisers' Zoom and Webex events are in their
    Outlook mailboxes (the Graph sandbox), the tenant's [calendar] says so."""
    running = _calendar_pipeline(tmp_path, monkeypatch, contract_ministry, planned,
                                 '\n[calendar]\nsystem = "graph"\n', outlook_calendars=True)
    try:
        yield next(running)
    finally:
        running.close()


def _common_ends(first: str, second: str) -> tuple[int, int]:
    prefix = 0
    while prefix < min(len(first), len(second)) and first[prefix] == second[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(first), len(second)) - prefix and first[-1 - suffix] == second[-1 - suffix]:
        suffix += 1
    return prefix, suffix


def test_in_exchange_online_each_organiser_s_series_master_is_rewritten_in_place(outlook: Pipeline) -> None:
    """Exchange Online through Graph: the Zoom/Webex series master in the organiser's mailbox gets the Visio block
    where the add-in's block was — nothing else in its body changes, the iCalUId stays, the location changes only
    where it held the join link — Exchange tells the attendees (bascule mails nothing for those series); verify
    reads the Visio link back; the rollback puts body and location back exactly."""
    from core.calendar import visio_block
    from flows.cutover import rollback_wave, verify_wave
    from sandbox import graph as sandbox_graph

    pipeline = outlook
    graph = sandbox_graph.state_of(pipeline.server.sandbox)
    plan = _scan_and_replan(pipeline)
    held = pipeline.rows("select count(*), count(meeting_external_id) from organiser_event")
    actions = _calendar_actions(pipeline)
    assert actions and all(a["system"] == "graph" and a["channel"] == "calendar_in_place" for a in actions)
    assert plan["series_by_channel"]["calendar_in_place"] >= len(actions)
    before = {a["key"]: graph.event(a["href"]) for a in actions}
    assert all(record is not None and not record["_truth"]["stray"] for record in before.values())

    _cutover(pipeline)
    _first_logins(pipeline)
    summary = _cutover(pipeline)
    done = [a for a in _calendar_actions(pipeline) if a["state"] == "done"]
    assert len(done) == len(actions) and summary["calendar_events_rewritten"] == len(done)
    for action in done:
        was, now = before[action["key"]], graph.event(action["href"])
        url = _room_url(pipeline, action["key"])
        assert now["iCalUId"] == was["iCalUId"] == action["uid"] and now["subject"] == was["subject"]
        old, new = was["body"]["content"], now["body"]["content"]
        prefix, suffix = _common_ends(old, new)
        changed, removed = new[prefix:len(new) - suffix], old[prefix:len(old) - suffix]
        assert url in changed and "Réunion Visio" in changed and changed in visio_block(
            url, phone=(room := _room_telephony(pipeline, action["key"]))[0], pin=room[1])
        assert "/j" in removed and "Ordre du jour" not in removed          # the add-in's block went, nothing else
        assert not [k for k, _u in join_keys_in(html.unescape(new)) if k == action["join_key"]]
        if "zoom.us/j/" in was["location"]["displayName"] or "webex.com" in was["location"]["displayName"]:
            assert now["location"]["locationUri"] == url
        else:
            assert now["location"] == was["location"]
    assert pipeline.rows("select count(*) from notification where kind = 'itip_request'") == [(0,)]
    report = verify_wave(str(pipeline.tenant), WAVE)
    assert report["counts"]["calendar_events_ok"] == len(done)

    rolled = rollback_wave(str(pipeline.tenant), WAVE)
    assert rolled["calendar_events_restored"] == len(done)
    for action in done:
        was, now = before[action["key"]], graph.event(action["href"])
        assert now["body"] == was["body"] and now["location"] == was["location"]
        assert now["locations"] == was["locations"]

    # The next scan asks each mailbox what changed since its deltaLink: only the masters written (and the Teams
    # masters the wave rewrote) come back; the Zoom/Webex ones hold their join link again, as the first scan saw.
    from flows.calendars import scan_calendars

    again = scan_calendars(str(pipeline.tenant), now=f"{pipeline.manifest['generator']['as_of']}T00:00:00+00:00")
    run = again["this_run"]
    assert run["listed"] == 0 and run["by_delta"] == run["organisers"] - run["without_calendar"] > 0
    assert run["events"] == len(done) and run["forgotten"] == 0
    assert pipeline.rows("select count(*), count(meeting_external_id) from organiser_event") == held
