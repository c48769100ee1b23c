"""Releasing a Zoom seat: PATCH /users/{userId} with exactly {"type": 1}, then the user read back (zoom.md §5);
documented refusals become a reason, never an error that stops a batch. Against the sandbox's Zoom."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.retry import RetryStats
from connectors.roles import LicenceReleaser
from connectors.throttle import NoThrottle
from connectors.zoom import ZoomAccountSource, ZoomLicenceRelease
from core import SourceAccount
from core.licences import ReleaseRefusal
from sandbox.server import SandboxServer
from tests.connectors.contract import TEST_RETRY
from tests.connectors.harness_zoom import zoom_config


def _users(data: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data / "zoom" / "users.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _paid_user(data: Path) -> dict[str, Any]:
    """An active paid user of the ministry that is not a Zoom Room."""
    return next(user for user in _users(data)
                if user.get("type") == 2 and user.get("id") and user.get("status", "active") == "active"
                and not str(user.get("email", "")).startswith("zoomroom"))


def _release(server: SandboxServer) -> ZoomLicenceRelease:
    return ZoomLicenceRelease(zoom_config(server), throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(),
                              clock=server.sandbox.now)


def _type_listed(server: SandboxServer, user_id: str) -> str | None:
    source = ZoomAccountSource(zoom_config(server), throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(),
                               clock=server.sandbox.now)
    for page in source.iter_accounts():
        for item in page.items:
            if isinstance(item, SourceAccount) and item.external_id == user_id:
                return item.account_type
    return None


def test_a_paid_user_is_downgraded_with_exactly_that_body_and_the_listing_shows_it(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = sandbox_factory()
    paid = _paid_user(contract_ministry[0])
    sent: list[tuple[str, Any]] = []
    real_patch = requests.patch

    def recording_patch(url: str, *args: Any, **kwargs: Any) -> requests.Response:
        sent.append((url, kwargs.get("data")))
        return real_patch(url, *args, **kwargs)

    monkeypatch.setattr(requests, "patch", recording_patch)
    released = _release(server).downgrade_to_basic(paid["id"])
    assert (released.released, released.before, released.after, released.refusal) == (
        True, "zoom:type:2", "zoom:type:1", None)
    assert [(url.rsplit("/", 2)[-2:], json.loads(body)) for url, body in sent] == [
        (["users", paid["id"]], {"type": 1})]
    assert _type_listed(server, paid["id"]) == "1"  # a later read of the source shows the seat free

    releaser: LicenceReleaser = _release(server)  # the role every platform's release plays
    again = releaser.release(paid["id"], "zoom:type:2")  # re-run: nothing sent, still released
    assert again.released and len(sent) == 1


def test_refusals_are_reasons(tmp_path: Path, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """A paid Zoom Room user (code 200) is held with its reason; an unknown user is NOT_FOUND."""
    from sandbox.server import SandboxConfig

    data = tmp_path / "ministry"
    shutil.copytree(contract_ministry[0], data)
    template = next(user for user in _users(data) if user.get("type") == 2 and user.get("id"))
    room = {**template, "id": "zr-paid-room-0001", "email": "zoomroom-salle-b12@culture.example.gouv.fr",
            "first_name": "Zoom Room B12", "last_name": ""}
    with (data / "zoom" / "users.jsonl").open("a", encoding="utf-8") as users:
        users.write(json.dumps(room) + "\n")
    with SandboxServer(SandboxConfig(data_dir=data)) as server:
        release = _release(server)
        refused = release.downgrade_to_basic(room["id"])
        assert (refused.released, refused.refusal, refused.before) == (False, ReleaseRefusal.ROOM_OR_ADMIN,
                                                                        "zoom:type:2"), refused
        missing = release.downgrade_to_basic("no-such-user-000")
        assert (missing.released, missing.refusal) == (False, ReleaseRefusal.NOT_FOUND)


def test_a_released_seat_is_restored_with_exactly_the_paid_type_and_the_listing_shows_it(
        sandbox_factory: Any, contract_ministry: tuple[Path, dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = sandbox_factory()
    paid = _paid_user(contract_ministry[0])
    releaser: LicenceReleaser = _release(server)
    assert releaser.release(paid["id"], "zoom:type:2").released
    sent: list[Any] = []
    real_patch = requests.patch

    def recording_patch(url: str, *args: Any, **kwargs: Any) -> requests.Response:
        sent.append(json.loads(kwargs.get("data") or "null"))
        return real_patch(url, *args, **kwargs)

    monkeypatch.setattr(requests, "patch", recording_patch)
    restored = releaser.restore(paid["id"], "zoom:type:2")
    assert (restored.restored, restored.after, restored.refusal) == (True, "zoom:type:2", None), restored
    assert sent == [{"type": 2}]
    assert _type_listed(server, paid["id"]) == "2"
    assert releaser.restore(paid["id"], "zoom:type:2").restored and len(sent) == 1   # held already: nothing sent
    assert releaser.restore(paid["id"], "graph:sku:x").refusal is ReleaseRefusal.REFUSED
    assert releaser.restore("no-such-user-000", "zoom:type:2").refusal is ReleaseRefusal.NOT_FOUND
