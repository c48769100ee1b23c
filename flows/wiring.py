"""Building connectors from a tenant file: the only place that reads secrets and chooses rates and policies."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from connectors.retry import RetryPolicy, RetryStats
from connectors.roles import OrganiserCalendar
from connectors.throttle import LocalThrottle, NoThrottle, Throttle
from core import Platform
from core.emails import normalise_domain
from core.licences import CostModel, annual_unit_cost
from flows.errors import OperatorError
from flows.extract import SourceSet
from flows.secrets import read_secret
from flows.settings import Settings
from flows.tenant import TenantConfig

# Production: a few attempts, and never a single wait beyond two minutes (a daily limit ends the stream instead).
RETRY = RetryPolicy(attempts=8, base_delay=1.0, max_delay=120.0)
# Webex publishes no numbers: about 4 requests in flight at ~150 ms (webex.md §7); 429s are honoured anyway.
WEBEX_REQUESTS_PER_SECOND = 25.0
GRAPH_TENANT_USERS = 1000
# A page of meetings is one Prefect task: ~100 hosts is a few hundred meetings (prefect.md: never per item).
MEETING_HOSTS_PER_PAGE = 100


def cost_model(tenant: TenantConfig) -> CostModel:
    """Prices per SKU: the tenant's explicit prices, then contract prices, else the State benchmark."""
    prices: dict[tuple[Platform, str], Decimal] = {}
    for line in tenant.contracts:
        if line.unit_price is not None:
            prices[(Platform(line.platform), line.sku_key)] = annual_unit_cost(line.unit_price,
                                                                               line.billing_period_months)
    for sku in tenant.cost_model.skus:
        prices[(Platform(sku.platform), sku.sku_key)] = sku.annual_unit_cost
    return CostModel(default_annual_unit_cost=tenant.cost_model.default_annual_unit_cost, prices=prices)


def _source_set(platform: Platform, roles: tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]],
                config: object, throttle: Throttle, clock: Callable[[], datetime],
                activity: Callable[..., Any] | None = None) -> SourceSet:
    """The roles of a platform (and the reader of its users' activity, when it is read apart), sharing one
    throttle and one set of retry counters."""
    stats = RetryStats()
    accounts, licences, meetings = (role(config, throttle=throttle, retry=RETRY, stats=stats, clock=clock)
                                    for role in roles)
    sign_ins = activity(config, throttle=throttle, retry=RETRY, stats=stats, clock=clock) if activity else None
    return SourceSet(platform, accounts, licences, meetings, stats, sign_ins)


def _pace(settings: Settings, rates: dict[str, float]) -> Throttle:
    return LocalThrottle(rates) if settings.pacing else NoThrottle()


def _share(settings: Settings) -> float:
    """The part of an account's published rate one process paces at: 97 % of it, divided among the slots of its
    shared limit (each slot holder paces at its share)."""
    return 0.97 / max(1, settings.account_slots if settings.shared_limits else 1)


def _internal_domains(tenant: TenantConfig) -> frozenset[str]:
    """The normal form the connectors' parsed invitee addresses carry (IDNA): an accented domain is internal too."""
    return frozenset(key for domain in (*tenant.domains, *tenant.alias_domains)
                     if (key := normalise_domain(domain)) is not None)


def _zoom(tenant: TenantConfig, settings: Settings) -> tuple[Any, Throttle]:
    from connectors.zoom import ZoomConfig, throttle_rates

    zoom = tenant.sources.zoom
    assert zoom is not None
    config = ZoomConfig(api_url=zoom.api_url, oauth_url=zoom.oauth_url, account_id=zoom.account_id,
                        client_id=zoom.client_id, client_secret=read_secret(zoom.client_secret_env).get_secret_value(),
                        plan=zoom.plan, internal_domains=_internal_domains(tenant),
                        hosts_per_page=MEETING_HOSTS_PER_PAGE)
    return config, _pace(settings, throttle_rates(zoom.account_id, zoom.plan, share=_share(settings)))


def _graph(tenant: TenantConfig, settings: Settings, *, internal: bool = True) -> tuple[Any, Throttle]:
    from connectors.graph import GraphConfig
    from connectors.graph import throttle_rates as graph_rates

    teams = tenant.sources.teams
    assert teams is not None
    config = GraphConfig(tenant_id=teams.tenant_id, client_id=teams.client_id,
                         client_secret=read_secret(teams.client_secret_env).get_secret_value(),
                         graph_url=teams.graph_url, authority=teams.authority, ca_file=teams.ca_file)
    if internal:
        config = replace(config, internal_domains=_internal_domains(tenant), hosts_per_page=MEETING_HOSTS_PER_PAGE)
    # A ministry has more than 500 users: the largest identity budget of graph.md §8 applies.
    return config, _pace(settings, graph_rates(teams.tenant_id, users=GRAPH_TENANT_USERS, share=_share(settings)))


def _webex(tenant: TenantConfig, settings: Settings) -> tuple[Any, Throttle]:
    from connectors.webex import PEOPLE_IDS_PER_LOOKUP, WebexConfig

    webex = tenant.sources.webex
    assert webex is not None
    config = WebexConfig(api_url=webex.api_url, org_id=webex.org_id,
                         access_token=read_secret(webex.access_token_env).get_secret_value(),
                         internal_domains=tuple(sorted(_internal_domains(tenant))),
                         hosts_per_page=min(MEETING_HOSTS_PER_PAGE, PEOPLE_IDS_PER_LOOKUP))
    return config, _pace(settings, {f"webex:{webex.org_id}": WEBEX_REQUESTS_PER_SECOND * _share(settings) / 0.97})


def build_sources(tenant: TenantConfig, settings: Settings, now: datetime | None) -> list[SourceSet]:
    """One SourceSet per platform the tenant has; secrets read now, from the environment or Prefect."""
    clock: Callable[[], datetime] = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    sources: list[SourceSet] = []
    if tenant.sources.zoom is not None:
        from connectors.zoom import ZoomAccountSource, ZoomLicenceSource, ZoomMeetingSource

        sources.append(_source_set(Platform.ZOOM, (ZoomAccountSource, ZoomLicenceSource, ZoomMeetingSource),
                                   *_zoom(tenant, settings), clock))
    if tenant.sources.teams is not None:
        from connectors.graph import GraphAccountSource, GraphLicenceSource, GraphMeetingSource, GraphSignIns

        sources.append(_source_set(Platform.TEAMS, (GraphAccountSource, GraphLicenceSource, GraphMeetingSource),
                                   *_graph(tenant, settings), clock, activity=GraphSignIns))
    if tenant.sources.webex is not None:
        from connectors.webex import WebexAccountSource, WebexLicenceSource, WebexMeetingSource

        sources.append(_source_set(Platform.WEBEX, (WebexAccountSource, WebexLicenceSource, WebexMeetingSource),
                                   *_webex(tenant, settings), clock))
    return sources


def build_releasers(tenant: TenantConfig, settings: Settings, stack: ExitStack) -> dict[str, Any]:
    """The tenant's licence releasers by platform (connectors.roles.LicenceReleaser), paced at the same share of
    each account's rate as extraction; closed with `stack`."""
    releasers: dict[str, Any] = {}
    if tenant.sources.zoom is not None:
        from connectors.zoom import ZoomLicenceRelease

        config, throttle = _zoom(tenant, settings)
        releasers[Platform.ZOOM.value] = ZoomLicenceRelease(config, throttle=throttle, retry=RETRY, stats=RetryStats())
    if tenant.sources.teams is not None:
        from connectors.graph import GraphLicenceRelease

        config, throttle = _graph(tenant, settings)
        releasers[Platform.TEAMS.value] = GraphLicenceRelease(config, throttle=throttle, retry=RETRY,
                                                              stats=RetryStats())
    if tenant.sources.webex is not None:
        from connectors.webex import WebexLicenceRelease

        config, throttle = _webex(tenant, settings)
        releasers[Platform.WEBEX.value] = stack.enter_context(WebexLicenceRelease(
            config, throttle=throttle, retry=RETRY, stats=RetryStats()))
    for releaser in releasers.values():
        close = getattr(releaser, "close", None)
        if close is not None and not hasattr(releaser, "__exit__"):
            stack.callback(close)
    return releasers


def build_targets(tenant: TenantConfig, settings: Settings, stack: ExitStack) -> Any:
    """The systems a cutover writes to: Visio, the Teams calendars, the organisers' calendars of the [calendar]
    section, the mail relay (closed with `stack`)."""
    from connectors.visio import VisioConfig, VisioRoomTarget
    from flows.cutover import Targets

    if tenant.visio is None:
        raise ValueError(f"tenant {tenant.id} has no [visio] table: rooms cannot be created")
    visio_settings = tenant.visio
    visio_key = f"visio:{urlsplit(visio_settings.api_url).netloc}"
    share = _share(settings)
    visio = stack.enter_context(VisioRoomTarget(
        VisioConfig(api_url=visio_settings.api_url, client_id=visio_settings.client_id,
                    client_secret=read_secret(visio_settings.client_secret_env).get_secret_value()),
        throttle=_pace(settings, {visio_key: tenant.waves.visio_requests_per_second * share / 0.97}), retry=RETRY,
        stats=RetryStats()))
    calendar = None
    if tenant.sources.teams is not None:
        from connectors.graph import GraphCalendar

        config, throttle = _graph(tenant, settings, internal=False)
        calendar = stack.enter_context(GraphCalendar(config, throttle=throttle, retry=RETRY, stats=RetryStats()))
    mail = build_mail_sender(tenant)
    mail_domain = tenant.mail.mailbox.rpartition("@")[2] if tenant.mail is not None else "bascule.invalid"
    organisers = build_calendar(tenant, stack, settings) if tenant.calendar is not None else None
    return Targets(visio=visio, calendar=calendar, organisers=organisers, mail=mail, mail_domain=mail_domain,
                   hosts_in_parallel=tenant.waves.hosts_in_parallel)


def build_mail_sender(tenant: TenantConfig) -> Any:
    """The sender of calendar updates through the ministry's relay (connectors.mail); None without [mail]."""
    if tenant.mail is None:
        return None
    from connectors.mail import SmtpConfig, SmtpInvitationSender

    relay = tenant.mail
    password = read_secret(relay.password_env).get_secret_value() if relay.password_env else None
    config = SmtpConfig(host=relay.host, port=relay.port, mailbox=relay.mailbox, mailbox_name=relay.mailbox_name,
                        username=relay.username, password=password, starttls=relay.starttls)
    return SmtpInvitationSender(config, throttle=NoThrottle(), retry=RETRY, stats=RetryStats())


def build_livekit_rooms(tenant: TenantConfig, settings: Settings) -> Any:
    """RoomService polling for the tenant's Visio LiveKit, or None without a [visio.livekit] section."""
    from connectors.livekit import LiveKitConfig, LiveKitRooms

    livekit = tenant.visio.livekit if tenant.visio else None
    if livekit is None:
        return None
    config = LiveKitConfig(url=livekit.url, api_key=livekit.api_key,
                           api_secret=read_secret(livekit.api_secret_env).get_secret_value())
    return LiveKitRooms(config, throttle=NoThrottle(), retry=RETRY, stats=RetryStats())


def build_calendar(tenant: TenantConfig, stack: ExitStack, settings: Settings | None = None) -> OrganiserCalendar:
    """The organisers' calendars of the tenant's [calendar] section: a CalDAV server (connectors.caldav_calendar,
    its password from the environment or a Prefect Secret block) or Exchange Online through the tenant's Graph
    application (connectors.graph_calendar; its sessions closed with `stack`)."""
    section = tenant.calendar
    if section is None:
        raise OperatorError(f"tenant {tenant.id}: no [calendar] section")
    calendar: OrganiserCalendar     # mypy checks that each adapter plays the whole role
    if section.system == "graph":
        if tenant.sources.teams is None:
            raise OperatorError(f"tenant {tenant.id}: [calendar] system = \"graph\" reaches the mailboxes through "
                                "the [sources.teams] application: configure it")
        from connectors.graph import GraphCalendar
        from connectors.graph_calendar import GraphOrganiserCalendar

        config, throttle = _graph(tenant, settings or Settings(), internal=False)
        graph = stack.enter_context(GraphCalendar(config, throttle=throttle, retry=RETRY, stats=RetryStats()))
        calendar = GraphOrganiserCalendar(graph)
        return calendar
    if section.caldav is None:
        raise OperatorError(f"tenant {tenant.id}: no [calendar.caldav] section")
    from connectors.caldav_calendar import CalDAVAccess, CalDAVCalendar

    caldav = section.caldav
    password = read_secret(caldav.password_env).get_secret_value() if caldav.password_env else None
    access = CalDAVAccess(caldav.calendar_url, user=caldav.user, username=caldav.username, password=password,
                          remote_user_header=caldav.remote_user_header, force_send=caldav.force_send)
    calendar = CalDAVCalendar(access)
    return calendar
