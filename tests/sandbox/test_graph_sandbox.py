"""The sandbox's Microsoft Graph: responses checked against the official CSDL, and the behaviours of graph.md's
checklist (section 9) over real HTTP.

Documented deviations are allowed explicitly, by path: none are needed for the responses bascule reads.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from sandbox import graph
from sandbox.faults import FaultRates
from sandbox.limits import TokenBucket
from sandbox.server import Credentials, SandboxConfig, SandboxServer
from tests.support.csdl import Issue, validate
from tests.support.csdl import graph as csdl

CONNECTOR_USER_FIELDS = "id,displayName,givenName,surname,mail,userPrincipalName,proxyAddresses,employeeId," \
                        "department,accountEnabled,userType,onPremisesImmutableId,assignedLicenses"
ALL_USER_FIELDS = CONNECTOR_USER_FIELDS + ",businessPhones,jobTitle,mobilePhone,officeLocation,preferredLanguage," \
    "externalUserState,mailNickname,otherMails,employeeType,companyName,createdDateTime,usageLocation," \
    "onPremisesSyncEnabled,assignedPlans,licenseAssignmentStates"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class Graph:
    """A raw HTTP client of the sandbox's Graph, with a token from its Entra endpoint."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.tenant = str(server.sandbox.manifest["tenant"]["entra_tenant_id"])
        self.api = server.url + "/graph/v1.0"
        self.http = httpx.Client(timeout=10)
        self.token = self.fetch_token().json()["access_token"]

    def fetch_token(self, *, secret: str | None = None, **changes: str) -> httpx.Response:
        credentials = self.server.config.credentials
        form = {"client_id": credentials.graph_client_id,
                "client_secret": credentials.graph_client_secret if secret is None else secret,
                "grant_type": "client_credentials", "scope": GRAPH_SCOPE, **changes}
        assert self.server.ca_file is not None
        return httpx.post(f"{self.server.tls_url}/{self.tenant}/oauth2/v2.0/token", data=form,
                          verify=ssl.create_default_context(cafile=str(self.server.ca_file)))

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("http") else self.api + path
        return self.http.request(method, url, headers={"authorization": f"Bearer {self.token}", **(headers or {})},
                                 **kwargs)

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.request("GET", path, headers={k.replace("_", "-"): v for k, v in headers.items()})

    def ok(self, path: str, **headers: str) -> Any:
        response = self.get(path, **headers)
        assert response.status_code == 200, response.text[:300]
        return response.json()

    def drain(self, path: str, **headers: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every page of a collection (the pages, and the items)."""
        pages, url = [], path
        while url:
            body = self.ok(url, **headers)
            pages.append(body)
            url = body.get("@odata.nextLink")
            assert len(pages) < 500
        return pages, [item for page in pages for item in page["value"]]


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@pytest.fixture(scope="module")
def shared(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[Graph]:
    """A read-only sandbox for the tests that change nothing."""
    with SandboxServer(SandboxConfig(data_dir=contract_ministry[0])) as server:
        client = Graph(server)
        yield client
        client.http.close()


@pytest.fixture
def fresh(sandbox_factory: Any) -> Graph:
    """A sandbox of its own, for tests that write."""
    return Graph(sandbox_factory())


def _mailboxes(ministry: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in _lines(ministry / "teams" / "events.jsonl"):
        counts[event["_mailbox"]] = counts.get(event["_mailbox"], 0) + 1
    return counts


def _busiest(ministry: Path) -> str:
    counts = _mailboxes(ministry)
    return max(counts, key=lambda mailbox: counts[mailbox])


# ----------------------------------------------------------------------------------------------- CSDL

def test_the_csdl_validator_reports_wrong_names_types_enums_and_nulls() -> None:
    issues = csdl().check({"id": "x", "displayName": 3, "accountEnabled": "yes", "nickname": "x",
                           "assignedLicenses": [{"skuId": "not-a-guid", "disabledPlans": None}],
                           "@odata.type": "#microsoft.graph.user"}, "graph.user")
    assert {(issue.path, issue.kind) for issue in issues} == {
        ("displayName", "type"), ("accountEnabled", "type"), ("nickname", "unknown-property"),
        ("assignedLicenses/0/skuId", "type"), ("assignedLicenses/0/disabledPlans", "null")}
    event = csdl().check({"type": "weekly", "start": {"dateTime": 1}, "reminderMinutesBeforeStart": 1.5,
                          "recurrence": {"pattern": {"interval": None, "daysOfWeek": ["funday"]}}}, "graph.event")
    assert {(issue.path, issue.kind) for issue in event} == {
        ("type", "enum"), ("start/dateTime", "type"), ("reminderMinutesBeforeStart", "type"),
        ("recurrence/pattern/interval", "null"), ("recurrence/pattern/daysOfWeek/0", "enum")}
    with pytest.raises(AssertionError, match="declares no property"):
        validate([Issue("nickname", "unknown-property", "microsoft.graph.user declares no property 'nickname'")])


def test_users_default_and_selected_properties_match_the_csdl(shared: Graph) -> None:
    _pages, default = shared.drain("/users?$top=999")
    assert default and all(list(user) == list(graph.DEFAULT_USER_PROPERTIES) for user in default)
    validate(csdl().check_collection({"value": default}, "graph.user"), what="GET /users")
    pages, selected = shared.drain(f"/users?$top=100&$select={ALL_USER_FIELDS}")
    for page in pages:
        validate(csdl().check_collection(page, "graph.user"), what="GET /users?$select")
    assert all(set(user) == set(ALL_USER_FIELDS.split(",")) for user in selected)


def test_delta_items_and_subscribed_skus_match_the_csdl(shared: Graph) -> None:
    pages, users = shared.drain(f"/users/delta?$select={CONNECTOR_USER_FIELDS}")
    for page in pages:
        validate(csdl().check_collection(page, "graph.user"), what="GET /users/delta")
    assert len(users) == len(list(_lines(shared.server.config.data_dir / "teams" / "users.jsonl")))
    skus = shared.ok("/subscribedSkus")
    validate(csdl().check_collection(skus, "graph.subscribedSku"), what="GET /subscribedSkus")
    assert {"servicePlans", "prepaidUnits", "consumedUnits", "skuPartNumber"} <= set(skus["value"][0])


def test_events_match_the_csdl_in_every_shape_served(shared: Graph) -> None:
    ministry = shared.server.config.data_dir
    mailboxes = list(_mailboxes(ministry))
    checked = 0
    for number, mailbox in enumerate(mailboxes):
        prefer = ['IdType="ImmutableId"', 'outlook.timezone="Romance Standard Time", outlook.body-content-type="text"',
                  ""][number % 3]
        pages, events = shared.drain(f"/users/{mailbox}/events?$top=50", prefer=prefer)
        for page in pages:
            validate(csdl().check_collection(page, "graph.event"), what="GET /users/{id}/events")
        checked += len(events)
    assert checked == sum(1 for _ in _lines(ministry / "teams" / "events.jsonl"))


# ----------------------------------------------------------------------------------------------- users

def test_user_page_size_bounds_and_absolute_next_links(shared: Graph) -> None:
    for top in ("0", "1000", "x"):
        response = shared.get(f"/users?$top={top}")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (f"Invalid page size specified: '{top}'. Must be between 1 "
                                                       "and 999 inclusive.")
    body = shared.ok("/users?$top=5&$select=id,mail")
    assert len(body["value"]) == 5 and list(body["value"][0]) == ["id", "mail"]
    link = urlsplit(body["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}" == shared.server.url
    assert "$skiptoken=" in link.query and "$select=id,mail" in link.query and "$top=5" in link.query
    pages, users = shared.drain("/users?$top=37")
    in_file = list(_lines(shared.server.config.data_dir / "teams" / "users.jsonl"))
    assert len(pages) > 2 and [u["id"] for u in users] == [u["id"] for u in in_file]
    assert "@odata.nextLink" not in pages[-1]
    assert shared.get("/users?$select=nickname").status_code == 400
    assert shared.get("/users?$skip=5").status_code == 400
    assert shared.get("/users?$count=true").status_code == 400
    counted = shared.ok("/users?$count=true&$top=1", consistencylevel="eventual")
    assert counted["@odata.count"] == len(users)


def test_users_by_id_and_by_percent_encoded_upn(shared: Graph) -> None:
    user = next(_lines(shared.server.config.data_dir / "teams" / "users.jsonl"))
    by_upn = shared.ok("/users/" + quote(user["userPrincipalName"], safe=""))
    assert by_upn["id"] == user["id"] and "assignedLicenses" not in by_upn
    assert shared.get("/users/00000000-0000-0000-0000-000000000000").json()["error"]["code"] == \
        "Request_ResourceNotFound"


def test_delta_and_delta_parentheses_page_then_give_a_delta_link(shared: Graph) -> None:
    plain = shared.drain("/users/delta?$select=id,mail", prefer="odata.maxpagesize=60")
    function = shared.drain("/users/delta()?$select=id,mail", prefer="odata.maxpagesize=60")
    assert [u["id"] for u in plain[1]] == [u["id"] for u in function[1]]
    assert len(plain[0]) > 2 and "@odata.deltaLink" in plain[0][-1]
    assert all("@odata.deltaLink" not in page for page in plain[0][:-1])
    assert max(len(page["value"]) for page in plain[0]) == 60
    ignored_top = shared.ok("/users/delta?$top=2")
    assert len(ignored_top["value"]) == 200   # $top is not supported on delta: the service ignores it
    later = shared.ok(plain[0][-1]["@odata.deltaLink"])
    assert later["value"] == [] and "@odata.deltaLink" in later


def test_signin_activity_needs_its_own_permission_and_a_premium_tenant(sandbox_factory: Any) -> None:
    without = Graph(sandbox_factory(credentials=Credentials(graph_roles=("User.Read.All",
                                                                         "Organization.Read.All"))))
    response = without.get("/users?$select=id,signInActivity")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    assert without.get("/users?$select=id,displayName").status_code == 200
    not_premium = Graph(sandbox_factory(graph_premium=False))
    refused = not_premium.get("/users?$select=id,signInActivity")
    assert (refused.status_code, refused.json()["error"]["code"]) == (
        403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
    served = Graph(sandbox_factory()).get("/users?$select=id,signInActivity&$top=5").json()["value"]
    assert served and all(set(user) == {"id", "signInActivity"} for user in served)


# ----------------------------------------------------------------------------------------------- events

def test_events_pages_filters_and_prefer_headers(shared: Graph) -> None:
    ministry = shared.server.config.data_dir
    mailbox = _busiest(ministry)
    in_file = [e for e in _lines(ministry / "teams" / "events.jsonl") if e["_mailbox"] == mailbox]
    pages, events = shared.drain(f"/users/{mailbox}/events?$top=2&$select=subject,type,start")
    assert len(pages) > 1 and all("$skip=" in p["@odata.nextLink"] for p in pages[:-1])
    assert urlsplit(pages[0]["@odata.nextLink"]).netloc == urlsplit(shared.server.url).netloc
    assert len(events) == len(in_file) and {e["type"] for e in events} <= {"singleInstance", "seriesMaster"}
    assert set(events[0]) == {"@odata.etag", "id", "subject", "type", "start"}
    masters = shared.ok(f"/users/{mailbox}/events?%24filter=type%20eq%20'seriesMaster'&$top=50")["value"]
    assert len(masters) == sum(1 for e in in_file if e["type"] == "seriesMaster")
    for unsupported in ("organizer/emailAddress/address eq 'a@b.fr'", "recurrence ne null",
                        "attendees/any(a:a/type eq 'required')"):
        response = shared.get(f"/users/{mailbox}/events?$filter={quote(unsupported)}")
        assert response.status_code == 400, unsupported
    response = shared.get(f"/users/{mailbox}/events?$top=1",
                          prefer='outlook.timezone="Romance Standard Time", IdType="ImmutableId"')
    assert response.headers["preference-applied"] == 'outlook.timezone="Romance Standard Time", ' \
                                                     'IdType="ImmutableId"'
    event = response.json()["value"][0]
    assert event["start"]["timeZone"] == "Romance Standard Time" and event["id"] == in_file[0]["id"]
    assert event["start"]["dateTime"] != in_file[0]["start"]["dateTime"]   # shifted from UTC
    rest = shared.ok(f"/users/{mailbox}/events?$top=1")["value"][0]
    assert rest["id"] != event["id"] and rest["start"] == in_file[0]["start"] and "uid" not in rest
    assert shared.ok(f"/users/{mailbox}/events/{quote(rest['id'])}")["id"] == rest["id"]
    text = shared.ok(f"/users/{mailbox}/events?$top=1", prefer='outlook.body-content-type="text"')["value"][0]
    assert text["body"]["contentType"] == "text" and "<" not in text["body"]["content"]


def test_a_user_without_an_exchange_plan_has_no_mailbox(shared: Graph) -> None:
    ministry = shared.server.config.data_dir
    mailboxes = _mailboxes(ministry)
    user = next(u for u in _lines(ministry / "teams" / "users.jsonl") if u["id"] not in mailboxes
                and not any(p["service"].startswith("EXCHANGE") for p in u["assignedPlans"]))
    response = shared.get(f"/users/{user['id']}/events")
    assert response.status_code == 404 and response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


# ----------------------------------------------------------------------------------------------- $batch

def _batch_item(number: int, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(number), "method": "GET", "url": url, **extra}


def test_batch_limits_order_dependencies_and_sdk_spelling(shared: Graph) -> None:
    ministry = shared.server.config.data_dir
    mailboxes = list(_mailboxes(ministry))[:21]
    too_many = shared.request("POST", "/$batch", json={"requests": [
        _batch_item(n, f"/users/{m}/events") for n, m in enumerate(mailboxes)]})
    assert too_many.status_code == 400
    twenty = shared.request("POST", "/$batch", json={"requests": [
        _batch_item(n, f"/users/{m}/events?%24select=subject&%24top=1", depends_on=[])
        for n, m in enumerate(mailboxes[:20])]}).json()["responses"]
    assert sorted(int(r["id"]) for r in twenty) == list(range(20))
    assert [r["id"] for r in twenty] != [str(n) for n in range(20)]   # shuffled, as the service may answer
    assert all(r["status"] == 200 and list(r["body"]["value"][0]) == ["@odata.etag", "id", "subject"]
               for r in twenty)
    for item in twenty:
        validate(csdl().check_collection(item["body"], "graph.event"), what="$batch item")
    chained = shared.request("POST", "/$batch", json={"requests": [
        _batch_item(1, "/users/00000000-0000-0000-0000-000000000000/events"),
        _batch_item(2, f"/users/{mailboxes[0]}/events", dependsOn=["1"]),
        _batch_item(3, "/subscribedSkus", depends_on=["2"])]}).json()["responses"]
    statuses = {r["id"]: r["status"] for r in chained}
    assert statuses == {"1": 404, "2": 424, "3": 424}


def test_batch_items_over_the_mailbox_concurrency_are_throttled_alone(shared: Graph) -> None:
    mailbox = _busiest(shared.server.config.data_dir)
    responses = shared.request("POST", "/$batch", json={"requests": [
        _batch_item(n, f"/users/{mailbox}/events?$top=1") for n in range(6)]}).json()["responses"]
    throttled = [r for r in responses if r["status"] == 429]
    assert len(throttled) == 2 and sum(r["status"] == 200 for r in responses) == 4
    assert throttled[0]["headers"]["Retry-After"] == "1"
    assert throttled[0]["body"]["error"]["message"] == "Application is over its MailboxConcurrency limit."
    sequential = shared.request("POST", "/$batch", json={"requests": [
        _batch_item(n, f"/users/{mailbox}/events?$top=1", dependsOn=[str(n - 1)] if n else [])
        for n in range(6)]}).json()["responses"]
    assert all(r["status"] == 200 for r in sequential)


def test_injected_faults_answer_like_graph(sandbox_factory: Any) -> None:
    client = Graph(sandbox_factory(faults=FaultRates(throttle=1.0, retry_after_seconds=2)))
    response = client.get("/users")
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert response.json()["error"]["innerError"]["status"] == "429"
    client.server.sandbox.faults.update(throttle=0.0, server_error=1.0)
    failed = client.get("/users")
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "serviceNotAvailable"


def test_identity_calls_draw_resource_units(fresh: Graph) -> None:
    assert (graph.identity_units(10), graph.identity_units(316), graph.identity_units(900)) == (3500, 5000, 8000)
    state = graph.state_of(fresh.server.sandbox)
    assert state.identity_bucket.burst == 5000
    state.identity_bucket = TokenBucket(1.0, burst=3, clock=lambda: 0.0)   # a frozen clock: no refill
    assert fresh.get("/users?$select=id,mail").status_code == 200          # 2 RU, 1 less with $select
    assert fresh.get("/users").status_code == 200                          # 2 RU: the bucket is empty now
    refused = fresh.get("/subscribedSkus")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "TooManyRequests"
    assert refused.headers["retry-after"] == "3"
    assert refused.headers["x-ms-throttle-scope"].startswith("Tenant_Application/ReadWrite/")
    mailbox = _busiest(fresh.server.config.data_dir)
    assert fresh.get(f"/users/{mailbox}/events").status_code == 200      # Outlook is not an identity endpoint


# ----------------------------------------------------------------------------------------------- writes

def test_patch_stores_the_event_and_keeps_the_previous_version(fresh: Graph) -> None:
    ministry = fresh.server.config.data_dir
    mailbox = _busiest(ministry)
    original = next(e for e in _lines(ministry / "teams" / "events.jsonl") if e["_mailbox"] == mailbox)
    body = {"@odata.type": "#microsoft.graph.event",
            "body": {"contentType": "html", "content": "<html><body><p>Visio</p></body></html>"},
            "location": {"displayName": "Visio", "locationUri": "https://visio.example.gouv.fr/abc-defg-hij"}}
    upn = quote(next(u["userPrincipalName"] for u in _lines(ministry / "teams" / "users.jsonl")
                     if u["id"] == mailbox), safe="")
    response = fresh.request("PATCH", f"/users/{upn}/events/{quote(original['id'])}", json=body,
                             headers={"prefer": 'IdType="ImmutableId"'})
    assert response.status_code == 200
    patched = response.json()
    validate(csdl().check(patched, "graph.event"), what="PATCH event")
    assert patched["body"] == body["body"] and patched["location"]["displayName"] == "Visio"
    assert patched["locations"] == [patched["location"]] and patched["subject"] == original["subject"]
    again = fresh.ok(f"/users/{mailbox}/events/{original['id']}", prefer='IdType="ImmutableId"')
    assert again["body"] == body["body"] and again["changeKey"] != original["changeKey"]
    versions = graph.state_of(fresh.server.sandbox).event_versions(original["id"])
    assert len(versions) == 1 and versions[0]["body"] == original["body"]
    refused = fresh.request("PATCH", f"/users/{mailbox}/events/{original['id']}", json={"iCalUId": "x"})
    assert refused.status_code == 400
    missing = fresh.request("PATCH", f"/users/{mailbox}/events/AAMkAnotThere", json={"subject": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ErrorItemNotFound"


def test_assign_license_is_strict_and_shows_in_reads_seats_and_delta(fresh: Graph) -> None:
    ministry = fresh.server.config.data_dir
    users = list(_lines(ministry / "teams" / "users.jsonl"))
    direct = next(u for u in users if u["assignedLicenses"]
                  and all(s["assignedByGroup"] is None for s in u["licenseAssignmentStates"]))
    grouped = next(u for u in users if any(s["assignedByGroup"] for s in u["licenseAssignmentStates"]))
    sku = direct["assignedLicenses"][0]["skuId"]
    start = fresh.drain("/users/delta?$select=id,assignedLicenses")[0][-1]["@odata.deltaLink"]
    seats = {s["skuId"]: s["consumedUnits"] for s in fresh.ok("/subscribedSkus")["value"]}
    only_remove = fresh.request("POST", f"/users/{direct['id']}/assignLicense", json={"removeLicenses": [sku]})
    assert only_remove.status_code == 400 and only_remove.json()["error"]["code"] == "Request_BadRequest"
    inherited = fresh.request("POST", f"/users/{grouped['id']}/microsoft.graph.assignLicense", json={
        "addLicenses": [], "removeLicenses": [grouped["assignedLicenses"][0]["skuId"]]})
    assert inherited.status_code == 400
    assert inherited.json()["error"]["message"] == ("User license is inherited from group membership and cannot be "
                                                    "removed directly from the user.")
    done = fresh.request("POST", f"/users/{direct['id']}/assignLicense",
                         json={"addLicenses": [], "removeLicenses": [sku]})
    assert done.status_code == 200 and done.json()["id"] == direct["id"]
    validate(csdl().check(done.json(), "graph.user"), what="POST assignLicense")
    after = fresh.ok(f"/users/{direct['id']}?$select=assignedLicenses,licenseAssignmentStates,assignedPlans")
    assert sku not in {a["skuId"] for a in after["assignedLicenses"]}
    assert {s["skuId"]: s["consumedUnits"] for s in fresh.ok("/subscribedSkus")["value"]}[sku] == seats[sku] - 1
    changes = fresh.ok(start)
    assert [u["id"] for u in changes["value"]] == [direct["id"]]
    graph.state_of(fresh.server.sandbox).delete_user(grouped["id"])
    removed_page = fresh.ok(changes["@odata.deltaLink"])
    validate(csdl().check_collection(removed_page, "graph.user"), what="users delta with @removed")
    assert removed_page["value"] == [{"id": grouped["id"], "@removed": {"reason": "changed"}}]
    untracked = fresh.drain("/users/delta?$select=id,displayName")[0][-1]["@odata.deltaLink"]
    fresh.request("POST", f"/users/{users[5]['id']}/assignLicense", json={"addLicenses": [], "removeLicenses": []})
    assert fresh.ok(untracked)["value"] == []   # only selected properties are tracked


# ----------------------------------------------------------------------------------------------- Entra

def test_token_endpoint_answers_like_entra(shared: Graph) -> None:
    wrong = shared.fetch_token(secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.json()["error_description"].startswith("AADSTS7000215")
    assert shared.fetch_token(scope="User.Read").json()["error"] == "invalid_scope"
    assert shared.fetch_token(grant_type="password").json()["error"] == "unsupported_grant_type"
    token = shared.fetch_token().json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3599
    discovery = httpx.get(f"{shared.server.tls_url}/{shared.tenant}/v2.0/.well-known/openid-configuration",
                          verify=ssl.create_default_context(cafile=str(shared.server.ca_file))).json()
    assert discovery["token_endpoint"] == f"{shared.server.tls_url}/{shared.tenant}/oauth2/v2.0/token"


def test_the_api_refuses_missing_expired_and_underprivileged_tokens(sandbox_factory: Any,
                                                                    contract_ministry: Any) -> None:
    client = Graph(sandbox_factory(token_lifetime_seconds=1))
    assert client.http.get(client.api + "/users").json()["error"]["code"] == "InvalidAuthenticationToken"
    upper = client.http.get(client.api + "/users?$top=1", headers={"AUTHORIZATION": f"Bearer {client.token}"})
    assert upper.status_code == 200
    import time

    time.sleep(1.1)
    expired = client.get("/users")
    assert expired.status_code == 401 and expired.json()["error"] == {
        **expired.json()["error"], "code": "InvalidAuthenticationToken",
        "message": "Lifetime validation failed, the token is expired."}
    assert "www-authenticate" in expired.headers
    limited = Graph(sandbox_factory(credentials=Credentials(graph_roles=("Calendars.Read",))))
    assert limited.get("/users").json()["error"]["code"] == "Authorization_RequestDenied"
    assert limited.get("/subscribedSkus").status_code == 403
    mailbox = _busiest(contract_ministry[0])
    assert limited.get(f"/users/{mailbox}/events").status_code == 200
    no_calendar = Graph(sandbox_factory(credentials=Credentials(graph_roles=("User.Read.All",))))
    assert no_calendar.get(f"/users/{mailbox}/events").json()["error"]["code"] == "ErrorAccessDenied"


def test_unknown_segments_and_methods(shared: Graph) -> None:
    response = shared.get("/groups")
    assert response.status_code == 400 and response.json()["error"]["message"] == \
        "Resource not found for the segment 'groups'."
    assert shared.get("/users/nobody@example.fr/events").json()["error"]["code"] == "ErrorInvalidUser"
    user = next(_lines(shared.server.config.data_dir / "teams" / "users.jsonl"))
    refused = shared.request("DELETE", f"/users/{user['id']}")   # needs User.ReadWrite.All, not granted
    assert refused.status_code == 403 and shared.get(f"/users/{user['id']}").status_code == 200
    mailbox = _busiest(shared.server.config.data_dir)
    not_here = shared.get(f"/users/{mailbox}/events?$orderby=start/dateTime")
    assert not_here.status_code == 501 and not_here.json()["error"]["message"].startswith("sandbox:")
