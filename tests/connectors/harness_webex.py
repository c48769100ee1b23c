"""The Webex connector in the contract suites: wiring to the sandbox, expectations read from the generated files.

Expectations come from the files alone (`_truth`, `_host`, `_kind`, `hostEmail`, the licence catalogue), never
from the connector or the sandbox code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from dateutil.rrule import rrulestr

from connectors.roles import HostRef
from connectors.throttle import NoThrottle
from connectors.webex import WebexAccountSource, WebexConfig, WebexLicenceSource, WebexMeetingSource
from core import Platform
from sandbox.server import SandboxServer
from tests.connectors.contract import AccountHarness, AdapterOptions, LicenceHarness, MeetingHarness

HOSTS = 30  # > 20 as the suite asks; each host costs a listing and an invitee call per series
# Webex holds ~15 % of the contract ministry's agents (66 people, 41 hosts). People come in pages of 2 (33 pages:
# enough requests for the suites' seeded fault sequences to reach every kind of fault); meeting listings and pages
# use a tenth of it (several pages of one host's series, several pages of hosts).
PEOPLE_PAGE_DIVISOR = 25
MEETING_PAGE_DIVISOR = 10


def config(server: SandboxServer, options: AdapterOptions, *, divisor: int = 1, **changes: Any) -> WebexConfig:
    token = server.config.credentials.webex_access_token
    return WebexConfig(api_url=server.url + "/webex/v1/", org_id=server.sandbox.manifest["tenant"]["webex_org_id"],
                       access_token=f"wrong-{token}" if options.wrong_secret else token,
                       page_size=max(1, options.page_size // divisor), timeout_seconds=options.timeout_seconds,
                       internal_domains=tuple(server.sandbox.manifest["tenant"]["domains"]), **changes)


def _wiring(server: SandboxServer, options: AdapterOptions) -> dict[str, Any]:
    return {"throttle": NoThrottle(), "retry": options.retry, "stats": options.stats, "clock": server.sandbox.now}


def build_accounts(server: SandboxServer, options: AdapterOptions) -> WebexAccountSource:
    return WebexAccountSource(config(server, options, divisor=PEOPLE_PAGE_DIVISOR), **_wiring(server, options))


def build_meetings(server: SandboxServer, options: AdapterOptions) -> WebexMeetingSource:
    return WebexMeetingSource(config(server, options, divisor=MEETING_PAGE_DIVISOR), **_wiring(server, options))


def build_licences(server: SandboxServer, options: AdapterOptions) -> WebexLicenceSource:
    return WebexLicenceSource(config(server, options), **_wiring(server, options))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def expected_accounts(root: Path) -> tuple[set[str], dict[str, str]]:
    ids: set[str] = set()
    quarantined: dict[str, str] = {}
    for person in _lines(root / "webex" / "people.jsonl"):
        outcome = str(person["_truth"]["outcome"])
        if outcome.startswith("quarantine:"):
            quarantined[f"webex:user:{person['id']}"] = outcome.removeprefix("quarantine:")
        else:
            ids.add(str(person["id"]))
    return ids, quarantined


def hosts(root: Path) -> list[HostRef]:
    """People who host series, in file order (their e-mail as Webex has it)."""
    hosting = {str(meeting["_host"]) for meeting in _lines(root / "webex" / "meetings.jsonl")}
    people = [person for person in _lines(root / "webex" / "people.jsonl") if person["id"] in hosting]
    return [HostRef(str(person["id"]), str(person["emails"][0])) for person in people[:HOSTS]]


def _expandable(meeting: dict[str, Any]) -> bool:
    rule = meeting.get("recurrence")
    if not rule:
        return True
    try:
        rrulestr(str(rule))
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return True


def expected_meetings(root: Path, chosen: list[HostRef]) -> tuple[set[str], dict[str, str]]:
    """The hosts' own series that the listing window (today 00:00Z on) reaches, and the quarantined ones.

    Expired series (`_kind`, and the service's `state`) end before the window whatever their rule says; the others
    are listed: quarantined when their rule cannot be expanded or their hostEmail is empty.
    """
    wanted = {host.external_id for host in chosen}
    ids: set[str] = set()
    quarantined: dict[str, str] = {}
    for meeting in _lines(root / "webex" / "meetings.jsonl"):
        if meeting["_host"] not in wanted:
            continue
        key = f"webex:meeting:{meeting['id']}"
        if meeting["_kind"] == "expired_series":
            continue
        if not _expandable(meeting):
            quarantined[key] = "RECURRENCE_UNPARSEABLE"
        elif not meeting.get("hostEmail"):
            quarantined[key] = "MEETING_WITHOUT_HOST"
        else:
            ids.add(str(meeting["id"]))
    return ids, quarantined


def expected_licences(root: Path) -> dict[str, int]:
    catalogue = orjson.loads((root / "webex" / "licenses.json").read_bytes())
    return {str(item["id"]): int(item["consumedUnits"]) for item in catalogue["items"]}


HARNESSES = [
    AccountHarness(Platform.WEBEX, build_accounts, expected_accounts, id="webex"),
    MeetingHarness(Platform.WEBEX, build_meetings, hosts, expected_meetings, id="webex"),
    LicenceHarness(Platform.WEBEX, build_licences, expected_licences, id="webex"),
]
