"""The onboard flow against the sandbox: ready when everything answers, and when one thing is wrong it names exactly
which check failed and why; later flows refuse a tenant that is not ready unless forced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import PermanentConnectorError, TransientConnectorError, UnexpectedResponse
from core import Platform
from db.migrate import upgrade
from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, state_of
from sandbox.server import Credentials
from tests.conftest import REPO

SECRETS = {"BASCULE_ZOOM_CLIENT_SECRET": Credentials().zoom_client_secret,
           "BASCULE_GRAPH_CLIENT_SECRET": Credentials().graph_client_secret,
           "BASCULE_WEBEX_ACCESS_TOKEN": Credentials().webex_access_token,
           "BASCULE_VISIO_CLIENT_SECRET": SANDBOX_CLIENT_SECRET}


@pytest.fixture
def onboarding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox_factory: Any,
               contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[Any]:
    """Start a sandbox (with any SandboxConfig changes), write the tenant file for it; returns (server, tenant)."""
    from flows.demo import render_sandbox_tenant

    out, manifest = contract_ministry
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)

    def start(**changes: Any) -> tuple[Any, Path]:
        server = sandbox_factory(**changes)
        tenant = tmp_path / "tenant.toml"
        tenant.write_text(render_sandbox_tenant(manifest, ldif_path=str(out / "directory.ldif"),
                                                sandbox_url=server.url, tls_url=server.tls_url,
                                                ca_file=str(server.ca_file)), encoding="utf-8")
        return server, tenant

    yield start


def _onboard(tenant: Path) -> dict[str, Any]:
    from flows.onboard import onboard

    result: dict[str, Any] = onboard(str(tenant))
    return result


def _checks(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {check["name"]: (check["status"], check["reason"]) for check in report["checks"]}


def _failed(report: dict[str, Any]) -> dict[str, str]:
    return {name: reason for name, (status, reason) in _checks(report).items() if status == "failed"}


def test_the_sandbox_tenant_is_ready(onboarding: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    _server, tenant = onboarding()
    report = _onboard(tenant)
    checks = _checks(report)
    assert report["ready"], _failed(report)
    domains = contract_ministry[1]["tenant"]["domains"]
    assert set(checks) == {"siret", "cost_model", "directory", "zoom.credentials", "zoom.scopes",
                           "teams.credentials", "teams.scopes", "webex.credentials", "webex.scopes",
                           "visio.application", *(f"visio.domain:{domain}" for domain in domains)}
    assert checks["siret"][0] == checks["directory"][0] == checks["visio.application"][0] == "ok"
    for platform in ("zoom", "teams", "webex"):
        assert checks[f"{platform}.credentials"][0] == "ok"
    # Nothing secret or personal in the report: no e-mail address, no secret value.
    text = json.dumps(report)
    assert "@" not in text
    assert not any(value in text for value in SECRETS.values())


def test_the_verdict_gates_later_flows(onboarding: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.identities import map_identities
    from flows.onboard import TenantNotReady

    _server, tenant = onboarding()
    monkeypatch.setenv("BASCULE_ZOOM_CLIENT_SECRET", "not-the-secret")
    assert not _onboard(tenant)["ready"]
    with pytest.raises(TenantNotReady, match=r"is not ready \(zoom\.credentials: credentials refused by Zoom"):
        map_identities(tenant_file=str(tenant))
    assert map_identities(tenant_file=str(tenant), force=True)["persons"] == 0  # forced: goes on

    monkeypatch.setenv("BASCULE_ZOOM_CLIENT_SECRET", SECRETS["BASCULE_ZOOM_CLIENT_SECRET"])
    assert _onboard(tenant)["ready"]
    map_identities(tenant_file=str(tenant))  # ready: runs without force
    tenant.write_text(tenant.read_text(encoding="utf-8").replace('page_size = 500', 'page_size = 400'),
                      encoding="utf-8")
    with pytest.raises(TenantNotReady, match="the tenant file changed since it was onboarded"):
        map_identities(tenant_file=str(tenant))


@pytest.mark.parametrize(("secret", "check", "reason"), [
    ("BASCULE_ZOOM_CLIENT_SECRET", "zoom.credentials", "credentials refused by Zoom"),
    ("BASCULE_GRAPH_CLIENT_SECRET", "teams.credentials", "credentials refused by Microsoft Entra"),
    ("BASCULE_WEBEX_ACCESS_TOKEN", "webex.credentials", "credentials refused by Webex"),
    ("BASCULE_VISIO_CLIENT_SECRET", "visio.application", "credentials refused by Visio"),
])
def test_a_wrong_secret_fails_exactly_its_check(onboarding: Any, monkeypatch: pytest.MonkeyPatch, secret: str,
                                                check: str, reason: str) -> None:
    _server, tenant = onboarding()
    monkeypatch.setenv(secret, "wrong-" + SECRETS[secret][:8])
    report = _onboard(tenant)
    assert not report["ready"]
    assert list(_failed(report)) == [check]
    assert _failed(report)[check].startswith(reason)
    if check != "visio.application":
        assert _checks(report)[check.replace("credentials", "scopes")][0] == "skipped"


def test_a_secret_that_is_not_set_says_which_variable(onboarding: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _server, tenant = onboarding()
    monkeypatch.delenv("BASCULE_WEBEX_ACCESS_TOKEN")
    report = _onboard(tenant)
    assert list(_failed(report)) == ["webex.credentials"]
    action = next(c["action"] for c in report["checks"] if c["name"] == "webex.credentials")
    assert "BASCULE_WEBEX_ACCESS_TOKEN" in action


@pytest.mark.parametrize(("credentials", "check", "missing"), [
    (Credentials(graph_roles=("Organization.Read.All", "Calendars.ReadWrite")), "teams.scopes", "User.Read.All"),
    (Credentials(zoom_scopes=("user:read:admin", "webinar:read:admin")), "zoom.scopes", "meeting:read:admin"),
    (Credentials(webex_scopes=("spark-admin:people_read", "meeting:admin_schedule_read")), "webex.scopes",
     "spark-admin:licenses_read"),
])
def test_a_missing_read_scope_fails_and_names_it(onboarding: Any, credentials: Credentials, check: str,
                                                 missing: str) -> None:
    _server, tenant = onboarding(credentials=credentials)
    report = _onboard(tenant)
    assert list(_failed(report)) == [check]
    assert f"lacks read scope(s) {missing}" in _failed(report)[check]


def test_a_missing_write_scope_warns_with_the_step_that_needs_it(onboarding: Any) -> None:
    _server, tenant = onboarding(credentials=Credentials(graph_roles=("User.Read.All", "Organization.Read.All",
                                                                      "Calendars.Read")))
    report = _onboard(tenant)
    assert report["ready"]
    status, reason = _checks(report)["teams.scopes"]
    assert status == "warning"
    assert "lacks write scope Calendars.ReadWrite, needed later by cutover" in reason


def test_a_domain_the_visio_application_does_not_allow(onboarding: Any,
                                                       contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    server, tenant = onboarding()
    primary, secondary = contract_ministry[1]["tenant"]["domains"]
    state_of(server.sandbox).set_application(SANDBOX_CLIENT_ID, domains=(primary,))
    report = _onboard(tenant)
    assert _failed(report) == {f"visio.domain:{secondary}":
                               f"the Visio application is not authorised for the e-mail domain {secondary}"}
    assert _checks(report)[f"visio.domain:{primary}"][0] == "ok"


def test_an_inactive_visio_application_stops_the_domain_checks(onboarding: Any) -> None:
    server, tenant = onboarding()
    state_of(server.sandbox).set_application(SANDBOX_CLIENT_ID, active=False)
    report = _onboard(tenant)
    assert list(_failed(report)) == ["visio.application"]
    assert "application inactive" in _failed(report)["visio.application"]
    assert {status for name, (status, _) in _checks(report).items() if name.startswith("visio.domain:")} == {
        "skipped"}


@pytest.mark.parametrize(("siret", "reason"), [
    ("11004601800014", "SIRET 11004601800014 fails the Luhn check (a typo?)"),
    ("1100460180001", "SIRET '1100460180001' has 13 characters, not 14"),
    ("1100460180001A", "SIRET '1100460180001A' contains characters other than digits"),
])
def test_an_invalid_siret(onboarding: Any, siret: str, reason: str,
                          contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    _server, tenant = onboarding()
    text = tenant.read_text(encoding="utf-8")
    tenant.write_text(text.replace(f'siret = "{contract_ministry[1]["tenant"]["siret"]}"', f'siret = "{siret}"'),
                      encoding="utf-8")
    report = _onboard(tenant)
    assert _failed(report) == {"siret": reason}


def test_precreation_is_reported_when_a_token_request_may_have_created_a_user(
        onboarding: Any, contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    server, tenant = onboarding()
    meet = state_of(server.sandbox)
    meet.configure(allow_user_creation=True, fallback_to_email=True, sub_immutable=False, logged_in_share=0.0)
    tenant.write_text(tenant.read_text(encoding="utf-8").replace("precreates_users = false", "precreates_users = true"),
                      encoding="utf-8")
    report = _onboard(tenant)
    assert report["ready"]
    for domain in contract_ministry[1]["tenant"]["domains"]:
        status, reason = _checks(report)[f"visio.domain:{domain}"]
        assert status == "ok" and "this request may have pre-created the Visio user of agent" in reason
    assert sum(1 for user in meet.users() if user.origin == "provisional") == 2


def test_the_cli_prints_the_table_and_exits_1_when_not_ready(tmp_path: Path, onboarding: Any) -> None:
    _server, tenant = onboarding()
    env = {**os.environ, "BASCULE_DATA_DIR": str(tmp_path / ".bascule"), "BASCULE_VISIO_CLIENT_SECRET": "wrong"}
    env.pop("PREFECT_HOME", None)
    done = subprocess.run([sys.executable, "-m", "flows.cli", "onboard", "--tenant", str(tenant)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "NOT READY" in done.stdout
    assert "FAILED    visio.application" in done.stdout
    assert "→ check visio.client_id and the secret in BASCULE_VISIO_CLIENT_SECRET" in done.stdout


# ----------------------------------------------------------------------------------------------- unusable services

def test_an_unexpected_visio_answer_is_reported_as_what_it_is(onboarding: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that still sends form bodies, against Meet v1.27.0 (the sandbox's default): Visio answered 415.

    The report says so, with Meet's words and what to do, and does not blame the network.
    """
    from connectors import visio
    from tests.support.meet_clients import FormEncodedTokens

    class FormEncodingTarget(visio.VisioRoomTarget):
        def __init__(self, config: visio.VisioConfig, **options: Any) -> None:
            super().__init__(config, **{**options, "transport": FormEncodedTokens()})

    _server, tenant = onboarding()
    monkeypatch.setattr(visio, "VisioRoomTarget", FormEncodingTarget)
    report = _onboard(tenant)
    assert list(_failed(report)) == ["visio.application"]
    reason = _failed(report)["visio.application"]
    assert reason == ('Visio answered HTTP 415, which bascule does not expect: Unsupported media type '
                      '"application/x-www-form-urlencoded" in request.')
    assert "did not answer" not in reason
    action = next(c["action"] for c in report["checks"] if c["name"] == "visio.application")
    assert action.startswith("Visio refuses the encoding of bascule's request") and "network" not in action
    assert {status for name, (status, _) in _checks(report).items() if name.startswith("visio.domain:")} == {
        "skipped"}
    assert "@" not in json.dumps(report)


def test_an_unreachable_visio_did_not_answer(tmp_path: Path, contract_ministry: tuple[Path, dict[str, Any]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a transport failure (or a timeout, or a 5xx left after the retries) is "did not answer"."""
    from core.readiness import DomainAgent
    from flows.onboard import check_visio
    from flows.tenant import TenantConfig
    from tests.conftest import write_tenant

    out, manifest = contract_ministry
    monkeypatch.setenv("BASCULE_VISIO_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    settings = TenantConfig.load(write_tenant(tmp_path, manifest, ldif_path=out / "directory.ldif")).visio
    assert settings is not None
    nowhere = settings.model_copy(update={"api_url": "http://127.0.0.1:9/meet/external-api/v1.0/"})
    domain = manifest["tenant"]["domains"][0]
    results = check_visio.fn(nowhere, {domain: DomainAgent(domain, "anchor-1", f"agent@{domain}")})
    assert [(r.name, r.status.value) for r in results] == [("visio.application", "failed"),
                                                           (f"visio.domain:{domain}", "skipped")]
    assert results[0].reason == "Visio did not answer (cannot connect to http://127.0.0.1:9 (ConnectError))"
    assert results[0].action == "check visio.api_url and the network path, then run onboarding again"


@pytest.mark.parametrize(("error", "reason", "action", "skipped"), [
    (lambda: UnexpectedResponse("zoom", "POST oauth/token", status=404, body="<h1>Not Found</h1>"),
     "Zoom answered HTTP 404, which bascule does not expect: Not Found",
     "check sources.zoom.api_url and oauth_url: there is no such endpoint at that address (host or path)",
     "Zoom answered HTTP 404"),
    (lambda: UnexpectedResponse("zoom", "POST oauth/token", status=308, body=""),
     "Zoom answered HTTP 308, which bascule does not expect",
     "check sources.zoom.api_url and oauth_url: Zoom redirects it (http instead of https, a missing trailing "
     "slash, a moved API); bascule follows no redirect", "Zoom answered HTTP 308"),
    (lambda: TransientConnectorError("zoom", "token request failed (ReadTimeout)"),
     "Zoom did not answer (token request failed (ReadTimeout))",
     "check sources.zoom.api_url and oauth_url and the network path, then run onboarding again",
     "Zoom did not answer"),
    (lambda: PermanentConnectorError("zoom", "a token answer without access_token"),
     "Zoom gave an answer bascule cannot use (a token answer without access_token)",
     "check sources.zoom.api_url and oauth_url; if it is right, report the answer to bascule's maintainers",
     "Zoom gave an unusable answer"),
], ids=["undocumented status", "redirect", "transient", "other permanent"])
def test_a_source_that_cannot_be_used_is_reported_by_what_happened(
        error: Any, reason: str, action: str, skipped: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """check_source: only a transient failure is "did not answer" (the probe is where the connector raises)."""
    from flows import onboard as onboard_module
    from flows.tenant import TenantConfig
    from tests.conftest import write_tenant

    def failing_probe(_tenant: Any, _platform: Platform) -> tuple[str, Any]:
        def probe() -> Any:
            raise error()
        return "BASCULE_ZOOM_CLIENT_SECRET", probe

    monkeypatch.setattr(onboard_module, "_probe", failing_probe)
    out, manifest = contract_ministry
    tenant = TenantConfig.load(write_tenant(tmp_path, manifest, ldif_path=out / "directory.ldif"))
    credentials, scopes = onboard_module.check_source.fn(tenant, Platform.ZOOM)
    assert (credentials.status.value, credentials.reason, credentials.action) == ("failed", reason, action)
    assert (scopes.status.value, scopes.reason) == ("skipped", f"not checked: {skipped}")


def _with_calendar(tenant: Path, section: str) -> None:
    tenant.write_text(tenant.read_text(encoding="utf-8") + "\n" + section, encoding="utf-8")


def test_the_calendar_check_says_who_tells_attendees_and_whether_scans_are_delta(
        onboarding: Any, tmp_path: Path) -> None:
    """[calendar] on Exchange Online: ok through the Teams application; on a CalDAV server: one directory agent's
    calendar tried — Xandikos schedules and syncs; a URL where the agent has no calendar (Radicale, which makes
    none by itself) warns; so does a server that does not answer (only the calendar scan needs it), naming the
    setting to check."""
    from tests.conftest import unavailable
    from tests.support.caldav_servers import free_port, start_radicale, start_xandikos

    _server, tenant = onboarding()
    _with_calendar(tenant, '[calendar]\nsystem = "graph"\n')
    status, reason = _checks(_onboard(tenant))["calendar"]
    assert status == "ok" and "Exchange" in reason

    try:
        xandikos = start_xandikos(tmp_path / "xandikos")
        radicale = start_radicale(tmp_path / "radicale", remote_user=True)
    except (OSError, RuntimeError) as exc:
        unavailable(f"CalDAV servers: {exc}")
    try:
        for url, expected, words in (
                (f"{xandikos.url}/{{user}}/calendars/calendar/", "ok", ("tells the attendees", "only the changes")),
                (f"{radicale.url}/{{user}}/calendar/", "warning", ("has no calendar",)),
                (f"http://127.0.0.1:{free_port()}/{{user}}/", "warning", ("did not answer",))):
            _server, tenant = onboarding()
            _with_calendar(tenant, f'[calendar]\nsystem = "caldav"\n\n[calendar.caldav]\ncalendar_url = "{url}"\n'
                                   'remote_user_header = "X-Remote-User"\n')
            report = _onboard(tenant)
            status, reason = _checks(report)["calendar"]
            assert status == expected and all(word in reason for word in words), (url, status, reason)
            assert report["ready"]          # only the calendar scan needs the server: a warning blocks nothing
            assert "@" not in json.dumps(report)           # the agent is named by its directory anchor
    finally:
        xandikos.stop()
        radicale.stop()
