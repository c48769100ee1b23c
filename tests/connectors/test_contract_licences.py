"""Contract suite for the licences role (every platform's LicenceSource), against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import ConnectorAuthError
from sandbox.faults import FaultRates
from tests.connectors.contract import AdapterOptions, LicenceHarness, harnesses, licences_by_key

HARNESSES = harnesses(LicenceHarness)


def test_every_platform_has_an_adapter_in_this_suite() -> None:
    assert {str(harness.platform) for harness in HARNESSES} == {"zoom", "teams", "webex"}


def _ids(harness: LicenceHarness) -> str:
    return harness.id or str(harness.platform)


@pytest.fixture(params=HARNESSES, ids=_ids)
def harness(request: pytest.FixtureRequest) -> LicenceHarness:
    return request.param  # type: ignore[no-any-return]


def test_the_catalogue_and_its_seat_counts_arrive(harness: LicenceHarness, sandbox_factory: Any,
                                                  contract_ministry: Any) -> None:
    skus = harness.build(sandbox_factory(), AdapterOptions()).fetch_licences()
    assert len({sku.sku_key for sku in skus}) == len(skus)
    assert licences_by_key(skus) == harness.expected(contract_ministry[0])
    assert any(sku.includes_meetings for sku in skus)


def test_faults_lose_nothing(harness: LicenceHarness, sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.2, server_error=0.2, truncate=0.1, seed=13))
    skus = harness.build(server, AdapterOptions()).fetch_licences()
    assert licences_by_key(skus) == harness.expected(contract_ministry[0])


def test_refused_credentials_raise_the_auth_error(harness: LicenceHarness, sandbox_factory: Any) -> None:
    with pytest.raises(ConnectorAuthError):
        harness.build(sandbox_factory(), AdapterOptions(wrong_secret=True)).fetch_licences()
