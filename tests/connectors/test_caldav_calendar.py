"""The CalDAV `Calendar` adapter against real servers on loopback — Xandikos (RFC 6638 scheduling to local users)
and Radicale (no scheduling) — as one contract suite: the scan finds the organiser's Zoom series, the rewrite
keeps the UID and every other property, bumps SEQUENCE once, rewrites the overrides in the same PUT; a concurrent
edit (412) is re-applied on the fresh copy and survives; the restore puts the original back; on Xandikos the
attendee's copy is updated in place (one event, same UID, the Visio link)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectors.caldav_calendar import CalDAVAccess, CalDAVCalendar
from core.ical_rewrite import IcalRefused, StoredEvent
from sandbox.smtp import SmtpSink
from tests.conftest import unavailable
from tests.support.caldav_servers import CalDAVServer, start_radicale, start_xandikos

ZOOM = "https://culture-gouv.zoom.us/j/81234567890?pwd=abc"
VISIO = "https://visio.numerique.gouv.fr/abc-defg-hij"
WINDOW = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))


def _series(uid: str, *, organiser: str = "alice", link: str = ZOOM, override: bool = True) -> bytes:
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Zoom Video Communications//Outlook Plugin//EN",
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261201T090000Z", "DTSTART:20261207T090000Z",
        "DTEND:20261207T100000Z", "RRULE:FREQ=WEEKLY;COUNT=10", "SUMMARY:Point hebdo de l'équipe",
        f"LOCATION:{link}",
        f"DESCRIPTION:Bonjour à tous\\,\\n\\nRejoindre la réunion Zoom\\n{link}\\n\\nID de réunion : 812 3456 7890"
        "\\nCode secret : 123456\\n\\nOrdre du jour : budget\\; recrutements.",
        f"ORGANIZER;CN=Alice Martin:mailto:{organiser}@example.gouv.fr",
        "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.gouv.fr",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@ailleurs.example",
        "SEQUENCE:0", "END:VEVENT"]
    if override:
        lines += ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261201T090000Z", "RECURRENCE-ID:20261214T090000Z",
                  "DTSTART:20261214T130000Z", "DTEND:20261214T140000Z", "SUMMARY:Point hebdo (après-midi)",
                  f"LOCATION:{link}", f"DESCRIPTION:Décalé.\\n\\nRejoindre la réunion Zoom\\n{link}",
                  f"ORGANIZER;CN=Alice Martin:mailto:{organiser}@example.gouv.fr",
                  "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.gouv.fr",
                  "SEQUENCE:0", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """Where Xandikos mails iMIP to attendees it cannot deliver to locally (external addresses)."""
    with SmtpSink() as started:
        yield started


@pytest.fixture(scope="module", params=["xandikos", "radicale"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           sink: SmtpSink) -> Iterator[CalDAVServer]:
    directory = tmp_path_factory.mktemp(request.param)
    try:
        started = (start_xandikos(directory, smtp_port=sink.port) if request.param == "xandikos"
                   else start_radicale(directory))
    except (OSError, RuntimeError) as exc:
        unavailable(f"{request.param} CalDAV server: {exc}")
    started.warm(["alice", "bob"])
    yield started
    started.stop()


def _calendar(server: CalDAVServer) -> CalDAVCalendar:
    if server.kind == "xandikos":
        access = CalDAVAccess(server.calendar_template.replace("{url}", server.url), remote_user_header="X-Remote-User")
    else:
        access = CalDAVAccess(server.calendar_template.replace("{url}", server.url), username="alice",
                              password="unused")
    return CalDAVCalendar(access)


def _put(server: CalDAVServer, user: str, name: str, data: bytes, etag: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "text/calendar"} | ({"If-Match": etag} if etag else {"If-None-Match": "*"})
    with server.client(user) as client:
        return client.put(server.calendar_url(user) + name, content=data, headers=headers)


def _stored(server: CalDAVServer, uid: str) -> StoredEvent:
    calendar = _calendar(server)
    found = [event for event in calendar.scan("alice@example.gouv.fr", *WINDOW) if event.parsed.uid == uid]
    assert len(found) == 1, [event.parsed.uid for event in calendar.scan("alice@example.gouv.fr", *WINDOW)]
    return found[0]


def _now(server: CalDAVServer, event: StoredEvent) -> StoredEvent:
    """The event as stored now (the scan no longer lists it once it holds no join link)."""
    current = _calendar(server).read(event.organiser, event.href)
    assert current is not None
    return current


def _unfolded(data: bytes) -> list[str]:
    return re.sub(r"\r?\n[ \t]", "", data.decode()).splitlines()


def _props(data: bytes, *, drop: tuple[str, ...] = ()) -> list[str]:
    """The content lines, server stamps removed, without the properties named."""
    lines = [re.sub(r';SCHEDULE-(?:STATUS|FORCE-SEND)=(?:"[^"]*"|[^;:]*)', "", line) for line in _unfolded(data)]
    return sorted(line for line in lines if not line.startswith(drop))


def test_the_scan_finds_the_organiser_s_linked_series_only(server: CalDAVServer) -> None:
    uid = f"zoom-{uuid.uuid4()}@zoom.us"
    assert _put(server, "alice", "series.ics", _series(uid)).status_code == 201
    plain = _series(f"plain-{uuid.uuid4()}", link="Salle 204")
    assert _put(server, "alice", "plain.ics", plain).status_code == 201
    foreign = _series(f"foreign-{uuid.uuid4()}", organiser="dan")     # an invitation from someone else
    assert _put(server, "alice", "foreign.ics", foreign).status_code == 201
    event = _stored(server, uid)
    assert event.parsed.join_keys == ("zoom:81234567890",) and event.parsed.overrides == 1
    assert event.parsed.organizer == "alice@example.gouv.fr" and event.etag
    assert event.data.startswith(b"BEGIN:VCALENDAR\r\n")       # as stored: the line endings too
    uids = {found.parsed.uid for found in _calendar(server).scan("alice@example.gouv.fr", *WINDOW)}
    assert not any(found.startswith(("plain-", "foreign-")) for found in uids)
    assert _calendar(server).schedules("alice@example.gouv.fr") is server.scheduling


def test_the_rewrite_changes_only_the_link_and_the_sequence(server: CalDAVServer, sink: SmtpSink) -> None:
    uid = f"zoom-{uuid.uuid4()}@zoom.us"
    assert _put(server, "alice", f"{uuid.uuid4()}.ics", _series(uid)).status_code == 201
    event = _stored(server, uid)
    sink.clear()
    written = _calendar(server).rewrite(event, join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(written, IcalRefused) and written.changed and written.conflicts == 0
    after = _now(server, event)
    assert after.parsed.uid == uid and after.parsed.sequence == event.parsed.sequence + 1
    unfolded = "\n".join(_unfolded(after.data))
    assert ZOOM not in unfolded and unfolded.count(VISIO) == 4     # LOCATION and DESCRIPTION of both components
    untouched = ("LOCATION", "DESCRIPTION", "SEQUENCE")
    assert _props(after.data, drop=untouched) == _props(event.data, drop=untouched)
    description = next(line for line in _unfolded(after.data) if line.startswith("DESCRIPTION:Bonjour"))
    assert description == ("DESCRIPTION:Bonjour à tous\\,\\n\\nRéunion Visio\\nRejoindre : " + VISIO
                           + "\\n\\nOrdre du jour : budget\\; recrutements.")
    again = _calendar(server).rewrite(after, join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(again, IcalRefused) and not again.changed          # idempotent: no second update
    if server.scheduling:
        # The attendee's copy, updated in place by the server: one event, the original UID, the Visio link.
        assert written.attendee_status.get("bob@example.gouv.fr", "").startswith(("1.", "2."))
        with server.client("bob") as client:
            listing = client.request("PROPFIND", server.calendar_url("bob"), headers={"Depth": "1"}).text
            copies = []
            for href in re.findall(r"<ns0:href>([^<]+\.ics)</ns0:href>", listing):
                body = client.get(server.url + href).text
                if f"UID:{uid}" in body.replace("\r\n ", ""):
                    copies.append(body)
        assert len(copies) == 1 and VISIO in copies[0].replace("\r\n ", "") and ZOOM not in copies[0]
        # The external attendee: one iMIP REQUEST by mail, under the original UID, with the Visio link.
        mailed = [m for m in sink.messages if "carol@ailleurs.example" in m.rcpt_tos]
        assert len(mailed) == 1
        invitation = mailed[0].data.decode(errors="replace")
        assert "METHOD:REQUEST" in invitation and uid in invitation.replace("\r\n ", "")
    else:
        assert sink.messages == []          # Radicale tells nobody: bascule's own iTIP does (flows)


def test_a_concurrent_edit_is_kept_and_the_rewrite_applied_on_top(server: CalDAVServer) -> None:
    uid = f"zoom-{uuid.uuid4()}@zoom.us"
    assert _put(server, "alice", f"{uuid.uuid4()}.ics", _series(uid)).status_code == 201
    read = _stored(server, uid)
    # The organiser renames the meeting after bascule read it: bascule's If-Match is now stale.
    edited = read.data.replace(b"SUMMARY:Point hebdo de l'\xc3\xa9quipe", b"SUMMARY:Comit\xc3\xa9 de pilotage")
    assert _put(server, "alice", read.href.rsplit("/", 1)[1], edited, etag=read.etag).status_code in (200, 204)
    written = _calendar(server).rewrite(read, join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(written, IcalRefused) and written.conflicts == 1
    after = _now(server, read).data.decode()
    assert "SUMMARY:Comité de pilotage" in after and VISIO in after.replace("\r\n ", "") and ZOOM not in after


def test_the_restore_puts_the_original_back_and_keeps_a_later_edit(server: CalDAVServer) -> None:
    uid = f"zoom-{uuid.uuid4()}@zoom.us"
    assert _put(server, "alice", f"{uuid.uuid4()}.ics", _series(uid)).status_code == 201
    original = _stored(server, uid)
    calendar = _calendar(server)
    written = calendar.rewrite(original, join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(written, IcalRefused)
    sequence = _now(server, original).parsed.sequence
    restored = calendar.restore("alice@example.gouv.fr", original.href, original=original.data,
                                rewritten=written.after, sequence=sequence)
    back = _stored(server, uid)              # listed again: it holds the Zoom link once more
    assert _props(back.data, drop=("SEQUENCE",)) == _props(original.data, drop=("SEQUENCE",))
    assert back.parsed.sequence > sequence and restored.kept == ()
    # Rewritten again, then the organiser edits the override's description: the restore undoes the rest and keeps
    # the organiser's text.
    second = calendar.rewrite(back, join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(second, IcalRefused)
    now = _now(server, back)
    edited = now.data.replace(b"DESCRIPTION:D\xc3\xa9cal\xc3\xa9.", b"DESCRIPTION:Annul\xc3\xa9 ? Voir Alice.")
    assert edited != now.data
    _put(server, "alice", now.href.rsplit("/", 1)[1], edited, etag=now.etag)
    undone = calendar.restore("alice@example.gouv.fr", now.href, original=back.data, rewritten=second.after,
                              sequence=now.parsed.sequence)
    assert undone.kept == ("DESCRIPTION@20261214T090000Z",)
    final = _now(server, back).data.decode().replace("\r\n ", "")
    assert "Annulé ? Voir Alice." in final and f"LOCATION:{ZOOM}" in final


def test_bascule_s_itip_carries_the_original_uid_and_the_new_sequence(server: CalDAVServer, sink: SmtpSink) -> None:
    """What a server without scheduling (Radicale) leaves to bascule: the rewritten event mailed as an iTIP REQUEST
    under the organiser's UID, so attendees' clients update the event they have instead of adding one."""
    from connectors.mail import SmtpConfig, SmtpInvitationSender
    from connectors.retry import RetryPolicy, RetryStats
    from connectors.throttle import NoThrottle

    uid = f"zoom-{uuid.uuid4()}@zoom.us"
    _put(server, "alice", f"{uuid.uuid4()}.ics", _series(uid))
    written = _calendar(server).rewrite(_stored(server, uid), join_key="zoom:81234567890", visio_url=VISIO)
    assert not isinstance(written, IcalRefused)
    sink.clear()
    sender = SmtpInvitationSender(SmtpConfig(host=sink.host, port=sink.port, mailbox="bascule@example.gouv.fr"),
                                  throttle=NoThrottle(), retry=RetryPolicy(attempts=2), stats=RetryStats())
    sent = sender.send_itip(written.after, organiser="alice@example.gouv.fr", organiser_name="Alice Martin",
                            attendees=["bob@example.gouv.fr", "carol@ailleurs.example"], subject="Point hebdo",
                            text="La réunion passe sur Visio.", idempotency_key=f"itip:{uid}")
    assert sent.uid == uid and sent.sequence == 1 and sent.recipients == 3
    (message,) = sink.messages
    calendar = next(part for part in message.message.walk() if part.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REQUEST"
    body = calendar.get_content().replace("\r\n ", "")
    assert body.startswith("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n") and f"UID:{uid}" in body
    assert "SEQUENCE:1" in body and VISIO in body and ZOOM not in body
    assert "SCHEDULE-STATUS" not in body and "SCHEDULE-FORCE-SEND" not in body


class _Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, headers or {}


def _scripted(statuses: list[tuple[int, dict[str, str]] | type[OSError]]) -> tuple[CalDAVCalendar, list[str]]:
    """A CalDAVCalendar whose server answers these statuses in turn (or fails to connect), without sleeping."""
    from connectors.retry import RetryPolicy

    calendar = CalDAVCalendar(CalDAVAccess("http://dav.invalid/{user}/"), retry=RetryPolicy(
        attempts=4, base_delay=0.0, max_delay=0.0))
    seen: list[str] = []

    class Client:
        def __enter__(self) -> Client:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def request(self, url: str, method: str, *_: object) -> _Answer:
            seen.append(method)
            answer = statuses.pop(0)
            if isinstance(answer, type):
                raise answer("connection refused")
            return _Answer(*answer)

    calendar._client = lambda organiser: Client()  # type: ignore[method-assign,assignment,return-value]
    return calendar, seen


@pytest.mark.parametrize("busy", [(423, {}), (503, {"Retry-After": "0"}), (429, {"Retry-After": "0"}), OSError])
def test_a_busy_or_locked_server_is_asked_again_a_bounded_number_of_times(busy: Any) -> None:
    """Xandikos answers 423 while its store is locked by another delivery; a 5xx, a 429 or a refused connection
    is transient too: asked again, then the write goes. Four in a row: the error is transient, never permanent."""
    from connectors.errors import TransientConnectorError

    calendar, seen = _scripted([busy, (204, {})])
    assert calendar._put("alice@example.gouv.fr", "http://dav.invalid/alice/a.ics", b"x", '"e1"') == 204
    assert seen == ["PUT", "PUT"]
    calendar, seen = _scripted([busy] * 4)
    with pytest.raises(TransientConnectorError):
        calendar._put("alice@example.gouv.fr", "http://dav.invalid/alice/a.ics", b"x", '"e1"')
    assert len(seen) == 4
    calendar, seen = _scripted([(403, {})])
    assert calendar._put("alice@example.gouv.fr", "http://dav.invalid/alice/a.ics", b"x", '"e1"') == 403
    assert seen == ["PUT"]                # a refusal is the caller's to read, never retried
