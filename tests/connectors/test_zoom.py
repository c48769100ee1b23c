"""What the contract suites do not cover for Zoom: token life, label throttling, meeting mapping, edge cases."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from connectors.errors import ConnectorAuthError, NotFound, RateLimited, TransientConnectorError
from connectors.retry import RetryStats
from connectors.throttle import LocalThrottle, NoThrottle
from connectors.zoom import (
    PLAN_RATES,
    ZoomAccountSource,
    ZoomConfig,
    ZoomMeetingSource,
    meeting_from_zoom,
    throttle_rates,
)
from core import HostRef, Meeting, MeetingKind, Quarantined, SourceAccount
from sandbox.server import SandboxServer
from tests.connectors.contract import TEST_RETRY, Drained, assert_exactly_once, drain
from tests.connectors.harness_zoom import expected_accounts, meeting_hosts, zoom_config, zoom_throttle

INTERNAL = frozenset({"culture.example.gouv.fr", "patrimoines.example.gouv.fr", "culture.example.fr"})


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingThrottle:
    """Counts the keys asked for, then paces like the throttle it wraps; `before` runs first (a test hook)."""

    def __init__(self, inner: Any, before: Any = None) -> None:
        self.inner = inner
        self.before = before
        self.keys: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1.0) -> None:
        with self._lock:
            self.keys[key] += 1
        if self.before is not None:
            self.before(key)
        self.inner.acquire(key, cost)


def _accounts(server: SandboxServer, *, stats: RetryStats | None = None, throttle: Any = None,
              **config: Any) -> ZoomAccountSource:
    return ZoomAccountSource(zoom_config(server, **config), throttle=throttle or NoThrottle(), retry=TEST_RETRY,
                             stats=stats or RetryStats(), clock=server.sandbox.now)


# ----------------------------------------------------------------------------------------------- tokens

def test_the_token_is_renewed_before_it_expires(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    clock = FakeMonotonic()
    source = ZoomAccountSource(zoom_config(server, token_lifetime_seconds=100), throttle=NoThrottle(),
                               retry=TEST_RETRY, stats=RetryStats(), clock=server.sandbox.now, monotonic=clock)
    pages = source.iter_accounts()
    first = next(pages)
    assert source.tokens_fetched == 1
    clock.now += 89  # within the last 10 % of the lifetime
    second = next(pages)
    assert source.tokens_fetched == 1
    clock.now += 2
    rest = drain(pages)
    assert source.tokens_fetched == 2
    assert server.sandbox.stats["zoom:token:issued"] == 2
    assert server.sandbox.stats["zoom:auth:expired"] == 0 and server.sandbox.stats["zoom:auth:invalid"] == 0
    assert_exactly_once(Drained([first, second, *rest.pages]), *expected_accounts(contract_ministry[0]))


def test_a_token_refused_as_expired_is_renewed_once_and_the_call_sent_again(sandbox_factory: Any,
                                                                              contract_ministry: Any) -> None:
    server = sandbox_factory(rate_limits=False, token_lifetime_seconds=1)
    stats = RetryStats()
    source = _accounts(server, stats=stats)  # believes tokens live 3599 s: only a 401 tells it
    pages = source.iter_accounts()
    first = next(pages)
    time.sleep(1.2)
    rest = drain(pages)
    assert source.tokens_fetched == 2
    assert server.sandbox.stats["zoom:auth:expired"] == 1
    assert stats.counts == Counter()  # renewed inside the attempt, not by the retry layer
    assert_exactly_once(Drained([first, *rest.pages]), *expected_accounts(contract_ministry[0]))


def test_a_token_refused_right_after_it_was_issued_is_an_auth_error(sandbox_factory: Any) -> None:
    server = sandbox_factory(rate_limits=False, token_lifetime_seconds=0)  # every token is born expired
    source = _accounts(server)
    with pytest.raises(ConnectorAuthError) as raised:
        drain(source.iter_accounts())
    assert source.tokens_fetched == 1  # no renewal loop
    assert server.sandbox.stats["zoom:requests"] == 1
    assert "@" not in str(raised.value) and "token" in str(raised.value)


def test_refused_credentials_fail_before_any_api_call(sandbox_factory: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    source = _accounts(server, wrong_secret=True)
    with pytest.raises(ConnectorAuthError) as raised:
        drain(source.iter_accounts())
    assert server.sandbox.stats["zoom:token:refused"] == 1
    assert server.sandbox.stats["zoom:requests"] == 0  # never sent "Bearer None"
    assert "not-the-secret" not in str(raised.value) and "sandbox-zoom-client" not in str(raised.value)


def test_the_client_is_built_lazily(sandbox_factory: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    source = _accounts(server)
    pages = source.iter_accounts()
    assert server.sandbox.stats["zoom:token:issued"] == 0 and source.tokens_fetched == 0
    next(pages)
    assert server.sandbox.stats["zoom:token:issued"] == 1


# ----------------------------------------------------------------------------------------------- throttling

def _meeting_run(server: SandboxServer, hosts: list[HostRef], throttle: Any, stats: RetryStats) -> Any:
    source = ZoomMeetingSource(zoom_config(server, page_size=300), throttle=throttle, retry=TEST_RETRY, stats=stats,
                               clock=server.sandbox.now)
    return drain(source.iter_meetings(hosts))


def test_pacing_per_label_keeps_the_account_under_its_limits(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(zoom_plan="pro")  # Light 30/s, Medium 20/s, enforced by the sandbox
    hosts = meeting_hosts(contract_ministry[0])[:24]
    account = server.sandbox.manifest["tenant"]["zoom_account_id"]
    paced = RecordingThrottle(zoom_throttle(server))
    stats = RetryStats()
    started = time.monotonic()
    drained = _meeting_run(server, hosts, paced, stats)
    elapsed = time.monotonic() - started
    assert server.sandbox.stats["zoom:limited:qps"] == 0 and stats.throttled == 0
    assert set(paced.keys) == {f"zoom:{account}:Medium", f"zoom:{account}:Light"}
    assert paced.keys[f"zoom:{account}:Medium"] == server.sandbox.stats["zoom:label:Medium"] == 2 * len(hosts)
    assert paced.keys[f"zoom:{account}:Light"] == server.sandbox.stats["zoom:label:Light"] == len(drained.items)
    # the paced run kept close to the Medium budget after the initial burst
    medium = paced.keys[f"zoom:{account}:Medium"]
    assert elapsed < 2 * medium / PLAN_RATES["pro"]["Medium"] + 1

    unpaced_server = sandbox_factory(zoom_plan="pro")
    unpaced_stats = RetryStats()
    again = _meeting_run(unpaced_server, hosts, NoThrottle(), unpaced_stats)
    assert [m.external_id for m in again.items] == [m.external_id for m in drained.items]
    assert unpaced_server.sandbox.stats["zoom:limited:qps"] > 0  # the check above can fail
    assert unpaced_stats.throttled == unpaced_server.sandbox.stats["zoom:limited:qps"]


def test_throttle_rates_follow_the_plan_table() -> None:
    rates = throttle_rates("acct", "business", share=1.0)
    assert rates == {"zoom:acct:Light": 80, "zoom:acct:Medium": 60, "zoom:acct:Heavy": 40}
    assert throttle_rates("acct", "unknown", share=0.5)["zoom:acct:Medium"] == 10  # Pro when unknown
    assert LocalThrottle(throttle_rates("acct", "free"))._rate("zoom:acct:Medium") == pytest.approx(2 * 0.97)


# ----------------------------------------------------------------------------------------------- meetings

def _kind_of(stored: dict[str, Any]) -> MeetingKind:
    return MeetingKind(stored["_kind"])


def test_one_meeting_of_each_kind_maps_to_its_record(contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    stored = _lines(ministry / "zoom" / "meetings.jsonl")
    seen: dict[str, Meeting] = {}
    for kind in MeetingKind:
        body = next((m for m in stored if m["_kind"] == kind), None)
        if body is None:
            continue
        host = HostRef(body["host_id"], body["host_email"])
        meeting = meeting_from_zoom(body, host=host, webinar=False, now=now, internal_domains=INTERNAL)
        assert isinstance(meeting, Meeting), meeting
        seen[kind] = meeting
        settings = body["settings"]
        assert meeting.kind is kind
        assert meeting.external_id == str(body["id"]) and meeting.link_key == f"zoom:{body['id']}"
        assert meeting.host_account_id == body["host_id"] and meeting.host_email == body["host_email"]
        assert meeting.join_url == body["join_url"] and meeting.timezone == body["timezone"]
        assert meeting.passcode is bool(body.get("password"))
        assert meeting.waiting_room is settings["waiting_room"]
        assert meeting.alternative_hosts == tuple(h for h in settings["alternative_hosts"].split(";") if h)
        invitees = tuple(i["email"] for i in settings.get("meeting_invitees", ()))
        assert meeting.invitees == invitees
        assert meeting.invitees_known is ("meeting_invitees" in settings)
        assert meeting.external_invitees == sum(1 for e in invitees if e.rpartition("@")[2].lower() not in INTERNAL)
        assert meeting.dial_in is (settings["audio"] in ("both", "telephony")
                                   and bool(settings.get("global_dial_in_numbers")))
        assert meeting.registration is (settings["approval_type"] in (0, 1))
        assert meeting.webinar is False
        if body["type"] == 8:
            assert meeting.recurrence is not None and meeting.recurrence.timezone == body["timezone"]
            assert meeting.start == datetime.fromisoformat(body["start_time"].replace("Z", "+00:00"))
            assert meeting.ends_at is not None and meeting.ends_at >= meeting.start
            assert (meeting.ends_at < now) is (kind is MeetingKind.EXPIRED_SERIES)
        elif body["type"] == 3:
            assert meeting.start is None and meeting.recurrence is None and meeting.ends_at is None
        else:
            assert meeting.recurrence is None and meeting.start is not None and meeting.ends_at == meeting.start
        assert "zak" not in repr(meeting) and body["start_url"] not in repr(meeting)
    assert set(seen) >= {MeetingKind.ONE_OFF, MeetingKind.WEEKLY, MeetingKind.BIWEEKLY, MeetingKind.DAILY,
                         MeetingKind.MONTHLY_DAY, MeetingKind.MONTHLY_NTH_WEEKDAY, MeetingKind.NO_FIXED_TIME,
                         MeetingKind.PERSONAL_ROOM, MeetingKind.EXPIRED_SERIES}
    assert any(m.external_invitees for m in seen.values()) or any(m.invitees for m in seen.values())


def test_every_listed_meeting_keeps_the_kind_it_was_generated_as(sandbox_factory: Any,
                                                                 contract_ministry: Any) -> None:
    """Over HTTP, through the list and the full GET (occurrences included): kinds, webinars and order."""
    ministry = contract_ministry[0]
    server = sandbox_factory(rate_limits=False)
    hosts = meeting_hosts(ministry)
    source = ZoomMeetingSource(zoom_config(server, internal_domains=INTERNAL), throttle=NoThrottle(),
                               retry=TEST_RETRY, stats=RetryStats(), clock=server.sandbox.now)
    items = drain(source.iter_meetings(hosts)).items
    stored = {str(m["id"]): m for m in _lines(ministry / "zoom" / "meetings.jsonl")}
    webinars = {str(w["id"]): w for w in _lines(ministry / "zoom" / "webinars.jsonl")}
    assert items and all(isinstance(m, Meeting) for m in items)
    order = [h.external_id for h in hosts]
    positions = [order.index(m.host_account_id) for m in items]
    assert positions == sorted(positions)  # hosts in the given order
    for meeting in items:
        if meeting.webinar:
            assert meeting.external_id in webinars and meeting.kind is MeetingKind.ONE_OFF
        else:
            assert meeting.kind is _kind_of(stored[meeting.external_id])
    expected_order = [str(m["id"]) for h in order for m in stored.values()
                      if m["_host"] == h and m["_kind"] != "expired_series"]
    assert [m.external_id for m in items if not m.webinar] == expected_order


def test_a_meeting_gone_between_listing_and_get_is_skipped_and_counted(sandbox_factory: Any,
                                                                       contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    server = sandbox_factory(rate_limits=False)
    stored = _lines(ministry / "zoom" / "meetings.jsonl")
    host = next(h for h in meeting_hosts(ministry)
                if sum(1 for m in stored if m["_host"] == h.external_id and m["_kind"] != "expired_series") >= 3)
    listed = [str(m["id"]) for m in stored if m["_host"] == host.external_id and m["_kind"] != "expired_series"]
    account = server.sandbox.manifest["tenant"]["zoom_account_id"]
    deleted: list[str] = []

    def delete_last_once(key: str) -> None:
        if key.endswith(":Light") and not deleted:
            deleted.append(listed[-1])
            token = httpx.post(server.url + "/zoom/oauth/token", auth=("sandbox-zoom-client", "sandbox-zoom-secret"),
                               data={"grant_type": "account_credentials", "account_id": account}).json()
            answer = httpx.delete(f"{server.url}/zoom/v2/meetings/{listed[-1]}",
                                  headers={"Authorization": f"Bearer {token['access_token']}"})
            assert answer.status_code == 204

    source = ZoomMeetingSource(zoom_config(server, fetch_workers=1), throttle=RecordingThrottle(NoThrottle(),
                                                                                                delete_last_once),
                               retry=TEST_RETRY, stats=RetryStats(), clock=server.sandbox.now)
    pages = drain(source.iter_meetings([host])).pages
    assert len(pages) == 1 and pages[0].skipped == 1 and pages[0].next_cursor is None
    assert [m.external_id for m in pages[0].items if not m.webinar] == listed[:-1]


def test_meeting_cursor_resumes_after_the_named_host(sandbox_factory: Any, contract_ministry: Any) -> None:
    server = sandbox_factory(rate_limits=False)
    hosts = meeting_hosts(contract_ministry[0])[:25]
    source = ZoomMeetingSource(zoom_config(server, hosts_per_page=10), throttle=NoThrottle(), retry=TEST_RETRY,
                               stats=RetryStats(), clock=server.sandbox.now)
    pages = drain(source.iter_meetings(hosts)).pages
    assert [p.next_cursor for p in pages] == [hosts[9].external_id, hosts[19].external_id, None]
    resumed = drain(source.iter_meetings(hosts, hosts[9].external_id))
    assert [m.external_id for m in resumed.items] == [m.external_id for p in pages[1:] for m in p.items]
    assert drain(source.iter_meetings(hosts, hosts[-1].external_id)).pages == []
    with pytest.raises(ValueError):
        next(source.iter_meetings(hosts, "someone-else"))


# ----------------------------------------------------------------------------------------------- users

def test_a_refused_page_token_restarts_the_status_and_passes_over_what_was_delivered(
        sandbox_factory: Any, contract_ministry: Any) -> None:
    """A cursor taken on one server and resumed on another: its page token is refused (as after 15 minutes)."""
    first_server = sandbox_factory(rate_limits=False)
    full = drain(_accounts(first_server, page_size=20).iter_accounts())
    middle = next(p for p in full.pages[2:] if p.next_cursor)
    index = full.pages.index(middle)
    other = sandbox_factory(rate_limits=False)
    resumed = drain(_accounts(other, page_size=20).iter_accounts(middle.next_cursor))
    before = [item for page in full.pages[: index + 1] for item in page.items]
    assert before + resumed.items == full.items
    assert other.sandbox.stats["zoom:page_token:refused"] == 1


def test_accounts_map_zoom_fields(sandbox_factory: Any, contract_ministry: Any) -> None:
    ministry = contract_ministry[0]
    server = sandbox_factory(rate_limits=False)
    by_id = {str(u["id"]) if u.get("id") else "pending:" + u["email"].strip().lower(): u
             for u in _lines(ministry / "zoom" / "users.jsonl")}
    items = drain(_accounts(server).iter_accounts()).items
    accounts = [a for a in items if isinstance(a, SourceAccount)]
    assert {a.status for a in accounts} == {"active", "inactive", "pending"}
    for account in accounts:
        user = by_id[account.external_id]
        assert account.email == user["email"]
        assert account.licences == (f"zoom:type:{user['type']}",) and account.account_type == str(user["type"])
        assert account.licensed is (user["type"] == 2)
        assert account.role == user["role_id"] and account.department == (user["dept"] or None)
        assert account.employee_id == user.get("employee_unique_id")
        assert account.given_name == user["first_name"] and account.surname == user["last_name"]
        if "last_login_time" in user:
            assert account.last_activity == datetime.fromisoformat(user["last_login_time"].replace("Z", "+00:00"))
        else:
            assert account.last_activity is None
    quarantined = [q for q in items if isinstance(q, Quarantined)]
    assert quarantined and all("@" not in q.record_key and not q.payload for q in quarantined)


# ----------------------------------------------------------------------------------------------- errors

def _response(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    response.headers.update(headers or {})
    return response


@pytest.fixture
def session(sandbox_factory: Any) -> Iterator[Any]:
    server = sandbox_factory(rate_limits=False)
    source = _accounts(server)
    yield source._session


@pytest.mark.parametrize(("response", "error"), [
    (_response(429, {"code": 429, "message": "x"}, {"X-RateLimit-Type": "QPS", "Retry-After": "1"}), RateLimited),
    (_response(503, {"code": 503, "message": "x"}), TransientConnectorError),
    (_response(200, b'{"users": [{"id": "a"'), TransientConnectorError),
    (_response(200, b"[]"), TransientConnectorError),
    (_response(403, {"code": 403, "message": "x"}), ConnectorAuthError),
    (_response(400, {"code": 4711, "message": "Invalid access token, does not contain scopes"}), ConnectorAuthError),
    (_response(404, {"code": 1001, "message": "User does not exist: a@b.fr."}), NotFound),
])
def test_statuses_map_to_the_error_tree(session: Any, response: requests.Response, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        session._read(response, "get user 123")
    assert "a@b.fr" not in str(raised.value) and "get user 123" in str(raised.value)


def test_a_daily_limit_is_not_slept_through(session: Any) -> None:
    reset = "2026-11-24T00:00:00Z"  # hours after the sandbox clock: beyond the retry policy's longest wait
    daily = _response(429, {"code": 429, "message": "You have exceeded the daily rate limit"},
                      {"X-RateLimit-Type": "Daily-limit", "Retry-After": reset})
    calls = []

    def send(_client: Any) -> requests.Response:
        calls.append(1)
        return daily

    with pytest.raises(RateLimited) as raised:
        session.call("Light", "get user 1", send)
    assert calls == [1]
    assert raised.value.retry_after is not None and raised.value.retry_after > TEST_RETRY.max_delay


def test_connection_failures_are_transient_and_retried(session: Any) -> None:
    outcomes: list[Any] = [requests.ConnectTimeout("boom"), requests.ConnectionError("reset"),
                           _response(200, {"ok": True})]

    def send(_client: Any) -> requests.Response:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    assert session.call("Light", "get user 1", send) == {"ok": True}


def test_config_refuses_page_sizes_zoom_does_not_serve() -> None:
    with pytest.raises(ValueError):
        ZoomConfig("https://api.zoom.us/v2", "https://zoom.us/oauth/token", "acct", "id", "secret", page_size=301)
    assert "secret" not in repr(ZoomConfig("https://api.zoom.us/v2", "https://zoom.us/oauth/token", "acct", "id",
                                           "secret"))
