"""Calendar updates by e-mail: an InvitationUpdate rendered with icalendar and sent over SMTP with smtplib.

The calendar (RFC 5545 / iTIP RFC 5546): `METHOD:REQUEST`, one VEVENT with the update's UID and SEQUENCE, DTSTART
and DTEND with the series' TZID, its RRULE verbatim (none for a one-off), EXDATE for the occurrences the organiser
deleted, ORGANIZER with `SENT-BY` the migration mailbox, one ATTENDEE per invitee (RSVP, NEEDS-ACTION), and the link
in LOCATION, URL and DESCRIPTION; then one overriding VEVENT per moved or resized occurrence (same UID and
SEQUENCE, the RECURRENCE-ID of the occurrence it replaces, its own DTSTART and DTEND, the same link). The
VTIMEZONE comes from the zoneinfo database through icalendar's `add_missing_timezones`, covering the series from
its first start to ten years after the later of that start and today.

The e-mail: `From` the organiser and `Sender` the migration mailbox (mail clients show "mailbox on behalf of
organiser", as Microsoft's Meeting Migration Service does), multipart/mixed of a multipart/alternative (text/plain
+ `text/calendar; method=REQUEST`) and the same calendar attached as `invite.ics`; `Message-ID` derived from the
plan action's idempotency key, so a second send of one action carries the same id and can be recognised;
`Auto-Submitted: auto-generated` keeps out-of-office replies away. Recipients: the attendees (To) and the
organiser (Cc), so the organiser's own calendar can take the update too; the envelope sender is the mailbox, so
bounces reach the migration team.

Resends: mail systems recognise a resend by its Message-ID, and a resend should be the same message byte for byte.
Everything in it derives from the update and one instant, the stamp (DTSTAMP and the Date header; the MIME
boundaries derive from the Message-ID and the stamp instead of being random). `send(update, stamp=…)` and
`send_batch(updates, stamps=[…])` take it; without one the sender's clock gives it, and that send cannot be
reproduced. So the caller decides the stamp when it plans the action, stores it with the action, and passes the
stored value on the first send and on every resend (SentInvitation, a core record, does not carry it).

SMTP errors: authentication (refused credentials, or a 530/534/535/538 reply: authentication required or
refused) → ConnectorAuthError; a 4xx reply, a dropped connection or a timeout →
TransientConnectorError (retried by connectors.retry); a 5xx → PermanentConnectorError. Recipients refused one by
one come back in SentInvitation.refused, unless all are refused. Logs carry Message-IDs and counts, never
addresses, passwords or server replies (which may quote an address).
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime

from icalendar import Calendar, Event, vCalAddress, vRecur
from icalendar.prop import vInline

from connectors.errors import ConnectorAuthError, ConnectorError, PermanentConnectorError, TransientConnectorError
from connectors.retry import RetryPolicy, RetryStats, call_with_retries
from connectors.throttle import Throttle
from core.ical_rewrite import IcalRefused, itip_request, read_object
from core.invitations import InvitationUpdate, SentInvitation

__all__ = ["PRODID", "SmtpConfig", "SmtpInvitationSender", "build_calendar", "build_itip_message", "build_message",
           "message_id_for"]

log = logging.getLogger(__name__)

SYSTEM = "smtp"
PRODID = "-//DINUM//bascule//FR"
_TIMEZONE_YEARS = 10
# RFC 4954 replies about authentication: required, mechanism too weak, credentials invalid, encryption required.
_AUTH_CODES = frozenset({530, 534, 535, 538})


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The ministry's mail relay and the migration mailbox that sends on organisers' behalf."""

    host: str
    mailbox: str                            # Sender and envelope sender, e.g. bascule-visio@interieur.gouv.fr
    port: int = 25
    mailbox_name: str = "Bascule Visio"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_seconds: float = 30.0
    message_id_domain: str | None = None    # default: the mailbox's domain

    def __post_init__(self) -> None:
        if "@" not in self.mailbox:
            raise ValueError("the migration mailbox must be an e-mail address")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the e-mail one plan action sends: the same key always gives the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<bascule.{digest}@{domain}>"


def build_calendar(update: InvitationUpdate, *, mailbox: str, stamp: datetime) -> Calendar:
    """The iTIP REQUEST for `update` (no I/O; `stamp` is DTSTAMP, the moment the update is produced)."""
    stamp = _normalised(stamp)
    event = _event(update, mailbox=mailbox, stamp=stamp, start=update.start, end=update.end)
    if update.rrule is not None:
        rule = update.rrule.removeprefix("RRULE:")
        vRecur.from_ical(rule)  # refuse a rule that calendars could not read rather than mail it
        # vRecur would write the parts back in its own order; the series' rule goes out as the platform wrote it.
        event.add("rrule", vInline(rule))
        if update.exclusions:
            event.add("exdate", list(update.exclusions))
    event.add("status", "CONFIRMED")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    calendar.add_component(event)
    if update.rrule is not None:
        for change in update.exceptions:
            length = timedelta(minutes=change.duration_minutes) if change.duration_minutes else update.duration
            override = _event(update, mailbox=mailbox, stamp=stamp, start=change.start, end=change.start + length)
            override.add("recurrence-id", change.original)
            override.add("status", "CONFIRMED")
            calendar.add_component(override)
    first = update.start.date() - timedelta(days=1)
    last = max(update.start.date(), stamp.date())
    calendar.add_missing_timezones(first_date=first, last_date=date(last.year + _TIMEZONE_YEARS, 12, 31))
    return calendar


def _event(update: InvitationUpdate, *, mailbox: str, stamp: datetime, start: datetime, end: datetime) -> Event:
    """A VEVENT of the update (the series, or one overridden occurrence of it)."""
    return Event.new(
        uid=update.uid,
        sequence=update.sequence,
        summary=update.summary,
        start=start,
        end=end,
        stamp=stamp,
        location=update.link,
        url=update.link,
        description=update.description,
        organizer=_organizer(update, mailbox),
        attendees=[_attendee(address) for address in update.attendees],
    )


class _MailPolicy(EmailPolicy):
    """Python's default e-mail policy, except that Message-ID is never folded.

    A folded Message-ID is legal, but it is the key resends are recognised by, and some readers keep the folding
    whitespace in it (CPython's parser does); the id is short enough for one line.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() == "message-id":
            return f"{name}: {str(value).strip()}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "message-id":
            return self.fold(name, value).encode("ascii")
        folded: bytes = super().fold_binary(name, value)
        return folded


_POLICY = _MailPolicy()


def build_message(update: InvitationUpdate, *, config: SmtpConfig, stamp: datetime) -> EmailMessage:
    """The e-mail carrying `update`, ready for smtplib (no I/O); the same update and stamp give the same bytes."""
    stamp = _normalised(stamp)
    ics = build_calendar(update, mailbox=config.mailbox, stamp=stamp).to_ical()
    return _message(ics, subject=update.subject, organiser=update.organiser, organiser_name=update.organiser_name,
                    attendees=update.attendees, text=update.description, config=config, stamp=stamp,
                    idempotency_key=update.idempotency_key)


def build_itip_message(calendar_object: bytes, *, organiser: str, organiser_name: str | None,
                       attendees: Sequence[str], subject: str, text: str, config: SmtpConfig, stamp: datetime,
                       idempotency_key: str) -> EmailMessage:
    """The e-mail carrying an organiser's own stored event as an iTIP REQUEST (core.ical_rewrite.itip_request):
    its UID, SEQUENCE and content as the calendar holds them, for a server that tells no attendee itself."""
    return _message(itip_request(calendar_object), subject=subject, organiser=organiser,
                    organiser_name=organiser_name, attendees=attendees, text=text, config=config,
                    stamp=_normalised(stamp), idempotency_key=idempotency_key)


def _message(ics: bytes, *, subject: str, organiser: str, organiser_name: str | None, attendees: Sequence[str],
             text: str, config: SmtpConfig, stamp: datetime, idempotency_key: str) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = subject
    message["From"] = Address(display_name=organiser_name or "", addr_spec=organiser)
    message["Sender"] = Address(display_name=config.mailbox_name, addr_spec=config.mailbox)
    if attendees:
        message["To"] = [Address(addr_spec=address) for address in attendees]
    message["Cc"] = Address(display_name=organiser_name or "", addr_spec=organiser)
    message["Date"] = format_datetime(stamp)
    message["Message-ID"] = message_id_for(idempotency_key, _message_id_domain(config))
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "fr"
    message.set_content(text + "\n")
    message.add_alternative(ics.decode("utf-8"), subtype="calendar", params={"method": "REQUEST"})
    message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    _set_boundaries(message, seed=f"{message['Message-ID']}|{stamp.isoformat()}")
    return message


def _normalised(stamp: datetime) -> datetime:
    """The stamp in UTC to the second (what DTSTAMP and Date can show), refusing a naive one."""
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("the stamp must be an aware datetime")
    return stamp.astimezone(UTC).replace(microsecond=0)


def _set_boundaries(message: EmailMessage, *, seed: str) -> None:
    """Boundaries derived from `seed`: the generator's are random, and a resend must be byte-identical."""
    leaves = "\n".join(str(part.get_payload()) for part in message.walk() if not part.is_multipart())
    for index, part in enumerate(part for part in message.walk() if part.is_multipart()):
        for attempt in range(100):
            digest = hashlib.sha256(f"{seed}|{index}|{attempt}".encode()).hexdigest()[:32]
            boundary = f"=_bascule_{digest}"
            if boundary not in leaves:
                part.set_boundary(boundary)
                break
        else:  # pragma: no cover — 100 collisions with 128-bit digests do not happen
            raise AssertionError("no usable MIME boundary")


def _organizer(update: InvitationUpdate, mailbox: str) -> vCalAddress:
    organizer = vCalAddress(f"mailto:{update.organiser}")
    if update.organiser_name:
        organizer.params["CN"] = update.organiser_name
    organizer.params["SENT-BY"] = f"mailto:{mailbox}"
    return organizer


def _attendee(address: str) -> vCalAddress:
    attendee = vCalAddress(f"mailto:{address}")
    attendee.params["CUTYPE"] = "INDIVIDUAL"
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "TRUE"
    return attendee


def _message_id_domain(config: SmtpConfig) -> str:
    return config.message_id_domain or config.mailbox.rpartition("@")[2]


def _recipients(update: InvitationUpdate) -> list[str]:
    return [*update.attendees, update.organiser]


# ----------------------------------------------------------------------------------------------- the sender

class SmtpInvitationSender:
    """Sends calendar updates through the ministry's relay, one SMTP session per batch of updates."""

    def __init__(self, config: SmtpConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._clock = clock

    def send(self, update: InvitationUpdate, *, stamp: datetime | None = None,
             only: Sequence[str] | None = None) -> SentInvitation:
        """Send one update (its own SMTP session); pass the stored `stamp` to resend the same bytes. `only`: the
        envelope recipients, when the update goes to some of its attendees (the message is the same)."""
        session = _Session(self.config)
        try:
            return self._send_with_retries(session, update, stamp or self._clock(), only)
        finally:
            session.close()

    def send_batch(self, updates: Sequence[InvitationUpdate],
                   stamps: Sequence[datetime | None] | None = None) -> list[SentInvitation]:
        """Send each update in turn over one SMTP session (re-opened when a retry needs a fresh one).

        `stamps[i]` is the stamp of `updates[i]` (None, or no `stamps`: the clock's now, taken once per update).
        """
        if stamps is not None and len(stamps) != len(updates):
            raise ValueError("stamps must be aligned with updates (one stamp or None per update)")
        chosen: list[datetime | None] = list(stamps) if stamps is not None else [None] * len(updates)
        session = _Session(self.config)
        try:
            # The stamp is fixed before the retries: a retried send is the same message too.
            return [self._send_with_retries(session, update, stamp or self._clock())
                    for update, stamp in zip(updates, chosen, strict=True)]
        finally:
            session.close()

    def send_itip(self, calendar_object: bytes, *, organiser: str, organiser_name: str | None,
                  attendees: Sequence[str], subject: str, text: str, idempotency_key: str,
                  stamp: datetime | None = None) -> SentInvitation:
        """Mail an organiser's rewritten event as an iTIP REQUEST under its original UID (a calendar server that
        does not schedule); retried like an update, the same Message-ID on every attempt."""
        parsed = read_object(calendar_object)
        if isinstance(parsed, IcalRefused):
            raise PermanentConnectorError(SYSTEM, f"not a calendar event ({parsed.reason})")
        chosen = stamp or self._clock()
        recipients = [*attendees, organiser]
        session = _Session(self.config)

        def once() -> SentInvitation:
            self._throttle.acquire(f"smtp:{self.config.host}")
            message = build_itip_message(calendar_object, organiser=organiser, organiser_name=organiser_name,
                                         attendees=attendees, subject=subject, text=text, config=self.config,
                                         stamp=chosen, idempotency_key=idempotency_key)
            refused = session.send(message, recipients)
            log.info("iTIP request %s sent (sequence %d): %d recipient(s), %d refused", message["Message-ID"],
                     parsed.sequence, len(recipients), len(refused))
            return SentInvitation(message_id=str(message["Message-ID"]), uid=parsed.uid, sequence=parsed.sequence,
                                  recipients=len(recipients) - len(refused),
                                  refused=tuple(address for address in recipients if address in refused))

        try:
            return call_with_retries(once, self._retry, stats=self._stats)
        finally:
            session.close()

    def _send_with_retries(self, session: _Session, update: InvitationUpdate, stamp: datetime,
                           only: Sequence[str] | None = None) -> SentInvitation:
        return call_with_retries(lambda: self._send_one(session, update, stamp, only), self._retry, stats=self._stats)

    def _send_one(self, session: _Session, update: InvitationUpdate, stamp: datetime,
                  only: Sequence[str] | None) -> SentInvitation:
        self._throttle.acquire(f"smtp:{self.config.host}")
        message = build_message(update, config=self.config, stamp=stamp)
        message_id = str(message["Message-ID"])
        recipients = list(only) if only is not None else _recipients(update)
        refused = session.send(message, recipients)
        log.info("calendar update %s sent (%s, sequence %d): %d recipient(s), %d refused", message_id,
                 update.purpose.value, update.sequence, len(recipients), len(refused))
        return SentInvitation(message_id=message_id, uid=update.uid, sequence=update.sequence,
                              recipients=len(recipients) - len(refused),
                              refused=tuple(address for address in recipients if address in refused))


class _Session:
    """One smtplib connection, opened on first use and dropped after any failure."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        try:
            smtp = self._open()
            return smtp.send_message(message, from_addr=self._config.mailbox, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as error:
            self.close()
            codes = [code for code, _reply in error.recipients.values()]
            raise _by_code(min(codes, default=550), "every recipient was refused") from error
        except smtplib.SMTPNotSupportedError as error:
            self.close()
            raise PermanentConnectorError(SYSTEM, "the relay does not offer STARTTLS or AUTH") from error
        except smtplib.SMTPAuthenticationError as error:
            self.close()
            raise ConnectorAuthError(SYSTEM, f"the relay refused the credentials ({error.smtp_code})") from error
        except smtplib.SMTPResponseException as error:
            self.close()
            if error.smtp_code in _AUTH_CODES:
                raise ConnectorAuthError(SYSTEM, f"the relay requires or refused authentication "
                                                 f"({error.smtp_code})") from error
            raise _by_code(error.smtp_code, f"the relay answered {error.smtp_code}") from error
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise TransientConnectorError(SYSTEM, f"SMTP session failed ({type(error).__name__})") from error

    def _open(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        config = self._config
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
        try:
            smtp.ehlo()
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.username is not None and config.password is not None:
                smtp.login(config.username, config.password)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _by_code(code: int, message: str) -> ConnectorError:
    if 400 <= code < 500:
        return TransientConnectorError(SYSTEM, message)
    return PermanentConnectorError(SYSTEM, message)
