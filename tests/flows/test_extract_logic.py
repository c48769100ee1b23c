"""The extract runbook with in-memory sources: resume after a failure, removals, delta passes, quarantine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from connectors.errors import RateLimited
from core import (
    AccountStatus,
    HostRef,
    LicenceSku,
    Meeting,
    MeetingKind,
    Page,
    Platform,
    Quarantined,
    ReasonCode,
    Removed,
    SourceAccount,
)
from core.licences import CostModel
from db.migrate import upgrade
from flows.extract import SourceSet, extract_platform

START = datetime(2026, 12, 1, 9, tzinfo=UTC)


class Interrupted(RuntimeError):
    """Stands for the process being killed between two pages."""


class DailyLimit(RateLimited):
    """Zoom's daily quota: its Retry-After is the next midnight, far beyond any retry policy."""

    def __init__(self) -> None:
        super().__init__("zoom", "daily limit", retry_after=6 * 3600)


@dataclass
class FakeAccounts:
    accounts: list[SourceAccount | Quarantined]
    page_size: int = 3
    fail_at_page: int | None = None
    delta: dict[str, list[SourceAccount | Removed]] = field(default_factory=dict)  # Graph-like when not empty
    platform: Platform = Platform.TEAMS
    calls: list[str | None] = field(default_factory=list)
    failure: type[Exception] = Interrupted

    def iter_accounts(self, cursor: str | None = None) -> Iterator[Page[Any]]:
        self.calls.append(cursor)
        if cursor in self.delta:
            yield Page(tuple(self.delta[cursor]), None, delta_cursor=f"{cursor}+", delta=True)
            return
        start = int(cursor) if cursor else 0
        for page, index in enumerate(range(start, len(self.accounts), self.page_size)):
            if self.fail_at_page is not None and page == self.fail_at_page:
                self.fail_at_page = None
                raise self.failure()
            end = index + self.page_size
            last = end >= len(self.accounts)
            yield Page(tuple(self.accounts[index:end]), None if last else str(end),
                       delta_cursor="D1" if last and self.delta else None)


@dataclass
class FakeLicences:
    platform: Platform = Platform.TEAMS

    def fetch_licences(self) -> list[LicenceSku]:
        return [LicenceSku(Platform.TEAMS, "sku-e3", "ENTERPRISEPACK", True, 100, 12),
                LicenceSku(Platform.TEAMS, "sku-exchange", "EXCHANGESTANDARD", False, 50, 3)]


@dataclass
class FakeMeetings:
    by_host: dict[str, list[Meeting | Quarantined]]
    hosts_per_page: int = 2
    fail_at_page: int | None = None
    platform: Platform = Platform.TEAMS
    seen_hosts: list[str] = field(default_factory=list)
    failing_hosts: frozenset[str] = frozenset()   # their listing fails (as a connector reports it)

    def iter_meetings(self, hosts: Sequence[HostRef], cursor: str | None = None) -> Iterator[Page[Any]]:
        remaining = [h for h in hosts if cursor is None or h.external_id > cursor]
        for page, index in enumerate(range(0, len(remaining), self.hosts_per_page)):
            if self.fail_at_page is not None and page == self.fail_at_page:
                self.fail_at_page = None
                raise Interrupted
            batch = remaining[index:index + self.hosts_per_page]
            self.seen_hosts.extend(h.external_id for h in batch)
            failed = [h.external_id for h in batch if h.external_id in self.failing_hosts]
            items = [m for h in batch if h.external_id not in failed for m in self.by_host.get(h.external_id, [])]
            items += [Quarantined(ReasonCode.LISTING_UNBOUNDED, f"teams:host:{host}:meetings") for host in failed]
            yield Page(tuple(items), batch[-1].external_id, incomplete=tuple(failed))


def _account(number: int, *, licensed: bool = True, email: str | None = None) -> SourceAccount:
    return SourceAccount(Platform.TEAMS, f"u{number:03d}", email or f"agent{number}@culture.gouv.fr",
                         AccountStatus.ACTIVE, licences=("sku-e3",) if licensed else ("sku-exchange",),
                         licensed=licensed)


def _meeting(host: str, number: int) -> Meeting:
    return Meeting(Platform.TEAMS, f"{host}-m{number}", host, f"{host}@culture.gouv.fr", f"Point {number}",
                   MeetingKind.ONE_OFF, "Europe/Paris", f"https://teams.microsoft.com/meet/{number}",
                   f"teams:meet:{number}", start=START)


def _sources(accounts: FakeAccounts, meetings: FakeMeetings) -> SourceSet:
    return SourceSet(Platform.TEAMS, accounts, FakeLicences(), meetings)  # type: ignore[arg-type]


MODEL = CostModel(default_annual_unit_cost=Decimal("10"), prices={(Platform.TEAMS, "ENTERPRISEPACK"): Decimal("250")})


@flow(validate_parameters=False)
def _run(database_url: str, source: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(extract_platform(database_url, "t1", source, MODEL))


def _db(tmp_path: Path, name: str = "state.db") -> str:
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    from db.repositories import TenantRepository
    from flows.runtime import transaction

    with transaction(url) as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None,
                                         now=datetime.now(UTC))
    return url


def _state(url: str) -> dict[str, Any]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        return {
            "accounts": connection.execute("select external_id, email, licensed, content_hash, removed_at is null "
                                           "from source_account order by external_id").fetchall(),
            "assignments": connection.execute("select account_external_id, sku_key, state from licence_assignment "
                                              "order by 1, 2").fetchall(),
            "skus": connection.execute("select sku_key, annual_unit_cost from licence_sku order by 1").fetchall(),
            "meetings": connection.execute("select external_id, host_account_id, removed_at is null from meeting "
                                           "order by 1").fetchall(),
            "quarantine": connection.execute("select source, record_key, reason, resolved_at is null from quarantine "
                                             "order by 2").fetchall(),
            "checkpoints": connection.execute("select source, stream, status from checkpoint order by 1, 2").fetchall(),
        }


def _world() -> tuple[list[SourceAccount | Quarantined], dict[str, list[Meeting | Quarantined]]]:
    accounts: list[SourceAccount | Quarantined] = [_account(n, licensed=n % 4 != 0) for n in range(1, 15)]
    accounts.insert(5, Quarantined(ReasonCode.INVALID_EMAIL, "teams:user:bad1"))
    meetings: dict[str, list[Meeting | Quarantined]] = {
        f"u{n:03d}": [_meeting(f"u{n:03d}", k) for k in range(n % 3)] for n in range(1, 15)}
    meetings["u002"].append(Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, "teams:meeting:broken"))
    return accounts, meetings


def test_interrupted_runs_resume_to_the_same_end_state(tmp_path: Path) -> None:
    accounts, meetings = _world()
    reference = _db(tmp_path, "reference.db")
    _run(reference, _sources(FakeAccounts(list(accounts)), FakeMeetings(meetings)))

    killed = _db(tmp_path, "killed.db")
    source_accounts = FakeAccounts(list(accounts), fail_at_page=2)
    source_meetings = FakeMeetings(meetings, fail_at_page=2)
    source = _sources(source_accounts, source_meetings)
    with pytest.raises(Interrupted):
        _run(killed, source)  # dies in the users stream
    with pytest.raises(Interrupted):
        _run(killed, source)  # resumes users, dies in the meetings stream
    summary = _run(killed, source)
    assert summary["meetings"]["resumed"] is True
    assert source_accounts.calls[1] == "6"  # the second run started where the first one stopped
    assert _state(killed) == _state(reference)
    hosts = source_meetings.seen_hosts
    assert len(hosts) == len(set(hosts))  # the resumed run listed no host twice


def test_a_second_full_pass_changes_nothing_and_marks_what_disappeared(tmp_path: Path) -> None:
    accounts, meetings = _world()
    url = _db(tmp_path)
    _run(url, _sources(FakeAccounts(list(accounts)), FakeMeetings(meetings)))
    before = _state(url)
    again = _run(url, _sources(FakeAccounts(list(accounts)), FakeMeetings(meetings)))
    assert again["users"]["inserted"] == 0 and again["users"]["updated"] == 0
    assert _state(url)["accounts"] == before["accounts"]

    fewer = [a for a in accounts if getattr(a, "external_id", "") != "u003"]
    meetings_fewer = {host: items[:-1] if host == "u005" else items for host, items in meetings.items()}
    # no delta cursor this time: a platform like Zoom re-lists everything
    result = _run(url, _sources(FakeAccounts(fewer), FakeMeetings(meetings_fewer)))
    state = _state(url)
    assert result["users"]["removed"] == 1
    removed = {row[0] for row in state["accounts"] if row[4] == 0}
    assert removed == {"u003"}
    assert result["meetings"]["removed"] == 1 + len(meetings["u003"])


def test_a_delta_pass_applies_changes_and_reported_removals_only(tmp_path: Path) -> None:
    accounts, meetings = _world()
    url = _db(tmp_path)
    changed = replace(_account(7), email="renamed7@culture.gouv.fr", licences=("sku-exchange",), licensed=False)
    source = FakeAccounts(list(accounts), delta={"D1": [changed, Removed(Platform.TEAMS, "u009")]})
    _run(url, _sources(source, FakeMeetings(meetings)))
    summary = _run(url, _sources(source, FakeMeetings(meetings)))
    assert source.calls[-1] == "D1"
    assert summary["users"]["delta"] is True
    assert (summary["users"]["updated"], summary["users"]["removed"]) == (1, 1)
    state = {row[0]: row for row in _state(url)["accounts"]}
    assert state["u007"][1] == "renamed7@culture.gouv.fr" and state["u007"][2] == 0
    assert state["u009"][4] == 0
    assert all(row[4] == 1 for key, row in state.items() if key != "u009")  # absent from the delta ≠ removed
    assignments = {(a, s): st for a, s, st in _state(url)["assignments"]}
    assert assignments[("u007", "sku-e3")] == "unassigned" and assignments[("u007", "sku-exchange")] == "assigned"


def test_quarantine_prices_and_hosts(tmp_path: Path) -> None:
    accounts, meetings = _world()
    url = _db(tmp_path)
    source_meetings = FakeMeetings(meetings)
    summary = _run(url, _sources(FakeAccounts(list(accounts)), source_meetings))
    assert summary["users"]["quarantined"] == {"INVALID_EMAIL": 1}
    assert summary["meetings"]["quarantined"] == {"RECURRENCE_UNPARSEABLE": 1}
    licensed = sorted(a.external_id for a in accounts if isinstance(a, SourceAccount) and a.licensed)
    assert source_meetings.seen_hosts == licensed  # only licensed active accounts, in id order
    # the contract price by SKU name; nothing to save on a SKU without meetings (core.licences)
    assert _state(url)["skus"] == [("sku-e3", 250), ("sku-exchange", 0)]


def test_an_exhausted_daily_quota_defers_the_platform_and_keeps_its_position(tmp_path: Path) -> None:
    accounts, meetings = _world()
    url = _db(tmp_path)
    source = FakeAccounts(list(accounts), fail_at_page=2, failure=DailyLimit)
    summary = _run(url, _sources(source, FakeMeetings(meetings)))
    assert summary["deferred_until"] is not None and summary["error"] is None
    assert datetime.fromisoformat(summary["deferred_until"]) > datetime.now(UTC)
    assert ("teams", "users", "running") in _state(url)["checkpoints"]
    resumed = _run(url, _sources(source, FakeMeetings(meetings)))
    assert resumed["users"]["resumed"] is True and resumed["deferred_until"] is None
    assert source.calls[-1] == "6"


def test_a_host_whose_listing_fails_is_quarantined_and_keeps_its_meetings_until_it_lists_again(
        tmp_path: Path) -> None:
    accounts, meetings = _world()
    url = _db(tmp_path)
    _run(url, _sources(FakeAccounts(list(accounts)), FakeMeetings(meetings)))
    before = _state(url)["meetings"]
    assert any(host == "u005" for _id, host, _live in before)

    failing = FakeMeetings(meetings, failing_hosts=frozenset({"u005"}))
    summary = _run(url, _sources(FakeAccounts(list(accounts)), failing))
    state = _state(url)
    assert summary["meetings"]["removed"] == 0 and summary["meetings"]["incomplete_hosts"] == 1
    assert state["meetings"] == before  # u005's meetings kept as they were, none marked removed
    assert ("teams:meetings", "teams:host:u005:meetings", "LISTING_UNBOUNDED", 1) in state["quarantine"]
    assert summary["meetings"]["quarantined"]["LISTING_UNBOUNDED"] == 1

    _run(url, _sources(FakeAccounts(list(accounts)), FakeMeetings(meetings)))  # the next pass lists it again
    quarantine = _state(url)["quarantine"]
    assert ("teams:meetings", "teams:host:u005:meetings", "LISTING_UNBOUNDED", 0) in quarantine  # resolved


def test_an_id_listed_twice_is_reported_not_collapsed(tmp_path: Path) -> None:
    accounts, meetings = _world()
    twice = [*accounts[:4], replace(_account(2), email="other2@culture.gouv.fr"), *accounts[4:]]
    url = _db(tmp_path)
    summary = _run(url, _sources(FakeAccounts(twice), FakeMeetings(meetings)))
    assert summary["users"]["quarantined"]["DUPLICATE_SOURCE_ID"] == 1
    state = _state(url)
    assert ("teams:users", "teams:user:u002#duplicate", "DUPLICATE_SOURCE_ID", 1) in state["quarantine"]
    assert {row[0]: row[1] for row in state["accounts"]}["u002"] == "agent2@culture.gouv.fr"  # the first one kept
