"""Removing a Microsoft licence: assignLicense with both members, read before and after (graph.md §4.3); a SKU
held through a group is reported and never sent. Against the sandbox's Graph (which refuses what Graph refuses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.graph import GraphLicenceRelease
from connectors.retry import RetryStats
from connectors.roles import LicenceReleaser
from connectors.throttle import NoThrottle
from core.licences import ReleaseRefusal
from sandbox import graph as sandbox_graph
from tests.connectors.contract import TEST_RETRY
from tests.connectors.harness_graph import graph_config


def _users(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data / "teams" / "users.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _held(user: dict[str, Any], *, by_group: bool) -> str | None:
    return next((str(state["skuId"]) for state in user.get("licenseAssignmentStates") or []
                 if bool(state.get("assignedByGroup")) is by_group), None)


def test_a_direct_licence_is_removed_and_a_group_licence_is_reported(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    server = sandbox_factory()
    release = GraphLicenceRelease(graph_config(server), throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats())
    users = _users(contract_ministry[0])
    direct = next(user for user in users if _held(user, by_group=False)
                  and not any(s.get("assignedByGroup") for s in user.get("licenseAssignmentStates") or []))
    sku = _held(direct, by_group=False)
    assert sku is not None
    done = release.remove_licence(direct["id"], sku)
    assert (done.released, done.before, done.refusal) == (True, f"graph:sku:{sku.lower()}", None), done
    releaser: LicenceReleaser = release
    again = releaser.release(direct["id"], sku)  # the re-read shows it gone: nothing sent twice
    assert (again.released, again.before) == (True, None)

    grouped = next(user for user in users if _held(user, by_group=True)
                   and all(s.get("assignedByGroup") for s in user.get("licenseAssignmentStates") or []
                           if s.get("skuId") == _held(user, by_group=True)))
    group_sku = _held(grouped, by_group=True)
    assert group_sku is not None
    held = release.remove_licence(grouped["id"], group_sku)
    assert (held.released, held.refusal) == (False, ReleaseRefusal.GROUP_INHERITED), held
    missing = release.remove_licence("00000000-0000-0000-0000-000000000000", sku)
    assert (missing.released, missing.refusal) == (False, ReleaseRefusal.NOT_FOUND)


def test_a_removed_licence_is_granted_again_and_a_full_sku_is_refused(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    server = sandbox_factory()
    releaser: LicenceReleaser = GraphLicenceRelease(graph_config(server), throttle=NoThrottle(), retry=TEST_RETRY,
                                                    stats=RetryStats())
    users = _users(contract_ministry[0])
    direct = next(user for user in users if _held(user, by_group=False) and user.get("usageLocation")
                  and not any(s.get("assignedByGroup") for s in user.get("licenseAssignmentStates") or []))
    sku = _held(direct, by_group=False)
    assert sku is not None
    assert releaser.release(direct["id"], sku).released
    restored = releaser.restore(direct["id"], sku)
    assert (restored.restored, restored.after, restored.refusal) == (True, f"graph:sku:{sku.lower()}", None), restored
    assert releaser.release(direct["id"], sku).before == f"graph:sku:{sku.lower()}"   # the read shows it held again
    # Released again, then its seat taken by someone else: Graph refuses to grant it, and the reason says so.
    assert releaser.release(direct["id"], sku).released
    state = sandbox_graph.state_of(server.sandbox)
    sku_record = state.sku(sku)
    assert sku_record is not None
    state.set_prepaid(sku, int(sku_record.get("consumedUnits") or 0))
    full = releaser.restore(direct["id"], sku)
    assert (full.restored, full.refusal) == (False, ReleaseRefusal.REFUSED) and "available" in (full.detail or "")


def test_sign_ins_are_read_apart_and_a_tenant_without_premium_is_not_known_not_failed(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """The later of the interactive and non-interactive sign-ins, per user, read by `GET /users?$select=id,
    signInActivity` through the SDK; without the licence (or the permission) Graph says 403 and it is
    ActivityUnavailable, never an authentication failure of the whole platform."""
    from datetime import datetime

    import pytest

    from connectors.errors import ActivityUnavailable, ConnectorAuthError
    from connectors.graph import GraphSignIns
    from sandbox.server import Credentials

    users = {user["id"]: user for user in _users(contract_ministry[0])}
    reader = GraphSignIns(graph_config(sandbox_factory()), throttle=NoThrottle(), retry=TEST_RETRY,
                          stats=RetryStats())
    pages = list(reader.iter_sign_ins())
    found = dict(pair for page in pages for pair in page)
    assert set(found) == set(users) and len(pages) >= 1
    for user_id, moment in found.items():
        activity = users[user_id]["signInActivity"]
        expected = max(datetime.fromisoformat(activity[name].replace("Z", "+00:00"))
                       for name in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime"))
        assert moment == expected, user_id

    for refused in (sandbox_factory(graph_premium=False),
                    sandbox_factory(credentials=Credentials(graph_roles=("User.Read.All",)))):
        reader = GraphSignIns(graph_config(refused), throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats())
        with pytest.raises(ActivityUnavailable) as raised:
            list(reader.iter_sign_ins())
        assert not isinstance(raised.value, ConnectorAuthError) and "403" in str(raised.value)
