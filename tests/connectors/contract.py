"""Contract suites: the same checks for every adapter of a role, over real HTTP against the sandbox.

An adapter joins a suite by a harness in `tests/connectors/harness_<system>.py` exposing `HARNESSES`, a list of
AccountHarness / MeetingHarness / LicenceHarness. The role test modules (`test_contract_*.py`) discover them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.retry import RetryPolicy, RetryStats
from connectors.roles import HostRef
from core import LicenceSku, Meeting, Page, Platform, Quarantined, Removed, SourceAccount
from sandbox.server import SandboxServer

# Fast retries for tests: the sandbox's Retry-After is 1 s; back-off otherwise starts at 10 ms.
TEST_RETRY = RetryPolicy(attempts=10, base_delay=0.01, max_delay=5)


@dataclass
class AdapterOptions:
    """What a contract test asks of an adapter."""

    page_size: int = 50
    retry: RetryPolicy = TEST_RETRY
    stats: RetryStats = field(default_factory=RetryStats)
    wrong_secret: bool = False     # build it with a credential the sandbox refuses
    timeout_seconds: float = 1.0   # per request; the sandbox's injected timeouts last longer


@dataclass(frozen=True)
class AccountHarness:
    """Users of one platform. `expected` gives, from the generated files, every external id the adapter must
    deliver as an account and every record key it must deliver as quarantined (with its reason)."""

    platform: Platform
    build: Callable[[SandboxServer, AdapterOptions], Any]
    expected: Callable[[Path], tuple[set[str], dict[str, str]]]
    id: str = ""


@dataclass(frozen=True)
class MeetingHarness:
    """Meetings of one platform, for the hosts `hosts` picks from the generated files."""

    platform: Platform
    build: Callable[[SandboxServer, AdapterOptions], Any]
    hosts: Callable[[Path], list[HostRef]]
    expected: Callable[[Path, list[HostRef]], tuple[set[str], dict[str, str]]]
    id: str = ""


@dataclass(frozen=True)
class LicenceHarness:
    """The licence catalogue of one platform: sku key → consumed units, from the generated files."""

    platform: Platform
    build: Callable[[SandboxServer, AdapterOptions], Any]
    expected: Callable[[Path], dict[str, int]]
    id: str = ""


def discover() -> list[Any]:
    """Every harness of every `harness_*` module next to this one."""
    import tests.connectors as package

    found: list[Any] = []
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("harness_"):
            found.extend(importlib.import_module(f"tests.connectors.{module.name}").HARNESSES)
    return found


def harnesses(kind: type) -> list[Any]:
    return [h for h in discover() if isinstance(h, kind)]


@dataclass
class Drained:
    """Everything a stream delivered, page by page."""

    pages: list[Page[Any]]

    @property
    def items(self) -> list[Any]:
        return [item for page in self.pages for item in page.items]

    def ids(self) -> list[str]:
        return [item.external_id for item in self.items if isinstance(item, SourceAccount | Meeting)]

    def quarantined(self) -> dict[str, str]:
        return {item.record_key: str(item.reason) for item in self.items if isinstance(item, Quarantined)}

    def removed(self) -> list[str]:
        return [item.external_id for item in self.items if isinstance(item, Removed)]


def drain(pages: Iterator[Page[Any]], *, limit: int = 100_000) -> Drained:
    collected = []
    for page in pages:
        collected.append(page)
        assert len(collected) < limit, "the stream does not end"
    return Drained(collected)


def assert_exactly_once(drained: Drained, expected_ids: set[str], expected_quarantine: dict[str, str]) -> None:
    ids = drained.ids()
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
    assert not duplicates, f"delivered more than once: {duplicates[:10]}"
    missing = expected_ids - set(ids)
    extra = set(ids) - expected_ids
    assert not missing, f"{len(missing)} expected records never arrived: {sorted(missing)[:10]}"
    assert not extra, f"{len(extra)} records that should not exist: {sorted(extra)[:10]}"
    assert drained.quarantined() == expected_quarantine


def assert_resumes(full: Drained, resume: Callable[[str], Drained], *, samples: int = 4) -> None:
    """Resuming from a page's cursor delivers exactly what followed that page in the full run."""
    cursors = [(index, page.next_cursor) for index, page in enumerate(full.pages) if page.next_cursor]
    assert cursors, "the listing fits in one page: the test would prove nothing"
    step = max(1, len(cursors) // samples)
    for index, cursor in cursors[::step][:samples]:
        assert cursor is not None
        before = [key(item) for page in full.pages[: index + 1] for item in page.items]
        after = [key(item) for item in resume(cursor).items]
        assert before + after == [key(item) for item in full.items], f"resume from page {index} differs"


def key(item: Any) -> str:
    if isinstance(item, Quarantined):
        return f"q:{item.record_key}"
    if isinstance(item, Removed):
        return f"r:{item.external_id}"
    return str(item.external_id)


def licences_by_key(skus: Sequence[LicenceSku]) -> dict[str, int]:
    return {sku.sku_key: int(sku.consumed_units or 0) for sku in skus}
