"""connectors.mail.SmtpInvitationSender over real SMTP to the sandbox sink: the iTIP update as attendees' mail
systems read it back (icalendar), the headers, rollback, resends byte for byte, and SMTP errors mapped."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from connectors.errors import ConnectorAuthError, PermanentConnectorError, TransientConnectorError
from connectors.mail import SmtpConfig, SmtpInvitationSender, build_message, message_id_for
from connectors.retry import RetryPolicy, RetryStats
from connectors.throttle import NoThrottle
from core.invitations import (
    InvitationPurpose,
    InvitationUpdate,
    build_invitation_update,
    build_rollback_update,
)
from core.records import Meeting, MeetingKind, Platform, Recurrence
from sandbox.smtp import CapturedMessage, SmtpSink

MAILBOX = "bascule-visio@culture.example.gouv.fr"
ORGANISER = "helene.lefevre@culture.example.gouv.fr"
ATTENDEES = ("paul.durand@culture.example.gouv.fr", "Anne.Roux@patrimoines.example.gouv.fr",
             "prestataire@example.com")
VISIO = "https://visio.numerique.gouv.fr/kol-qnhb-hlx"
ZOOM = "https://culture-gouv.zoom.us/j/84120036571"
STAMP = datetime(2026, 11, 23, 8, 15, 42, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
CREDENTIALS = ("bascule", "sandbox-smtp-password")


def meeting(*, rrule: str | None = "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20271231T225959Z",
            zone: str = "Europe/Paris", start: datetime = datetime(2026, 1, 5, 9, tzinfo=UTC),
            kind: MeetingKind = MeetingKind.WEEKLY) -> Meeting:
    return Meeting(platform=Platform.ZOOM, external_id="84120036571", host_account_id="host-1",
                   host_email=ORGANISER, topic="Point hebdo DSI", kind=kind, timezone=zone, join_url=ZOOM,
                   link_key="zoom:84120036571", start=start, duration_minutes=45,
                   recurrence=Recurrence(rrule, zone) if rrule else None, invitees=(*ATTENDEES, ORGANISER.upper()))


def update_of(source: Meeting | None = None, *, key: str = "cutover:zoom:84120036571",
              sequence: int = 2) -> InvitationUpdate:
    built = build_invitation_update(source or meeting(), visio_url=VISIO, previous_sequence=sequence,
                                    idempotency_key=key, organiser_name="Hélène Lefèvre")
    assert isinstance(built, InvitationUpdate)
    return built


@pytest.fixture(scope="module")
def sink_server() -> Iterator[SmtpSink]:
    with SmtpSink(refuse=["prestataire@example.com"]) as started:
        yield started


@pytest.fixture
def sink(sink_server: SmtpSink) -> SmtpSink:
    sink_server.clear()
    return sink_server


@pytest.fixture(scope="module")
def auth_sink() -> Iterator[SmtpSink]:
    with SmtpSink(credentials=CREDENTIALS) as started:
        yield started


def sender(sink: SmtpSink, *, stats: RetryStats | None = None, clock: Any = None,
           **config: Any) -> SmtpInvitationSender:
    return SmtpInvitationSender(SmtpConfig(host=sink.host, port=sink.port, mailbox=MAILBOX, **config),
                                throttle=NoThrottle(), retry=FAST, stats=stats or RetryStats(),
                                clock=clock or (lambda: STAMP))


def calendar_part(message: EmailMessage) -> tuple[EmailMessage, Calendar]:
    (part,) = [item for item in message.walk() if item.get_content_type() == "text/calendar"]
    assert isinstance(part, EmailMessage)
    return part, Calendar.from_ical(part.get_content())


def only(sink: SmtpSink) -> CapturedMessage:
    (captured,) = sink.messages
    return captured


# ----------------------------------------------------------------------------------------------- the update

def test_the_update_reads_back_as_an_itip_request(sink: SmtpSink) -> None:
    update = update_of()
    sent = sender(sink).send(update, stamp=STAMP)
    captured = only(sink)
    part, calendar = calendar_part(captured.message)

    assert part.get_param("method") == "REQUEST"
    assert str(calendar["METHOD"]) == "REQUEST" and str(calendar["VERSION"]) == "2.0"
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == "zoom-84120036571@bascule" == update.uid == sent.uid
    assert int(event["SEQUENCE"]) == 3 == sent.sequence
    start = event["DTSTART"]
    assert start.params["TZID"] == "Europe/Paris"
    assert start.dt == datetime(2026, 1, 5, 10, tzinfo=ZoneInfo("Europe/Paris"))
    assert event["DTEND"].params["TZID"] == "Europe/Paris"
    assert event["DTEND"].dt - start.dt == timedelta(minutes=45)
    assert event["DTSTAMP"].dt == STAMP
    assert str(event["LOCATION"]) == VISIO and str(event["URL"]) == VISIO
    assert VISIO in str(event["DESCRIPTION"]) and str(event["SUMMARY"]) == "Point hebdo DSI"
    organizer = event["ORGANIZER"]
    assert str(organizer) == f"mailto:{ORGANISER}"
    assert (organizer.params["CN"], organizer.params["SENT-BY"]) == ("Hélène Lefèvre", f"mailto:{MAILBOX}")
    attendees = event["ATTENDEE"]
    assert [str(item) for item in attendees] == [f"mailto:{address}" for address in ATTENDEES]
    assert all((item.params["PARTSTAT"], item.params["RSVP"]) == ("NEEDS-ACTION", "TRUE") for item in attendees)
    assert [str(zone["TZID"]) for zone in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    (attachment,) = [item for item in captured.message.walk() if item.get_filename() == "invite.ics"]
    assert attachment.get_content() == part.get_content().encode()


RRULES = [
    "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20271231T225959Z",
    "FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=2",
    "FREQ=MONTHLY;INTERVAL=1;BYDAY=-1FR;COUNT=12",
    "FREQ=DAILY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR;COUNT=40",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;WKST=MO",
    "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=15",
]


@pytest.mark.parametrize("rrule", RRULES)
def test_the_rrule_is_copied_verbatim(rrule: str) -> None:
    update = update_of(meeting(rrule=rrule))
    ics = calendar_part(build_message(update, config=SmtpConfig(host="relay", mailbox=MAILBOX), stamp=STAMP))[0]
    lines = re.findall(r"^RRULE:.*$", ics.get_content().replace("\r\n ", ""), flags=re.MULTILINE)
    assert [line.rstrip("\r") for line in lines] == [f"RRULE:{rrule}"]


@pytest.mark.parametrize(("zone", "start", "local"), [
    ("America/Cayenne", datetime(2026, 3, 2, 12, tzinfo=UTC), datetime(2026, 3, 2, 9)),
    ("Indian/Reunion", datetime(2026, 3, 2, 5, tzinfo=UTC), datetime(2026, 3, 2, 9)),
    ("Pacific/Noumea", datetime(2026, 3, 1, 22, tzinfo=UTC), datetime(2026, 3, 2, 9)),
], ids=["Guyane", "La Réunion", "Nouvelle-Calédonie"])
def test_dtstart_keeps_the_series_zone(zone: str, start: datetime, local: datetime) -> None:
    update = update_of(meeting(zone=zone, start=start))
    _part, calendar = calendar_part(build_message(update, config=SmtpConfig(host="relay", mailbox=MAILBOX),
                                                  stamp=STAMP))
    (event,) = calendar.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == zone
    assert event["DTSTART"].dt.replace(tzinfo=None) == local
    assert [str(item["TZID"]) for item in calendar.walk("VTIMEZONE")] == [zone]


def test_a_one_off_meeting_has_no_rrule() -> None:
    update = update_of(meeting(rrule=None, kind=MeetingKind.ONE_OFF))
    _part, calendar = calendar_part(build_message(update, config=SmtpConfig(host="relay", mailbox=MAILBOX),
                                                  stamp=STAMP))
    assert "RRULE" not in calendar.walk("VEVENT")[0]


def test_headers_and_envelope(sink: SmtpSink) -> None:
    update = update_of()
    sent = sender(sink).send(update, stamp=STAMP)
    captured = only(sink)
    message = captured.message

    assert message["From"].addresses[0].addr_spec == ORGANISER
    assert message["From"].addresses[0].display_name == "Hélène Lefèvre"
    assert message["Sender"].addresses[0].addr_spec == MAILBOX
    expected_id = message_id_for(update.idempotency_key, "culture.example.gouv.fr")
    assert str(message["Message-ID"]) == expected_id == sent.message_id
    assert f"\r\nMessage-ID: {expected_id}\r\n".encode() in captured.data       # on one line, never folded
    assert parsedate_to_datetime(str(message["Date"])) == STAMP
    assert [item.addr_spec for item in message["To"].addresses] == list(ATTENDEES)
    assert [item.addr_spec for item in message["Cc"].addresses] == [ORGANISER]
    assert str(message["Subject"]) == update.subject and str(message["Auto-Submitted"]) == "auto-generated"
    assert captured.mail_from == MAILBOX
    # The refusing sink turns one attendee away: reported, the rest delivered.
    assert captured.rcpt_tos == (ATTENDEES[0], ATTENDEES[1], ORGANISER)
    assert (sent.recipients, sent.refused) == (3, ("prestataire@example.com",))


def test_the_message_id_domain_can_be_configured(sink: SmtpSink) -> None:
    update = update_of()
    sent = sender(sink, message_id_domain="bascule.culture.gouv.fr").send(update, stamp=STAMP)
    assert sent.message_id == message_id_for(update.idempotency_key, "bascule.culture.gouv.fr")
    assert only(sink).message_id == sent.message_id


def test_a_rollback_has_the_next_sequence_and_the_old_link(sink: SmtpSink) -> None:
    cutover = update_of()
    rollback = build_rollback_update(cutover, idempotency_key="rollback:zoom:84120036571")
    later = STAMP + timedelta(days=2)
    sent = sender(sink).send_batch([cutover, rollback], [STAMP, later])
    first, second = sink.messages
    _part, calendar = calendar_part(second.message)
    (event,) = calendar.walk("VEVENT")

    assert rollback.purpose is InvitationPurpose.ROLLBACK
    assert str(event["UID"]) == cutover.uid
    assert int(event["SEQUENCE"]) == cutover.sequence + 1 == sent[1].sequence
    assert str(event["LOCATION"]) == ZOOM and str(event["URL"]) == ZOOM
    assert event["DTSTART"].dt == calendar_part(first.message)[1].walk("VEVENT")[0]["DTSTART"].dt
    assert event["DTSTAMP"].dt == later
    assert second.message_id == message_id_for("rollback:zoom:84120036571", "culture.example.gouv.fr")
    assert second.message_id != first.message_id


# ----------------------------------------------------------------------------------------------- resends

def test_a_resend_with_the_same_stamp_is_byte_identical(sink: SmtpSink) -> None:
    update = update_of()
    mail = sender(sink, clock=lambda: STAMP + timedelta(hours=5))            # the clock must not matter
    first = mail.send(update, stamp=STAMP)
    again = mail.send_batch([update], [STAMP])[0]
    assert first == again
    one, two = sink.with_message_id(first.message_id)
    assert one.data == two.data
    assert b"=_bascule_" in one.data                                        # derived boundaries, not random ones

    mail.send(update, stamp=STAMP + timedelta(seconds=1))
    assert sink.messages[-1].data != one.data


def test_an_update_can_go_to_some_recipients_only(sink: SmtpSink) -> None:
    """A helpdesk resend to one address: the same message, only the envelope differs."""
    update = update_of()
    mail = sender(sink)
    everyone = mail.send(update, stamp=STAMP)
    one = mail.send(update, stamp=STAMP, only=[ATTENDEES[1]])
    first, second = sink.messages
    assert second.rcpt_tos == (ATTENDEES[1],) and first.rcpt_tos != second.rcpt_tos
    assert first.data == second.data and one.message_id == everyone.message_id
    assert (one.recipients, one.refused) == (1, ())


def test_without_a_stamp_the_clock_gives_it(sink: SmtpSink) -> None:
    instants = iter([STAMP, STAMP + timedelta(minutes=1)])
    mail = sender(sink, clock=lambda: next(instants))
    mail.send_batch([update_of(), update_of()], [None, None])
    first, second = sink.messages
    assert parsedate_to_datetime(str(first.message["Date"])) == STAMP
    assert parsedate_to_datetime(str(second.message["Date"])) == STAMP + timedelta(minutes=1)
    assert first.data != second.data


def test_a_retried_send_is_the_same_message(sink: SmtpSink) -> None:
    update = update_of()
    stats = RetryStats()
    ticks = iter(STAMP + timedelta(seconds=index) for index in range(10))
    sink.fail_next(1)
    sender(sink, stats=stats, clock=lambda: next(ticks)).send(update)       # one stamp, then the retry
    retried = only(sink)
    assert stats.counts["transient"] == 1
    sink.clear()
    sender(sink).send(update, stamp=STAMP)
    assert only(sink).data == retried.data


def test_stamps_must_be_aware_and_aligned(sink: SmtpSink) -> None:
    mail = sender(sink)
    with pytest.raises(ValueError, match="aligned"):
        mail.send_batch([update_of(), update_of()], [STAMP])
    with pytest.raises(ValueError, match="aware"):
        mail.send(update_of(), stamp=datetime(2026, 11, 23, 8))
    assert sink.messages == []


# ----------------------------------------------------------------------------------------------- errors

def test_temporary_failures_are_retried_then_raised(sink: SmtpSink) -> None:
    stats = RetryStats()
    sink.fail_next(FAST.attempts)
    with pytest.raises(TransientConnectorError):
        sender(sink, stats=stats).send(update_of(), stamp=STAMP)
    assert stats.counts["transient"] == FAST.attempts - 1 and sink.messages == []


@pytest.mark.parametrize("reply", ["554 5.6.0 Message rejected", "552 5.3.4 Message too big"])
def test_a_permanent_failure_is_not_retried(sink: SmtpSink, reply: str) -> None:
    stats = RetryStats()
    sink.fail_next(1, reply=reply)
    with pytest.raises(PermanentConnectorError) as raised:
        sender(sink, stats=stats).send(update_of(), stamp=STAMP)
    assert not isinstance(raised.value, ConnectorAuthError)
    assert sum(stats.counts.values()) == 0 and sink.messages == []
    assert sink.take_failure() is None                                       # one attempt only


def test_every_recipient_refused_is_permanent() -> None:
    update = update_of()
    with SmtpSink(refuse=[*update.attendees, ORGANISER]) as refusing:
        with pytest.raises(PermanentConnectorError, match="every recipient was refused"):
            sender(refusing).send(update, stamp=STAMP)
        assert refusing.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")  # loopback only
@pytest.mark.parametrize(("credentials", "error"), [(CREDENTIALS, None), (("bascule", "wrong"), ConnectorAuthError),
                                                    (None, ConnectorAuthError)],
                         ids=["right credentials", "wrong password", "no credentials"])
def test_authentication(auth_sink: SmtpSink, credentials: tuple[str, str] | None,
                        error: type[Exception] | None) -> None:
    auth_sink.clear()
    stats = RetryStats()
    login = {"username": credentials[0], "password": credentials[1]} if credentials else {}
    mail = sender(auth_sink, stats=stats, **login)
    if error is None:
        mail.send(update_of(), stamp=STAMP)
        assert only(auth_sink).authenticated_as == "bascule"
        return
    with pytest.raises(error) as raised:
        mail.send(update_of(), stamp=STAMP)
    assert "wrong" not in str(raised.value) and auth_sink.messages == []
    assert sum(stats.counts.values()) == 0


def test_an_unreachable_relay_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mail = SmtpInvitationSender(SmtpConfig(host="127.0.0.1", port=port, mailbox=MAILBOX, timeout_seconds=1),
                                throttle=NoThrottle(), retry=FAST, stats=RetryStats())
    with pytest.raises(TransientConnectorError):
        mail.send(update_of(), stamp=STAMP)


def test_logs_carry_message_ids_not_addresses(sink: SmtpSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="connectors")
    sink.fail_next(1)
    sent = sender(sink).send(update_of(), stamp=STAMP)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("connectors")]
    assert any(sent.message_id in text for text in messages)
    corpus = "\n".join(messages).lower()
    assert not any(address.lower() in corpus for address in (*ATTENDEES, ORGANISER, MAILBOX))
    assert not re.search(r"[\w.-]+@[\w-]+\.[\w.]+", corpus.replace(sent.message_id.lower(), ""))


def test_exclusions_and_exceptions_travel_as_exdate_and_overrides(sink: SmtpSink) -> None:
    from dataclasses import replace

    from core.records import OccurrenceChange

    start = datetime(2026, 1, 5, 9, tzinfo=UTC)  # Monday 10:00 in Paris
    week = timedelta(days=7)
    source = replace(meeting(start=start), exclusions=(start + week, start + 4 * week),
                     exceptions=(OccurrenceChange(start + 2 * week, start + 2 * week + timedelta(days=1)),
                                 OccurrenceChange(start + 3 * week, start + 3 * week, 90)))
    update = update_of(source)
    sender(sink).send(update, stamp=STAMP)
    _part, calendar = calendar_part(only(sink).message)
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 3 and {str(event["UID"]) for event in events} == {update.uid}
    series, *overrides = events
    paris = ZoneInfo("Europe/Paris")
    excluded = [moment.dt for moment in series["EXDATE"].dts]
    assert excluded == [datetime(2026, 1, 12, 10, tzinfo=paris), datetime(2026, 2, 2, 10, tzinfo=paris)]
    assert series["EXDATE"].params["TZID"] == "Europe/Paris"
    assert [(o["RECURRENCE-ID"].dt, o["DTSTART"].dt, o["DTEND"].dt - o["DTSTART"].dt) for o in overrides] == [
        (datetime(2026, 1, 19, 10, tzinfo=paris), datetime(2026, 1, 20, 10, tzinfo=paris), timedelta(minutes=45)),
        (datetime(2026, 1, 26, 10, tzinfo=paris), datetime(2026, 1, 26, 10, tzinfo=paris), timedelta(minutes=90))]
    assert all(str(o["LOCATION"]) == VISIO and int(o["SEQUENCE"]) == update.sequence for o in overrides)
    assert "RRULE" not in overrides[0] and "RRULE" in series


def test_a_sink_started_again_over_its_spool_appends_to_it(tmp_path: Any) -> None:
    import smtplib

    spool = tmp_path / "mail"
    for round_ in range(2):
        with SmtpSink(spool=spool) as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
            client.sendmail("a@example.org", ["b@example.org"], f"Subject: round {round_}\r\n\r\nbody\r\n")
    spooled = sorted(spool.glob("*.eml"))
    assert [path.name for path in spooled] == ["0000001.eml", "0000002.eml"]
    assert b"round 0" in spooled[0].read_bytes() and b"round 1" in spooled[1].read_bytes()
    assert spooled[0].read_bytes().startswith(b"Return-Path: <a@example.org>\r\nX-Original-To: b@example.org\r\n")
