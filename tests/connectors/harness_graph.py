"""The Graph (Teams) connectors in the contract suites: expected outcomes read straight from the generated files.

Nothing here calls the connector or the sandbox code to know what should arrive: teams/users.jsonl carries each
account's `_truth`, teams/events.jsonl each event's `_mailbox` and `_kind`, teams/subscribed_skus.json the seats.
The connector authenticates with the real azure-identity credential against the sandbox's TLS token endpoint.

Sizes: users come `AdapterOptions.page_size` per page (about 320 users here). Mailboxes hold at most six events,
so event pages hold three: some mailboxes page, and a repeated page token can be seen.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from connectors.graph import GraphAccountSource, GraphConfig, GraphLicenceSource, GraphMeetingSource
from connectors.roles import HostRef
from connectors.throttle import NoThrottle
from core import Platform
from sandbox.server import SandboxServer
from tests.connectors.contract import AccountHarness, AdapterOptions, LicenceHarness, MeetingHarness

MEETING_HOSTS = 45
EVENT_PAGE_SIZE = 3
TEAMS_PROVIDER = "teamsForBusiness"


def graph_config(server: SandboxServer, *, page_size: int = 10, timeout_seconds: float = 1.0,
                 wrong_secret: bool = False, **changes: Any) -> GraphConfig:
    """A GraphConfig pointing at the sandbox's Graph and its TLS token endpoint (or with a refused secret)."""
    credentials = server.config.credentials
    assert server.ca_file is not None, "the Graph harness needs the sandbox's TLS listener"
    return GraphConfig(tenant_id=str(server.sandbox.manifest["tenant"]["entra_tenant_id"]),
                       client_id=credentials.graph_client_id,
                       client_secret="not-the-secret" if wrong_secret else credentials.graph_client_secret,
                       graph_url=server.url + "/graph/v1.0", authority=server.tls_url, ca_file=str(server.ca_file),
                       page_size=page_size, timeout_seconds=timeout_seconds,
                       internal_domains=frozenset(server.sandbox.manifest["tenant"]["domains"]),
                       **({"event_page_size": EVENT_PAGE_SIZE, "hosts_per_page": 20} | changes))


def _connector(cls: type[Any]) -> Any:
    def build(server: SandboxServer, options: AdapterOptions) -> Any:
        config = graph_config(server, page_size=options.page_size, timeout_seconds=options.timeout_seconds,
                              wrong_secret=options.wrong_secret)
        return cls(config, throttle=NoThrottle(), retry=options.retry, stats=options.stats,
                   clock=server.sandbox.now)
    return build


def lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def expected_accounts(ministry: Path) -> tuple[set[str], dict[str, str]]:
    ids: set[str] = set()
    quarantined: dict[str, str] = {}
    for user in lines(ministry / "teams" / "users.jsonl"):
        outcome = str(user["_truth"]["outcome"])
        if outcome.startswith("quarantine:"):
            quarantined[f"teams:user:{user['id']}"] = outcome.removeprefix("quarantine:")
        else:
            ids.add(str(user["id"]))
    return ids, quarantined


def meeting_hosts(ministry: Path) -> list[HostRef]:
    """The first users of the file whose mailbox holds events."""
    mailboxes = {str(event["_mailbox"]) for event in lines(ministry / "teams" / "events.jsonl")}
    hosts = []
    for user in lines(ministry / "teams" / "users.jsonl"):
        if user["id"] in mailboxes:
            hosts.append(HostRef(str(user["id"]), str(user["mail"] or user["userPrincipalName"])))
        if len(hosts) == MEETING_HOSTS:
            break
    return hosts


def _broken_recurrence(event: Mapping[str, Any]) -> bool:
    """The generator's unparseable series: a weekly pattern without days."""
    pattern = (event.get("recurrence") or {}).get("pattern") or {}
    return event["type"] == "seriesMaster" and pattern.get("type") == "weekly" and not pattern.get("daysOfWeek")


def expected_meetings(ministry: Path, hosts: list[HostRef]) -> tuple[set[str], dict[str, str]]:
    """The organisers' Teams meetings of these mailboxes (every kind; plain events are skipped)."""
    wanted = {host.external_id for host in hosts}
    ids: set[str] = set()
    quarantined: dict[str, str] = {}
    for event in lines(ministry / "teams" / "events.jsonl"):
        if event["_mailbox"] not in wanted or event["_kind"] == "not_online":
            continue
        assert event["isOnlineMeeting"] and event["onlineMeetingProvider"] == TEAMS_PROVIDER and event["isOrganizer"]
        if _broken_recurrence(event):
            quarantined[f"teams:meeting:{event['id']}"] = "RECURRENCE_UNPARSEABLE"
        elif not (event.get("organizer") or {}).get("emailAddress", {}).get("address"):
            quarantined[f"teams:meeting:{event['id']}"] = "MEETING_WITHOUT_HOST"
        else:
            ids.add(str(event["id"]))
    return ids, quarantined


def expected_licences(ministry: Path) -> dict[str, int]:
    skus = json.loads((ministry / "teams" / "subscribed_skus.json").read_text(encoding="utf-8"))["value"]
    return {str(sku["skuId"]).lower(): int(sku["consumedUnits"]) for sku in skus}


def expected_licensed(ministry: Path) -> Counter[str]:
    """Users holding a SKU with TEAMS1 not disabled, counted from the files (for tests beyond the suites)."""
    skus = json.loads((ministry / "teams" / "subscribed_skus.json").read_text(encoding="utf-8"))["value"]
    teams = {str(s["skuId"]).lower() for s in skus
             if any(p["servicePlanName"] == "TEAMS1" for p in s["servicePlans"])}
    plan = next(p["servicePlanId"] for s in skus for p in s["servicePlans"] if p["servicePlanName"] == "TEAMS1")
    counts: Counter[str] = Counter()
    for user in lines(ministry / "teams" / "users.jsonl"):
        licensed = any(str(a["skuId"]).lower() in teams and plan not in a["disabledPlans"]
                       for a in user["assignedLicenses"])
        counts["licensed" if licensed else "unlicensed"] += 1
    return counts


HARNESSES = [
    AccountHarness(Platform.TEAMS, _connector(GraphAccountSource), expected_accounts, id="teams"),
    MeetingHarness(Platform.TEAMS, _connector(GraphMeetingSource), meeting_hosts, expected_meetings, id="teams"),
    LicenceHarness(Platform.TEAMS, _connector(GraphLicenceSource), expected_licences, id="teams"),
]
