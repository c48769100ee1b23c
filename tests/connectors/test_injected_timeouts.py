"""An injected timeout as it really happens: the server holds its answer, the client's own timeout fires.

The sandbox's default timeout outlasts every client (it answers only once the client has gone, or after two
minutes), so each HTTP client bascule uses — Zoom through zoomus (requests), Graph through msgraph-sdk (httpx,
asynchronous), Webex and Visio through httpx — is shown here giving up on its own short timeout (1 s), the one retry
layer retrying it (RetryStats), and the listing or call then succeeding with nothing lost or repeated.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from connectors.retry import RetryStats
from connectors.throttle import NoThrottle
from connectors.visio import VisioConfig, VisioRoomTarget, VisioToken
from sandbox.faults import Fault
from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, state_of
from tests.connectors.contract import TEST_RETRY, AccountHarness, AdapterOptions, assert_exactly_once, drain, harnesses

CLIENT_TIMEOUT = 1.0
# Far below the sandbox's hold (timeout_cap_seconds, 120 s): only the client's own timeout can end the wait in time.
WITHIN = 30.0
HARNESSES = harnesses(AccountHarness)


def test_every_http_client_is_covered() -> None:
    assert {str(harness.platform) for harness in HARNESSES} == {"zoom", "teams", "webex"}


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda harness: harness.id or str(harness.platform))
def test_a_source_listing_outlives_an_injected_timeout(harness: AccountHarness, sandbox_factory: Any,
                                                       contract_ministry: Any) -> None:
    server = sandbox_factory()
    assert server.sandbox.faults.rates.timeout_seconds is None          # the default: held until the client goes
    server.sandbox.faults.inject(Fault.TIMEOUT)                         # the first API request of the listing
    options = AdapterOptions(timeout_seconds=CLIENT_TIMEOUT)
    started = time.monotonic()
    drained = drain(harness.build(server, options).iter_accounts())
    elapsed = time.monotonic() - started

    assert_exactly_once(drained, *harness.expected(contract_ministry[0]))
    system = str(harness.platform)
    assert server.sandbox.stats[f"{system}:injected:timeout"] == 1
    assert server.sandbox.stats[f"{system}:timeout:client_gave_up"] == 1  # the client hung up: its timeout fired
    assert options.stats.counts["transient"] == 1                       # and the retry layer tried again
    assert elapsed < WITHIN


def test_visio_calls_outlive_injected_timeouts(sandbox_factory: Any) -> None:
    server = sandbox_factory(systems=frozenset({"meet"}), tls_port=None)
    meet = state_of(server.sandbox)
    email = f"hote.{uuid.uuid4().hex[:10]}@culture.example.gouv.fr"
    owner = meet.add_user(email, sub=uuid.uuid4().hex)
    made = {meet.create_room(owner, client_id=SANDBOX_CLIENT_ID, access_level="trusted", configuration={}).id
            for _ in range(25)}
    stats = RetryStats()
    config = VisioConfig(api_url=f"{server.url}/meet/external-api/v1.0/", client_id=SANDBOX_CLIENT_ID,
                         client_secret=SANDBOX_CLIENT_SECRET, timeout_seconds=CLIENT_TIMEOUT)
    started = time.monotonic()
    with VisioRoomTarget(config, throttle=NoThrottle(), retry=TEST_RETRY, stats=stats, clock=meet.now) as target:
        server.sandbox.faults.inject(Fault.TIMEOUT)                     # the token request
        token = target.token_for(email)
        assert isinstance(token, VisioToken) and token.user_id == owner.id
        server.sandbox.faults.inject(Fault.TIMEOUT)                     # the first page of rooms
        listed = [room.id for room in target.iter_rooms(email)]
    assert sorted(listed) == sorted(made)
    assert server.sandbox.stats["meet:injected:timeout"] == 2
    assert server.sandbox.stats["meet:timeout:client_gave_up"] == 2
    assert stats.counts["transient"] == 2
    assert time.monotonic() - started < WITHIN
