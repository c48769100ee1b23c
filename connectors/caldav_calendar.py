"""Organisers' CalDAV calendars (Zimbra, BlueMind, SOGo, sabre/dav services, Xandikos, Radicale…) through the
`caldav` library: find the events that carry a Zoom or Webex join link, rewrite one in place under `If-Match`,
put it back (contracts/calendars.md §3 and §5).

- Access: a service account (Basic, its password from the environment) or a trusted header naming the organiser
  (`X-Remote-User` behind a reverse proxy that authenticates bascule); each organiser's calendar URL comes from a
  template (`https://dav.example/calendars/{user}/agenda/`, `{user}` being the address or its local part).
- Scan: a `calendar-query` with a time range (the migration window); masters whose series overlap it come back
  whole, with their overrides. Events organised by someone else (invitations in the organiser's own calendar) are
  not theirs to rewrite and are skipped.
- Rewrite: core.ical_rewrite on the bytes read; PUT with `If-Match` on the ETag read with them. A 412 (the organiser
  or the server changed the event since) means: read again and apply the rewrite to the fresh copy, never
  overwrite it; after a few conflicts in a row the event is left alone (CalendarConflict). The ETag is read back
  after every PUT (a server that alters what it stores may return none, RFC 4791 §5.3.4), with the attendees'
  SCHEDULE-STATUS the server stamped (RFC 6638).
- Restore: the original bytes (SEQUENCE above the rewrite's) under `If-Match`; on a 412, the rewrite undone
  property by property on the fresh copy, keeping what the organiser changed since.
- Whether the server schedules (RFC 6638 `calendar-auto-schedule` in the DAV header of OPTIONS) decides who tells
  the attendees: the server, or bascule's iTIP under the original UID.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error as caldav_error
from caldav.lib.url import URL

from connectors.errors import (
    ConnectorAuthError,
    ConnectorError,
    NotFound,
    RateLimited,
    SyncTokenExpired,
    TransientConnectorError,
)
from connectors.retry import RetryPolicy, RetryStats, call_with_retries
from core.ical_rewrite import (
    CalendarChanges,
    CalendarObject,
    CalendarWrite,
    IcalRefused,
    StoredEvent,
    occurs_between,
    read_object,
    restore_object,
    rewrite_object,
    shows_link,
    unrewrite_object,
)

__all__ = ["CalDAVAccess", "CalDAVCalendar", "CalendarConflict"]

log = logging.getLogger(__name__)

MAX_CONFLICTS = 3
RETRY = RetryPolicy(attempts=5, base_delay=0.5, max_delay=30.0)
SYSTEM = "caldav"
_VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"  # noqa: S105 — a precondition name, not a secret
_GETETAG = "{DAV:}getetag"
_STATUS = re.compile(r'ATTENDEE[^:\r\n]*?;SCHEDULE-STATUS="?([0-9.]+)[^:]*:mailto:([^\r\n]+)', re.IGNORECASE)


class CalendarConflict(TransientConnectorError):
    """The event kept changing under bascule's writes (412 after 412): left as the organiser has it."""


@dataclass(frozen=True, slots=True)
class CalDAVAccess:
    """How bascule reaches organisers' calendars on one CalDAV server."""

    calendar_url: str                       # template: "{user}" is replaced (see `user`)
    user: str = "local"                     # "local": the address's local part; "email": the whole address
    username: str | None = None             # service account (HTTP Basic)
    password: str | None = None
    remote_user_header: str | None = None   # e.g. "X-Remote-User": the organiser named by a trusted header
    force_send: bool = False                # SCHEDULE-FORCE-SEND=REQUEST (sabre/dav: silent on a link change)
    timeout_seconds: float = 30.0

    def user_of(self, organiser: str) -> str:
        address = organiser.strip().lower()
        return address.split("@", 1)[0] if self.user == "local" else address

    def url_for(self, organiser: str) -> str:
        return self.calendar_url.replace("{user}", self.user_of(organiser))


class CalDAVCalendar:
    """The OrganiserCalendar role (connectors.roles) for a CalDAV server."""

    kind = "caldav"

    def __init__(self, access: CalDAVAccess, *, retry: RetryPolicy = RETRY, stats: RetryStats | None = None) -> None:
        self.access = access
        self._retry = retry
        self._stats = stats

    def _request(self, organiser: str, url: str, method: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Any:
        """One request, retried under the policy when the server is busy or away (5xx, 423, 429 with its
        Retry-After, no connection); other statuses are the caller's to read."""
        def once() -> Any:
            try:
                with self._client(organiser) as client:
                    # The bytes go to the HTTP session untouched (the annotation says str).
                    response = client.request(url, method, body or "", headers or {})  # type: ignore[arg-type]
            except OSError as exc:         # requests/niquests connection errors are OSErrors
                raise TransientConnectorError(SYSTEM, f"{method} failed: {type(exc).__name__}") from None
            status = int(response.status)
            # 423 Locked: the object or its store is locked for another write (Xandikos' git store while the
            # server delivers another organiser's change to a shared attendee; a client's WebDAV LOCK): wait.
            if status in (423, 429) or status >= 500:
                retry_after = _retry_after(_header(response, "retry-after"))
                raise RateLimited(SYSTEM, f"{method} answered {status}", retry_after=retry_after)
            return response

        return call_with_retries(once, self._retry, stats=self._stats)

    def _client(self, organiser: str) -> DAVClient:
        access = self.access
        headers = {access.remote_user_header: access.user_of(organiser)} if access.remote_user_header else {}
        return DAVClient(url=access.url_for(organiser), username=access.username,
                                password=access.password, headers=headers, timeout=int(access.timeout_seconds))

    def schedules(self, organiser: str) -> bool:
        """Whether the server delivers the organiser's changes to attendees itself (RFC 6638)."""
        response = self._request(organiser, self.access.url_for(organiser), "OPTIONS")
        status = int(response.status)
        if status in (401, 403):
            raise ConnectorAuthError(SYSTEM, f"OPTIONS on the organiser's calendar answered {status}")
        if status >= 400:
            raise ConnectorError(SYSTEM, f"OPTIONS on the organiser's calendar answered {status}")
        dav = ",".join(value for name, value in response.headers.items() if name.lower() == "dav")
        return "calendar-auto-schedule" in dav.lower()

    def syncs(self, organiser: str) -> bool:
        """Whether the server tracks the calendar's changes (it shows a `DAV:sync-token`, RFC 6578): scans after
        the first read only what changed."""
        with self._client(organiser) as client:
            calendar = client.calendar(url=self.access.url_for(organiser))  # type: ignore[no-untyped-call]

            def ask() -> Any:
                try:
                    return calendar.get_property(dav.SyncToken())
                except OSError as exc:
                    raise TransientConnectorError(SYSTEM, f"PROPFIND failed: {type(exc).__name__}") from None

            try:
                token = call_with_retries(ask, self._retry, stats=self._stats)
            except caldav_error.NotFoundError:
                raise NotFound(SYSTEM, "the organiser has no calendar at the configured URL") from None
            except caldav_error.AuthorizationError:
                raise ConnectorAuthError(SYSTEM, "the organiser's calendar refused the credentials") from None
            except caldav_error.DAVError as exc:
                raise ConnectorError(SYSTEM, f"PROPFIND of the organiser's calendar refused ({type(exc).__name__})"
                                     ) from None
        return bool(token)

    def scan(self, organiser: str, start: datetime, end: datetime) -> Iterator[StoredEvent]:
        """The organiser's own events overlapping [start, end) that carry a Zoom, Webex or Teams join link."""
        with self._client(organiser) as client:
            calendar = client.calendar(url=self.access.url_for(organiser))  # type: ignore[no-untyped-call]
            try:
                found = call_with_retries(lambda: _search(calendar, start, end), self._retry, stats=self._stats)
            except caldav_error.NotFoundError:
                raise NotFound(SYSTEM, "the organiser has no calendar at the configured URL") from None
            except caldav_error.DAVError as exc:
                raise ConnectorError(SYSTEM, f"calendar search refused for organiser calendar ({type(exc).__name__})"
                                     ) from None
            candidates = []
            for item in found:
                parsed = read_object(_bytes(item.data))
                if not isinstance(parsed, IcalRefused) and _theirs(parsed, organiser):
                    candidates.append(str(item.url))
        # The library hands search results over with their line endings changed (CRLF → LF): each candidate is
        # read again as stored, so that a rewrite keeps every byte it does not change.
        for href in candidates:
            event = self.read(organiser, href)
            if event is not None:
                yield event

    def changes(self, organiser: str, start: datetime, end: datetime, token: str | None,
                known: Mapping[str, str | None]) -> CalendarChanges:
        """What changed in the organiser's calendar since `token`, through a `sync-collection` REPORT (RFC 6578).

        The report names the members added, changed or removed since the token, with their ETags: a member whose
        ETag is the one bascule keeps is not read again; the others are read as stored and judged like the scan
        judges them (the organiser's own, a join link, an occurrence in the window — tested here, the report knows
        no time range). Without a token, or when the server no longer knows it (DAV:valid-sync-token: 403 on
        Radicale and sabre/dav, 412 on Xandikos), the calendar is listed whole (`full`) after a new token is taken,
        so a change made during the listing is reported again next time rather than lost. A server that cannot
        sync at all is listed whole every time (token None)."""
        if token is not None:
            try:
                report = self._sync(organiser, token)
            except SyncTokenExpired:
                log.info("CalDAV sync token no longer known to the server: the calendar is listed again")
            else:
                return self._judge(organiser, report, start, end, known)
        try:
            fresh: str | None = str(self._sync(organiser, None).sync_token or "") or None
        except SyncTokenExpired:
            fresh = None
        except ConnectorError as error:
            if isinstance(error, NotFound):
                raise
            log.info("the CalDAV server does not sync collections (%s): every scan lists the calendar", error)
            fresh = None
        events = list(self.scan(organiser, start, end))
        listed = {event.href for event in events}
        return CalendarChanges(events, [href for href in known if href not in listed], fresh, True, len(events))

    def _sync(self, organiser: str, token: str | None) -> Any:
        with self._client(organiser) as client:
            calendar = client.calendar(url=self.access.url_for(organiser))  # type: ignore[no-untyped-call]

            def report() -> Any:
                try:
                    return calendar.get_objects_by_sync_token(sync_token=token, load_objects=False,
                                                              disable_fallback=True)
                except OSError as exc:
                    raise TransientConnectorError(SYSTEM, f"sync-collection failed: {type(exc).__name__}") from None

            try:
                return call_with_retries(report, self._retry, stats=self._stats)
            except caldav_error.NotFoundError:
                raise NotFound(SYSTEM, "the organiser has no calendar at the configured URL") from None
            except caldav_error.DAVError as exc:
                if _VALID_SYNC_TOKEN in getattr(exc, "preconditions", ()):
                    raise SyncTokenExpired(SYSTEM, "the server no longer knows the sync token") from None
                raise ConnectorError(SYSTEM, f"sync-collection refused for organiser calendar "
                                     f"({type(exc).__name__})") from None

    def _judge(self, organiser: str, report: Any, start: datetime, end: datetime,
               known: Mapping[str, str | None]) -> CalendarChanges:
        by_url = {_canonical(href): href for href in known}
        deleted = {str(url) for url in report.deleted_urls}
        events: list[StoredEvent] = []
        gone: list[str] = []
        read = 0
        for item in report.objects:
            url = str(item.url.canonical())
            href = by_url.get(url, str(item.url))
            if url in deleted:
                if href in known:
                    gone.append(href)
                continue
            etag = (getattr(item, "props", None) or {}).get(_GETETAG)
            if href in known and etag is not None and etag == known[href]:
                continue               # bascule's own write, or a change it already holds
            read += 1
            event = self.read(organiser, href)
            if event is not None and _theirs(event.parsed, organiser) and occurs_between(event.data, start, end):
                events.append(event)
            elif href in known:
                gone.append(href)
        return CalendarChanges(events, gone, str(report.sync_token), False, read)

    def read(self, organiser: str, href: str) -> StoredEvent | None:
        """The object at `href` now (None when it was deleted)."""
        response = self._request(organiser, href, "GET")
        if response.status == 404:
            return None
        if response.status >= 400:
            raise ConnectorError(SYSTEM, f"GET of a calendar object answered {response.status}")
        data = _body(response)
        parsed = read_object(data)
        if isinstance(parsed, IcalRefused):
            raise ConnectorError(SYSTEM, f"calendar object is not iCalendar ({parsed.reason})")
        return StoredEvent(organiser, href, _header(response, "etag"), data, parsed)

    def carries(self, event: StoredEvent, url: str) -> bool:
        """LOCATION or DESCRIPTION shows `url` (folded lines joined)."""
        return shows_link(event.data, url)

    def _put(self, organiser: str, href: str, data: bytes, etag: str | None) -> int:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers |= {"If-Match": etag} if etag else {"If-Match": "*"}
        return int(self._request(organiser, href, "PUT", data, headers).status)

    def rewrite(self, event: StoredEvent, *, join_key: str, visio_url: str, phone: str | None = None,
                pin: str | None = None) -> CalendarWrite | IcalRefused:
        """The event with its join link replaced by the Visio link, written under If-Match (a 412: re-read and
        re-apply to the fresh copy)."""
        current: StoredEvent | None = event
        conflicts = 0
        while current is not None:
            result = rewrite_object(current.data, join_key=join_key, visio_url=visio_url,
                                    force_send=self.access.force_send, phone=phone, pin=pin)
            if isinstance(result, IcalRefused):
                return result
            if not result.changed:
                return CalendarWrite(current.href, current.data, current.data, current.etag, False, conflicts, {})
            status = self._put(current.organiser, current.href, result.data, current.etag)
            if status == 412:
                conflicts += 1
                log.info("calendar object changed under the rewrite (412), re-read (conflict %d)", conflicts)
                if conflicts >= MAX_CONFLICTS:
                    raise CalendarConflict(SYSTEM, "the event kept changing while bascule rewrote it")
                current = self.read(current.organiser, current.href)
                continue
            if status >= 400:
                raise ConnectorError(SYSTEM, f"PUT of a calendar object answered {status}")
            written = self.read(current.organiser, current.href)
            after = written.data if written else result.data
            return CalendarWrite(current.href, current.data, after, written.etag if written else None, True,
                                 conflicts, attendee_status(after))
        raise ConnectorError(SYSTEM, "the calendar object was deleted before it could be rewritten")

    def restore(self, organiser: str, href: str, *, original: bytes, rewritten: bytes, sequence: int
                ) -> CalendarWrite:
        """Put the original event back (its SEQUENCE above `sequence`, the rewrite's) under If-Match on what is
        there now; when the organiser changed it since the rewrite, undo the rewrite property by property."""
        conflicts = 0
        while True:
            current = self.read(organiser, href)
            kept: tuple[str, ...] = ()
            if current is None:
                raise ConnectorError(SYSTEM, "the calendar object was deleted after the cutover: nothing to restore")
            if _same_object(current.data, rewritten):
                data = restore_object(original, above=max(sequence, current.parsed.sequence))
            else:
                undone = unrewrite_object(current.data, rewritten=rewritten, original=original,
                                          above=max(sequence, current.parsed.sequence))
                data, kept = undone.data, undone.kept
            status = self._put(organiser, href, data, current.etag)
            if status == 412:
                conflicts += 1
                if conflicts >= MAX_CONFLICTS:
                    raise CalendarConflict(SYSTEM, "the event kept changing while bascule restored it")
                continue
            if status >= 400:
                raise ConnectorError(SYSTEM, f"PUT of a calendar object answered {status}")
            written = self.read(organiser, href)
            after = written.data if written else data
            return CalendarWrite(href, current.data, after, written.etag if written else None, True, conflicts,
                                 attendee_status(after), kept)


def _search(calendar: Any, start: datetime, end: datetime) -> list[Any]:
    try:
        return list(calendar.search(start=start, end=end, event=True, expand=False))
    except OSError as exc:
        raise TransientConnectorError(SYSTEM, f"calendar search failed: {type(exc).__name__}") from None


def _theirs(parsed: CalendarObject, organiser: str) -> bool:
    """A linked event the organiser organises (an invitation from someone else is theirs to move)."""
    return bool(parsed.join_keys) and (parsed.organizer is None or parsed.organizer == organiser.strip().lower())


def _canonical(href: str) -> str:
    return str(URL.objectify(href).canonical())


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None      # an HTTP date: the policy's own backoff


def attendee_status(data: bytes) -> dict[str, str]:
    """ATTENDEE address → SCHEDULE-STATUS code the server stamped on the organiser's copy."""
    text = re.sub(r"\r?\n[ \t]", "", data.decode("utf-8", "replace"))
    return {address.strip().lower(): code for code, address in _STATUS.findall(text)}


def _same_object(stored: bytes, written: bytes) -> bool:
    """Whether what the server holds is what bascule wrote, its own stamps aside (SCHEDULE-STATUS, folding)."""
    def normal(data: bytes) -> str:
        text = re.sub(r"\r?\n[ \t]", "", data.decode("utf-8", "replace"))
        text = re.sub(r';SCHEDULE-(?:STATUS|FORCE-SEND)=(?:"[^"]*"|[^;:]*)', "", text)
        return "\n".join(sorted(line for line in text.splitlines() if line and not line.startswith("DTSTAMP")))
    return normal(stored) == normal(written)


def _body(response: Any) -> bytes:
    """The body as the server sent it: `DAVResponse.raw` turns CRLF into LF; the bytes received are kept apart
    (`_raw_body`, what the library's own load() keeps as raw_data)."""
    raw = getattr(response, "_raw_body", None)
    return raw if isinstance(raw, bytes) and raw else _bytes(response.raw)


def _bytes(data: Any) -> bytes:
    return data if isinstance(data, bytes) else str(data).encode("utf-8")


def _header(response: Any, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name:
            return str(value)
    return None
