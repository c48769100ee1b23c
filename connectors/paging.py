"""Listings that must end: a cursor may not come back, and a listing may not run past what it announced.

Two ways a paginated listing never ends (Singer SDK's rule covers the first only): the server hands back a cursor
it gave before (a loop), or it hands out a new cursor forever (a mock generated from an OpenAPI document does; a
real server with a bug could). `ListingBound` refuses both: a repeated cursor at once, and a listing that runs
past what the API announced (Zoom's `total_records` and `page_count`, Meet's `count`) plus a margin — or, where
nothing is announced (Webex's Link headers, Graph's nextLinks), past a hard cap set for that stream.

Each refusal is a `ListingFailed` carrying the reason code the quarantine shows; a flow that lists per host
quarantines that host's listing with it and goes on with the others.
"""

from __future__ import annotations

import logging
import math

from connectors.errors import ConnectorError, PermanentConnectorError
from core import Quarantined, ReasonCode

__all__ = ["ListingBound", "ListingFailed", "failed_listing"]

log = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 20_000
DEFAULT_MAX_ITEMS = 2_000_000
MARGIN_PAGES = 2
MARGIN_SHARE = 0.10


class ListingFailed(PermanentConnectorError):
    """One listing cannot be completed; `reason` says why (core.ReasonCode), for the quarantine."""

    def __init__(self, system: str, message: str, *, reason: ReasonCode) -> None:
        super().__init__(system, message)
        self.reason = reason


class ListingBound:
    """The pages of one listing, checked as they arrive (cursors, page count, item count).

    `announce` records what a page says of the whole listing (the largest announcement counts: a listing may grow
    while it is read); `page` counts a page received and raises ListingFailed(LISTING_UNBOUNDED) once the listing
    runs past `announced + max(MARGIN_PAGES pages, MARGIN_SHARE)` or past the hard caps.
    """

    def __init__(self, system: str, stream: str, *, max_pages: int = DEFAULT_MAX_PAGES,
                 max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self._system = system
        self._stream = stream
        self._max_pages = max_pages
        self._max_items = max_items
        self._seen: set[str] = set()
        self._pages = 0
        self._items = 0
        self._page_count: int | None = None
        self._total: int | None = None
        self._page_size: int | None = None

    @property
    def pages(self) -> int:
        return self._pages

    def check(self, cursor: str | None) -> None:
        """A cursor about to be followed: refused when this listing handed it out before."""
        if not cursor:
            return
        if cursor in self._seen:
            raise ListingFailed(self._system, f"{self._stream}: the server repeated a page cursor",
                                reason=ReasonCode.LISTING_CURSOR_REPEATED)
        self._seen.add(cursor)

    def announce(self, *, total: object = None, page_count: object = None, page_size: object = None) -> None:
        """What the API says of the whole listing (values that are not non-negative integers are ignored)."""
        if _count(total) is not None:
            self._total = max(self._total or 0, _count(total) or 0)
        if _count(page_count) is not None:
            self._page_count = max(self._page_count or 0, _count(page_count) or 0)
        if (size := _count(page_size)) is not None and size > 0:
            self._page_size = size

    def page(self, items: int) -> None:
        """A page of `items` records arrived; raises ListingFailed when the listing has run too long."""
        self._pages += 1
        self._items += items
        allowed_pages = self._allowed_pages()
        if self._pages > allowed_pages:
            raise ListingFailed(self._system, f"{self._stream}: {self._pages} pages, more than the "
                                f"{allowed_pages} the listing allows ({self._announced()})",
                                reason=ReasonCode.LISTING_UNBOUNDED)
        allowed_items = self._allowed_items()
        if self._items > allowed_items:
            raise ListingFailed(self._system, f"{self._stream}: {self._items} items, more than the "
                                f"{allowed_items} the listing allows ({self._announced()})",
                                reason=ReasonCode.LISTING_UNBOUNDED)

    def _allowed_pages(self) -> int:
        limits = [self._max_pages]
        if self._page_count is not None:
            limits.append(_with_margin(max(1, self._page_count)))
        if self._total is not None and self._page_size:
            limits.append(_with_margin(max(1, math.ceil(self._total / self._page_size))))
        return min(limits)

    def _allowed_items(self) -> int:
        limits = [self._max_items]
        if self._total is not None:
            margin = max(MARGIN_PAGES * (self._page_size or 1), math.ceil(self._total * MARGIN_SHARE))
            limits.append(self._total + margin)
        return min(limits)

    def _announced(self) -> str:
        said = [f"{name} {value}" for name, value in (("total", self._total), ("page_count", self._page_count),
                                                      ("page_size", self._page_size)) if value is not None]
        return "announced " + ", ".join(said) if said else "nothing announced: hard cap"


def failed_listing(system: str, scope: str, error: ConnectorError, *, what: str = "meetings"
                   ) -> Quarantined:
    """One scope's listing that failed for good (a host's meetings, a series' invitees), as its quarantine entry:
    the ListingFailed's own reason, or LISTING_REFUSED for a refusal (a 4xx). Logged with ids only."""
    reason = error.reason if isinstance(error, ListingFailed) else ReasonCode.LISTING_REFUSED
    log.warning("%s %s: %s listing failed (%s): quarantined, the pass goes on", system, scope, what, reason)
    return Quarantined(reason, f"{system}:{scope}", detail=str(error).removeprefix(f"{error.system}: "))


def _with_margin(pages: int) -> int:
    return pages + max(MARGIN_PAGES, math.ceil(pages * MARGIN_SHARE))


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
