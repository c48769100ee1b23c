"""Zoom as it really behaves: listings that never end or fail for one host, occurrences, types, missing fields."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.paging import ListingBound, ListingFailed
from connectors.retry import RetryStats
from connectors.throttle import NoThrottle
from connectors.zoom import ZoomAccountSource, ZoomMeetingSource, map_user, meeting_from_zoom
from core import AccountStatus, HostRef, Meeting, MeetingKind, Quarantined, ReasonCode, SourceAccount
from sandbox.server import SandboxServer
from tests.connectors.contract import TEST_RETRY, drain
from tests.connectors.harness_zoom import meeting_hosts, zoom_config

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
INTERNAL = frozenset({"culture.example.gouv.fr", "patrimoines.example.gouv.fr", "culture.example.fr"})


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _meetings(server: SandboxServer, **config: Any) -> ZoomMeetingSource:
    return ZoomMeetingSource(zoom_config(server, internal_domains=INTERNAL, **config), throttle=NoThrottle(),
                             retry=TEST_RETRY, stats=RetryStats(), clock=server.sandbox.now)


def _accounts(server: SandboxServer, **config: Any) -> ZoomAccountSource:
    return ZoomAccountSource(zoom_config(server, **config), throttle=NoThrottle(), retry=TEST_RETRY,
                             stats=RetryStats(), clock=server.sandbox.now)


def _hosts_with_meetings(ministry: Path, count: int) -> list[HostRef]:
    stored = _lines(ministry / "zoom" / "meetings.jsonl")
    busy = {m["_host"] for m in stored if m["_kind"] != "expired_series"}
    return [host for host in meeting_hosts(ministry) if host.external_id in busy][:count]


# ----------------------------------------------------------------------------------------------- listings

def test_a_cursor_that_changes_forever_stops_the_listing_with_a_reason(sandbox_factory: Any) -> None:
    server = sandbox_factory(rate_limits=False, broken=frozenset({"endless_page_token"}))
    with pytest.raises(ListingFailed) as raised:
        drain(_accounts(server, page_size=50).iter_accounts())
    assert raised.value.reason is ReasonCode.LISTING_UNBOUNDED
    # bounded by what the listing announced (its page_count) plus a margin, not by a hard cap
    assert server.sandbox.stats["zoom:label:Medium"] < 30


def test_a_host_whose_listing_fails_is_quarantined_and_the_others_are_listed(sandbox_factory: Any,
                                                                             contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    hosts = _hosts_with_meetings(ministry, 6)
    refused, malformed, endless = hosts[1], hosts[3], hosts[4]
    reference = drain(_meetings(sandbox_factory(rate_limits=False)).iter_meetings(hosts))
    server = sandbox_factory(rate_limits=False, broken=frozenset({
        f"refuse_meetings_of:{refused.external_id}", f"malformed_meetings_of:{malformed.external_id}"}))
    pages = drain(_meetings(server, hosts_per_page=3).iter_meetings(hosts)).pages
    assert [page.incomplete for page in pages] == [(refused.external_id,), (malformed.external_id,)]
    failures = {item.record_key: item.reason for page in pages for item in page.items
                if isinstance(item, Quarantined)}
    assert failures == {f"zoom:host:{refused.external_id}:meetings": ReasonCode.LISTING_REFUSED,
                        f"zoom:host:{malformed.external_id}:meetings": ReasonCode.LISTING_MALFORMED}
    kept = [m.external_id for page in pages for m in page.items if isinstance(m, Meeting)]
    expected = [m.external_id for m in reference.items if isinstance(m, Meeting)
                and m.host_account_id not in (refused.external_id, malformed.external_id)]
    assert kept == expected and expected
    assert endless.external_id in {m.host_account_id for m in reference.items if isinstance(m, Meeting)}


def test_an_endless_host_listing_is_quarantined_as_unbounded(sandbox_factory: Any, contract_ministry: Any) -> None:
    hosts = _hosts_with_meetings(contract_ministry[0], 2)
    server = sandbox_factory(rate_limits=False, broken=frozenset({"endless_page_token"}))
    pages = drain(_meetings(server, list_webinars=False).iter_meetings(hosts)).pages
    reasons = [item.reason for page in pages for item in page.items if isinstance(item, Quarantined)]
    assert reasons == [ReasonCode.LISTING_UNBOUNDED] * 2
    assert [host for page in pages for host in page.incomplete] == [h.external_id for h in hosts]


def test_webinars_are_paged_by_page_number_and_bounded(sandbox_factory: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    session = _accounts(server, page_size=2)._session
    asked: list[dict[str, object]] = []
    total = 5

    def send(_client: Any, params: dict[str, object]) -> requests.Response:
        asked.append(dict(params))
        number = int(str(params["page_number"]))
        ids = list(range((number - 1) * 2, min(total, number * 2)))
        body = {"page_count": 3, "page_number": number, "page_size": 2, "total_records": total,
                "next_page_token": f"token-{len(asked)}",  # declared in the response, never to be followed
                "webinars": [{"id": 900 + i} for i in ids]}
        response = requests.Response()
        response.status_code, response._content = 200, json.dumps(body).encode()
        return response

    pages = list(session.pages("Medium", "list webinars", "webinars", ListingBound("zoom", "webinars"), "", send,
                               by_number=True))
    assert [p["page_number"] for p in asked] == [1, 2, 3] and all("next_page_token" not in p for p in asked)
    assert [item["id"] for items, _next in pages for item in items] == [900 + i for i in range(total)]


def test_a_page_announcing_fewer_items_than_it_keeps_sending_is_refused() -> None:
    bound = ListingBound("zoom", "users")
    bound.announce(total=10, page_count=1, page_size=10)
    bound.page(10)
    bound.page(0)
    bound.page(0)
    with pytest.raises(ListingFailed) as raised:
        bound.page(0)  # a fourth page of a one-page listing (margin: two pages)
    assert raised.value.reason is ReasonCode.LISTING_UNBOUNDED
    bound = ListingBound("zoom", "users", max_pages=3)
    bound.check("a")
    with pytest.raises(ListingFailed) as repeated:
        bound.check("a")
    assert repeated.value.reason is ReasonCode.LISTING_CURSOR_REPEATED


# ----------------------------------------------------------------------------------------------- users

def test_a_user_without_status_takes_the_status_of_its_listing(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    truth = {str(u["id"]) if u.get("id") else "pending:" + u["email"].strip().lower(): u["status"]
             for u in _lines(contract_ministry[0] / "zoom" / "users.jsonl")}
    accounts = [a for a in drain(_accounts(server).iter_accounts()).items if isinstance(a, SourceAccount)]
    assert {a.external_id: a.status.value for a in accounts} == {key: truth[key] for key in
                                                                 (a.external_id for a in accounts)}
    assert any(account.status is AccountStatus.PENDING for account in accounts)
    assert map_user({"email": "a@culture.gouv.fr", "type": 1}, listed_as="inactive").status is AccountStatus.INACTIVE


@pytest.mark.parametrize("user", [
    {"id": ["x"], "email": "a@culture.gouv.fr", "type": 2},
    {"id": "x", "email": "a@culture.gouv.fr", "type": [2]},
    {"id": "x", "email": "a@culture.gouv.fr", "type": True},
    {"id": "x", "email": "a@culture.gouv.fr", "type": 2, "status": ["active"]},
    "not an object",
])
def test_a_user_field_of_the_wrong_type_quarantines_that_user(user: Any) -> None:
    outcome = map_user(user)
    assert isinstance(outcome, Quarantined) and outcome.reason is ReasonCode.MALFORMED_RECORD


def test_a_descriptive_field_of_the_wrong_type_is_left_out() -> None:
    outcome = map_user({"id": "x", "email": "a@culture.gouv.fr", "type": 2, "first_name": {"a": 1}, "dept": 7})
    assert isinstance(outcome, SourceAccount) and outcome.given_name is None and outcome.department is None


# ----------------------------------------------------------------------------------------------- meetings

def _series(ministry: Path) -> dict[str, Any]:
    stored = _lines(ministry / "zoom" / "meetings.jsonl")
    return next(m for m in stored if m["type"] == 8 and m["_kind"] == "weekly")


def test_a_series_without_type_is_inferred_and_one_without_anything_is_quarantined(contract_ministry: Any) -> None:
    body = _series(contract_ministry[0])
    host = HostRef(body["host_id"], body["host_email"])
    for broken_type in (None, 42, "8", [8]):
        changed = copy.deepcopy(body)
        if broken_type is None:
            del changed["type"]
        else:
            changed["type"] = broken_type
        meeting = meeting_from_zoom(changed, host=host, webinar=False, now=NOW, internal_domains=INTERNAL)
        assert isinstance(meeting, Meeting) and meeting.kind is MeetingKind.WEEKLY and meeting.recurrence
    single = copy.deepcopy(body)
    del single["recurrence"]
    single["type"] = 77
    refused = meeting_from_zoom(single, host=host, webinar=False, now=NOW, internal_domains=INTERNAL)
    assert isinstance(refused, Quarantined) and refused.reason is ReasonCode.MEETING_TYPE_UNKNOWN


def test_deleted_and_moved_occurrences_become_exclusions_and_exceptions(contract_ministry: Any) -> None:
    body = copy.deepcopy(_series(contract_ministry[0]))
    start = datetime.fromisoformat(body["start_time"].replace("Z", "+00:00"))
    week = timedelta(days=7)
    firsts = [start + week * n for n in range(5)]
    ms = [str(int(moment.timestamp()) * 1000) for moment in firsts]
    body["occurrences"] = [
        {"occurrence_id": ms[0], "start_time": firsts[0].strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": body["duration"],
         "status": "available"},
        {"occurrence_id": ms[1], "start_time": firsts[1].strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": body["duration"],
         "status": "deleted"},
        {"occurrence_id": ms[2], "start_time": (firsts[2] + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "duration": body["duration"], "status": "available"},
        {"occurrence_id": ms[3], "start_time": firsts[3].strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": 15,
         "status": "available"}]
    meeting = meeting_from_zoom(body, host=HostRef(body["host_id"], body["host_email"]), webinar=False, now=NOW,
                                internal_domains=INTERNAL)
    assert isinstance(meeting, Meeting)
    assert meeting.exclusions == (firsts[1],)
    assert [(c.original, c.start, c.duration_minutes) for c in meeting.exceptions] == [
        (firsts[2], firsts[2] + timedelta(hours=2), None), (firsts[3], firsts[3], 15)]
    body["occurrences"][0]["occurrence_id"] = "soon"
    broken = meeting_from_zoom(body, host=HostRef(body["host_id"], body["host_email"]), webinar=False, now=NOW,
                               internal_domains=INTERNAL)
    assert isinstance(broken, Quarantined) and broken.reason is ReasonCode.MALFORMED_RECORD


def test_the_sandbox_series_with_changed_occurrences_arrive_with_them(sandbox_factory: Any,
                                                                     contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    stored = {str(m["id"]): m for m in _lines(ministry / "zoom" / "meetings.jsonl")}
    listed = {host.external_id: host for host in meeting_hosts(ministry)}
    changed = {key for key, m in stored.items() if "_occurrence_changes" in m and m["_host"] in listed}
    assert changed
    hosts = [host for key, host in listed.items() if any(stored[k]["_host"] == key for k in changed)]
    items = drain(_meetings(sandbox_factory(rate_limits=False)).iter_meetings(hosts)).items
    found = {m.external_id: m for m in items if isinstance(m, Meeting) and m.external_id in changed}
    assert set(found) == changed
    for key, meeting in found.items():
        spec = stored[key]["_occurrence_changes"]
        assert len(meeting.exclusions) == len(spec["deleted"])
        assert len(meeting.exceptions) == len(spec.get("moved", ())) + len(spec.get("resized", ()))
        assert all(change.original not in meeting.exclusions for change in meeting.exceptions)


def test_invitees_are_unknown_without_meeting_invitees_not_none(contract_ministry: Any) -> None:
    body = copy.deepcopy(_series(contract_ministry[0]))
    body["settings"].pop("meeting_invitees", None)
    meeting = meeting_from_zoom(body, host=HostRef(body["host_id"], body["host_email"]), webinar=False, now=NOW,
                                internal_domains=INTERNAL)
    assert isinstance(meeting, Meeting) and meeting.invitees == () and meeting.invitees_known is False
    body["settings"]["meeting_invitees"] = []
    known = meeting_from_zoom(body, host=HostRef(body["host_id"], body["host_email"]), webinar=False, now=NOW,
                              internal_domains=INTERNAL)
    assert isinstance(known, Meeting) and known.invitees_known is True


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (401, b'{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}', "refused"),
    (400, b'{"reason": "Invalid account_id", "error": "invalid_request"}', "refused"),
    (404, b"<html><body>Not Found: /oauth/tokn</body></html>", "unexpected"),
    (415, b'{"detail": "Unsupported media type"}', "unexpected"),
])
def test_the_onboarding_probe_tells_refused_credentials_from_an_unexpected_answer(status: int, body: bytes,
                                                                                  outcome: str) -> None:
    from connectors.errors import UnexpectedResponse
    from connectors.zoom import ZoomConfig, check_access

    class Answering(requests.Session):
        def post(self, *_args: Any, **_kwargs: Any) -> requests.Response:  # type: ignore[override]
            response = requests.Response()
            response.status_code, response._content = status, body
            return response

    config = ZoomConfig("https://api.zoom.us/v2", "https://zoom.us/oauth/token", "acct", "id", "secret")
    if outcome == "refused":
        assert check_access(config, session=Answering()).authenticated is False
        return
    with pytest.raises(UnexpectedResponse) as raised:
        check_access(config, session=Answering())
    assert raised.value.status == status and "<html>" not in str(raised.value)
