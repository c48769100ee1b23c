"""Sharing a source account's API budget across workers with Prefect global concurrency limits.

Limits are per (tenant, platform): one slot is one worker fetching from that account at a time. A slot is taken
around each page fetch (an acquisition costs 15-60 ms, so never around a single call); within a slot the
connector paces its calls with a LocalThrottle at the account's rate divided by the number of slots.
Off in the embedded mode (one process, nothing to share); on with BASCULE_SHARED_LIMITS=1 against a server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def limit_name(tenant_id: str, platform: str) -> str:
    return f"bascule-{tenant_id}-{platform}"


def ensure_limits(names: list[str], *, slots: int) -> None:
    """Create (or resize) the global concurrency limits; a missing limit would silently limit nothing."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for name in names:
            client.upsert_global_concurrency_limit_by_name(name, limit=slots)


@contextmanager
def slot(name: str | None, *, timeout_seconds: float = 3600) -> Iterator[None]:
    """Hold one slot of the named limit (no limit: nothing to hold)."""
    if name is None:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        yield


def within_slots(pages: Iterator[T], name: str | None) -> Iterator[T]:
    """Fetch each page of `pages` while holding a slot of `name`; the caller stores it outside the slot."""
    while True:
        with slot(name):
            page = next(pages, None)
        if page is None:
            return
        yield page
