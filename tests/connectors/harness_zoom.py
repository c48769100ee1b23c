"""The Zoom connectors in the contract suites: expected outcomes read straight from the generated files.

Nothing here calls the connector or the sandbox code to know what should arrive: users.jsonl carries each
account's `_truth`, meetings.jsonl and webinars.jsonl their `_host` and `_kind`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.roles import HostRef
from connectors.throttle import LocalThrottle
from connectors.zoom import (
    ZoomAccountSource,
    ZoomConfig,
    ZoomLicenceSource,
    ZoomMeetingSource,
    throttle_rates,
)
from core import Platform
from sandbox.server import SandboxServer
from tests.connectors.contract import AccountHarness, AdapterOptions, LicenceHarness, MeetingHarness

MEETING_HOSTS = 40


def zoom_config(server: SandboxServer, *, page_size: int = 50, timeout_seconds: float = 1.0,
                wrong_secret: bool = False, **changes: Any) -> ZoomConfig:
    """A ZoomConfig pointing at the sandbox's Zoom, with its credentials (or a refused secret)."""
    credentials = server.config.credentials
    return ZoomConfig(api_url=server.url + "/zoom/v2", oauth_url=server.url + "/zoom/oauth/token",
                      account_id=str(server.sandbox.manifest["tenant"]["zoom_account_id"]),
                      client_id=credentials.zoom_client_id,
                      client_secret="not-the-secret" if wrong_secret else credentials.zoom_client_secret,
                      plan=server.config.zoom_plan, page_size=page_size, timeout_seconds=timeout_seconds,
                      **changes)


def zoom_throttle(server: SandboxServer) -> LocalThrottle:
    """Paced a little under the sandbox's plan rates: no real 429 disturbs the counts of injected ones."""
    account = str(server.sandbox.manifest["tenant"]["zoom_account_id"])
    return LocalThrottle(throttle_rates(account, server.config.zoom_plan, share=0.95))


def _connector(cls: type[Any]) -> Any:
    def build(server: SandboxServer, options: AdapterOptions) -> Any:
        config = zoom_config(server, page_size=options.page_size, timeout_seconds=options.timeout_seconds,
                             wrong_secret=options.wrong_secret)
        return cls(config, throttle=zoom_throttle(server), retry=options.retry, stats=options.stats,
                   clock=server.sandbox.now)
    return build


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def user_external_id(user: dict[str, Any]) -> str:
    return str(user["id"]) if user.get("id") else "pending:" + str(user["email"]).strip().lower()


def expected_accounts(ministry: Path) -> tuple[set[str], dict[str, str]]:
    ids: set[str] = set()
    quarantined: dict[str, str] = {}
    for user in _lines(ministry / "zoom" / "users.jsonl"):
        outcome = str(user["_truth"]["outcome"])
        if outcome.startswith("quarantine:"):
            quarantined[f"zoom:user:{user_external_id(user)}"] = outcome.removeprefix("quarantine:")
        else:
            ids.add(user_external_id(user))
    return ids, quarantined


def meeting_hosts(ministry: Path) -> list[HostRef]:
    """The first licensed active users of the file (the hosts whose meetings the generator wrote)."""
    hosts = []
    for user in _lines(ministry / "zoom" / "users.jsonl"):
        if user.get("id") and user["type"] == 2 and user["status"] == "active" \
                and not str(user["_truth"]["outcome"]).startswith("quarantine:"):
            hosts.append(HostRef(str(user["id"]), str(user["email"])))
        if len(hosts) == MEETING_HOSTS:
            break
    return hosts


def expected_meetings(ministry: Path, hosts: list[HostRef]) -> tuple[set[str], dict[str, str]]:
    """Meetings Zoom lists as scheduled (every kind but expired series) and webinars of these hosts."""
    wanted = {host.external_id for host in hosts}
    ids = {str(m["id"]) for m in _lines(ministry / "zoom" / "meetings.jsonl")
           if m["_host"] in wanted and m["_kind"] != "expired_series"}
    ids |= {str(w["id"]) for w in _lines(ministry / "zoom" / "webinars.jsonl") if w["_host"] in wanted}
    return ids, {}


def expected_licences(ministry: Path) -> dict[str, int]:
    return dict(Counter(f"zoom:type:{user['type']}" for user in _lines(ministry / "zoom" / "users.jsonl")))


HARNESSES = [
    AccountHarness(Platform.ZOOM, _connector(ZoomAccountSource), expected_accounts, id="zoom"),
    MeetingHarness(Platform.ZOOM, _connector(ZoomMeetingSource), meeting_hosts, expected_meetings, id="zoom"),
    LicenceHarness(Platform.ZOOM, _connector(ZoomLicenceSource), expected_licences, id="zoom"),
]
