"""Flow calendar-scan against a real CalDAV server (Xandikos on loopback): organisers' Zoom and Webex series found in
their own calendars and matched to the extracted meetings by link key; an event naming a meeting bascule did not
extract, and meetings no calendar holds, counted; a calendar that cannot be read quarantined; a second scan finds
the same, minus what the organisers deleted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from db import models
from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from db.models import table_of
from db.repositories import TenantRepository
from tests.conftest import unavailable, write_tenant
from tests.support.caldav_servers import CalDAVServer, start_xandikos

NOW = datetime(2026, 12, 5, 8, tzinfo=UTC)
MEETINGS = [  # platform, external id, host, join URL, link key
    ("zoom", "81234567890", "alice@example.gouv.fr", "https://culture-gouv.zoom.us/j/81234567890?pwd=a",
     "zoom:81234567890"),
    ("zoom", "81234567891", "alice@example.gouv.fr", "https://culture-gouv.zoom.us/j/81234567891", "zoom:81234567891"),
    ("webex", "2634123456", "bob@example.gouv.fr",
     "https://culture-gouv.webex.com/culture-gouv/j.php?MTID=m0123456789abcdef0123456789abcdef",
     "webex:mtid:m0123456789abcdef0123456789abcdef"),
    ("zoom", "81234567899", "carol@example.gouv.fr", "https://culture-gouv.zoom.us/j/81234567899",
     "zoom:81234567899"),
]


def _event(uid: str, organiser: str, link: str) -> bytes:
    return ("\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "BEGIN:VEVENT", f"UID:{uid}",
        "DTSTAMP:20261201T090000Z", "DTSTART:20261207T090000Z", "DTEND:20261207T100000Z",
        "RRULE:FREQ=WEEKLY;COUNT=20", "SUMMARY:Série", f"LOCATION:{link}",
        f"DESCRIPTION:Rejoindre la réunion\\n{link}", f"ORGANIZER:mailto:{organiser}",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dan@example.gouv.fr", "SEQUENCE:0", "END:VEVENT",
        "END:VCALENDAR"]) + "\r\n").encode()


@pytest.fixture
def xandikos(tmp_path: Path) -> Iterator[CalDAVServer]:
    try:
        server = start_xandikos(tmp_path / "xandikos")
    except (OSError, RuntimeError) as exc:
        unavailable(f"xandikos CalDAV server: {exc}")
    server.warm(["alice", "bob", "carol"])
    yield server
    server.stop()


@pytest.fixture
def scanned_tenant(tmp_path: Path, contract_ministry: tuple[Path, dict[str, Any]], xandikos: CalDAVServer,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    ministry, manifest = contract_ministry
    tenant = write_tenant(tmp_path, manifest, ldif_path=ministry / "directory.ldif")
    tenant.write_text(tenant.read_text(encoding="utf-8") + f"""
[calendar]
system = "caldav"
window_days = 120

[calendar.caldav]
calendar_url = "{xandikos.url}/{{user}}/calendars/calendar/"
remote_user_header = "X-Remote-User"
""", encoding="utf-8")
    from flows.tenant import TenantConfig

    config = TenantConfig.load(tenant)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        TenantRepository(session).ensure(config.id, name=config.name, siret=config.siret, config_path=str(tenant),
                                         config_hash="test", now=NOW)
        session.execute(insert(table_of(models.Meeting)), [{
            "tenant_id": config.id, "platform": platform, "external_id": external_id, "host_account_id": host,
            "host_email": host, "topic": "Série", "kind": "recurring_fixed", "timezone": "Europe/Paris",
            "rrule": "FREQ=WEEKLY", "join_url": link, "link_key": key, "invitee_count": 1, "invitees": [],
            "alternative_hosts": [], "flags": {}, "content_hash": "x", "last_seen_pass": "p", "created_at": NOW,
            "updated_at": NOW} for platform, external_id, host, link, key in MEETINGS])
    engine.dispose()
    return tenant, url


def _put(server: CalDAVServer, user: str, data: bytes) -> str:
    name = f"{uuid.uuid4()}.ics"
    with server.client(user) as client:
        answer = client.put(server.calendar_url(user) + name, content=data,
                            headers={"Content-Type": "text/calendar", "If-None-Match": "*"})
    assert answer.status_code == 201, answer.text
    return name


def test_the_scan_matches_organisers_events_and_counts_what_matches_nothing(
        scanned_tenant: tuple[Path, str], xandikos: CalDAVServer) -> None:
    from flows.calendars import scan_calendars

    tenant, url = scanned_tenant
    for platform, _external_id, host, link, _key in MEETINGS[:3]:
        _put(xandikos, host.split("@")[0], _event(f"{platform}-{uuid.uuid4()}", host, link))
    stray = _put(xandikos, "alice", _event("zoom-not-extracted", "alice@example.gouv.fr",
                                           "https://culture-gouv.zoom.us/j/89999999999"))
    # An invitation from someone else in Alice's calendar: not hers to rewrite.
    _put(xandikos, "alice", _event("zoom-of-dan", "dan@example.gouv.fr", MEETINGS[3][3]))
    summary = scan_calendars(str(tenant), now=NOW.isoformat())
    assert summary["this_run"]["organisers"] == 3 and summary["this_run"]["unreadable"] == 0
    assert (summary["events"], summary["matched"], summary["unmatched_events"]) == (4, 3, 1)
    assert (summary["meetings"], summary["meetings_in_a_calendar"], summary["meetings_without_event"]) == (4, 3, 1)
    assert summary["server_schedules"] is True           # Xandikos: RFC 6638, the server tells the attendees
    assert summary["series_by_channel"] == {"calendar_in_place": 3, "itip_original_uid": 0}
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        rows = session.execute(select(models.OrganiserEvent)).scalars().all()
        by_meeting = {(row.meeting_platform, row.meeting_external_id): row for row in rows}
        assert set(by_meeting) >= {("zoom", "81234567890"), ("zoom", "81234567891"), ("webex", "2634123456")}
        webex = by_meeting[("webex", "2634123456")]
        assert webex.organiser == "bob@example.gouv.fr" and webex.uid.startswith("webex-") and webex.etag
        assert webex.raw.startswith("BEGIN:VCALENDAR\r\n") and webex.recurring and webex.attendees == 1
        unmatched = [row for row in rows if row.meeting_external_id is None]
        assert [row.join_key for row in unmatched] == ["zoom:89999999999"]
    # The organiser deletes the stray event: a second scan forgets it, the rest is the same.
    with xandikos.client("alice") as client:
        assert client.delete(xandikos.calendar_url("alice") + stray).status_code in (200, 204)
    again = scan_calendars(str(tenant), now=NOW.isoformat())
    assert (again["events"], again["matched"], again["unmatched_events"]) == (3, 3, 0)
    with make_session_factory(engine)() as session:
        assert session.execute(select(models.Checkpoint.status).where(
            models.Checkpoint.source == "calendar")).scalar_one() == "complete"
    engine.dispose()


def test_an_unreadable_calendar_is_quarantined_and_the_scan_goes_on(scanned_tenant: tuple[Path, str],
                                                                     xandikos: CalDAVServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar that is not there (404: no collection, no mailbox) is counted, not quarantined — nothing to
    rewrite, its series go by mail; a calendar the server refuses to list is quarantined; the scan goes on."""
    from connectors.caldav_calendar import CalDAVCalendar
    from connectors.errors import ConnectorError
    from flows.calendars import scan_calendars

    tenant, url = scanned_tenant
    _put(xandikos, "bob", _event("webex-1", "bob@example.gouv.fr", MEETINGS[2][3]))
    _put(xandikos, "alice", _event("zoom-1", "alice@example.gouv.fr", MEETINGS[0][3]))
    assert scan_calendars(str(tenant), now=NOW.isoformat())["matched"] == 2
    with xandikos.client("alice") as client:       # Alice's collection removed: her calendar URL answers 404
        client.delete(xandikos.calendar_url("alice"))
    summary = scan_calendars(str(tenant), now=NOW.isoformat())
    assert summary["this_run"]["without_calendar"] == 1 and summary["this_run"]["unreadable"] == 0
    assert summary["matched"] == 1 and summary["this_run"]["forgotten"] == 1   # nothing of Alice's is kept
    real = CalDAVCalendar.changes

    def refused(self: CalDAVCalendar, organiser: str, *args: Any) -> Any:
        if organiser.startswith("carol"):
            raise ConnectorError("caldav", "sync-collection refused for organiser calendar (AuthorizationError)")
        return real(self, organiser, *args)

    monkeypatch.setattr(CalDAVCalendar, "changes", refused)
    summary = scan_calendars(str(tenant), now=NOW.isoformat())
    assert summary["this_run"]["unreadable"] == 1 and summary["this_run"]["without_calendar"] == 1
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        quarantined = session.execute(select(models.Quarantine.reason, models.Quarantine.record_key)).all()
    engine.dispose()
    assert quarantined == [("LISTING_REFUSED", "calendar:carol@example.gouv.fr")]


def _sync_rows(url: str) -> dict[str, tuple[str | None, datetime]]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        rows = {row.organiser: (row.token, row.window_start)
                for row in session.execute(select(models.CalendarSync)).scalars()}
    engine.dispose()
    return rows


def test_later_scans_read_only_what_changed_and_a_lost_token_lists_again(
        scanned_tenant: tuple[Path, str], xandikos: CalDAVServer) -> None:
    """After the first listing, a scan asks the server what changed since each organiser's sync token (RFC 6578):
    nothing changed, nothing is read; an edit is read again, a deletion or a link taken out forgets the event, a new
    series is found. A token the server no longer knows, `full`, or a window slid past `relist_days` lists the
    calendar whole again — and the end state is the same as a listing would give."""
    from flows.calendars import scan_calendars

    tenant, url = scanned_tenant
    uids = {key: f"{platform}-{uuid.uuid4()}" for platform, _external_id, _host, _link, key in MEETINGS[:3]}
    names = {key: _put(xandikos, host.split("@")[0], _event(uids[key], host, link))
             for _platform, _external_id, host, link, key in MEETINGS[:3]}
    stray = _put(xandikos, "alice", _event("zoom-not-extracted", "alice@example.gouv.fr",
                                           "https://culture-gouv.zoom.us/j/89999999999"))
    first = scan_calendars(str(tenant), now=NOW.isoformat())
    assert (first["this_run"]["listed"], first["this_run"]["by_delta"]) == (3, 0)
    assert (first["events"], first["matched"]) == (4, 3)
    tokens = _sync_rows(url)
    assert set(tokens) == {"alice@example.gouv.fr", "bob@example.gouv.fr", "carol@example.gouv.fr"}
    assert all(token for token, _start in tokens.values())

    quiet = scan_calendars(str(tenant), now=NOW.isoformat())
    assert (quiet["this_run"]["listed"], quiet["this_run"]["by_delta"]) == (0, 3)
    assert (quiet["this_run"]["events_read"], quiet["this_run"]["events"]) == (0, 0)
    assert (quiet["events"], quiet["matched"]) == (4, 3)

    # Bob retitles his series, Alice deletes the stray event and takes the link out of her second series, Carol
    # puts her series in her calendar.
    bob = xandikos.calendar_url("bob") + names[MEETINGS[2][4]]
    with xandikos.client("bob") as client:
        answer = client.get(bob)
        retitled = answer.content.replace(b"SUMMARY:S\xc3\xa9rie", b"SUMMARY:S\xc3\xa9rie (salle 4)")
        assert client.put(bob, content=retitled, headers={"If-Match": answer.headers["etag"],
                                                          "Content-Type": "text/calendar"}).status_code in (201, 204)
    second = xandikos.calendar_url("alice") + names[MEETINGS[1][4]]
    with xandikos.client("alice") as client:
        assert client.delete(xandikos.calendar_url("alice") + stray).status_code in (200, 204)
        answer = client.get(second)
        unlinked = _event(uids[MEETINGS[1][4]], "alice@example.gouv.fr", "salle 12")
        assert client.put(second, content=unlinked, headers={"If-Match": answer.headers["etag"],
                                                             "Content-Type": "text/calendar"}).status_code in (201, 204)
    _put(xandikos, "carol", _event("zoom-carol", "carol@example.gouv.fr", MEETINGS[3][3]))
    changed = scan_calendars(str(tenant), now=NOW.isoformat())
    run = changed["this_run"]
    assert (run["listed"], run["by_delta"], run["events_read"]) == (0, 3, 3)    # Bob's, Alice's second, Carol's
    assert (run["events"], run["forgotten"]) == (2, 2)                        # Bob's + Carol's; stray + unlinked
    assert (changed["events"], changed["matched"], changed["unmatched_events"]) == (3, 3, 0)
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        raw = session.execute(select(models.OrganiserEvent.raw).where(
            models.OrganiserEvent.meeting_external_id == "2634123456")).scalar_one()
    engine.dispose()
    assert "salle 4" in raw                                                  # the stored copy is the edited one

    # The server forgot the tokens (a token from another server, as after a restore of its store): listed again.
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        session.execute(models.CalendarSync.__table__.update().values(token="http://127.0.0.1/unknown-token"))
    engine.dispose()
    relisted = scan_calendars(str(tenant), now=NOW.isoformat())
    assert (relisted["this_run"]["listed"], relisted["this_run"]["by_delta"]) == (3, 0)
    assert (relisted["events"], relisted["matched"]) == (3, 3)
    assert all(token and token != "http://127.0.0.1/unknown-token" for token, _ in _sync_rows(url).values())

    # Asked for, or once the window has slid by more than relist_days (7): listed whole under the new window.
    assert scan_calendars(str(tenant), now=NOW.isoformat(), full=True)["this_run"]["listed"] == 3
    later = NOW.replace(day=NOW.day + 3)
    assert scan_calendars(str(tenant), now=later.isoformat())["this_run"]["by_delta"] == 3
    assert {start for _token, start in _sync_rows(url).values()} == {NOW}
    slid = NOW.replace(day=NOW.day + 8)
    moved = scan_calendars(str(tenant), now=slid.isoformat())
    assert (moved["this_run"]["listed"], moved["events"], moved["matched"]) == (3, 3, 3)
    assert {start for _token, start in _sync_rows(url).values()} == {slid}


def test_a_scan_that_dies_before_its_commit_reads_the_same_changes_again(
        scanned_tenant: tuple[Path, str], xandikos: CalDAVServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new token is stored in the transaction that stores what it covers: a scan that dies before that commit
    leaves the old token, and the next scan reads the same change again — never a token that skips a change."""
    from db.calendars import CalendarRepository
    from flows.calendars import scan_calendars

    tenant, url = scanned_tenant
    platform, _external_id, host, link, _key = MEETINGS[2]
    name = _put(xandikos, "bob", _event(f"{platform}-{uuid.uuid4()}", host, link))
    scan_calendars(str(tenant), now=NOW.isoformat())
    tokens = _sync_rows(url)
    href = xandikos.calendar_url("bob") + name
    with xandikos.client("bob") as client:
        answer = client.get(href)
        retitled = answer.content.replace(b"SUMMARY:S\xc3\xa9rie", b"SUMMARY:S\xc3\xa9rie (salle 4)")
        assert client.put(href, content=retitled, headers={"If-Match": answer.headers["etag"],
                                                           "Content-Type": "text/calendar"}).status_code in (201, 204)

    def dies(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("killed before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(CalendarRepository, "save_sync_states", dies)
        with pytest.raises(RuntimeError):
            scan_calendars(str(tenant), now=NOW.isoformat())
    assert _sync_rows(url) == tokens
    again = scan_calendars(str(tenant), now=NOW.isoformat())
    assert (again["this_run"]["by_delta"], again["this_run"]["events_read"], again["this_run"]["events"]) == (3, 1, 1)
    assert _sync_rows(url) != tokens
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        raw = session.execute(select(models.OrganiserEvent.raw)).scalar_one()
    engine.dispose()
    assert "salle 4" in raw
