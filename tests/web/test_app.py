"""The web application over a real state database, through HTTP (Starlette's test client): every route guarded by
its role (a walk of the route table), anonymous callers sent to login, CSRF on forms, the public redirect never
leading anywhere the request names, the finance page showing the stored month exactly, CSV exports adding up, and
the basic accessibility rules of contracts/dsfr.md §5 on every page. ProConnect itself is not exercised here: the
agent dependency is the only thing overridden."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.access import Role
from db.access import AccessRepository
from db.engine import make_engine, make_session_factory
from tests.web.conftest import ADMIN, FINANCE, HELPDESK, NOW, TENANT
from web.app import create_app, route_table
from web.auth import Agent, local_path, role_of, session_agent
from web.public import PUBLIC_PATHS
from web.settings import WebSettings


def _client(url: str, *, as_email: str | None = None, **settings: Any) -> TestClient:
    app = create_app(WebSettings(database_url=url, **settings))
    if as_email is not None:
        app.dependency_overrides[session_agent] = lambda: Agent(f"sub-{as_email}", as_email, as_email.split("@")[0])
    return TestClient(app)


def _guarded_routes(app: Any) -> list[tuple[str, APIRoute]]:
    return [(path, route) for path, route in route_table(app.routes) if path not in PUBLIC_PATHS]


def _roles(route: APIRoute) -> set[Role]:
    found: set[Role] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if (role := role_of(dependency.call)) is not None:
            found.add(role)
        stack.extend(dependency.dependencies)
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "snapshots" if "table" in m.group() else "demo-vague-1", path)


# ----------------------------------------------------------------------------------------------- guards


def test_every_route_declares_its_role_and_refuses_anonymous_and_other_roles(sqlite_url: str) -> None:
    from db.migrate import upgrade

    upgrade(sqlite_url)
    app = create_app(WebSettings(database_url=sqlite_url))
    routes = _guarded_routes(app)
    assert len(route_table(app.routes)) == len(routes) + len(PUBLIC_PATHS)   # every public path is a real route
    assert {path for path, _ in routes} >= {"/finance", "/finance/export/{table}.csv", "/helpdesk",
                                                "/helpdesk/resend", "/console", "/console/waves/{name}",
                                                "/api/savings", "/api/links/lookup", "/api/console"}
    anonymous = TestClient(app)
    for path, route in routes:
        assert len(_roles(route)) == 1, path     # exactly one guard, on every non-public route
        method = sorted(route.methods)[0]
        answer = anonymous.request(method, _concrete(path), follow_redirects=False)
        if path.startswith("/api/"):
            assert answer.status_code == 401, path
        elif method == "GET":
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=%2F"), path
        else:
            assert answer.status_code in (303, 403), path   # a POST: no session, no CSRF token


def test_a_helpdesk_agent_gets_403_on_finance_pages_and_api_and_admin_opens_everything(state: str) -> None:
    helpdesk = _client(state, as_email=HELPDESK)
    for path in ("/finance", "/finance/export/snapshots.csv", "/api/savings", "/console", "/api/console"):
        assert helpdesk.get(path).status_code == 403, path
    assert helpdesk.get("/helpdesk").status_code == 200
    assert helpdesk.get("/api/links/lookup", params={"q": "https://zoom.us/j/81234567890"}).status_code == 200
    finance = _client(state, as_email=FINANCE)
    assert finance.get("/helpdesk").status_code == 403 and finance.get("/finance").status_code == 200
    admin = _client(state, as_email=ADMIN)
    for path in ("/finance", "/helpdesk", "/console", "/api/savings", "/api/console"):
        assert admin.get(path).status_code == 200, path
    # Another tenant's data is not reachable by naming it.
    assert admin.get("/api/savings", params={"tenant": "another-ministry"}).status_code == 403
    # A revocation applies at the next request.
    with make_session_factory(make_engine(state)).begin() as session:
        AccessRepository(session).revoke(TENANT, HELPDESK, Role.HELPDESK, actor="test", now=NOW)
    assert helpdesk.get("/helpdesk").status_code == 403


def test_forms_need_the_sessions_csrf_token(state: str) -> None:
    client = _client(state, as_email=HELPDESK)
    page = client.get("/helpdesk")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    for form in ({"q": "https://zoom.us/j/81234567890"},
                 {"q": "https://zoom.us/j/81234567890", "csrf_token": "forged"}):
        refused = client.post("/helpdesk/resend", data=form)
        assert refused.status_code == 403 and "formulaire" in refused.text
    accepted = client.post("/helpdesk/resend", data={"q": "https://zoom.us/j/81234567890",
                                                     "csrf_token": token.group(1)})
    assert accepted.status_code == 409          # past CSRF: this app has no mail relay for the tenant
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403


# ----------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("candidate, expected", [
    ("/finance?tenant=x", "/finance?tenant=x"), ("//evil.example", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), ("/ok\r\nSet-Cookie: x", "/"), (None, "/"),
    ("", "/"), ("finance", "/")])
def test_next_is_only_ever_a_local_path(candidate: str | None, expected: str) -> None:
    assert local_path(candidate) == expected


def test_the_public_redirect_leads_only_to_a_stored_room(state: str) -> None:
    client = _client(state)
    mapped = client.get("/l/zoom:81234567890", follow_redirects=False)
    assert mapped.status_code == 303 and mapped.headers["location"] == "https://visio.example.gouv.fr/abc-defg-hij"
    reverted = client.get("/l/zoom:81234567891", follow_redirects=False)
    assert reverted.status_code == 404 and "de nouveau valable" in reverted.text
    for key in ("https://evil.example/", "//evil.example", "zoom:1?next=https://evil.example"):
        answer = client.get(f"/l/{key}", params={"next": "https://evil.example"}, follow_redirects=False)
        assert answer.status_code == 404 and "location" not in answer.headers


# ----------------------------------------------------------------------------------------------- finance


def test_the_dashboard_shows_the_stored_month_and_its_csv_add_up(state: str) -> None:
    client = _client(state, as_email=FINANCE)
    api = client.get("/api/savings").json()
    head = api["headline"]
    assert head["stranded"] == "45000.00" and head["reclaimed_seats"] == 900 and api["month"] == "2026-11-01"
    page = client.get("/finance").text
    shown = dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]+)"', page))
    for name in ("potential_annual", "stranded", "realised_run_rate", "realised_in_fy", "net", "benchmark_annual",
                 "gap_to_benchmark"):
        assert shown[name] == head[name], name
    assert shown["reclaimed_seats"] == str(head["reclaimed_seats"])
    assert "45\u202f000,00\u00a0€" in page
    # Each breakdown's CSV adds up to the headline; the funnel and the calendar are the stored ones.
    for dimension in ("direction", "tool", "sku", "contract", "wave"):
        answer = client.get(f"/finance/export/by-{dimension}.csv")
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert sum(Decimal(row["stranded"]) for row in rows) == Decimal(head["stranded"]), dimension
        assert sum(Decimal(row["potential_annual"]) for row in rows) == Decimal(head["potential_annual"])
    funnel = list(csv.DictReader(io.StringIO(client.get("/finance/export/funnel.csv").text)))
    assert [(row["wave"], row["in_scope"], row["released_people"]) for row in funnel] == [("vague-1", "1000", "900")]
    assert client.get("/finance/export/nothing.csv").status_code == 404
    assert client.get("/api/savings", params={"month": "2020-01"}).status_code == 404


def test_the_helpdesk_page_and_api_give_the_cli_s_answer(state: str) -> None:
    from flows.links import lookup_link

    client = _client(state, as_email=HELPDESK)
    page = client.get("/helpdesk", params={"q": "zoom.us/j/81234567890"}).text
    assert 'href="https://visio.example.gouv.fr/abc-defg-hij"' in page and "moved to Visio" in page
    api = client.get("/api/links/lookup", params={"q": "https://zoom.us/j/81234567890"}).json()
    assert api == lookup_link(state, TENANT, "https://zoom.us/j/81234567890")
    assert api["links"][0]["visio_url"] == "https://visio.example.gouv.fr/abc-defg-hij"
    unknown = client.get("/helpdesk", params={"q": "https://zoom.us/j/99999999999"}).text
    assert 'id="not-found"' in unknown
    # A NUL names nothing (schemathesis sent one: PostgreSQL refuses it in a text parameter, a 500 then).
    nul = client.get("/api/links/lookup", params={"q": "\x00"})
    assert nul.status_code == 200 and nul.json()["found"] is False and nul.json()["reason"]
    assert client.get("/helpdesk", params={"q": "8123\x00"}).status_code == 200


# ----------------------------------------------------------------------------------------------- pages


class _Page(HTMLParser):
    """What the accessibility checks read from a page."""

    def __init__(self) -> None:
        super().__init__()
        self.lang = ""
        self.title = ""
        self.in_title = False
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.headings: list[int] = []
        self.ids: set[str] = set()
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        self.tags.append((tag, values))
        if tag == "html":
            self.lang = values.get("lang", "")
        if tag == "title":
            self.in_title = True
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "label" and "for" in values:
            self.labels.add(values["for"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data


def accessibility_problems(html: str) -> list[str]:
    """contracts/dsfr.md §5 on one rendered page."""
    page = _Page()
    page.feed(html)
    problems = []
    if page.lang != "fr":
        problems.append("lang")
    if " – " not in page.title:
        problems.append("title")
    roles = [values.get("role") for _, values in page.tags]
    for role in ("banner", "main", "contentinfo"):
        if roles.count(role) != 1:
            problems.append(f"landmark {role}")
    skip = [values["href"][1:] for tag, values in page.tags if tag == "a" and values.get("href", "").startswith("#")]
    problems += [f"skip link #{target}" for target in skip if target not in page.ids]
    if page.headings.count(1) != 1:
        problems.append("one h1")
    problems += [f"heading h{b} after h{a}" for a, b in zip(page.headings, page.headings[1:], strict=False)
                 if b > a + 1]
    for tag, values in page.tags:
        if (tag in ("input", "select", "textarea") and values.get("type") not in ("hidden", "submit")
                and values.get("id") not in page.labels and not values.get("aria-label")):
            problems.append(f"unlabelled {tag} {values.get('name')}")
    tables = html.count("<table")
    if html.count("<caption") != tables:
        problems.append("table without caption")
    # (the DSFR's script adds attributes to what it enhances: a browser's DOM says <div class="fr-table" data-fr-js…>)
    figures = re.findall(r'<figure class="chart[^>]*>.*?</figure>\s*(<div class="fr-table[" ][^>]*>)?', html, re.S)
    problems += ["chart without its table" for table in figures if not table]
    return problems


@pytest.mark.parametrize("theme", ["neutral", "dsfr"])
def test_every_page_passes_the_basic_accessibility_checks(state: str, theme: str) -> None:
    client = _client(state, as_email=ADMIN, theme=theme)
    pages = ["/", "/finance", "/helpdesk?q=https://zoom.us/j/81234567890", "/helpdesk?q=nobody",
             "/console", "/console/waves/vague-1", "/accessibilite", "/mentions-legales", "/donnees-personnelles",
             "/cookies", "/l/unknown"]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code in (200, 404), path
        assert accessibility_problems(answer.text) == [], path
    finance = client.get("/finance").text
    assert finance.count('<figure class="chart') == 8
    if theme == "dsfr":
        assert 'class="fr-logo"' in finance and "<bar-chart" in finance and "sha384-" in finance
    else:
        assert 'class="fr-logo"' not in finance and "dsfr.min.css" not in finance and "<svg" in finance


def test_the_checks_catch_a_page_that_breaks_them() -> None:
    assert set(accessibility_problems("<html><body><h1>a</h1><h3>b</h3><input name=x><table></table>"
                                      "</body></html>")) >= {"lang", "title", "landmark main",
                                                             "heading h3 after h1", "unlabelled input x",
                                                             "table without caption"}


def test_headers_and_cookies_as_production_wants_them(state: str) -> None:
    client = _client(state, public_url="https://bascule.example.gouv.fr",
                     oidc_discovery_url="https://auth.agentconnect.gouv.fr/api/v2/.well-known/openid-configuration")
    answer = client.get("/")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' https://auth.agentconnect.gouv.fr" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    cookie = answer.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" in cookie.lower()
    plain = _client(state).get("/").headers["set-cookie"].lower()
    assert "secure" not in plain   # loopback http (tests, demo): a Secure cookie would never come back


def test_the_api_document_lists_only_guarded_routes_and_no_page(state: str) -> None:
    client = _client(state)
    document = client.get("/api/openapi.json").json()
    assert set(document["paths"]) == {"/api/savings", "/api/links/lookup", "/api/console"}
