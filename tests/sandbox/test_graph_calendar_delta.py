"""The sandbox's `GET /users/{id}/calendarView/delta` (event-delta.md), `DELETE /users/{id}/events/{id}` and the
GraphState writes behind them, over real HTTP and through the real msgraph-sdk.

Expectations are written down here (dates of each recurrence pattern, local times across the end-of-October
daylight-saving change) or read from the store (`state.events`), never computed by the code under test.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.event_type import EventType
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.graph_service_client import GraphServiceClient

from core.timezones import WINDOWS_TO_IANA
from sandbox import graph
from sandbox.server import Credentials, SandboxServer
from tests.sandbox.test_graph_sandbox import GRAPH_SCOPE, Graph
from tests.support.csdl import graph as csdl
from tests.support.csdl import validate

PARIS = ZoneInfo("Europe/Paris")
# Across the end of summer time in Paris (Sunday 25 October 2026), given with offsets as a client would.
START, END = "2026-10-01T00:00:00+02:00", "2026-12-01T00:00:00+01:00"
IMMUTABLE = 'IdType="ImmutableId"'
LOCAL = 'outlook.timezone="Romance Standard Time"'


def delta_path(mailbox: str, start: str = START, end: str = END, *, segment: str = "delta", **extra: str) -> str:
    return f"/users/{mailbox}/calendarView/{segment}?" + urlencode({"startDateTime": start, "endDateTime": end,
                                                                     **extra}, quote_via=quote)


def delta_link(pages: list[dict[str, Any]]) -> str:
    assert all("@odata.deltaLink" not in page for page in pages[:-1])
    return str(pages[-1]["@odata.deltaLink"])


def token_of(link: str, name: str) -> dict[str, Any]:
    raw = parse_qs(urlsplit(link).query)[name][0]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))  # type: ignore[no-any-return]


def busiest(server: SandboxServer) -> str:
    """The mailbox holding most events among those with a single instance in the window (most lie later)."""
    counts: dict[str, int] = defaultdict(int)
    window = (datetime.fromisoformat(START), datetime.fromisoformat(END))
    single_in_window = set()
    for record in graph.state_of(server.sandbox).events.records():
        counts[str(record["_mailbox"])] += 1
        if record["type"] == "singleInstance" and instant(record["start"]) < window[1] \
                and instant(record["end"]) > window[0]:
            single_in_window.add(str(record["_mailbox"]))
    return max(single_in_window, key=lambda mailbox: (counts[mailbox], mailbox))


def instant(moment: dict[str, str]) -> datetime:
    """A stored dateTimeTimeZone (UTC, an IANA zone or a Windows one) as an aware instant."""
    zone = ZoneInfo(WINDOWS_TO_IANA.get(moment["timeZone"], moment["timeZone"]))
    return datetime.fromisoformat(moment["dateTime"][:19]).replace(tzinfo=zone)


def paris(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=PARIS)


def stored(moment: datetime) -> dict[str, str]:
    """A start or end as the generated mailboxes store them (UTC)."""
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def series(subject: str, pattern: dict[str, Any], span: dict[str, Any]) -> dict[str, Any]:
    """A 10:00-11:00 Paris series master starting on the range's start date, members filled as the service does."""
    first = paris(span["startDate"])
    return {"subject": subject, "type": "seriesMaster", "isOrganizer": True, "isCancelled": False,
            "body": {"contentType": "html", "content": f"<html><body><p>{subject}</p></body></html>"},
            "start": stored(first), "end": stored(paris(span["startDate"], 11)),
            "originalStartTimeZone": "Romance Standard Time", "originalEndTimeZone": "Romance Standard Time",
            "location": {"displayName": "Salle 1", "locationType": "default", "uniqueIdType": "unknown"},
            "organizer": {"emailAddress": {"name": "Organisatrice", "address": "orga@culture.example.gouv.fr"}},
            "attendees": [], "onlineMeetingProvider": "unknown", "isOnlineMeeting": False,
            "recurrence": {"pattern": {"month": 0, "dayOfMonth": 0, "index": "first", "daysOfWeek": [],
                                       "firstDayOfWeek": "sunday", **pattern},
                           "range": {"endDate": "0001-01-01", "numberOfOccurrences": 0,
                                     "recurrenceTimeZone": "Romance Standard Time", **span}}}


def single(subject: str, start: datetime, end: datetime) -> dict[str, Any]:
    record = series(subject, {"type": "daily", "interval": 1}, {"type": "noEnd", "startDate": "2026-01-01"})
    return {**record, "type": "singleInstance", "recurrence": None, "start": stored(start), "end": stored(end)}


@pytest.fixture
def server(sandbox_factory: Any) -> SandboxServer:
    """A sandbox of its own whose organisers keep their calendars in Outlook."""
    started: SandboxServer = sandbox_factory(outlook_calendars=True)
    return started


@pytest.fixture
def client(server: SandboxServer) -> Graph:
    return Graph(server)


# ----------------------------------------------------------------------------------------------- first round

def test_the_first_round_lists_every_instance_once_in_csdl_valid_pages(client: Graph) -> None:
    mailbox = busiest(client.server)
    state = graph.state_of(client.server.sandbox)
    stored_events = {str(r["id"]): r for r in state.events.records(state.events.group("mailbox", mailbox))}
    pages, items = client.drain(delta_path(mailbox, segment="delta()"), prefer="odata.maxpagesize=2")
    assert len(pages) > 2 and all(len(page["value"]) == 2 for page in pages[:-1])
    for page in pages:
        validate(csdl().check_collection(page, "graph.event"), what="GET calendarView/delta")
    for page in pages[:-1]:
        link = urlsplit(page["@odata.nextLink"])
        assert link.netloc == urlsplit(client.server.url).netloc
        assert link.path.endswith(f"/graph/v1.0/users/{mailbox}/calendarView/delta")
        assert list(parse_qs(link.query)) == ["$skiptoken"]
    assert list(parse_qs(urlsplit(delta_link(pages)).query)) == ["$deltatoken"]
    response = client.get(delta_path(mailbox), prefer="odata.maxpagesize=2")
    assert response.headers["preference-applied"] == "odata.maxpagesize=2"

    one_page = client.ok(delta_path(mailbox), prefer="odata.maxpagesize=1000")
    assert "@odata.nextLink" not in one_page and one_page["value"] == items
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert {item["type"] for item in items} == {"occurrence", "singleInstance"}
    window = (datetime.fromisoformat(START), datetime.fromisoformat(END))
    masters = {event_id for event_id, r in stored_events.items() if r["type"] == "seriesMaster"}
    singles = {graph._rest_id(event_id) for event_id, r in stored_events.items() if r["type"] == "singleInstance"
               and window[0] < instant(r["end"]) and instant(r["start"]) < window[1]}
    assert {item["id"] for item in items if item["type"] == "singleInstance"} == singles
    occurrences = [item for item in items if item["type"] == "occurrence"]
    assert {item["seriesMasterId"] for item in occurrences} <= {graph._rest_id(m) for m in masters}
    assert all(item["recurrence"] is None and item["id"] not in stored_events for item in occurrences)
    for item in occurrences:
        master = stored_events[graph._immutable_id(item["seriesMasterId"])]
        assert (item["subject"], item["body"], item["organizer"], item["attendees"], item["location"]) == (
            master["subject"], master["body"], master["organizer"], master["attendees"], master["location"])
        assert item["iCalUId"] != master["iCalUId"] and item["originalStart"].endswith("Z")
    # The same window again: the same ids (derived from the master and the occurrence's original start).
    assert [item["id"] for item in client.ok(delta_path(mailbox), prefer="odata.maxpagesize=1000")["value"]] == ids


def test_each_recurrence_pattern_gives_its_dates_at_the_same_local_time(client: Graph) -> None:
    cases: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
        ("every third day, four times", {"type": "daily", "interval": 3},
         {"type": "numbered", "startDate": "2026-10-20", "numberOfOccurrences": 4},
         ["2026-10-20", "2026-10-23", "2026-10-26", "2026-10-29"]),
        ("Mondays until 9 November", {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
         {"type": "endDate", "startDate": "2026-10-12", "endDate": "2026-11-09"},
         ["2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09"]),
        ("Tuesdays and Thursdays every other week, five times",
         {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday", "thursday"], "firstDayOfWeek": "sunday"},
         {"type": "numbered", "startDate": "2026-10-06", "numberOfOccurrences": 5},
         ["2026-10-06", "2026-10-08", "2026-10-20", "2026-10-22", "2026-11-03"]),
        ("Sundays and Mondays every other week, weeks from Sunday",
         {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "monday"], "firstDayOfWeek": "sunday"},
         {"type": "numbered", "startDate": "2026-10-05", "numberOfOccurrences": 5},
         ["2026-10-05", "2026-10-18", "2026-10-19", "2026-11-01", "2026-11-02"]),
        ("Sundays and Mondays every other week, weeks from Monday",
         {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "monday"], "firstDayOfWeek": "monday"},
         {"type": "numbered", "startDate": "2026-10-05", "numberOfOccurrences": 5},
         ["2026-10-05", "2026-10-11", "2026-10-19", "2026-10-25", "2026-11-02"]),
        ("day 31 of each month (the last day of shorter ones)", {"type": "absoluteMonthly", "interval": 1,
                                                                 "dayOfMonth": 31},
         {"type": "noEnd", "startDate": "2026-08-31"}, ["2026-10-31", "2026-11-30"]),
        ("last Friday of each month", {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"],
                                       "index": "last"},
         {"type": "noEnd", "startDate": "2026-09-01"}, ["2026-10-30", "2026-11-27"]),
        ("first Monday every other month", {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["monday"],
                                            "index": "first"},
         {"type": "noEnd", "startDate": "2026-09-07"}, ["2026-11-02"]),
        ("11 November", {"type": "absoluteYearly", "interval": 1, "month": 11, "dayOfMonth": 11},
         {"type": "noEnd", "startDate": "2020-11-11"}, ["2026-11-11"]),
        ("last Sunday of October (the change day itself)", {"type": "relativeYearly", "interval": 1, "month": 10,
                                                            "daysOfWeek": ["sunday"], "index": "last"},
         {"type": "noEnd", "startDate": "2024-10-27"}, ["2026-10-25"]),
        ("ended before the window", {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
         {"type": "endDate", "startDate": "2026-01-05", "endDate": "2026-09-28"}, []),
        ("numbered, used up before the window", {"type": "daily", "interval": 1},
         {"type": "numbered", "startDate": "2026-09-20", "numberOfOccurrences": 10}, []),
    ]
    mailbox = busiest(client.server)
    state = graph.state_of(client.server.sandbox)
    masters = {state.add_event(series(name, pattern, span), mailbox=mailbox): (name, days)
               for name, pattern, span, days in cases}
    _pages, items = client.drain(delta_path(mailbox), prefer=f"{LOCAL}, {IMMUTABLE}, odata.maxpagesize=50")
    found: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for item in items:
        if item.get("seriesMasterId") in masters:
            found[item["seriesMasterId"]].append((item["start"]["dateTime"][:10], item["start"]["dateTime"][11:19],
                                                  item["end"]["dateTime"][11:19]))
            assert item["start"]["timeZone"] == "Romance Standard Time"
    for master_id, (name, days) in masters.items():
        assert found.get(master_id, []) == [(day, "10:00:00", "11:00:00") for day in days], name


def test_a_weekly_series_keeps_its_local_time_across_the_change_with_its_exception_and_cancellation(
        client: Graph) -> None:
    mailbox = busiest(client.server)
    state = graph.state_of(client.server.sandbox)
    record = series("Point hebdo", {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    {"type": "noEnd", "startDate": "2026-09-07"})
    master = state.add_event(record, mailbox=mailbox)
    window = ("2026-10-10T00:00:00Z", "2026-11-14T00:00:00Z")

    def utc_starts(**headers: str) -> list[tuple[str, str]]:
        _pages, value = client.drain(delta_path(mailbox, *window), **headers)
        return [(item["start"]["dateTime"], item["type"]) for item in value
                if item.get("seriesMasterId") in (master, graph._rest_id(master))]

    monday = ["2026-10-12T08", "2026-10-19T08", "2026-10-26T09", "2026-11-02T09", "2026-11-09T09"]
    assert utc_starts() == [(f"{hour}:00:00.0000000", "occurrence") for hour in monday]
    assert {start[11:] for start, _type in utc_starts(prefer=LOCAL)} == {"10:00:00.0000000"}

    # An exception moved to the afternoon stands in for its occurrence; a cancelled occurrence is left out.
    state.add_event({**record, "type": "exception", "recurrence": None, "seriesMasterId": master,
                     "originalStart": "2026-10-19T08:00:00Z", "start": stored(paris("2026-10-19", 14)),
                     "end": stored(paris("2026-10-19", 15))}, mailbox=mailbox)
    current = state.event(master)
    assert current is not None
    state.put_event({**current, "cancelledOccurrences": [f"OID.{master}.2026-11-02"]}, current)
    after = utc_starts()
    assert after == [("2026-10-12T08:00:00.0000000", "occurrence"), ("2026-10-19T12:00:00.0000000", "exception"),
                     ("2026-10-26T09:00:00.0000000", "occurrence"), ("2026-11-09T09:00:00.0000000", "occurrence")]
    masters = client.ok(f"/users/{mailbox}/events?$top=100")["value"]
    assert {e["type"] for e in masters} <= {"singleInstance", "seriesMaster"}   # /events stays unexpanded


# ----------------------------------------------------------------------------------------------- later rounds

def test_later_rounds_carry_exactly_what_changed(client: Graph) -> None:
    server = client.server
    state = graph.state_of(server.sandbox)
    mailbox = busiest(server)
    pages, first = client.drain(delta_path(mailbox), prefer="odata.maxpagesize=3")
    link = delta_link(pages)
    by_master: dict[str, set[str]] = defaultdict(set)
    for item in first:
        if item["type"] == "occurrence":
            by_master[item["seriesMasterId"]].add(item["id"])
    patched, deleted = sorted(by_master, key=lambda m: (-len(by_master[m]), m))[:2]

    def next_round(url: str) -> tuple[list[dict[str, Any]], str]:
        round_pages, items = client.drain(url, prefer="odata.maxpagesize=2")
        for page in round_pages:
            validate(csdl().check_collection(page, "graph.event"), what="calendarView/delta, later round")
        return items, delta_link(round_pages)

    nothing, link = next_round(link)
    assert nothing == []

    response = client.request("PATCH", f"/users/{mailbox}/events/{patched}",
                              json={"body": {"contentType": "html", "content": "<html><body>Visio</body></html>"}})
    assert response.status_code == 200
    items, link = next_round(link)
    assert {item["id"] for item in items} == by_master[patched] and len(items) == len(by_master[patched])
    assert {item["body"]["content"] for item in items} == {"<html><body>Visio</body></html>"}

    assert client.request("DELETE", f"/users/{mailbox}/events/{deleted}").status_code == 204
    assert client.get(f"/users/{mailbox}/events/{deleted}").status_code == 404
    items, link = next_round(link)
    assert sorted(items, key=lambda item: item["id"]) == [
        {"@odata.type": "#microsoft.graph.event", "id": occurrence, "@removed": {"reason": "deleted"}}
        for occurrence in sorted(by_master[deleted])]

    added = state.add_event(single("Nouvelle réunion", paris("2026-11-05"), paris("2026-11-05", 11)),
                            mailbox=mailbox)
    items, link = next_round(link)
    assert [(item["id"], item["type"], item["start"]["dateTime"]) for item in items] == [
        (graph._rest_id(added), "singleInstance", "2026-11-05T09:00:00.0000000")]

    # Moved out of the window: removed; the organiser's own edit after a read (a deliberate bug): changed.
    moved = client.request("PATCH", f"/users/{mailbox}/events/{added}",
                           json={"start": stored(paris("2027-01-05")), "end": stored(paris("2027-01-05", 11))})
    assert moved.status_code == 200
    edited = sorted(set(by_master) - {patched, deleted})[0]
    server.sandbox.set_bugs(add=[f"edit_event_after_read:{graph._immutable_id(edited)}"])
    assert client.get(f"/users/{mailbox}/events/{edited}").status_code == 200
    items, link = next_round(link)
    assert {item["id"] for item in items if "@removed" in item} == {graph._rest_id(added)}
    assert {item["id"] for item in items if "@removed" not in item} == by_master[edited]

    # Other mailboxes' changes never show here.
    other = next(str(r["_mailbox"]) for r in state.events.records() if r["_mailbox"] != mailbox)
    state.add_event(single("Ailleurs", paris("2026-11-05"), paris("2026-11-05", 11)), mailbox=other)
    elsewhere = next(r for r in state.events.records(state.events.group("mailbox", other)))
    assert client.request("DELETE", f"/users/{other}/events/{elsewhere['id']}").status_code == 204
    items, _link = next_round(link)
    assert items == []


def test_the_real_sdk_reads_a_round_then_its_delta_link(client: Graph) -> None:
    server = client.server
    mailbox = busiest(server)

    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        credentials = server.config.credentials
        credential = ClientSecretCredential(str(server.sandbox.manifest["tenant"]["entra_tenant_id"]),
                                            credentials.graph_client_id, credentials.graph_client_secret,
                                            authority=server.tls_url, disable_instance_discovery=True,
                                            connection_verify=str(server.ca_file))
        try:
            sdk = GraphServiceClient(credentials=credential, scopes=[GRAPH_SCOPE])
            sdk.request_adapter.base_url = server.url + "/graph/v1.0"
            builder = sdk.users.by_user_id(mailbox).calendar_view.delta
            query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(start_date_time=START,
                                                                              end_date_time=END)
            configuration = RequestConfiguration(query_parameters=query)
            configuration.headers.add("Prefer", IMMUTABLE)
            configuration.headers.add("Prefer", "odata.maxpagesize=4")

            async def whole_round(url: str | None) -> tuple[list[Any], str]:
                events: list[Any] = []
                response = await (builder.with_url(url) if url else builder).get(request_configuration=configuration)
                while response is not None and response.odata_next_link:
                    events += response.value or []
                    response = await builder.with_url(response.odata_next_link).get(
                        request_configuration=configuration)
                assert response is not None and response.odata_delta_link
                return events + (response.value or []), response.odata_delta_link

            first, link = await whole_round(None)
            master = next(e.series_master_id for e in first if e.type == EventType.Occurrence)
            await sdk.users.by_user_id(mailbox).events.by_event_id(master).delete()
            removed, link = await whole_round(link)
            again, _link = await whole_round(link)
            return first, removed, again
        finally:
            await credential.close()

    over_http = client.ok(delta_path(mailbox), prefer=f"{IMMUTABLE}, odata.maxpagesize=1000")["value"]
    first, removed, again = asyncio.run(run())
    assert [event.id for event in first] == [item["id"] for item in over_http]
    assert {event.type for event in first} == {EventType.Occurrence, EventType.SingleInstance}
    master = next(e.series_master_id for e in first if e.type == EventType.Occurrence)
    expected = sorted(e.id for e in first if e.series_master_id == master)
    assert [event.id for event in removed] == expected
    assert all(event.additional_data["@removed"] == {"reason": "deleted"} for event in removed)
    assert again == []


# ----------------------------------------------------------------------------------------------- refusals

def test_a_first_round_needs_a_window_and_no_query_option(client: Graph) -> None:
    mailbox = busiest(client.server)
    base = f"/users/{mailbox}/calendarView/delta"
    for path in (base, f"{base}?startDateTime={quote(START)}", f"{base}?endDateTime={quote(END)}",
                 delta_path(mailbox, END, START), delta_path(mailbox, START, START),
                 delta_path(mailbox, "yesterday", END)):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "ErrorInvalidParameter"
        assert response.json()["error"]["message"] == graph.DELTA_WINDOW_MESSAGE
    lower = client.get(f"{base}?startdatetime=2026-10-01T00:00:00Z&enddatetime=2026-10-02T00:00:00")
    assert lower.status_code == 200
    same = client.ok(delta_path(mailbox), prefer="odata.maxpagesize=1000")["value"]
    for segment in ("delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
        assert client.ok(delta_path(mailbox, segment=segment), prefer="odata.maxpagesize=1000")["value"] == same
    for option in ("$select=subject", "$filter=type eq 'occurrence'", "$top=5", "$orderby=start/dateTime",
                   "$expand=attachments", "$count=true", "$skip=1", "$search=x"):
        refused = client.get(delta_path(mailbox) + "&" + option)
        assert refused.status_code == 400, option
        assert refused.json()["error"]["code"] == "ErrorInvalidUrlQuery"
    listing = client.get(f"/users/{mailbox}/calendarView?startDateTime={quote(START)}&endDateTime={quote(END)}")
    assert listing.status_code == 501


def test_garbled_and_foreign_tokens_are_refused(client: Graph) -> None:
    state = graph.state_of(client.server.sandbox)
    mailbox = busiest(client.server)
    other = next(str(r["_mailbox"]) for r in state.events.records() if r["_mailbox"] != mailbox)
    link = delta_link(client.drain(delta_path(mailbox))[0])
    base = f"/users/{mailbox}/calendarView/delta"
    numbers = json.dumps({"m": mailbox, "k": "d", "a": 0, "g": 0, "w": [1, 2]}).encode()
    for token in ("not-base64!", base64.urlsafe_b64encode(b'{"k": "d"}').decode(), "eyJ",
                  base64.urlsafe_b64encode(numbers).decode()):
        response = client.get(f"{base}?$deltatoken={token}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "ErrorInvalidUrlQuery"
    foreign = client.get(link.replace(f"/users/{mailbox}/", f"/users/{other}/"))
    assert foreign.status_code == 400


def test_deleting_needs_the_write_permission_and_an_existing_event(sandbox_factory: Any) -> None:
    reader = Graph(sandbox_factory(outlook_calendars=True,
                                   credentials=Credentials(graph_roles=("Calendars.Read",))))
    mailbox = busiest(reader.server)
    event = next(graph.state_of(reader.server.sandbox).events.records(
        graph.state_of(reader.server.sandbox).events.group("mailbox", mailbox)))
    assert reader.get(delta_path(mailbox)).status_code == 200
    refused = reader.request("DELETE", f"/users/{mailbox}/events/{event['id']}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ErrorAccessDenied"
    writer = Graph(sandbox_factory(outlook_calendars=True))
    missing = writer.request("DELETE", f"/users/{mailbox}/events/AAMkAnotThere")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ErrorItemNotFound"
    assert writer.request("DELETE", f"/users/{mailbox}/events/{event['id']}").status_code == 204
    assert writer.request("DELETE", f"/users/{mailbox}/events/{event['id']}").status_code == 404


# ----------------------------------------------------------------------------------------------- expiry

def test_a_sync_reset_expires_every_older_token(client: Graph) -> None:
    mailbox = busiest(client.server)
    first_page = client.ok(delta_path(mailbox), prefer="odata.maxpagesize=2")
    next_link = first_page["@odata.nextLink"]
    link = delta_link(client.drain(delta_path(mailbox))[0])
    graph.state_of(client.server.sandbox).reset_event_sync()
    for url in (next_link, link):
        response = client.get(url)
        assert response.status_code == 410, url
        assert response.json()["error"]["code"] == "SyncStateNotFound"
        assert response.json()["error"]["message"] == graph.SYNC_STATE_MESSAGE
    fresh = delta_link(client.drain(delta_path(mailbox))[0])
    assert token_of(fresh, "$deltatoken")["g"] == token_of(link, "$deltatoken")["g"] + 1
    assert client.ok(fresh)["value"] == []


def test_the_expire_event_delta_bug_expires_the_next_delta_link_once(client: Graph) -> None:
    sandbox = client.server.sandbox
    mailbox = busiest(client.server)
    pages = client.drain(delta_path(mailbox), prefer="odata.maxpagesize=2")[0]
    link = delta_link(pages)
    sandbox.set_bugs(add=["expire_event_delta"])
    assert client.get(pages[0]["@odata.nextLink"], prefer="odata.maxpagesize=2").status_code == 200  # a page
    expired = client.get(link)
    assert expired.status_code == 410 and expired.json()["error"]["code"] == "SyncStateNotFound"
    assert "expire_event_delta" not in sandbox.bugs_snapshot()
    assert client.get(link).status_code == 410           # an expired token stays expired
    again = delta_link(client.drain(delta_path(mailbox))[0])
    assert client.ok(again)["value"] == []
