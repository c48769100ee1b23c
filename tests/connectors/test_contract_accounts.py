"""Contract suite for the users role (every platform's AccountSource), against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import ConnectorAuthError, PermanentConnectorError
from sandbox.faults import FaultRates
from tests.connectors.contract import (
    AccountHarness,
    AdapterOptions,
    assert_exactly_once,
    assert_resumes,
    drain,
    harnesses,
)

HARNESSES = harnesses(AccountHarness)


def test_every_platform_has_an_adapter_in_this_suite() -> None:
    assert {str(harness.platform) for harness in HARNESSES} == {"zoom", "teams", "webex"}


def _ids(harness: AccountHarness) -> str:
    return harness.id or str(harness.platform)


@pytest.fixture(params=HARNESSES, ids=_ids)
def harness(request: pytest.FixtureRequest) -> AccountHarness:
    return request.param  # type: ignore[no-any-return]


def test_every_account_arrives_exactly_once(harness: AccountHarness, sandbox_factory: Any,
                                            contract_ministry: Any) -> None:
    server = sandbox_factory()
    drained = drain(harness.build(server, AdapterOptions()).iter_accounts())
    assert len(drained.pages) > 2
    assert_exactly_once(drained, *harness.expected(contract_ministry[0]))


def test_resume_from_a_cursor_skips_nothing_and_repeats_nothing(harness: AccountHarness, sandbox_factory: Any) -> None:
    server = sandbox_factory()
    full = drain(harness.build(server, AdapterOptions()).iter_accounts())
    assert_resumes(full, lambda cursor: drain(harness.build(server, AdapterOptions()).iter_accounts(cursor)))


def test_throttling_is_waited_out_and_counted(harness: AccountHarness, sandbox_factory: Any,
                                              contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.15, retry_after_seconds=1, seed=5))
    options = AdapterOptions()
    drained = drain(harness.build(server, options).iter_accounts())
    assert_exactly_once(drained, *harness.expected(contract_ministry[0]))
    injected = server.sandbox.stats[f"{harness.platform}:injected:throttle"]
    assert injected > 0
    assert options.stats.throttled == injected
    assert options.stats.slept >= injected * 1.0


def test_refused_credentials_raise_the_auth_error(harness: AccountHarness, sandbox_factory: Any) -> None:
    server = sandbox_factory()
    with pytest.raises(ConnectorAuthError):
        drain(harness.build(server, AdapterOptions(wrong_secret=True)).iter_accounts())


def test_faults_at_the_injected_rates_lose_nothing(harness: AccountHarness, sandbox_factory: Any,
                                                   contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.05, server_error=0.08, truncate=0.05, timeout=0.03, seed=11))
    # small pages: enough requests for every kind of fault to be drawn
    drained = drain(harness.build(server, AdapterOptions(page_size=10, timeout_seconds=1.0)).iter_accounts())
    assert_exactly_once(drained, *harness.expected(contract_ministry[0]))
    injected = server.sandbox.faults.injected
    assert injected["server_error"] > 0 and injected["truncate"] > 0 and injected["timeout"] > 0
    # The sandbox's timeouts outlast the client: each one ended by the client's own timeout, then retried.
    assert server.sandbox.stats[f"{harness.platform}:timeout:client_gave_up"] == injected["timeout"]


def test_the_suite_catches_a_server_that_repeats_a_page_token(harness: AccountHarness, sandbox_factory: Any,
                                                              contract_ministry: Any) -> None:
    server = sandbox_factory(broken=frozenset({"repeat_page_token"}))
    with pytest.raises((PermanentConnectorError, AssertionError)):
        drained = drain(harness.build(server, AdapterOptions()).iter_accounts(), limit=500)
        assert_exactly_once(drained, *harness.expected(contract_ministry[0]))
