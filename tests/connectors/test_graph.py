"""The Graph connectors beyond the contract suites: delta passes, field mapping, permissions, token renewal.

Expectations come from the generated files (as in harness_graph), never from the connector or the sandbox code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from azure.identity.aio import ClientSecretCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)
from msgraph.graph_service_client import GraphServiceClient

from connectors.errors import ConnectorAuthError, PermanentConnectorError, RateLimited
from connectors.graph import GRAPH_SCOPE, GraphAccountSource, GraphConfig, GraphMeetingSource
from connectors.retry import RetryPolicy, RetryStats
from connectors.throttle import NoThrottle
from core import AccountStatus, HostRef, Meeting, Quarantined, Removed, SourceAccount
from core.timezones import WINDOWS_TO_IANA
from sandbox import graph as sandbox_graph
from sandbox.faults import FaultRates
from sandbox.server import Credentials, SandboxServer
from tests.connectors.contract import TEST_RETRY, drain
from tests.connectors.harness_graph import expected_licensed, graph_config, lines, meeting_hosts


def _accounts(server: SandboxServer, **changes: Any) -> GraphAccountSource:
    stats = changes.pop("stats", RetryStats())
    return GraphAccountSource(graph_config(server, **changes), throttle=NoThrottle(), retry=TEST_RETRY,
                              stats=stats, clock=server.sandbox.now)


def _meetings(server: SandboxServer, *, retry: RetryPolicy = TEST_RETRY, stats: RetryStats | None = None,
              **changes: Any) -> GraphMeetingSource:
    return GraphMeetingSource(graph_config(server, **changes), throttle=NoThrottle(), retry=retry,
                              stats=stats or RetryStats(), clock=server.sandbox.now)


def _sdk_client(server: SandboxServer) -> tuple[GraphServiceClient, ClientSecretCredential]:
    """msgraph-sdk wired as graph.md 1.1 says (default middleware, kiota's retries on)."""
    credentials = server.config.credentials
    credential = ClientSecretCredential(str(server.sandbox.manifest["tenant"]["entra_tenant_id"]),
                                        credentials.graph_client_id, credentials.graph_client_secret,
                                        authority=server.tls_url, disable_instance_discovery=True,
                                        connection_verify=str(server.ca_file))
    client = GraphServiceClient(credentials=credential, scopes=[GRAPH_SCOPE])
    client.request_adapter.base_url = server.url + "/graph/v1.0"
    return client, credential


def _remove_licence(server: SandboxServer, user_id: str, sku: str, *, explicit_add: bool) -> Any:
    async def call() -> Any:
        client, credential = _sdk_client(server)
        try:
            body = AssignLicensePostRequestBody(remove_licenses=[UUID(sku)])
            if explicit_add:
                body.add_licenses = []
            return await client.users.by_user_id(user_id).assign_license.post(body)
        finally:
            await credential.close()
    return asyncio.run(call())


def _users(ministry: Path) -> list[dict[str, Any]]:
    return list(lines(ministry / "teams" / "users.jsonl"))


def _items(pages: Iterator[Any]) -> list[Any]:
    return drain(pages).items


# ----------------------------------------------------------------------------------------------- accounts

def test_a_delta_pass_delivers_exactly_the_change_and_the_removal(sandbox_factory: Any,
                                                                  contract_ministry: Any) -> None:
    server = sandbox_factory()
    users = _users(contract_ministry[0])
    full = drain(_accounts(server, page_size=100).iter_accounts())
    assert not any(page.delta for page in full.pages) and full.pages[-1].delta_cursor
    assert all(page.delta_cursor is None for page in full.pages[:-1])
    changed = next(u for u in users if u["assignedLicenses"] and u["usageLocation"]
                   and all(s["assignedByGroup"] is None for s in u["licenseAssignmentStates"]))
    sku = changed["assignedLicenses"][0]["skuId"]
    with pytest.raises(ODataError) as refused:   # the SDK drops an unset add_licenses from the wire
        _remove_licence(server, changed["id"], sku, explicit_add=False)
    assert refused.value.response_status_code == 400
    assert str(_remove_licence(server, changed["id"], sku, explicit_add=True).id) == changed["id"]
    deleted = users[-1]["id"]
    sandbox_graph.state_of(server.sandbox).delete_user(deleted, permanent=True)

    delta = drain(_accounts(server).iter_accounts(full.pages[-1].delta_cursor))
    assert all(page.delta for page in delta.pages)
    account, removal = delta.items
    assert isinstance(account, SourceAccount) and account.external_id == changed["id"]
    assert sku not in account.licences
    assert len(account.licences) == len(changed["assignedLicenses"]) - 1
    assert removal == Removed(account.platform, deleted, "deleted")
    assert _items(_accounts(server).iter_accounts(delta.pages[-1].delta_cursor)) == []


def test_accounts_carry_the_identity_and_licence_fields(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry, manifest = contract_ministry
    accounts = {a.external_id: a for a in _items(_accounts(sandbox_factory(), page_size=100).iter_accounts())}
    users = {u["id"]: u for u in _users(ministry)}
    assert accounts.keys() == users.keys()
    licensed = expected_licensed(ministry)
    assert sum(a.licensed for a in accounts.values()) == licensed["licensed"] == manifest["platforms"]["teams"][
        "licensed"]
    inactive = sum(a.status is AccountStatus.INACTIVE for a in accounts.values())
    assert inactive == manifest["platforms"]["teams"]["status:inactive"]
    for user_id, account in accounts.items():
        user = users[user_id]
        assert account.email == (user["mail"] or user["userPrincipalName"])
        assert account.aliases == tuple(p[5:] for p in user["proxyAddresses"] if p.startswith("smtp:"))
        assert account.licences == tuple(a["skuId"] for a in user["assignedLicenses"])
        assert (account.employee_id, account.immutable_id, account.account_type, account.department) == (
            user["employeeId"], user["onPremisesImmutableId"], user["userType"], user["department"])


def test_foreign_cursors_are_refused(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory()
    with pytest.raises(PermanentConnectorError):
        drain(_accounts(server).iter_accounts("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x"))
    with pytest.raises(PermanentConnectorError):
        drain(_meetings(server).iter_meetings(meeting_hosts(contract_ministry[0]), "not-a-host"))


def test_missing_permissions_raise_the_auth_error(sandbox_factory: Any, contract_ministry: Any) -> None:
    hosts = meeting_hosts(contract_ministry[0])[:3]
    no_users = sandbox_factory(credentials=Credentials(graph_roles=("Organization.Read.All", "Calendars.Read")))
    with pytest.raises(ConnectorAuthError, match="users delta: HTTP 403 Authorization_RequestDenied"):
        drain(_accounts(no_users).iter_accounts())
    assert _items(_meetings(no_users).iter_meetings(hosts))
    no_calendars = sandbox_factory(credentials=Credentials(graph_roles=("User.Read.All", "Organization.Read.All")))
    with pytest.raises(ConnectorAuthError, match="HTTP 403 ErrorAccessDenied"):
        drain(_meetings(no_calendars).iter_meetings(hosts))


def test_an_expired_token_is_renewed_by_the_credential(sandbox_factory: Any) -> None:
    server = sandbox_factory(token_lifetime_seconds=1)
    pages = _accounts(server, page_size=100).iter_accounts()
    first = next(pages)
    time.sleep(1.2)
    rest = list(pages)
    assert len(first.items) + sum(len(page.items) for page in rest) > 300
    assert server.sandbox.stats["teams:token_requests"] >= 2


def test_retries_are_ours_alone(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(faults=FaultRates(throttle=0.2, server_error=0.1, seed=21))
    stats = RetryStats()
    accounts = _items(_accounts(server, stats=stats, page_size=100).iter_accounts())
    meetings = _items(_meetings(server, stats=stats, event_page_size=100)
                      .iter_meetings(meeting_hosts(contract_ministry[0])[:20]))
    assert len(accounts) == len(_users(contract_ministry[0])) and meetings
    assert server.sandbox.stats["teams:retry_attempt_header"] == 0     # kiota's RetryHandler never retried
    assert server.sandbox.stats["teams:batch:injected_items"] > 0      # batch items failed on their own
    assert stats.throttled == server.sandbox.stats["teams:injected:throttle"]


def test_throttled_items_are_retried_within_bounds(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(graph_mailbox_concurrency=0)
    stats = RetryStats()
    with pytest.raises(RateLimited):
        drain(_meetings(server, retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=5), stats=stats)
              .iter_meetings(meeting_hosts(contract_ministry[0])[:2]))
    assert stats.throttled == 2
    assert server.sandbox.stats["teams:throttled:mailbox"] == 4


# ----------------------------------------------------------------------------------------------- meetings

def test_meetings_are_mapped_as_the_generator_meant_them(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry, manifest = contract_ministry
    hosts = meeting_hosts(ministry)
    domains = frozenset(manifest["tenant"]["domains"])
    drained = drain(_meetings(sandbox_factory(), event_page_size=100).iter_meetings(hosts))
    meetings = {m.external_id: m for m in drained.items if isinstance(m, Meeting)}
    wanted = {host.external_id: host for host in hosts}
    events = [e for e in lines(ministry / "teams" / "events.jsonl") if e["_mailbox"] in wanted]
    assert sum(page.skipped for page in drained.pages) == sum(e["_kind"] == "not_online" for e in events)
    quarantined = {q.record_key for q in drained.items if isinstance(q, Quarantined)}
    for event in events:
        if event["_kind"] == "not_online" or f"teams:meeting:{event['id']}" in quarantined:
            continue
        meeting = meetings[event["id"]]
        assert str(meeting.kind) == event["_kind"], event["id"]
        assert meeting.host_account_id == event["_mailbox"]
        assert meeting.host_email == wanted[event["_mailbox"]].email
        assert meeting.topic == event["subject"] and meeting.join_url == event["onlineMeeting"]["joinUrl"]
        short = "/meet/" in meeting.join_url
        assert meeting.link_key.startswith("teams:meet:" if short else "teams:19:meeting_")
        assert meeting.passcode is short
        assert meeting.dial_in is bool(event["onlineMeeting"].get("tollNumber"))
        zone = (event["recurrence"] or {}).get("range", {}).get("recurrenceTimeZone") or event["originalStartTimeZone"]
        assert meeting.timezone == WINDOWS_TO_IANA[zone]
        assert meeting.start is not None and meeting.start.isoformat()[:19] == event["start"]["dateTime"][:19]
        addresses = [a["emailAddress"]["address"] for a in event["attendees"]]
        assert meeting.invitees == tuple(addresses)
        assert meeting.external_invitees == sum(a.rpartition("@")[2].lower() not in domains for a in addresses)
        assert (meeting.recurrence is None) is (event["type"] == "singleInstance")


def test_hosts_without_a_mailbox_are_skipped_and_counted(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    server = sandbox_factory()
    mailboxes = {e["_mailbox"] for e in lines(ministry / "teams" / "events.jsonl")}
    no_exchange = next(u for u in _users(ministry) if u["id"] not in mailboxes
                       and not any(p["service"].startswith("EXCHANGE") for p in u["assignedPlans"]))
    host = meeting_hosts(ministry)[0]
    sandbox_graph.state_of(server.sandbox).delete_user(host.external_id)
    pages = drain(_meetings(server).iter_meetings([host, HostRef(no_exchange["id"], no_exchange["mail"])])).pages
    assert [page.items for page in pages] == [()] and pages[0].skipped == 2


def test_graph_config_bounds() -> None:
    wrong: list[dict[str, Any]] = [{"page_size": 1000}, {"event_page_size": 0}, {"hosts_per_batch": 21},
                                   {"timeout_seconds": 0}]
    for bad in wrong:
        with pytest.raises(ValueError):
            GraphConfig(tenant_id="t", client_id="c", client_secret="s", **bad)
    assert "s3cret" not in repr(GraphConfig(tenant_id="t", client_id="c", client_secret="s3cret"))


@pytest.mark.parametrize(("bug", "reason"), [("refuse_meetings_of:{host}", "LISTING_REFUSED"),
                                             ("malformed_meetings_of:{host}", "LISTING_MALFORMED"),
                                             ("endless_page_token", "LISTING_UNBOUNDED")])
def test_a_mailbox_whose_listing_fails_is_quarantined_and_the_others_go_on(sandbox_factory: Any,
                                                                          contract_ministry: Any, bug: str,
                                                                          reason: str) -> None:
    ministry = contract_ministry[0]
    busy = {e["_mailbox"] for e in lines(ministry / "teams" / "events.jsonl")}
    hosts = [host for host in meeting_hosts(ministry) if host.external_id in busy][:3]
    failing = hosts[1]
    reference = drain(_meetings(sandbox_factory()).iter_meetings(hosts))
    server = sandbox_factory(broken=frozenset({bug.format(host=failing.external_id)}))
    drained = drain(_meetings(server, event_page_size=5).iter_meetings(hosts))
    failures = {(q.record_key, q.reason.value) for q in drained.items if isinstance(q, Quarantined)
                and q.record_key.startswith("teams:host:")}
    incomplete = [host for page in drained.pages for host in page.incomplete]
    if bug.startswith("endless"):
        assert failures == {(f"teams:host:{h.external_id}:meetings", reason) for h in hosts}
        assert incomplete == [h.external_id for h in hosts]
        return
    assert failures == {(f"teams:host:{failing.external_id}:meetings", reason)}
    assert incomplete == [failing.external_id]
    kept = [m.external_id for m in drained.items if isinstance(m, Meeting)]
    assert kept == [m.external_id for m in reference.items if isinstance(m, Meeting)
                    and m.host_account_id != failing.external_id] and kept
