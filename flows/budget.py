"""Sharing a source account's API budget across workers with Prefect global concurrency limits.

Limits are per (tenant, platform): one slot is one worker fetching from that account at a time. A slot is taken
around each page fetch (an acquisition costs 15-60 ms, so never around a single call); within a slot the
connector paces its calls with a LocalThrottle at the account's rate divided by the number of slots.
Off in the embedded mode (one process, nothing to share); on with BASCULE_SHARED_LIMITS=1 against a server.

The same limits keep one run of a stage per tenant (per wave for wave stages) at a time, while other ministries'
runs of that deployment go on side by side (`one_per_tenant`): a deployment-wide concurrency limit of 1 would
queue every ministry behind one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flows.runtime import checkpoint, resolved_hints, tenant_id_of
from flows.settings import Settings

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
    """Fetch each page of `pages` while holding a slot of `name`; the caller stores it outside the slot.

    A page boundary is where a stop asked for by the operator takes effect (flows.runtime.checkpoint): the source's
    listing is then closed here, in its own thread, so that its sessions and prefetching threads end cleanly."""
    try:
        while True:
            checkpoint()
            with slot(name):
                page = next(pages, None)
            if page is None:
                return
            yield page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


F = TypeVar("F", bound=Callable[..., Any])


def one_per_tenant(stage: str) -> Callable[[F], F]:
    """Under a flow decorator: with shared limits on, hold the limit `bascule-TENANT-STAGE[-WAVE]` (one slot) for
    the whole run, so that a tenant runs one `stage` at a time and other tenants are not held up."""
    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            settings = Settings()
            if not settings.shared_limits:
                return function(*args, **kwargs)
            arguments = signature.bind_partial(*args, **kwargs).arguments
            parts = ["bascule", tenant_id_of(str(arguments.get("tenant_file", "tenant"))), stage]
            if arguments.get("wave"):
                parts.append(str(arguments["wave"]))
            name = "-".join(parts)
            ensure_limits([name], slots=1)
            with slot(name, timeout_seconds=24 * 3600):
                return function(*args, **kwargs)
        return resolved_hints(run, function)  # type: ignore[return-value]
    return decorate
