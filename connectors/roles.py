"""The roles a connector plays; flows depend on these, never on a vendor module."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from core import DirectoryEntry, HostRef, LicenceSku, Meeting, Page, Platform, Quarantined, Removed, SourceAccount
from core.ical_rewrite import CalendarChanges, CalendarWrite, IcalRefused, StoredEvent
from core.licences import ReleaseResult, RestoreResult

__all__ = ["AccountSource", "ActivitySource", "Directory", "HostRef", "LicenceReleaser", "LicenceSource",
           "MeetingSource", "OrganiserCalendar"]


class Directory(Protocol):
    """The ministry directory, page by page."""

    def iter_pages(self, cursor: str | None = None) -> Iterator[Page[DirectoryEntry | Quarantined]]: ...


class AccountSource(Protocol):
    """Users of a platform. A cursor from a finished pass (Page.delta_cursor) asks for changes only."""

    platform: Platform

    def iter_accounts(self, cursor: str | None = None) -> Iterator[Page[SourceAccount | Quarantined | Removed]]: ...


class LicenceSource(Protocol):
    """The licence catalogue of a platform, with the seats the platform reports."""

    platform: Platform

    def fetch_licences(self) -> list[LicenceSku]: ...


class ActivitySource(Protocol):
    """When each account was last active, read apart from the accounts (Graph's signInActivity: a sign-in changes no
    directory object, so a delta pass never shows it). Pages of (external id, last activity or None)."""

    def iter_sign_ins(self) -> Iterator[list[tuple[str, datetime | None]]]: ...


class LicenceReleaser(Protocol):
    """Frees one account's paid seat of one SKU at the source, and says what the source shows afterwards.

    `sku_key` is the key `LicenceSource.fetch_licences` gives (Zoom `zoom:type:2`, a Graph skuId, a Webex licence
    id). A documented refusal is a ReleaseResult with its reason, never an exception; only a release the re-read
    account confirms is `released`.
    """

    platform: Platform

    def release(self, account_external_id: str, sku_key: str) -> ReleaseResult: ...

    def restore(self, account_external_id: str, sku_key: str) -> RestoreResult:
        """Grant the same SKU again (a licence released too early); read before (already held: nothing is sent)
        and after (only a re-read showing the SKU counts as restored)."""
        ...


class MeetingSource(Protocol):
    """Meetings hosted by the given accounts, in their order; the cursor is the last host fully listed."""

    platform: Platform

    def iter_meetings(self, hosts: Sequence[HostRef],
                      cursor: str | None = None) -> Iterator[Page[Meeting | Quarantined]]: ...


class OrganiserCalendar(Protocol):
    """Organisers' own calendars, where their Zoom and Webex series live (contracts/calendars.md §5): found, rewritten
    in place under a precondition (a 412 re-read and re-applied, never overwritten), put back. One role for the
    calendar systems (CalDAV, Exchange Online through Graph; on-premises Exchange through EWS to come)."""

    kind: str

    def schedules(self, organiser: str) -> bool:
        """Whether the system tells the attendees of a change itself (Exchange, RFC 6638 CalDAV servers)."""
        ...

    def syncs(self, organiser: str) -> bool:
        """Whether the system tracks the calendar's changes (scans after the first read only those)."""
        ...

    def scan(self, organiser: str, start: datetime, end: datetime) -> Iterator[StoredEvent]:
        """The organiser's own events overlapping the window that carry a join link, as stored."""
        ...

    def changes(self, organiser: str, start: datetime, end: datetime, token: str | None,
                known: Mapping[str, str | None]) -> CalendarChanges:
        """The delta scan: what changed since `token` among the organiser's linked events (`known`: href → ETag
        bascule keeps), and the next token; everything listed (`full`) when there is no token or the server no
        longer knows it."""
        ...

    def read(self, organiser: str, href: str) -> StoredEvent | None: ...

    def carries(self, event: StoredEvent, url: str) -> bool:
        """Whether the event shows `url` (verification: the Visio link is there)."""
        ...

    def rewrite(self, event: StoredEvent, *, join_key: str, visio_url: str, phone: str | None = None,
                pin: str | None = None) -> CalendarWrite | IcalRefused: ...

    def restore(self, organiser: str, href: str, *, original: bytes, rewritten: bytes,
                sequence: int) -> CalendarWrite: ...
