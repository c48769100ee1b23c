"""Contract suite for the meetings role (every platform's MeetingSource), against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import ConnectorAuthError, PermanentConnectorError
from sandbox.faults import FaultRates
from tests.connectors.contract import (
    AdapterOptions,
    MeetingHarness,
    assert_exactly_once,
    assert_resumes,
    drain,
    harnesses,
)

HARNESSES = harnesses(MeetingHarness)


def test_every_platform_has_an_adapter_in_this_suite() -> None:
    assert {str(harness.platform) for harness in HARNESSES} == {"zoom", "teams", "webex"}


def _ids(harness: MeetingHarness) -> str:
    return harness.id or str(harness.platform)


@pytest.fixture(params=HARNESSES, ids=_ids)
def harness(request: pytest.FixtureRequest) -> MeetingHarness:
    return request.param  # type: ignore[no-any-return]


def _run(harness: MeetingHarness, server: Any, ministry: Any, options: AdapterOptions,
         cursor: str | None = None) -> Any:
    hosts = harness.hosts(ministry[0])
    return drain(harness.build(server, options).iter_meetings(hosts, cursor))


def test_every_meeting_arrives_exactly_once(harness: MeetingHarness, sandbox_factory: Any,
                                            contract_ministry: Any) -> None:
    server = sandbox_factory()
    hosts = harness.hosts(contract_ministry[0])
    assert len(hosts) > 20
    drained = _run(harness, server, contract_ministry, AdapterOptions())
    assert len(drained.pages) > 2
    assert_exactly_once(drained, *harness.expected(contract_ministry[0], hosts))


def test_resume_from_a_cursor_skips_nothing_and_repeats_nothing(harness: MeetingHarness, sandbox_factory: Any,
                                                                contract_ministry: Any) -> None:
    server = sandbox_factory()
    full = _run(harness, server, contract_ministry, AdapterOptions())
    assert_resumes(full, lambda cursor: _run(harness, server, contract_ministry, AdapterOptions(), cursor))


def test_throttling_is_waited_out_and_counted(harness: MeetingHarness, sandbox_factory: Any,
                                              contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.1, retry_after_seconds=1, seed=6))
    options = AdapterOptions()
    drained = _run(harness, server, contract_ministry, options)
    assert_exactly_once(drained, *harness.expected(contract_ministry[0], harness.hosts(contract_ministry[0])))
    injected = server.sandbox.stats[f"{harness.platform}:injected:throttle"]
    assert injected > 0
    assert options.stats.throttled == injected


def test_refused_credentials_raise_the_auth_error(harness: MeetingHarness, sandbox_factory: Any,
                                                  contract_ministry: Any) -> None:
    server = sandbox_factory()
    with pytest.raises(ConnectorAuthError):
        _run(harness, server, contract_ministry, AdapterOptions(wrong_secret=True))


def test_faults_at_the_injected_rates_lose_nothing(harness: MeetingHarness, sandbox_factory: Any,
                                                   contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.03, server_error=0.05, truncate=0.04, timeout=0.01, seed=12))
    drained = _run(harness, server, contract_ministry, AdapterOptions(timeout_seconds=1.0))
    assert_exactly_once(drained, *harness.expected(contract_ministry[0], harness.hosts(contract_ministry[0])))
    injected = server.sandbox.faults.injected
    assert injected["server_error"] > 0 and injected["truncate"] > 0


def test_the_suite_catches_a_server_that_repeats_a_page_token(harness: MeetingHarness, sandbox_factory: Any,
                                                              contract_ministry: Any) -> None:
    server = sandbox_factory(broken=frozenset({"repeat_page_token"}))
    with pytest.raises((PermanentConnectorError, AssertionError)):
        drained = _run(harness, server, contract_ministry, AdapterOptions())
        assert_exactly_once(drained, *harness.expected(contract_ministry[0], harness.hosts(contract_ministry[0])))
