"""The Webex sandbox: every response the connector reads validated against the official Admin and Meetings specs,
strictly (a property the spec does not declare fails; documented deviations allowed explicitly and shown to
occur), and the behaviours of shared/contracts/webex.md section 8 that clients depend on.

The contract ministry is copied and a few crafted records are appended (a host whose e-mail holds a "+", meetings
placed around window edges, a crowd of people and series to reach the caps, a long invitation list); the clock is
fixed at the ministry's as-of date, 08:00 UTC.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest

from sandbox.faults import FaultRates
from sandbox.server import Credentials, SandboxConfig, SandboxServer
from tests.support.openapi import at, spec

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PLUS_HOST = "claire.martin+visio@culture.example.gouv.fr"
FLAGS = ("invitePending", "loginEnabled")
CROWD = 320          # extra people: beyond the people cap (100) and the licence-assignee cap (300)
LOCATED = 60         # of them in a Webex Calling location: beyond the cap with locationId (50)
BULK = 110           # extra one-off series of PLUS_HOST: beyond the meetings cap (100)
ADMIN, MEETINGS = spec("webex-admin"), spec("webex-meeting")


def _person_id(name: str) -> str:
    return base64.b64encode(f"ciscospark://us/PEOPLE/{name}".encode()).decode().rstrip("=")


def _series_id(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------- fixtures

def _craft(root: Path) -> dict[str, Any]:
    """Append the crafted records; return what the tests need to know about them."""
    webex = root / "webex"
    people = [orjson.loads(line) for line in (webex / "people.jsonl").read_bytes().splitlines() if line.strip()]
    meetings = [orjson.loads(line) for line in (webex / "meetings.jsonl").read_bytes().splitlines() if line.strip()]
    catalogue = orjson.loads((webex / "licenses.json").read_bytes())
    by_name = {item["name"]: item for item in catalogue["items"]}
    messaging = by_name["Messaging"]
    meeting_a, meeting_b = [item for item in catalogue["items"] if item["name"].startswith("Meeting - ")]
    template = next(p for p in people if isinstance(p["invitePending"], str) and p.get("sipAddresses"))

    host = {**template, "id": _person_id("crafted-host"), "emails": [PLUS_HOST], "displayName": "Claire Martin",
            "firstName": "Claire", "lastName": "Martin", "timezone": "Europe/Paris",
            "licenses": [messaging["id"], meeting_a["id"]], "siteUrls": [meeting_a["siteUrl"]],
            "_truth": {"outcome": "crafted"}}
    crowd = []
    for index in range(CROWD):
        person = {**template, "id": _person_id(f"crowd-{index}"), "emails": [f"agent.{index}@culture.example.gouv.fr"],
                  "displayName": f"Agent {index}", "licenses": [messaging["id"]], "siteUrls": [],
                  "_truth": {"outcome": "crafted"}}
        person.pop("sipAddresses", None)
        if index < LOCATED:
            person["locationId"] = "Y2lzY29zcGFyazovL3VzL0xPQ0FUSU9OL3BhcmlzLTA3"
        crowd.append(person)
    messaging["consumedUnits"] = messaging["consumedByUsers"] = messaging["consumedUnits"] + CROWD + 1
    messaging["totalUnits"] = messaging["consumedUnits"] + 10
    meeting_a["consumedUnits"] = meeting_a["consumedByUsers"] = meeting_a["consumedUnits"] + 1
    meeting_a["totalUnits"] = max(meeting_a["totalUnits"], meeting_a["consumedUnits"] + 5)
    meeting_b["totalUnits"] = meeting_b["consumedUnits"]  # no seat left: an add is not applied (206)

    base = next(m for m in meetings if m["hostEmail"] and not m.get("recurrence") and m["_kind"] == "one_off")
    other_host = next(m for m in meetings if m["hostEmail"] and m["_host"] != base["_host"])

    def series(name: str, start: datetime, minutes: int = 60, recurrence: str | None = None,
               **changes: Any) -> dict[str, Any]:
        meeting_id = _series_id(name)
        record = {**base, "id": meeting_id, "meetingSeriesId": meeting_id, "title": name, "timezone": "Europe/Paris",
                  "start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat(),
                  "hostUserId": host["id"], "hostDisplayName": "Claire Martin", "hostEmail": PLUS_HOST,
                  "_host": host["id"], "_kind": "crafted",
                  "_invitees": [{"email": "jean.dupont@culture.example.gouv.fr", "displayName": "Jean Dupont",
                                 "coHost": True}]}
        record.pop("recurrence", None)
        if recurrence:
            record["recurrence"] = recurrence
        return {**record, **changes}

    edge = NOW.replace(hour=12) + timedelta(days=20)
    crafted = {
        "soon": series("soon", NOW + timedelta(days=3, hours=2)),
        "later": series("later", NOW + timedelta(days=10)),
        "past": series("past", NOW - timedelta(days=10)),
        "edge": series("edge", edge),
        "weekly": series("weekly", NOW - timedelta(days=60, hours=-1), recurrence="FREQ=WEEKLY;INTERVAL=1;COUNT=20"),
        "monthly": series("monthly", datetime(2026, 12, 10, 9, tzinfo=UTC),
                          recurrence="FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=10,11,12;COUNT=6"),
        "crowded": series("crowded", NOW + timedelta(days=4), _invitees=[
            {"email": f"invite.{n}@culture.example.gouv.fr", "displayName": f"Invité {n}", "coHost": False}
            for n in range(150)]),
        "invited": {**series("invited", NOW + timedelta(days=2)), "hostUserId": other_host["hostUserId"],
                    "hostEmail": other_host["hostEmail"], "hostDisplayName": other_host["hostDisplayName"],
                    "_host": other_host["_host"], "_invitees": [{"email": PLUS_HOST, "displayName": "Claire",
                                                                "coHost": False}]},
    }
    bulk = [series(f"bulk-{n}", NOW + timedelta(days=30, hours=n)) for n in range(BULK)]
    with (webex / "people.jsonl").open("ab") as handle:
        for person in [host, *crowd]:
            handle.write(orjson.dumps(person) + b"\n")
    with (webex / "meetings.jsonl").open("ab") as handle:
        for record in [*crafted.values(), *bulk]:
            handle.write(orjson.dumps(record) + b"\n")
    (webex / "licenses.json").write_bytes(orjson.dumps(catalogue))
    return {"host": host, "series": {name: record["id"] for name, record in crafted.items()}, "edge": edge,
            "messaging": messaging["id"], "meeting_a": meeting_a["id"], "meeting_b": meeting_b["id"],
            "other_host": other_host["hostEmail"], "people": len(people) + 1 + CROWD}


@pytest.fixture(scope="module")
def crafted(contract_ministry: tuple[Path, dict[str, Any]],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("webex-crafted")
    shutil.copytree(contract_ministry[0], root, dirs_exist_ok=True)
    return root, _craft(root)


def _start(root: Path, **changes: Any) -> SandboxServer:
    server = SandboxServer(SandboxConfig(data_dir=root, tls_port=None, now=NOW, **changes))
    server.start()
    return server


@pytest.fixture(scope="module")
def server(crafted: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    """A server nobody writes to."""
    running = _start(crafted[0])
    yield running
    running.stop()


@pytest.fixture
def fresh(crafted: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    """A server of its own, for tests that write."""
    running = _start(crafted[0])
    yield running
    running.stop()


@pytest.fixture
def facts(crafted: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    return crafted[1]


class Api:
    """An admin client of one sandbox; every response must carry a TrackingID header."""

    def __init__(self, server: SandboxServer, token: str | None = None) -> None:
        self.base = server.url + "/webex/v1/"
        self._http = httpx.Client(base_url=self.base, headers={
            "Authorization": f"Bearer {token or server.config.credentials.webex_access_token}"})

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, json: Any = None) -> httpx.Response:
        response = self._http.request(method, path, params=params, headers=headers, json=json)
        assert response.headers.get("TrackingID", "").startswith("ROUTER_")
        return response

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.call("GET", path, params=params)

    def pages(self, path: str, **params: Any) -> Iterator[httpx.Response]:
        """Every page of a listing, following Link rel=next verbatim."""
        response = self.get(path, **params)
        seen = 0
        while True:
            assert response.status_code == 200, response.text
            yield response
            seen += 1
            assert seen < 500
            if "next" not in response.links:
                return
            response = self.call("GET", response.links["next"]["url"])


@pytest.fixture(scope="module")
def api(server: SandboxServer) -> Api:
    return Api(server)


def _error_body(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"message", "errors", "trackingId"}
    assert body["errors"][0]["description"] == body["message"]
    assert body["trackingId"] == response.headers["TrackingID"]


def _flags_allowed() -> list[Any]:
    return [at("items", "*", flag) for flag in FLAGS]


# ----------------------------------------------------------------------------------------------- people

def test_people_listing_follows_the_spec_with_flags_as_strings_and_booleans(api: Api, facts: dict[str, Any]) -> None:
    allowed, items = [], []
    for response in api.pages("people", max=40):
        body = response.json()
        allowed += ADMIN.validate("get", "/people", body, allow=_flags_allowed())
        items += body["items"]
    assert len(items) == facts["people"] and len({item["id"] for item in items}) == len(items)
    assert {type(item["invitePending"]) for item in items} == {str, bool}
    assert allowed and all(error.instance in (True, False) for error in allowed)  # the deviation occurs
    assert all("licenses" in item for item in items)  # admin listing carries licences
    assert not any(value is None for item in items for value in item.values())  # absent, never null
    statuses = {item.get("status") for item in items}
    assert statuses & {"inactive", "OutOfOffice", "meeting"}  # presence, unrelated to account state


def test_person_by_id_follows_the_spec_and_carries_licences(api: Api, facts: dict[str, Any]) -> None:
    person = api.get(f"people/{facts['host']['id']}").json()
    ADMIN.validate("get", "/people/{personId}", person)
    assert person["licenses"] == [facts["messaging"], facts["meeting_a"]]
    boolean = next(item for item in api.get("people", max=100).json()["items"]
                   if isinstance(item["loginEnabled"], bool))
    allowed = ADMIN.validate("get", "/people/{personId}", api.get(f"people/{boolean['id']}").json(),
                             allow=[at(flag) for flag in FLAGS])
    assert allowed
    missing = api.get("people/Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ub2JvZHk")
    assert missing.status_code == 404
    _error_body(missing)


def test_people_max_default_and_caps(api: Api) -> None:
    assert len(api.get("people").json()["items"]) == 100
    assert len(api.get("people", max=500).json()["items"]) == 100
    located = api.get("people", max=500, locationId="Y2lzY29zcGFyazovL3VzL0xPQ0FUSU9OL3BhcmlzLTA3")
    assert len(located.json()["items"]) == 50 and "next" in located.links
    assert api.get("people", max=0).status_code == 400


def test_people_by_id_and_email(api: Api, facts: dict[str, Any]) -> None:
    body = api.get("people", id=f"{facts['host']['id']},Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ub2JvZHk").json()
    ADMIN.validate("get", "/people", body)
    (person,) = body["items"]
    assert body["notFoundIds"] == ["Y2lzY29zcGFyazovL3VzL1BFT1BMRS9ub2JvZHk"]
    assert "licenses" not in person and "status" not in person and person["timezone"] == "Europe/Paris"
    assert api.get("people", id=",".join(["x"] * 86)).status_code == 400
    found = api.get("people", email=PLUS_HOST.upper()).json()["items"]
    assert [item["id"] for item in found] == [facts["host"]["id"]]


# ----------------------------------------------------------------------------------------------- licences

def test_licences_follow_the_spec(api: Api, facts: dict[str, Any]) -> None:
    body = api.get("licenses").json()
    ADMIN.validate("get", "/licenses", body)
    meeting = [item for item in body["items"] if item["name"].startswith("Meeting - ")]
    assert len(meeting) == 2 and all(item["siteUrl"] and item["siteType"] for item in meeting)
    assert all("siteUrl" not in item for item in body["items"] if not item["name"].startswith("Meeting - "))


def test_licence_assignees_page_with_a_limit_of_300(api: Api, facts: dict[str, Any]) -> None:
    pages = list(api.pages(f"licenses/{facts['messaging']}", includeAssignedTo="user", limit=1000))
    for page in pages:
        ADMIN.validate("get", "/licenses/{licenseId}", page.json())
    assert len(pages[0].json()["users"]) == 300
    users = [user for page in pages for user in page.json()["users"]]
    assert len(users) == len({user["id"] for user in users}) == pages[0].json()["consumedUnits"]
    assert "next=" in pages[0].links["next"]["url"]
    small = list(api.pages(f"licenses/{facts['meeting_a']}", includeAssignedTo="user", limit=7))
    assert len(small) > 2 and all(len(page.json()["users"]) <= 7 for page in small)


# ----------------------------------------------------------------------------------------------- meetings

def _series(api: Api, host: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for response in api.pages("meetings", hostEmail=host, **params):
        assert response.headers["content-type"] == "application/json;charset=UTF-8"
        MEETINGS.validate("get", "/meetings", response.json())
        items += response.json()["items"]
    return items


def test_every_meeting_endpoint_follows_the_spec(api: Api, crafted: tuple[Path, dict[str, Any]]) -> None:
    root = crafted[0]
    hosts = {m["_host"]: m["hostEmail"] for m in map(orjson.loads, (root / "webex" / "meetings.jsonl").read_bytes()
                                                   .splitlines()) if m["hostEmail"]}
    window = {"from": "2026-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z", "max": 100}
    weeks = {"from": _z(NOW - timedelta(days=14)), "to": _z(NOW + timedelta(days=14)), "max": 100}
    kinds: set[str] = set()
    for email in [*list(hosts.values())[:10], PLUS_HOST]:
        kinds |= {item["meetingType"] for item in _series(api, email, **window)}
        for meeting_type in ("scheduledMeeting", "meeting"):
            kinds |= {item["meetingType"] for item in _series(api, email, meetingType=meeting_type, **weeks)}
        for item in _series(api, email, **window, current="false")[:3]:
            one = api.get(f"meetings/{item['id']}", hostEmail=email)
            MEETINGS.validate("get", "/meetings/{meetingId}", one.json())
            if item["hostEmail"] == email and item["scheduledType"] != "personalRoomMeeting":
                for page in api.pages("meetingInvitees", meetingId=item["id"], hostEmail=email):
                    MEETINGS.validate("get", "/meetingInvitees", page.json())
    assert kinds == {"meetingSeries", "scheduledMeeting", "meeting"}


def test_series_get_sends_only_declared_fields(api: Api, facts: dict[str, Any]) -> None:
    MEETINGS.validate("get", "/meetings/{meetingId}",
                      api.get(f"meetings/{facts['series']['weekly']}", hostEmail=PLUS_HOST).json())


def test_meeting_ids_come_in_three_formats(api: Api, facts: dict[str, Any]) -> None:
    weekly = facts["series"]["weekly"]
    window = {"from": _z(NOW - timedelta(days=30)), "to": _z(NOW + timedelta(days=30)), "max": 100}
    occurrences = [m for m in _series(api, PLUS_HOST, meetingType="scheduledMeeting", **window)
                   if m["meetingSeriesId"] == weekly]
    instances = [m for m in _series(api, PLUS_HOST, meetingType="meeting", **window)
                 if m["meetingSeriesId"] == weekly]
    assert occurrences and instances
    assert all(m["id"] == f"{weekly}_{datetime.fromisoformat(m['start']):%Y%m%dT%H%M%SZ}" for m in occurrences)
    assert all(m["id"].startswith(f"{weekly}_I_") and m["state"] == "ended" for m in instances)
    assert len(weekly) == 32
    for meeting_id in (weekly, occurrences[0]["id"], instances[0]["id"]):
        one = api.get(f"meetings/{meeting_id}", hostEmail=PLUS_HOST)
        assert one.status_code == 200 and one.json()["id"] == meeting_id


def test_series_are_listed_when_they_overlap_the_window(api: Api, facts: dict[str, Any]) -> None:
    ids = facts["series"]
    edge = facts["edge"]

    def listed(**window: str) -> set[str]:
        return {m["id"] for m in _series(api, PLUS_HOST, max=100, **window)}

    assert ids["edge"] in listed(**{"from": _z(edge + timedelta(minutes=30)), "to": _z(edge + timedelta(days=1))})
    assert ids["edge"] not in listed(**{"from": _z(edge + timedelta(hours=1)), "to": _z(edge + timedelta(days=1))})
    assert ids["edge"] not in listed(**{"from": _z(edge - timedelta(days=1)), "to": _z(edge)})
    # a series whose span covers the window is listed although no occurrence falls inside it
    weekly_window = {"from": _z(NOW + timedelta(days=1, hours=6)), "to": _z(NOW + timedelta(days=1, hours=7))}
    assert ids["weekly"] in listed(**weekly_window)


def test_window_defaults_are_seven_days_around_what_is_given(api: Api, facts: dict[str, Any]) -> None:
    ids = facts["series"]
    default = {m["id"] for m in _series(api, PLUS_HOST, max=100)}  # from = now, to = now + 7 days
    assert ids["soon"] in default and ids["later"] not in default and ids["past"] not in default
    only_from = {m["id"] for m in _series(api, PLUS_HOST, max=100, **{"from": _z(NOW + timedelta(days=8))})}
    assert ids["later"] in only_from and ids["soon"] not in only_from
    only_to = {m["id"] for m in _series(api, PLUS_HOST, max=100, to=_z(NOW - timedelta(days=5)))}
    assert ids["past"] in only_to and ids["soon"] not in only_to
    refused = api.get("meetings", hostEmail=PLUS_HOST, **{"from": _z(NOW), "to": _z(NOW - timedelta(days=1))})
    assert refused.status_code == 400
    _error_body(refused)


def test_meetings_max_defaults_to_10_and_stops_at_100(api: Api) -> None:
    window = {"from": _z(NOW), "to": _z(NOW + timedelta(days=60))}
    assert len(api.get("meetings", hostEmail=PLUS_HOST, **window).json()["items"]) == 10
    assert len(api.get("meetings", hostEmail=PLUS_HOST, max=500, **window).json()["items"]) == 100
    invitees = api.get("meetingInvitees", meetingId=_series_id("crowded"), hostEmail=PLUS_HOST, max=500)
    assert len(invitees.json()["items"]) == 100 and "next" in invitees.links
    assert len(api.get("meetingInvitees", meetingId=_series_id("crowded"), hostEmail=PLUS_HOST).json()["items"]) == 10


def test_series_where_the_user_is_only_invited_are_listed(api: Api, facts: dict[str, Any]) -> None:
    found = {m["id"]: m for m in _series(api, PLUS_HOST, max=100)}
    invited = found[facts["series"]["invited"]]
    assert invited["hostEmail"] == facts["other_host"] != PLUS_HOST
    assert api.get("meetingInvitees", meetingId=invited["id"], hostEmail=PLUS_HOST).status_code == 404


def test_current_gives_the_upcoming_occurrence_and_false_the_first(api: Api, facts: dict[str, Any]) -> None:
    weekly = facts["series"]["weekly"]
    window = {"from": _z(NOW), "to": _z(NOW + timedelta(days=400)), "max": 100}
    current = next(m for m in _series(api, PLUS_HOST, **window) if m["id"] == weekly)
    first = next(m for m in _series(api, PLUS_HOST, current="false", **window) if m["id"] == weekly)
    assert datetime.fromisoformat(first["start"]) < NOW <= datetime.fromisoformat(current["start"])
    assert first["recurrence"] == current["recurrence"] == "FREQ=WEEKLY;INTERVAL=1;COUNT=20"
    one = api.get(f"meetings/{weekly}", hostEmail=PLUS_HOST).json()  # current defaults to false here
    assert one["start"] == first["start"]


def test_times_are_given_in_the_timezone_header(api: Api, facts: dict[str, Any]) -> None:
    soon = facts["series"]["soon"]
    utc = api.get(f"meetings/{soon}", hostEmail=PLUS_HOST).json()
    paris = api.call("GET", f"meetings/{soon}", params={"hostEmail": PLUS_HOST},
                     headers={"timezone": "Europe/Paris"}).json()
    assert utc["timezone"] == "UTC" and utc["start"].endswith("Z")
    assert paris["timezone"] == "Europe/Paris" and paris["start"].endswith("+01:00")
    assert datetime.fromisoformat(utc["start"]) == datetime.fromisoformat(paris["start"])


def test_monthly_rules_are_stored_as_given_and_honour_their_first_day(api: Api, facts: dict[str, Any]) -> None:
    monthly = facts["series"]["monthly"]
    window = {"from": _z(NOW), "to": _z(NOW + timedelta(days=200)), "max": 100}
    series = next(m for m in _series(api, PLUS_HOST, **window) if m["id"] == monthly)
    assert series["recurrence"] == "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=10,11,12;COUNT=6"
    occurrences = _series(api, PLUS_HOST, meetingType="scheduledMeeting", **window)
    days = {datetime.fromisoformat(m["start"]).day for m in occurrences if m["meetingSeriesId"] == monthly}
    assert days == {10}


def test_next_links_are_absolute_and_repeat_every_parameter_encoded(api: Api) -> None:
    params = {"hostEmail": PLUS_HOST, "from": "2026-11-23T09:00:00+01:00", "to": "2027-02-01T00:00:00+01:00",
              "max": 7, "meetingType": "meetingSeries", "current": "false"}
    first = api.get("meetings", **params)
    url = first.links["next"]["url"]
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc and url.startswith(api.base + "meetings?")
    assert "%2B" in parts.query and "+" not in parts.query and "@" not in parts.query and ":" not in parts.query
    repeated = dict(parse_qsl(parts.query))
    assert {key: repeated[key] for key in params} == {key: str(value) for key, value in params.items()}
    assert "cursor" in repeated
    following = api.call("GET", url).json()["items"]
    assert following and not {m["id"] for m in following} & {m["id"] for m in first.json()["items"]}
    # What webexpythonsdk does when a parameter is missing from the link: re-add it unencoded ("+" becomes " ").
    raw = httpx.get(f"{api.base}meetings?hostEmail={PLUS_HOST}&from=2026-11-23T09:00:00+01:00",
                    headers={"Authorization": "Bearer sandbox-webex-token"})
    assert raw.status_code in (400, 404)
    _error_body(raw)


def test_a_cursor_from_another_listing_is_refused(api: Api) -> None:
    first = api.get("people", max=5)
    cursor = dict(parse_qsl(urlsplit(first.links["next"]["url"]).query))["cursor"]
    assert api.get("people", max=6, cursor=cursor).status_code == 400
    assert api.get("people", max=5, cursor="not-a-cursor").status_code == 400


# ----------------------------------------------------------------------------------------------- writes

def test_put_person_replaces_licences_and_later_reads_show_it(fresh: SandboxServer, facts: dict[str, Any]) -> None:
    client = Api(fresh)
    person = client.get(f"people/{facts['host']['id']}").json()
    seats = {item["id"]: item["consumedUnits"] for item in client.get("licenses").json()["items"]}
    person["licenses"] = [facts["messaging"]]
    person["title"] = "Cheffe de bureau"
    answer = client.call("PUT", f"people/{person['id']}", json=person)
    assert answer.status_code == 200
    ADMIN.validate("put", "/people/{personId}", answer.json())
    again = client.get(f"people/{person['id']}").json()
    assert again["licenses"] == [facts["messaging"]] and again["title"] == "Cheffe de bureau"
    after = {item["id"]: item["consumedUnits"] for item in client.get("licenses").json()["items"]}
    assert after[facts["meeting_a"]] == seats[facts["meeting_a"]] - 1
    holders = [u["id"] for p in client.pages(f"licenses/{facts['meeting_a']}", includeAssignedTo="user")
               for u in p.json()["users"]]
    assert person["id"] not in holders
    assert client.call("PUT", f"people/{person['id']}", json={"emails": [PLUS_HOST]}).status_code == 400


def test_the_implicit_licence_cannot_be_dropped_but_the_rest_of_the_put_applies(fresh: SandboxServer,
                                                                               facts: dict[str, Any]) -> None:
    client = Api(fresh)
    person = client.get(f"people/{facts['host']['id']}").json()
    refused = client.call("PUT", f"people/{person['id']}",
                          json={**person, "licenses": [facts["meeting_a"]], "department": "DNUM-SDI"})
    assert refused.status_code == 400
    _error_body(refused)
    again = client.get(f"people/{person['id']}").json()  # a failed PUT may have changed part of the person
    assert again["licenses"] == person["licenses"] and again["department"] == "DNUM-SDI"


def test_patch_licences_applies_what_it_can_and_says_206_otherwise(fresh: SandboxServer,
                                                                  facts: dict[str, Any]) -> None:
    client = Api(fresh)
    host_id = facts["host"]["id"]
    before = {item["id"]: item["consumedUnits"] for item in client.get("licenses").json()["items"]}
    removed = client.call("PATCH", "licenses/users", json={
        "personId": host_id, "orgId": fresh.sandbox.manifest["tenant"]["webex_org_id"],
        "licenses": [{"id": facts["meeting_a"], "operation": "remove"}]})
    assert removed.status_code == 200
    ADMIN.validate("patch", "/licenses/users", removed.json())
    assert facts["meeting_a"] not in removed.json()["licenses"]
    assert facts["meeting_a"] not in client.get(f"people/{host_id}").json()["licenses"]
    partial = client.call("PATCH", "licenses/users", json={"email": PLUS_HOST, "licenses": [
        {"id": facts["meeting_b"]}, {"id": facts["messaging"], "operation": "remove"},
        {"id": facts["meeting_a"], "operation": "add"}]})
    assert partial.status_code == 206
    ADMIN.validate("patch", "/licenses/users", partial.json(), status="206")
    assert partial.json()["licenses"] == [facts["messaging"], facts["meeting_a"]]  # no seat on B; messaging stays
    after = {item["id"]: item["consumedUnits"] for item in client.get("licenses").json()["items"]}
    assert after == before
    assert client.call("PATCH", "licenses/users", json={"licenses": []}).status_code == 400


# ----------------------------------------------------------------------------------------------- errors

def test_a_wrong_token_is_refused_with_webex_error_body(server: SandboxServer) -> None:
    refused = Api(server, token="not-the-token").get("people")
    assert refused.status_code == 401
    _error_body(refused)


def test_a_missing_scope_is_403(crafted: tuple[Path, dict[str, Any]]) -> None:
    limited = _start(crafted[0], credentials=Credentials(webex_scopes=("spark-admin:people_read",)))
    try:
        client = Api(limited)
        assert client.get("people").status_code == 200
        for response in (client.get("licenses"), client.get("meetings", hostEmail=PLUS_HOST)):
            assert response.status_code == 403
            _error_body(response)
    finally:
        limited.stop()


def test_rate_limit_per_token_is_429_with_an_integer_retry_after(crafted: tuple[Path, dict[str, Any]]) -> None:
    limited = _start(crafted[0], webex_rate_per_second=0.5)
    try:
        client = Api(limited)
        statuses = [client.get("licenses") for _ in range(3)]
        throttled = [response for response in statuses if response.status_code == 429]
        assert throttled and statuses[0].status_code == 200
        assert int(throttled[0].headers["Retry-After"]) >= 1
        _error_body(throttled[0])
    finally:
        limited.stop()


def test_injected_faults_speak_webex(crafted: tuple[Path, dict[str, Any]]) -> None:
    faulty = _start(crafted[0], faults=FaultRates(throttle=1.0, retry_after_seconds=2))
    try:
        throttled = Api(faulty).get("people")
        assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
        _error_body(throttled)
        faulty.sandbox.faults.update(throttle=0.0, server_error=1.0)
        failed = Api(faulty).get("people")
        assert failed.status_code >= 500
        _error_body(failed)
    finally:
        faulty.stop()


def test_the_broken_sandbox_repeats_its_next_link(crafted: tuple[Path, dict[str, Any]]) -> None:
    broken = _start(crafted[0], broken=frozenset({"repeat_page_token"}))
    try:
        client = Api(broken)
        second = client.call("GET", client.get("people", max=5).links["next"]["url"])
        third = client.call("GET", second.links["next"]["url"])
        assert third.links["next"]["url"] == second.links["next"]["url"]
    finally:
        broken.stop()
