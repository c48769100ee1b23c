"""Flow onboard: register a tenant and say, check by check, whether it is ready to be migrated.

Runbook: read the tenant file → register the tenant → the SIRET and the prices (no I/O) → the directory's first
page, then one agent per domain for the Visio check → each configured source: a token, then the scopes it carries →
the Visio application: one token request per domain → the verdict stored on the tenant row, a markdown artifact,
the report returned. Ready iff no check failed; later flows call `require_ready` and refuse a tenant that is not
ready unless forced.

A service that cannot be used is reported as what happened: "did not answer" only for a transport failure, a
timeout or a 5xx left after the retries (check the network path); an HTTP status the service's contract does not
document is shown with its status and a short redacted excerpt of the body (`connectors.errors.UnexpectedResponse`,
e.g. "Visio answered HTTP 415 …: Unsupported media type …") and an action that fits the status.

Nothing secret reaches the report, the logs or the artifact: check names, domains, directory anchors, scope names,
counts, the names of the environment variables that hold secrets, and redacted excerpts of unexpected answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from connectors.errors import (
    ConnectorAuthError,
    ConnectorError,
    NotFound,
    TransientConnectorError,
    UnexpectedResponse,
)
from connectors.retry import RetryPolicy
from core import DirectoryEntry, Platform, Quarantined
from core.licences import annual_unit_cost
from core.readiness import (
    URL_SETTINGS,
    VISIO_URL_SETTING,
    AccessCheck,
    AgentPicker,
    CheckResult,
    CheckStatus,
    DomainAgent,
    PriceLine,
    ReadinessReport,
    application_refusal,
    calendar_failure,
    calendar_result,
    cost_model_result,
    credentials_result,
    directory_failure,
    directory_result,
    not_ready_summary,
    scopes_result,
    siret_result,
    source_failure,
    unexpected_answer,
    visio_application_result,
    visio_domain_result,
    visio_failure,
)
from core.visio import DomainCheck
from db import models
from db.repositories import TenantRepository
from flows.errors import OperatorError
from flows.runtime import run_name, transaction
from flows.secrets import MissingSecretError, read_secret
from flows.settings import Settings
from flows.tenant import TenantConfig, VisioSettings

log = logging.getLogger(__name__)

SYSTEM_NAMES = {Platform.ZOOM: "Zoom", Platform.TEAMS: "Microsoft Entra", Platform.WEBEX: "Webex"}
DIRECTORY_PAGE = 500
VISIO_TIMEOUT_SECONDS = 15.0
VISIO_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=30.0)
STATUS_LABELS = {CheckStatus.OK: "ok", CheckStatus.WARNING: "WARNING", CheckStatus.FAILED: "FAILED",
                 CheckStatus.SKIPPED: "skipped"}


class TenantNotReady(OperatorError, ValueError):
    """The tenant was never onboarded, or its last onboarding found a failed check (message fits on one line)."""


# ----------------------------------------------------------------------------------------------- prices

def price_lines(tenant: TenantConfig) -> list[PriceLine]:
    """The tenant's cost-model prices and contract lines, as the cost-model check reads them."""
    lines = [PriceLine(Platform(sku.platform), sku.sku_key, "cost_model", sku.annual_unit_cost,
                       tenant.cost_model.currency) for sku in tenant.cost_model.skus]
    lines += [PriceLine(Platform(line.platform), line.sku_key, line.contract_ref,
                        annual_unit_cost(line.unit_price, line.billing_period_months)
                        if line.unit_price is not None else None,
                        line.currency, line.term_start, line.term_end, line.auto_renew)
              for line in tenant.contracts]
    return lines


def configured_platforms(tenant: TenantConfig) -> list[Platform]:
    sources = tenant.sources
    return [platform for platform, settings in ((Platform.ZOOM, sources.zoom), (Platform.TEAMS, sources.teams),
                                                (Platform.WEBEX, sources.webex)) if settings is not None]


# ----------------------------------------------------------------------------------------------- directory

@task(name="check-directory", cache_policy=NO_CACHE)
def check_directory(tenant: TenantConfig) -> tuple[CheckResult, dict[str, DomainAgent | None]]:
    """Read the directory's first page (the `directory` check), then go on until each domain has an agent."""
    from flows.directory import directory_reader

    settings = tenant.directory
    source = (f"LDIF export {settings.ldif_path.name}" if settings.kind == "ldif" and settings.ldif_path
              else f"LDAP {settings.url}")
    identity = tenant.identity
    picker = AgentPicker(tenant.domains,
                         excluded_patterns=(*identity.non_person_patterns, *identity.privileged_patterns),
                         excluded_populations=identity.population_policy)
    try:
        reader = directory_reader(settings, settings.ldif_path if settings.kind == "ldif" else None,
                                  page_size=min(DIRECTORY_PAGE, settings.page_size))
        pages = iter(reader.iter_pages())
        first = next(pages)
    except MissingSecretError as exc:
        return directory_failure(source, str(exc), "set the bind password's environment variable or Prefect "
                                                   "Secret block"), picker.picked()
    except ConnectorAuthError as exc:
        return directory_failure(source, _bare(exc), "check directory.bind_dn and the bind password"), \
            picker.picked()
    except ConnectorError as exc:
        action = ("export the directory again, or correct directory.ldif_path" if settings.kind == "ldif"
                  else "check directory.url, base_dn and the network path to the server")
        return directory_failure(source, _bare(exc), action), picker.picked()
    people = [item for item in first.items if isinstance(item, DirectoryEntry)]
    quarantined: dict[str, int] = {}
    for item in first.items:
        if isinstance(item, Quarantined):
            quarantined[item.reason.value] = quarantined.get(item.reason.value, 0) + 1
    result = directory_result(source=source, people=len(people), quarantined=quarantined,
                              out_of_scope=first.skipped, records=len(first.items) + first.skipped)
    _offer(picker, first.items)
    try:
        for page in pages:
            if picker.done:
                break
            _offer(picker, page.items)
    except ConnectorError as exc:
        get_run_logger().warning("tenant %s: the directory stopped answering while agents were picked: %s",
                                 tenant.id, type(exc).__name__)
    return result, picker.picked()


def _offer(picker: AgentPicker, items: Iterable[object]) -> None:
    for item in items:
        if picker.done:
            return
        if isinstance(item, DirectoryEntry):
            picker.offer(item)


def _bare(exc: ConnectorError) -> str:
    """The connector's message without the `system:` prefix the report already shows."""
    prefix = f"{exc.system}: "
    text = str(exc)
    return text[len(prefix):] if text.startswith(prefix) else text


def _unusable(system: str, exc: ConnectorError, *, url_setting: str) -> tuple[str, str, str]:
    """Why a service could not be used, what to do, and a few words for the checks skipped because of it.

    Only a transient failure (transport, timeout, 5xx after the retries) is "did not answer"; an undocumented
    status is shown as such; any other permanent failure is an answer bascule could not use.
    """
    if isinstance(exc, UnexpectedResponse):
        reason, action = unexpected_answer(system, exc.status, exc.body, url_setting=url_setting)
        return reason, action, f"{system} answered HTTP {exc.status}"
    if isinstance(exc, TransientConnectorError):
        return (f"{system} did not answer ({_bare(exc)})",
                f"check {url_setting} and the network path, then run onboarding again", f"{system} did not answer")
    return (f"{system} gave an answer bascule cannot use ({_bare(exc)})",
            f"check {url_setting}; if it is right, report the answer to bascule's maintainers",
            f"{system} gave an unusable answer")


# ----------------------------------------------------------------------------------------------- sources

@task(name="check-source", cache_policy=NO_CACHE)
def check_source(tenant: TenantConfig, platform: Platform) -> list[CheckResult]:
    """`<platform>.credentials` and `<platform>.scopes`: one token request (Zoom, Entra) or a few read probes."""
    system = SYSTEM_NAMES[platform]
    secret_name, probe = _probe(tenant, platform)
    try:
        access = probe()
    except MissingSecretError as exc:
        return [source_failure(platform, "credentials", f"secret not set: {exc}",
                               f"set the environment variable {secret_name} or its Prefect Secret block"),
                _skipped(platform, "scopes", "not checked: no credentials")]
    except ConnectorError as exc:
        reason, action, short = _unusable(system, exc, url_setting=URL_SETTINGS[platform])
        return [source_failure(platform, "credentials", reason, action),
                _skipped(platform, "scopes", f"not checked: {short}")]
    return [credentials_result(platform, access, secret_name=secret_name), scopes_result(platform, access)]


def _skipped(platform: Platform, check: str, reason: str) -> CheckResult:
    return CheckResult(f"{platform.value}.{check}", CheckStatus.SKIPPED, reason)


def _probe(tenant: TenantConfig, platform: Platform) -> tuple[str, Callable[[], AccessCheck]]:
    """The environment variable that holds the platform's secret, and the probe (secrets are read when it runs)."""
    sources = tenant.sources
    if platform is Platform.ZOOM:
        zoom = sources.zoom
        assert zoom is not None

        def zoom_probe() -> AccessCheck:
            from connectors.zoom import ZoomConfig
            from connectors.zoom import check_access as zoom_access

            return zoom_access(ZoomConfig(api_url=zoom.api_url, oauth_url=zoom.oauth_url, account_id=zoom.account_id,
                                          client_id=zoom.client_id,
                                          client_secret=read_secret(zoom.client_secret_env).get_secret_value(),
                                          plan=zoom.plan))

        return zoom.client_secret_env, zoom_probe
    if platform is Platform.TEAMS:
        teams = sources.teams
        assert teams is not None

        def graph_probe() -> AccessCheck:
            from connectors.graph import GraphConfig
            from connectors.graph import check_access as graph_access

            return graph_access(GraphConfig(tenant_id=teams.tenant_id, client_id=teams.client_id,
                                            client_secret=read_secret(teams.client_secret_env).get_secret_value(),
                                            graph_url=teams.graph_url, authority=teams.authority,
                                            ca_file=teams.ca_file))

        return teams.client_secret_env, graph_probe
    webex = sources.webex
    assert webex is not None

    def webex_probe() -> AccessCheck:
        from connectors.webex import WebexConfig
        from connectors.webex import check_access as webex_access

        return webex_access(WebexConfig(api_url=webex.api_url, org_id=webex.org_id,
                                        access_token=read_secret(webex.access_token_env).get_secret_value()))

    return webex.access_token_env, webex_probe


# ----------------------------------------------------------------------------------------------- calendars

@task(name="check-calendar", cache_policy=NO_CACHE)
def check_calendar(tenant: TenantConfig, agents: Mapping[str, DomainAgent | None]) -> CheckResult | None:
    """`calendar` (when the tenant has a [calendar] section): Exchange Online needs the Teams application; a CalDAV
    server is tried on one directory agent's calendar (who tells attendees: OPTIONS; change tracking: the
    collection's sync-token)."""
    from flows.wiring import build_calendar

    section = tenant.calendar
    if section is None:
        return None
    if section.system == "graph":
        if tenant.sources.teams is None:
            return calendar_failure(CheckStatus.FAILED, "[calendar] system = \"graph\" reaches the mailboxes "
                                    "through the Teams application, which is not configured",
                                    "add [sources.teams], or set [calendar] to the CalDAV server organisers use")
        return calendar_result("graph")
    sample = next((agent for agent in agents.values() if agent is not None), None)
    if sample is None:
        return calendar_failure(CheckStatus.SKIPPED, "not tried: no agent was found in the directory", "")
    setting = "calendar.caldav.calendar_url"
    try:
        with ExitStack() as stack:
            calendar = build_calendar(tenant, stack)
            syncs = calendar.syncs(sample.email)
            schedules = calendar.schedules(sample.email)
    except MissingSecretError as exc:
        return calendar_failure(CheckStatus.FAILED, f"secret not set: {exc}",
                                "set the CalDAV service account's password variable or its Prefect Secret block")
    except NotFound:
        return calendar_failure(CheckStatus.WARNING, f"agent {sample.anchor} has no calendar at the configured URL",
                                f"check {setting} and calendar.caldav.user (an agent without a calendar is "
                                "counted, not migrated in place)")
    except ConnectorAuthError as exc:
        return calendar_failure(CheckStatus.FAILED, f"the CalDAV server refused bascule ({_bare(exc)})",
                                "check the service account (username, password_env) or the trusted header")
    except ConnectorError as exc:
        # Only the calendar scan needs the server: one that does not answer today warns (the scan quarantines the
        # calendars it cannot read, their series go by mail) rather than holding every other flow back.
        reason, action, _short = _unusable("the CalDAV server", exc, url_setting=setting)
        status = CheckStatus.WARNING if isinstance(exc, TransientConnectorError) else CheckStatus.FAILED
        return calendar_failure(status, reason, action)
    return calendar_result("caldav", anchor=sample.anchor, schedules=schedules, syncs=syncs)


# ----------------------------------------------------------------------------------------------- Visio

class DomainChecker(Protocol):
    """What the Visio check needs from the Visio connector: one token request for one agent's e-mail."""

    def check_domain(self, email: str) -> DomainCheck: ...


DomainCheckerFactory = Callable[[VisioSettings, str], AbstractContextManager[DomainChecker]]


def visio_target(settings: VisioSettings, secret: str) -> AbstractContextManager[DomainChecker]:
    """The Visio connector for the tenant's application (a few token requests: no pacing, few retries)."""
    from connectors.retry import RetryStats
    from connectors.throttle import NoThrottle
    from connectors.visio import VisioConfig, VisioRoomTarget

    return VisioRoomTarget(VisioConfig(api_url=settings.api_url, client_id=settings.client_id, client_secret=secret,
                                       timeout_seconds=VISIO_TIMEOUT_SECONDS),
                           throttle=NoThrottle(), retry=VISIO_RETRY, stats=RetryStats())


@task(name="check-visio", cache_policy=NO_CACHE)
def check_visio(visio: VisioSettings | None, agents: Mapping[str, DomainAgent | None], *,
                factory: DomainCheckerFactory = visio_target) -> list[CheckResult]:
    """`visio.application` and one `visio.domain:<domain>` per tenant domain: a token request for one agent each."""
    if visio is None:
        return [visio_failure("no [visio] table in the tenant file: the Visio application is not configured",
                              "add [visio] (api_url, client_id, client_secret_env) as given by the Visio operators")]
    try:
        secret = read_secret(visio.client_secret_env).get_secret_value()
    except MissingSecretError as exc:
        return [visio_failure(f"secret not set: {exc}",
                              f"set the environment variable {visio.client_secret_env} or its Prefect Secret block"),
                *(_skipped_domain(domain) for domain in agents)]
    results: list[CheckResult] = []
    asked = 0
    try:
        with factory(visio, secret) as target:
            for domain, agent in agents.items():
                if agent is None:
                    results.append(visio_domain_result(domain, None, anchor=None,
                                                       precreates_users=visio.precreates_users))
                    continue
                found = target.check_domain(agent.email)
                refusal = application_refusal(found)
                if refusal is not None:
                    return [visio_application_result(refusal, secret_name=visio.client_secret_env, domains=asked),
                            *(_skipped_domain(name) for name in agents)]
                asked += 1
                results.append(visio_domain_result(domain, found, anchor=agent.anchor,
                                                   precreates_users=visio.precreates_users))
    except ConnectorError as exc:
        reason, action, _short = _unusable("Visio", exc, url_setting=VISIO_URL_SETTING)
        return [visio_failure(reason, action), *(_skipped_domain(name) for name in agents)]
    if not asked:
        return [CheckResult("visio.application", CheckStatus.SKIPPED,
                            "not tested: no agent of any tenant domain was found in the directory"), *results]
    return [visio_application_result(None, secret_name=visio.client_secret_env, domains=asked), *results]


def _skipped_domain(domain: str) -> CheckResult:
    return CheckResult(f"visio.domain:{domain}", CheckStatus.SKIPPED, "not checked: the Visio application could not "
                       "be used (see visio.application)", details={"domain": domain})


# ----------------------------------------------------------------------------------------------- state

@task(name="record-readiness", cache_policy=NO_CACHE)
def record_readiness(database_url: str, report: ReadinessReport, *, name: str, siret: str, config_path: str,
                     now: datetime) -> None:
    """Register the tenant (or refresh it) and store the verdict and the report on its row."""
    with transaction(database_url) as session:
        TenantRepository(session).ensure(report.tenant_id, name=name, siret=siret, config_path=config_path,
                                         config_hash=report.config_hash, now=now)
        _store_readiness(session, report, now=now)


def _store_readiness(session: Session, report: ReadinessReport, *, now: datetime) -> None:
    # Stand-in for TenantRepository.record_readiness (db/ belongs to another owner; asked for in the report).
    row = session.get(models.Tenant, report.tenant_id)
    if row is None:
        raise LookupError(f"tenant {report.tenant_id} is not registered")
    row.ready = report.ready
    row.readiness = dict(report.to_json())
    row.updated_at = now


def require_ready(database_url: str, tenant_id: str, *, force: bool, config_hash: str | None = None) -> None:
    """Refuse a tenant that was never onboarded or is not ready, unless `force`; raises TenantNotReady.

    With `config_hash` (TenantConfig.file_hash of the file the caller runs with), a tenant file changed since its
    onboarding is refused too: the verdict was about another configuration.
    """
    with transaction(database_url) as session:
        row = TenantRepository(session).get(tenant_id)
        ready = bool(row.ready) if row is not None else False
        readiness = dict(row.readiness) if row is not None and row.readiness else None
    problem: str | None = None
    if readiness is None:
        problem = (f"tenant {tenant_id} was never onboarded: run `bascule onboard --tenant FILE` first, "
                   "or pass --force")
    else:
        report = ReadinessReport.from_json(readiness)
        if not ready:
            problem = (f"tenant {tenant_id} is not ready ({not_ready_summary(report) or 'see its readiness report'})"
                       ": fix it and run `bascule onboard` again, or pass --force")
        elif config_hash is not None and report.config_hash is not None and report.config_hash != config_hash:
            problem = (f"tenant {tenant_id}: the tenant file changed since it was onboarded: run `bascule onboard` "
                       "again, or pass --force")
    if problem is None:
        return
    if force:
        log.warning("%s (forced: going on)", problem.split(":")[0])
        return
    raise TenantNotReady(problem)


# ----------------------------------------------------------------------------------------------- rendering

def _report(report: ReadinessReport | Mapping[str, Any]) -> ReadinessReport:
    return report if isinstance(report, ReadinessReport) else ReadinessReport.from_json(report)


def _headline(report: ReadinessReport) -> str:
    counts = report.counts()
    verdict = "READY" if report.ready else "NOT READY"
    return (f"Tenant {report.tenant_id}: {verdict} — {counts['ok']} ok, {counts['warning']} warning(s), "
            f"{counts['failed']} failed, {counts['skipped']} skipped (checked {report.checked_at.isoformat()})")


def render_readiness(report: ReadinessReport | Mapping[str, Any]) -> str:
    """The readiness report as a plain-text table for the CLI (accepts the flow's returned dict)."""
    found = _report(report)
    width = max([len("CHECK"), *(len(check.name) for check in found.checks)])
    lines = [_headline(found), "", f"{'STATUS':<8}  {'CHECK':<{width}}  REASON"]
    for check in found.checks:
        lines.append(f"{STATUS_LABELS[check.status]:<8}  {check.name:<{width}}  {check.reason}")
        if check.action and check.status in (CheckStatus.FAILED, CheckStatus.WARNING):
            lines.append(f"{'':<8}  {'':<{width}}  → {check.action}")
    return "\n".join(lines)


def readiness_markdown(report: ReadinessReport | Mapping[str, Any]) -> str:
    """The readiness report as the markdown of the Prefect artifact."""
    found = _report(report)
    rows = ["| Check | Status | Reason | What to do |", "|---|---|---|---|"]
    rows += [f"| `{check.name}` | {STATUS_LABELS[check.status]} | {_cell(check.reason)} | {_cell(check.action)} |"
             for check in found.checks]
    return "\n".join([f"## {_headline(found)}", "", *rows, ""])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------------------------- flow

@flow(name="onboard", flow_run_name=run_name("onboard"), log_prints=False)
def onboard(tenant_file: str, now: str | None = None) -> dict[str, Any]:
    """Register the tenant and produce its readiness report (stored on the tenant row, published, returned)."""
    logger = get_run_logger()
    settings = Settings()
    path = Path(tenant_file)
    tenant = TenantConfig.load(path)
    checked_at = datetime.fromisoformat(now) if now else datetime.now(UTC)
    if checked_at.tzinfo is None:
        checked_at = checked_at.replace(tzinfo=UTC)

    checks: list[CheckResult] = [siret_result(tenant.siret)]
    checks.append(cost_model_result(price_lines(tenant), platforms=configured_platforms(tenant),
                                    currency=tenant.cost_model.currency, today=checked_at.date()))
    directory, agents = check_directory(tenant)
    checks.append(directory)
    for platform in configured_platforms(tenant):
        checks.extend(check_source(tenant, platform))
    checks.extend(check_visio(tenant.visio, agents))
    calendar = check_calendar(tenant, agents)
    if calendar is not None:
        checks.append(calendar)

    report = ReadinessReport(tenant.id, checked_at, tuple(checks), config_hash=TenantConfig.file_hash(path))
    record_readiness(settings.database, report, name=tenant.name, siret=tenant.siret,
                     config_path=str(path.resolve()), now=checked_at)
    create_markdown_artifact(key=f"onboard-{tenant.id}", markdown=readiness_markdown(report),
                             description=f"Readiness of {tenant.id}")
    for check in report.checks:
        if check.status in (CheckStatus.FAILED, CheckStatus.WARNING):
            logger.warning("tenant %s: %s %s: %s", tenant.id, check.name, check.status.value, check.reason)
    logger.info("tenant %s: %s", tenant.id, "ready" if report.ready else "NOT ready")
    return report.to_json()
