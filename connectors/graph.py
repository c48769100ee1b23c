"""Microsoft Graph through msgraph-sdk 1.65.0 and azure-identity 1.27.0: Entra users (delta), SKUs, Teams meetings.

Wiring (shared/contracts/graph.md section 1.1): an `azure.identity.aio.ClientSecretCredential` (with `authority`,
`disable_instance_discovery` and `connection_verify` when the token endpoint is not Microsoft's), a
`GraphServiceClient` always given `scopes=[".../.default"]` and whose request adapter's `base_url` is
`config.graph_url`. msgraph-sdk is asynchronous while the roles are synchronous iterators: each pass runs its calls
on one private event loop (an `asyncio.Runner` opened when the pass starts and closed when it ends), and the client,
its httpx client and the credential are created on that loop and closed on it.

One retry layer, ours (connectors.retry): kiota's RetryHandler is built with `RetryHandlerOption(max_retries=0,
should_retry=False)` through `GraphClientFactory.create_with_default_middleware(options=…)`, and the credential's
azure-core pipeline gets `retry_total=0`, so a 429/503 reaches connectors.retry once, with its Retry-After. Other
quirks handled here:

- The SDK's models cost about 12 ms of CPU per user or event to deserialise (each `get_field_deserializers` of an
  `Entity` re-imports and rebuilds the map of every derived type): hours at 200,000 users. Requests are built with
  the SDK's request builders and sent through its request adapter (authentication, middleware, ODataError on
  failures), and 2xx bodies are read as JSON here (`send_primitive_async(…, "bytes", …)`).
- A RequestInformation keeps the Authorization header the adapter once added: each attempt builds a new one, so a
  retry after the token expired does not resend the old token.
- msgraph-core's `BatchResponseContent` cannot read JSON item bodies (`'_io.BytesIO' object has no attribute
  'decode'`), so `$batch` is posted as plain JSON through the same adapter; item URLs come from the SDK's request
  builders. Graph never retries batch items: throttled (429) and failed (5xx) items are re-submitted here, after
  their Retry-After, within the retry policy's bounds, each counted in RetryStats.
- `users/delta` ignores `$top`; the page size is asked with `Prefer: odata.maxpagesize` on every request.
- Optional members left unset are dropped from request bodies by the SDK (graph.md 2). The one write,
  GraphCalendar.update_event, builds an `Event` holding only `body` (HTML) and `location` (and `locations` for a
  rollback), so the wire body is those members plus the SDK's `@odata.type`; nested models carry no `@odata.type`.

Errors: ODataError 401/403 → ConnectorAuthError, 404 → NotFound, 429 → RateLimited(Retry-After), 5xx, timeouts,
connection errors and unreadable JSON → TransientConnectorError; azure-identity's ClientAuthenticationError →
ConnectorAuthError. Messages carry ids and Graph error codes only (never the service's message, which may quote
an address, nor URLs).

Calendar: GraphCalendar reads and rewrites single events for the cutover and its rollback. Each calling thread gets
its own session on first use (a session is one event loop; kiota's httpx client and azure-identity's credential
belong to it), kept until `close()`; so one instance serves a few threads at once, each paying one token request.

Cursors: accounts — `full:<nextLink>` or `delta:<nextLink>` mid-pass, and on the last page `delta_cursor =
"delta:<deltaLink>"`; a `delta:` cursor resumes or starts a delta pass (Page.delta True). Meetings — the external id
of the last host fully listed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import random
import re
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from os import PathLike
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import orjson
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.location_type import LocationType
from msgraph.generated.models.location_unique_id_type import LocationUniqueIdType
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.outlook_geo_coordinates import OutlookGeoCoordinates
from msgraph.generated.models.physical_address import PhysicalAddress
from msgraph.generated.subscribed_skus.subscribed_skus_request_builder import SubscribedSkusRequestBuilder
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import AssignLicensePostRequestBody
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
    DeltaRequestBuilder as CalendarViewDeltaRequestBuilder,
)
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as SDK_MIDDLEWARE_OPTIONS
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from connectors.errors import (
    ActivityUnavailable,
    ConnectorAuthError,
    ConnectorError,
    NotFound,
    PermanentConnectorError,
    PreconditionFailed,
    RateLimited,
    SyncTokenExpired,
    TransientConnectorError,
    UnexpectedResponse,
    Unreachable,
    origin_of,
)
from connectors.paging import ListingBound, ListingFailed, failed_listing
from connectors.retry import RetryPolicy, RetryStats, acall_with_retries, parse_retry_after
from connectors.throttle import Throttle
from connectors.wire import parse_record, record_key
from core import (
    AccountStatus,
    HostRef,
    JsonValue,
    LicenceSku,
    Meeting,
    Page,
    Platform,
    Quarantined,
    ReasonCode,
    Recurrence,
    Removed,
    SourceAccount,
    parse_email,
)
from core.calendar import CalendarEvent
from core.emails import EmailAddress
from core.licences import ReleaseRefusal, ReleaseResult, RestoreResult
from core.links import JoinLink, parse_join_url
from core.readiness import AccessCheck
from core.recurrence import Unparseable, classify_meeting, last_occurrence, recurrence_from_graph
from core.timezones import WINDOWS_TO_IANA

__all__ = ["GRAPH_SCOPE", "TEAMS1_PLAN_ID", "ActivityUnavailable", "GraphAccountSource", "GraphCalendar",
           "GraphConfig", "GraphLicenceSource", "GraphMeetingSource", "GraphSignIns", "check_access",
           "throttle_rates"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM = "teams"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TEAMS1_PLAN_ID = "57ff2da0-773e-42df-b2af-ffb7a2317929"
USER_FIELDS = ("id", "displayName", "givenName", "surname", "mail", "userPrincipalName", "proxyAddresses",
               "employeeId", "department", "accountEnabled", "userType", "onPremisesImmutableId",
               "assignedLicenses")
SKU_FIELDS = ("skuId", "skuPartNumber", "consumedUnits", "prepaidUnits", "servicePlans")
# The HTML body stays out: the cutover re-reads it when it rewrites the event.
EVENT_FIELDS = ("subject", "type", "start", "end", "originalStartTimeZone", "recurrence", "isOrganizer",
                "isOnlineMeeting", "onlineMeetingProvider", "onlineMeeting", "organizer", "attendees",
                "isCancelled")
BATCH_LIMIT = 20
ERROR_MAP: dict[str, Any] = {"XXX": ODataError}
IMMUTABLE_IDS = 'IdType="ImmutableId"'
MAX_EVENT_PAGES = 500   # a mailbox's events listing: nextLinks announce no total; beyond this it is not real
# Said explicitly although HTML is the default: a body read as text and written back would lose its markup.
HTML_BODY = 'outlook.body-content-type="html"'
DELTA_EVENT_PAGE = 100  # instances per calendarView delta page asked for (Prefer: odata.maxpagesize)
CALENDAR_FIELDS = ("type", "isOrganizer", "body", "location", "locations", "onlineMeeting", "changeKey")
# Identity resource units per 10 s for one app in one tenant, by tenant size (throttling-limits).
RESOURCE_UNITS = ((50, 3500), (500, 5000))
RESOURCE_UNITS_LARGE = 8000
RU_USERS = 1        # GET users/delta with $select: 2 RU − 1
RU_SKUS = 2         # GET subscribedSkus with $select: 3 RU − 1
RU_ASSIGN_LICENSE = 10  # POST assignLicense (an identity write)
_UNREADABLE = (json.JSONDecodeError, orjson.JSONDecodeError, UnicodeDecodeError)
_NO_MAILBOX_CODES = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ResourceNotFound",
                               "Request_ResourceNotFound", "ErrorItemNotFound"})


def throttle_rates(tenant_id: str, *, users: int, share: float = 0.9) -> dict[str, float]:
    """LocalThrottle rules for one tenant: identity calls draw resource units (`graph:<tenant>:identity`, costs in
    RU); mailbox calls are bounded by concurrency (one batch at a time here), not by a rate."""
    units = next((limit for size, limit in RESOURCE_UNITS if users < size), RESOURCE_UNITS_LARGE)
    return {f"graph:{tenant_id}:identity": units / 10 * share}


@dataclass(frozen=True, slots=True)
class GraphConfig:
    """One Entra tenant reached through an app registration with a client secret."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority: str | None = None           # None: Microsoft's (login.microsoftonline.com)
    ca_file: str | PathLike[str] | None = None   # a CA bundle for the authority and the API (None in production)
    page_size: int = 999                   # users per page ($top, or odata.maxpagesize for delta: capped at 200)
    timeout_seconds: float = 30.0
    internal_domains: frozenset[str] = frozenset()
    event_page_size: int = 100             # events per mailbox page ($top); 100 as graph.md advises
    hosts_per_batch: int = BATCH_LIMIT     # mailboxes per $batch request
    hosts_per_page: int = 100              # mailboxes per page of meetings (one Prefect task each)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 999:
            raise ValueError("Graph page_size must be between 1 and 999")
        if not 1 <= self.event_page_size <= 1000:
            raise ValueError("Graph event_page_size must be between 1 and 1000")
        if not 1 <= self.hosts_per_batch <= BATCH_LIMIT:
            raise ValueError(f"Graph hosts_per_batch must be between 1 and {BATCH_LIMIT}")
        if self.timeout_seconds <= 0:
            raise ValueError("Graph timeout_seconds must be positive")


# ----------------------------------------------------------------------------------------------- the session

class _GraphSession:
    """A GraphServiceClient and its credential on a private event loop, for one pass."""

    def __init__(self, config: GraphConfig) -> None:
        self._config = config
        self._runner = asyncio.Runner()
        try:
            self.client, self._credential, self._http = self._runner.run(self._build())
        except BaseException:
            self._runner.close()
            raise

    async def _build(self) -> tuple[GraphServiceClient, ClientSecretCredential, httpx.AsyncClient]:
        config = self._config
        options: dict[str, Any] = {"retry_total": 0, "connection_timeout": config.timeout_seconds,
                                   "read_timeout": config.timeout_seconds}
        if config.authority is not None:
            options |= {"authority": config.authority, "disable_instance_discovery": True}
        ca_file = os.fspath(config.ca_file) if config.ca_file is not None else None
        if ca_file is not None:
            options["connection_verify"] = ca_file
        credential = ClientSecretCredential(config.tenant_id, config.client_id, config.client_secret, **options)
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        http = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout_seconds), http2=True, verify=verify)
        # The SDK's own middleware options (URL replacement, telemetry), with kiota's RetryHandler switched off.
        middleware_options = {**SDK_MIDDLEWARE_OPTIONS, RetryHandlerOption.get_key(): RetryHandlerOption(
            delay=0, max_retries=0, should_retry=False)}
        http = GraphClientFactory.create_with_default_middleware(client=http, options=middleware_options)
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = config.graph_url.rstrip("/")
        return GraphServiceClient(request_adapter=adapter), credential, http

    @property
    def adapter(self) -> Any:
        return self.client.request_adapter

    def run(self, coroutine: Awaitable[T]) -> T:
        return self._runner.run(_awaited(coroutine))

    def close(self) -> None:
        try:
            self._runner.run(self._aclose())
        finally:
            self._runner.close()

    async def _aclose(self) -> None:
        await self._credential.close()
        await self._http.aclose()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


# ----------------------------------------------------------------------------------------------- connectors

class _GraphConnector:
    """Config, throttle, retry policy and the error mapping shared by the Graph roles."""

    platform = Platform.TEAMS

    def __init__(self, config: GraphConfig, *, throttle: Throttle, retry: RetryPolicy, stats: RetryStats,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self._throttle = throttle
        self._retry = retry
        self._stats = stats
        self._clock = clock
        self._catalogue: dict[str, frozenset[str]] | None = None

    @contextmanager
    def _session(self) -> Iterator[_GraphSession]:
        session = _GraphSession(self.config)
        try:
            yield session
        finally:
            session.close()

    async def _call(self, what: str, action: Callable[[], Awaitable[T]], *, key: str | None,
                    cost: float = 1.0) -> T:
        """One SDK call under the throttle and the retry policy, its errors mapped to the connector tree."""
        async def attempt() -> T:
            if key is not None:
                self._throttle.acquire(key, cost)
            try:
                return await action()
            except Exception as error:
                mapped = _mapped(error, what)
                if mapped is None:
                    raise
                raise mapped from error
        return await acall_with_retries(attempt, self._retry, stats=self._stats)

    @property
    def _identity_key(self) -> str:
        return f"graph:{self.config.tenant_id}:identity"

    def _mailbox_key(self, mailbox: str) -> str:
        return f"graph:{self.config.tenant_id}:mailbox:{mailbox}"

    async def _get(self, session: _GraphSession, what: str, request: Callable[[], RequestInformation], *,
                   key: str | None, cost: float = 1.0) -> dict[str, Any]:
        """GET through the SDK's request adapter (authentication, middleware, ODataError), the body read as JSON.

        A request is built afresh for each attempt: the adapter keeps the Authorization header it once added to a
        RequestInformation, so a retried one would carry an expired token.
        """
        async def send() -> dict[str, Any]:
            raw = await session.adapter.send_primitive_async(request(), "bytes", ERROR_MAP)
            return _json_object(raw, what)
        return await self._call(what, send, key=key, cost=cost)

    async def _fetch_skus(self, session: _GraphSession) -> list[Mapping[str, Any]]:
        query = SubscribedSkusRequestBuilder.SubscribedSkusRequestBuilderGetQueryParameters(select=list(SKU_FIELDS))
        builder = session.client.subscribed_skus
        body = await self._get(session, "subscribedSkus", lambda: builder.to_get_request_information(
            RequestConfiguration(query_parameters=query)), key=self._identity_key, cost=RU_SKUS)
        skus = [sku for sku in _values(body, "subscribedSkus") if isinstance(sku, Mapping)]
        bound = ListingBound(SYSTEM, "subscribedSkus", max_pages=100)
        while body.get("@odata.nextLink"):
            next_link = str(body["@odata.nextLink"])
            bound.check(next_link)
            following = builder.with_url(next_link)
            body = await self._get(session, "subscribedSkus", following.to_get_request_information,
                                   key=self._identity_key, cost=RU_SKUS)
            values = _values(body, "subscribedSkus")
            bound.page(len(values))
            skus.extend(sku for sku in values if isinstance(sku, Mapping))
        return skus

    def _plans_by_sku(self, session: _GraphSession) -> dict[str, frozenset[str]]:
        if self._catalogue is None:
            skus = session.run(self._fetch_skus(session))
            self._catalogue = {str(sku["skuId"]).lower(): _plan_ids(sku) for sku in skus if sku.get("skuId")}
        return self._catalogue


class GraphLicenceSource(_GraphConnector):
    """The tenant's SKUs (`subscribedSkus`) with the seats Entra counts; a SKU includes meetings when it carries
    the Teams service plan (TEAMS1)."""

    def fetch_licences(self) -> list[LicenceSku]:
        with self._session() as session:
            skus = session.run(self._fetch_skus(session))
        licences = []
        for sku in skus:
            if not sku.get("skuId"):
                continue
            units = sku.get("prepaidUnits")
            prepaid: Mapping[str, Any] = units if isinstance(units, Mapping) else {}
            licences.append(LicenceSku(platform=Platform.TEAMS, sku_key=str(sku["skuId"]).lower(),
                                       name=str(sku.get("skuPartNumber") or sku["skuId"]),
                                       includes_meetings=TEAMS1_PLAN_ID in _plan_ids(sku),
                                       prepaid_units=_integer(prepaid.get("enabled")),
                                       consumed_units=_integer(sku.get("consumedUnits"))))
        return licences


class GraphAccountSource(_GraphConnector):
    """Entra users through `users/delta`: a full pass, then delta passes from its delta link.

    A full pass (cursor None) delivers every user (Page.delta False); its last page carries the delta link as
    `delta_cursor`. A delta pass delivers the users changed since, and removed users as core.Removed.
    """

    def iter_accounts(self, cursor: str | None = None) -> Iterator[Page[SourceAccount | Quarantined | Removed]]:
        delta, url = _split_account_cursor(cursor)
        mode = "delta" if delta else "full"
        bound = ListingBound(SYSTEM, "users")
        with self._session() as session:
            plans = self._plans_by_sku(session)
            while True:
                body = session.run(self._delta_page(session, url))
                values = _values(body, "users delta")
                bound.page(len(values))
                items = tuple(map_delta_item(user, plans) for user in values)
                next_link = body.get("@odata.nextLink")
                if next_link:
                    bound.check(next_link)
                    yield Page(items, next_cursor=f"{mode}:{next_link}", delta=delta)
                    url = next_link
                    continue
                delta_link = body.get("@odata.deltaLink")
                if not delta_link:
                    raise ListingFailed(SYSTEM, "users delta: a page without nextLink or deltaLink",
                                        reason=ReasonCode.LISTING_MALFORMED)
                yield Page(items, next_cursor=None, delta_cursor=f"delta:{delta_link}", delta=delta)
                return

    async def _delta_page(self, session: _GraphSession, url: str | None) -> dict[str, Any]:
        def request() -> RequestInformation:
            configuration: RequestConfiguration[Any]
            if url is None:
                configuration = RequestConfiguration(query_parameters=DeltaRequestBuilder.
                                                     DeltaRequestBuilderGetQueryParameters(select=list(USER_FIELDS)))
                builder = session.client.users.delta
            else:
                configuration = RequestConfiguration()
                builder = session.client.users.delta.with_url(url)
            configuration.headers.add("Prefer", f"odata.maxpagesize={self.config.page_size}")
            return builder.to_get_request_information(configuration)
        return await self._get(session, "users delta", request, key=self._identity_key, cost=RU_USERS)


SIGN_IN_FIELDS = ("id", "signInActivity")
SIGN_INS_PER_PAGE = 999      # the most $top allows on /users


class GraphSignIns(_GraphConnector):
    """When each user last signed in, from `GET /users?$select=id,signInActivity` (graph.md 3.1).

    A sign-in changes no directory object, so `users/delta` never reports it: it is read again, in full, on every
    extraction pass. A user's last activity is the later of `lastSignInDateTime` (interactive) and
    `lastNonInteractiveSignInDateTime` (a client refreshing its token: the Teams client running counts); None when
    the user never signed in. A tenant without the permission or the Entra ID P1 licence the property needs is
    ActivityUnavailable, raised on the first page: Teams activity is then not known, and nothing else fails.
    """

    def iter_sign_ins(self) -> Iterator[list[tuple[str, datetime | None]]]:
        bound = ListingBound(SYSTEM, "users signInActivity")
        with self._session() as session:
            url: str | None = None
            while True:
                try:
                    body = session.run(self._sign_in_page(session, url))
                except ConnectorAuthError as refused:
                    raise ActivityUnavailable(SYSTEM, f"{refused}: signInActivity needs the AuditLog.Read.All "
                                                      "permission and an Entra ID P1 or P2 licence") from refused
                values = _values(body, "users signInActivity")
                bound.page(len(values))
                yield [(str(user["id"]), _last_sign_in(user.get("signInActivity"))) for user in values
                       if isinstance(user, Mapping) and isinstance(user.get("id"), str)]
                url = body.get("@odata.nextLink")
                if not url:
                    return
                bound.check(url)

    async def _sign_in_page(self, session: _GraphSession, url: str | None) -> dict[str, Any]:
        def request() -> RequestInformation:
            if url is not None:
                return session.client.users.with_url(url).to_get_request_information()
            query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=list(SIGN_IN_FIELDS),
                                                                             top=SIGN_INS_PER_PAGE)
            return session.client.users.to_get_request_information(RequestConfiguration(query_parameters=query))
        return await self._get(session, "users signInActivity", request, key=self._identity_key, cost=RU_USERS)


def _last_sign_in(activity: object) -> datetime | None:
    if not isinstance(activity, Mapping):
        return None
    found = []
    for name in ("lastSignInDateTime", "lastNonInteractiveSignInDateTime"):
        value = activity.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            found.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return max(found, default=None)


class GraphMeetingSource(_GraphConnector):
    """Teams meetings the given hosts organise: each mailbox's events (series masters and single instances).

    Mailboxes are listed `hosts_per_batch` at a time in one `$batch` request (immutable ids asked for); a page
    holds the meetings of `hosts_per_page` hosts, in the hosts' order, and its cursor is the group's last host.
    Only the organiser's copy of a Teams meeting is kept; other events, and hosts without a mailbox, are counted
    in Page.skipped.
    """

    def iter_meetings(self, hosts: Sequence[HostRef],
                      cursor: str | None = None) -> Iterator[Page[Meeting | Quarantined]]:
        start = 0
        if cursor is not None:
            ids = [host.external_id for host in hosts]
            if cursor not in ids:
                raise PermanentConnectorError(SYSTEM, "meetings: the cursor names a host that is not in the list")
            start = ids.index(cursor) + 1
        remaining = list(hosts[start:])
        size = self.config.hosts_per_page
        groups = [remaining[i:i + size] for i in range(0, len(remaining), size)]
        if not groups:
            return
        with self._session() as session:
            for index, group in enumerate(groups):
                events, skipped, failed = session.run(self._list_events(session, group))
                items: list[Meeting | Quarantined] = []
                for host in group:
                    if host.external_id in failed:
                        items.append(failed[host.external_id])
                        continue
                    for event in events[host.external_id]:
                        found = map_event(event, host=host, now=self._clock(),
                                          internal_domains=self.config.internal_domains)
                        if found is None:
                            skipped += 1
                        else:
                            items.append(found)
                last = index == len(groups) - 1
                yield Page(tuple(items), None if last else group[-1].external_id, skipped=skipped,
                           incomplete=tuple(host.external_id for host in group if host.external_id in failed))

    async def _list_events(self, session: _GraphSession, group: Sequence[HostRef]
                           ) -> tuple[dict[str, list[Any]], int, dict[str, Quarantined]]:
        """Every event of every host of the group, following each mailbox's nextLinks, re-submitting the items
        that were throttled or failed. A host whose listing fails for good (a 4xx, a listing that never ends, a
        page that is not a listing) is quarantined in the third value; the others go on."""
        found: dict[str, list[Any]] = {host.external_id: [] for host in group}
        pending: dict[str, str] = {host.external_id: self._first_events_url(session, host.external_id)
                                   for host in group}
        bounds = {host.external_id: ListingBound(SYSTEM, f"events of host {host.external_id}",
                                                 max_pages=MAX_EVENT_PAGES) for host in group}
        failures: dict[str, int] = {}
        failed: dict[str, Quarantined] = {}
        skipped = 0
        while pending:
            chunk = list(pending.items())[:self.config.hosts_per_batch]
            responses = await self._post_batch(session, chunk)
            retry_after: list[float] = []
            retried: list[tuple[str, str]] = []
            for host_id, _url in chunk:
                status, headers, body = responses[host_id]
                if 200 <= status < 300:
                    try:
                        values = _values(body if isinstance(body, dict) else {}, f"events of host {host_id}")
                        bounds[host_id].page(len(values))
                        next_link = body.get("@odata.nextLink") if isinstance(body, dict) else None
                        if next_link:
                            bounds[host_id].check(str(next_link))
                    except ListingFailed as refused:
                        failed[host_id] = failed_listing(SYSTEM, f"host:{host_id}:meetings", refused)
                        del pending[host_id]
                        continue
                    found[host_id].extend(values)
                    if next_link:
                        pending[host_id] = _relative(str(next_link), self.config.graph_url)
                    else:
                        del pending[host_id]
                    continue
                code = _item_code(body)
                if status == 404 and code in _NO_MAILBOX_CODES:
                    log.info("graph host %s has no mailbox (%s): skipped", host_id, code)
                    skipped += 1
                    del pending[host_id]
                    continue
                error = _status_error(status, code, f"events of host {host_id}",
                                      _header(headers, "retry-after"))
                if isinstance(error, ConnectorAuthError):
                    raise error
                if not isinstance(error, TransientConnectorError):
                    failed[host_id] = failed_listing(SYSTEM, f"host:{host_id}:meetings", error)
                    del pending[host_id]
                    continue
                failures[host_id] = failures.get(host_id, 0) + 1
                if failures[host_id] >= self._retry.attempts:
                    raise error
                if isinstance(error, RateLimited) and error.retry_after is not None:
                    if error.retry_after > self._retry.max_delay:
                        raise error
                    retry_after.append(error.retry_after)
                    retried.append(("rate_limited", host_id))
                else:
                    retry_after.append(self._backoff(failures[host_id]))
                    retried.append(("transient", host_id))
            if retried:
                wait = min(max(retry_after), self._retry.max_delay)
                for position, (kind, _host) in enumerate(retried):
                    self._stats.record(kind, wait if position == 0 else 0.0)
                await asyncio.sleep(wait)
        return found, skipped, failed

    def _first_events_url(self, session: _GraphSession, host_id: str) -> str:
        query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            select=list(EVENT_FIELDS), top=self.config.event_page_size)
        information = session.client.users.by_user_id(host_id).events.to_get_request_information(
            RequestConfiguration(query_parameters=query))
        return _relative(str(information.url), self.config.graph_url)

    async def _post_batch(self, session: _GraphSession,
                          chunk: Sequence[tuple[str, str]]) -> dict[str, tuple[int, Mapping[str, str], Any]]:
        requests = [{"id": str(position), "method": "GET", "url": url, "headers": {"Prefer": IMMUTABLE_IDS}}
                    for position, (_host, url) in enumerate(chunk)]
        content = orjson.dumps({"requests": requests})

        async def send() -> dict[str, tuple[int, Mapping[str, str], Any]]:
            for host_id, _url in chunk:
                self._throttle.acquire(self._mailbox_key(host_id))
            information = RequestInformation()
            information.http_method = Method.POST
            information.url_template = f"{session.adapter.base_url.rstrip('/')}/$batch"
            information.headers.try_add("Content-Type", "application/json")
            information.headers.try_add("Accept", "application/json")
            information.content = content
            raw = await session.adapter.send_primitive_async(information, "bytes", ERROR_MAP)
            return _batch_responses(raw, [host for host, _url in chunk])

        return await self._call("$batch", send, key=None)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._retry.max_delay, self._retry.base_delay * 2 ** (failures - 1))
        return random.uniform(0, ceiling)


def _with_message(error: PermanentConnectorError) -> str:
    """The error and Graph's own message (ODataError's `error.message`), which names the cause."""
    cause = error.__cause__
    message = getattr(getattr(cause, "error", None), "message", None)
    return f"{error}: {message}" if isinstance(message, str) and message else str(error)


class GraphLicenceRelease(_GraphConnector):
    """Removes one SKU from a user with `assignLicense` (graph.md section 4.3), read before and after.

    Both members are sent every time (`addLicenses: []`). A SKU the user holds only through a group cannot be
    removed on the user: it is reported (GROUP_INHERITED, for the ministry to take them out of the licensing group)
    and never sent, so it is never retried blindly. The re-read user is the proof the seat is free.
    """

    def release(self, account_external_id: str, sku_key: str) -> ReleaseResult:
        """The LicenceReleaser role (the SKU key is the skuId)."""
        return self.remove_licence(account_external_id, sku_key)

    def remove_licence(self, user_id: str, sku_id: str) -> ReleaseResult:
        with self._session() as session:
            return session.run(self._remove(session, user_id, sku_id.lower()))

    def restore(self, account_external_id: str, sku_key: str) -> RestoreResult:
        """Grant the SKU again (`addLicenses` with it, `removeLicenses: []`), read before and after."""
        with self._session() as session:
            return session.run(self._grant(session, account_external_id, sku_key.lower()))

    async def _grant(self, session: _GraphSession, user_id: str, sku_id: str) -> RestoreResult:
        sku = f"graph:sku:{sku_id}"
        before = await self._licence_state(session, user_id, sku_id)
        if isinstance(before, ReleaseResult):
            return RestoreResult(user_id, restored=False, refusal=before.refusal)
        if before != "absent":
            return RestoreResult(user_id, restored=True, after=sku)
        body = AssignLicensePostRequestBody(add_licenses=[AssignedLicense(sku_id=UUID(sku_id), disabled_plans=[])],
                                            remove_licenses=[])
        builder = session.client.users.by_user_id(user_id).assign_license
        try:
            await self._call(f"assignLicense for {user_id}", lambda: builder.post(body), key=self._identity_key,
                             cost=RU_ASSIGN_LICENSE)
        except NotFound:
            return RestoreResult(user_id, restored=False, refusal=ReleaseRefusal.NOT_FOUND)
        except PermanentConnectorError as refused:   # no seat left, no usage location…: Graph's message says which
            return RestoreResult(user_id, restored=False, refusal=ReleaseRefusal.REFUSED,
                                 detail=_with_message(refused))
        after = await self._licence_state(session, user_id, sku_id)
        if isinstance(after, ReleaseResult):
            return RestoreResult(user_id, restored=False, refusal=after.refusal)
        if after == "absent":
            return RestoreResult(user_id, restored=False, refusal=ReleaseRefusal.NOT_APPLIED,
                                 detail="the user reads back without the SKU")
        return RestoreResult(user_id, restored=True, after=sku)

    async def _remove(self, session: _GraphSession, user_id: str, sku_id: str) -> ReleaseResult:
        before = await self._licence_state(session, user_id, sku_id)
        if isinstance(before, ReleaseResult):
            return before
        sku = f"graph:sku:{sku_id}"
        if before == "absent":
            return ReleaseResult(user_id, released=True)
        if before == "group":
            return ReleaseResult(user_id, released=False, before=sku, refusal=ReleaseRefusal.GROUP_INHERITED,
                                 detail="assigned by group membership")
        body = AssignLicensePostRequestBody(add_licenses=[], remove_licenses=[UUID(sku_id)])
        builder = session.client.users.by_user_id(user_id).assign_license
        try:
            await self._call(f"assignLicense for {user_id}", lambda: builder.post(body), key=self._identity_key,
                             cost=RU_ASSIGN_LICENSE)
        except NotFound:
            return ReleaseResult(user_id, released=False, before=sku, refusal=ReleaseRefusal.NOT_FOUND)
        except PermanentConnectorError as refused:
            inherited = "inherited from group" in str(refused.__cause__ or "").lower()
            return ReleaseResult(user_id, released=False, before=sku,
                                 refusal=ReleaseRefusal.GROUP_INHERITED if inherited else ReleaseRefusal.REFUSED,
                                 detail=_with_message(refused))
        after = await self._licence_state(session, user_id, sku_id)
        if isinstance(after, ReleaseResult):
            return after
        if after != "absent":
            return ReleaseResult(user_id, released=False, before=sku, after=sku,
                                 refusal=ReleaseRefusal.NOT_APPLIED, detail="the user reads back with the SKU")
        return ReleaseResult(user_id, released=True, before=sku)

    async def _licence_state(self, session: _GraphSession, user_id: str,
                             sku_id: str) -> Literal["absent", "direct", "group"] | ReleaseResult:
        """Whether the user holds the SKU, and how: directly (removable) or only through groups."""
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "assignedLicenses", "licenseAssignmentStates"])
        item = session.client.users.by_user_id(user_id)
        try:
            user = await self._get(session, f"user {user_id}", lambda: item.to_get_request_information(
                RequestConfiguration(query_parameters=query)), key=self._identity_key)
        except NotFound:
            return ReleaseResult(user_id, released=False, refusal=ReleaseRefusal.NOT_FOUND)
        states = [state for state in user.get("licenseAssignmentStates") or []
                  if isinstance(state, Mapping) and str(state.get("skuId", "")).lower() == sku_id]
        assigned = any(isinstance(licence, Mapping) and str(licence.get("skuId", "")).lower() == sku_id
                       for licence in user.get("assignedLicenses") or [])
        if not assigned and not states:
            return "absent"
        if states and all(state.get("assignedByGroup") for state in states):
            return "group"
        return "direct"


class GraphCalendar(_GraphConnector):
    """Organisers' events read and rewritten in place (HTML body and location only), for the cutover and rollback.

    Synchronous; safe to share between a few threads: each thread runs its calls on its own session (see the
    module docstring), opened on its first call and closed by `close()` (call it once the threads are done).
    """

    def __init__(self, config: GraphConfig, *, throttle: Throttle, retry: RetryPolicy | None = None,
                 stats: RetryStats | None = None) -> None:
        super().__init__(config, throttle=throttle, retry=retry if retry is not None else RetryPolicy(),
                         stats=stats if stats is not None else RetryStats())
        self._sessions: dict[int, _GraphSession] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> GraphCalendar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get_event(self, mailbox: str, event_id: str) -> CalendarEvent:
        """The event as Graph holds it now (immutable id, HTML body); NotFound when the mailbox has no such event."""
        session = self._thread_session()
        return session.run(self._fetch_event(session, mailbox, event_id))

    def update_event(self, mailbox: str, event_id: str, *, body_html: str, location: Mapping[str, JsonValue],
                     locations: Sequence[Mapping[str, JsonValue]] | None = None,
                     if_match: str | None = None) -> CalendarEvent:
        """PATCH the HTML body and the location (and `locations`, to restore them as they were); the event after.
        `if_match`: the change key the event was read with — a change since is PreconditionFailed (Exchange's 412
        ErrorIrresolvableConflict), not retried: the caller reads the event again."""
        patch = _event_patch(body_html, location, locations)
        session = self._thread_session()
        return session.run(self._patch_event(session, mailbox, event_id, patch, if_match))

    def event_json(self, mailbox: str, event_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """One event as Graph sends it (immutable id, HTML body), with these fields; NotFound when it is gone."""
        session = self._thread_session()
        item = session.client.users.by_user_id(mailbox).events.by_event_id(event_id)

        def request() -> RequestInformation:
            query = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(select=list(fields))
            configuration = RequestConfiguration(query_parameters=query)
            configuration.headers.add("Prefer", [IMMUTABLE_IDS, HTML_BODY])
            return item.to_get_request_information(configuration)

        return session.run(self._get(session, f"event {event_id}", request, key=self._mailbox_key(mailbox)))

    def events_json(self, mailbox: str, fields: Sequence[str], *, event_filter: str | None = None,
                    page_size: int = 50) -> Iterator[dict[str, Any]]:
        """A mailbox's events (series masters and single ones) as Graph sends them, page by page (nextLinks
        followed, bounded)."""
        session = self._thread_session()
        builder = session.client.users.by_user_id(mailbox).events
        what = "events of an organiser's mailbox"     # the mailbox may be named by its address: kept out of logs

        def first() -> RequestInformation:
            query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
                select=list(fields), top=page_size, filter=event_filter)
            configuration = RequestConfiguration(query_parameters=query)
            configuration.headers.add("Prefer", [IMMUTABLE_IDS, HTML_BODY])
            return builder.to_get_request_information(configuration)

        bound = ListingBound(SYSTEM, what, max_pages=MAX_EVENT_PAGES)
        body = session.run(self._get(session, what, first, key=self._mailbox_key(mailbox)))
        while True:
            values = _values(body, what)
            bound.page(len(values))
            yield from (event for event in values if isinstance(event, dict))
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            bound.check(str(next_link))
            following = builder.with_url(str(next_link))

            def again(following: Any = following) -> RequestInformation:
                configuration: RequestConfiguration[Any] = RequestConfiguration()
                configuration.headers.add("Prefer", [IMMUTABLE_IDS, HTML_BODY])
                return following.to_get_request_information(configuration)  # type: ignore[no-any-return]

            body = session.run(self._get(session, what, again, key=self._mailbox_key(mailbox)))

    def calendar_view_delta(self, mailbox: str, *, window: tuple[datetime, datetime] | None = None,
                            link: str | None = None, page_size: int = DELTA_EVENT_PAGE
                            ) -> tuple[list[dict[str, Any]], str]:
        """One round of `calendarView/delta` on a mailbox (graph.md §5): from the start (`window`: the instances
        overlapping it, occurrences expanded) or from the deltaLink of the last round (`link`: only what changed,
        removed items as `@removed`). Returns the items of every page and the new deltaLink. A link the service
        dropped is SyncTokenExpired: start again with the window."""
        session = self._thread_session()
        builder = session.client.users.by_user_id(mailbox).calendar_view.delta
        what = "calendar changes of an organiser's mailbox"
        prefer = [IMMUTABLE_IDS, HTML_BODY, f"odata.maxpagesize={page_size}"]

        def first() -> RequestInformation:
            if link is not None:
                configuration: RequestConfiguration[Any] = RequestConfiguration()
                configuration.headers.add("Prefer", prefer)
                return builder.with_url(link).to_get_request_information(configuration)
            assert window is not None, "calendar_view_delta needs a window or a link"
            query = CalendarViewDeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=_graph_instant(window[0]), end_date_time=_graph_instant(window[1]))
            with_query = RequestConfiguration(query_parameters=query)
            with_query.headers.add("Prefer", prefer)
            return builder.to_get_request_information(with_query)

        bound = ListingBound(SYSTEM, what, max_pages=MAX_EVENT_PAGES)
        items: list[dict[str, Any]] = []
        body = session.run(self._get(session, what, first, key=self._mailbox_key(mailbox)))
        while True:
            values = _values(body, what)
            bound.page(len(values))
            items.extend(item for item in values if isinstance(item, dict))
            if body.get("@odata.deltaLink"):
                return items, str(body["@odata.deltaLink"])
            next_link = body.get("@odata.nextLink")
            if not next_link:
                raise UnexpectedResponse(SYSTEM, what, status=200,
                                         body="a delta page with neither nextLink nor deltaLink")
            bound.check(str(next_link))
            following = builder.with_url(str(next_link))

            def again(following: Any = following) -> RequestInformation:
                configuration: RequestConfiguration[Any] = RequestConfiguration()
                configuration.headers.add("Prefer", prefer)
                return following.to_get_request_information(configuration)  # type: ignore[no-any-return]

            body = session.run(self._get(session, what, again, key=self._mailbox_key(mailbox)))

    def close(self) -> None:
        """Close every thread's session; the instance cannot be used afterwards."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            self._closed = True
        with ExitStack() as closing:   # every session is closed even when one fails to
            for session in sessions:
                closing.callback(session.close)

    def _thread_session(self) -> _GraphSession:
        ident = threading.get_ident()
        with self._lock:
            if self._closed:
                raise RuntimeError("this GraphCalendar is closed")
            session = self._sessions.get(ident)
            if session is None:
                # Built under the lock: it makes no call (the token is asked on the first request).
                session = self._sessions[ident] = _GraphSession(self.config)
            return session

    async def _fetch_event(self, session: _GraphSession, mailbox: str, event_id: str) -> CalendarEvent:
        item = session.client.users.by_user_id(mailbox).events.by_event_id(event_id)

        def request() -> RequestInformation:
            query = EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(select=list(CALENDAR_FIELDS))
            configuration = RequestConfiguration(query_parameters=query)
            configuration.headers.add("Prefer", [IMMUTABLE_IDS, HTML_BODY])
            return item.to_get_request_information(configuration)

        what = f"event {event_id}"
        body = await self._get(session, what, request, key=self._mailbox_key(mailbox))
        return _calendar_event(body, mailbox=mailbox, what=what)

    async def _patch_event(self, session: _GraphSession, mailbox: str, event_id: str, patch: Event,
                           if_match: str | None = None) -> CalendarEvent:
        item = session.client.users.by_user_id(mailbox).events.by_event_id(event_id)
        what = f"event {event_id} update"

        async def send() -> dict[str, Any]:
            # A fresh RequestInformation per attempt (see _get); PATCHing the same members twice is harmless.
            configuration: RequestConfiguration[Any] = RequestConfiguration()
            configuration.headers.add("Prefer", [IMMUTABLE_IDS, HTML_BODY])
            if if_match is not None:
                configuration.headers.add("If-Match", f'W/"{if_match}"')
            information = item.to_patch_request_information(patch, configuration)
            raw = await session.adapter.send_primitive_async(information, "bytes", ERROR_MAP)
            return _json_object(raw, what)

        body = await self._call(what, send, key=self._mailbox_key(mailbox))
        log.debug("graph event %s updated", event_id)   # the mailbox may be an address: not logged
        return _calendar_event(body, mailbox=mailbox, what=what)


# ----------------------------------------------------------------------------------------------- mapping

def map_delta_item(user: object, plans: Mapping[str, frozenset[str]]) -> SourceAccount | Quarantined | Removed:
    """An item of a `users/delta` page: a user, a removal (`@removed`), or quarantined."""
    if not isinstance(user, Mapping):
        return Quarantined(ReasonCode.MALFORMED_RECORD, f"teams:user:({type(user).__name__} item)",
                           detail="a listed user is not a JSON object")
    removed = user.get("@removed")
    if removed is not None:
        user_id = user.get("id")
        if not isinstance(user_id, str) or not user_id:
            return Quarantined(ReasonCode.MALFORMED_RECORD, record_key("teams:user", user_id),
                               detail="a removal without a user id")
        reason = removed.get("reason") if isinstance(removed, Mapping) else None
        return Removed(Platform.TEAMS, user_id, str(reason or "deleted"))
    return map_user(user, plans)


def map_user(user: Mapping[str, Any], plans: Mapping[str, frozenset[str]]) -> SourceAccount | Quarantined:
    """An Entra user (Graph JSON) as a SourceAccount; `plans` is the service plan ids of each SKU id."""
    return parse_record(lambda: record_key("teams:user", user.get("id")), lambda: _map_user(user, plans))


def _map_user(user: Mapping[str, Any], plans: Mapping[str, frozenset[str]]) -> SourceAccount | Quarantined:
    raw_id = user.get("id")
    if raw_id is not None and not isinstance(raw_id, str):
        return Quarantined(ReasonCode.MALFORMED_RECORD, record_key("teams:user", raw_id), detail="id is not a string")
    user_id = raw_id or ""
    key = f"teams:user:{user_id}"
    if not user_id:
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="a user without id")
    email = user.get("mail") or user.get("userPrincipalName")
    if not isinstance(email, str) or not isinstance(parse_email(email), EmailAddress):
        return Quarantined(ReasonCode.INVALID_EMAIL, key, detail="neither mail nor userPrincipalName is an address")
    aliases = tuple(dict.fromkeys(address[5:] for address in _list(user.get("proxyAddresses"), "proxyAddresses")
                                  if isinstance(address, str) and address.startswith("smtp:") and address[5:]))
    licences: list[str] = []
    licensed = False
    for assigned in _list(user.get("assignedLicenses"), "assignedLicenses"):
        if not isinstance(assigned, Mapping):
            raise TypeError("an assigned licence is not an object")
        sku = str(assigned.get("skuId") or "").lower()
        if not sku:
            continue
        licences.append(sku)
        disabled = {str(plan).lower() for plan in _list(assigned.get("disabledPlans"), "disabledPlans")}
        licensed |= TEAMS1_PLAN_ID in plans.get(sku, frozenset()) and TEAMS1_PLAN_ID not in disabled
    return SourceAccount(
        platform=Platform.TEAMS, external_id=user_id, email=email,
        status=AccountStatus.INACTIVE if user.get("accountEnabled") is False else AccountStatus.ACTIVE,
        licences=tuple(licences), licensed=licensed, display_name=_text(user.get("displayName")),
        given_name=_text(user.get("givenName")), surname=_text(user.get("surname")), aliases=aliases,
        employee_id=_text(user.get("employeeId")), immutable_id=_text(user.get("onPremisesImmutableId")),
        account_type=_text(user.get("userType")), department=_text(user.get("department")))


def map_event(event: object, *, host: HostRef, now: datetime,
              internal_domains: frozenset[str]) -> Meeting | Quarantined | None:
    """A calendar event (Graph JSON) as a Meeting; None when it is not the organiser's copy of a Teams meeting."""
    if not isinstance(event, Mapping):
        return Quarantined(ReasonCode.MALFORMED_RECORD, f"teams:meeting:({type(event).__name__} item)",
                           detail="a listed event is not a JSON object")
    return parse_record(lambda: record_key("teams:meeting", event.get("id")),
                        lambda: _map_event(event, host=host, now=now, internal_domains=internal_domains))


def _map_event(event: Mapping[str, Any], *, host: HostRef, now: datetime,
               internal_domains: frozenset[str]) -> Meeting | Quarantined | None:
    if (event.get("isOrganizer") is not True or event.get("isOnlineMeeting") is not True
            or event.get("onlineMeetingProvider") != "teamsForBusiness" or event.get("isCancelled") is True
            or event.get("type") not in ("seriesMaster", "singleInstance")):
        return None
    raw_id = event.get("id")
    if raw_id is not None and not isinstance(raw_id, str):
        return Quarantined(ReasonCode.MALFORMED_RECORD, record_key("teams:meeting", raw_id),
                           detail="id is not a string")
    event_id = raw_id or ""
    key = f"teams:meeting:{event_id}"
    start = _instant(event.get("start"))
    end = _instant(event.get("end"))
    if not event_id or start is None or end is None:
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="event without id, start or end")
    recurrence: Recurrence | None = None
    if event.get("type") == "seriesMaster":
        pattern = event.get("recurrence")
        parsed = recurrence_from_graph(pattern, start=start) if isinstance(pattern, Mapping) \
            else Unparseable("series master without a recurrence")
        if isinstance(parsed, Unparseable):
            return Quarantined(ReasonCode.RECURRENCE_UNPARSEABLE, key, detail=parsed.reason)
        recurrence = parsed
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}).get("address")
    if not isinstance(organizer, str) or not organizer.strip():
        return Quarantined(ReasonCode.MEETING_WITHOUT_HOST, key, detail="the organizer has no address")
    online = event.get("onlineMeeting") or {}
    join_url = online.get("joinUrl") if isinstance(online, Mapping) else None
    if not isinstance(join_url, str) or not join_url:
        return Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="Teams meeting without onlineMeeting.joinUrl")
    link = parse_join_url(join_url)
    invitees = tuple(dict.fromkeys(
        address.strip() for attendee in _list(event.get("attendees"), "attendees")
        if isinstance(address := ((attendee or {}).get("emailAddress") or {}).get("address"), str)
        and address.strip()))
    timezone = recurrence.timezone if recurrence is not None else _iana(event.get("originalStartTimeZone"))
    return Meeting(
        platform=Platform.TEAMS, external_id=event_id, host_account_id=host.external_id, host_email=host.email,
        topic=str(event.get("subject") or ""), kind=classify_meeting(recurrence=recurrence, start=start, now=now),
        timezone=timezone, join_url=join_url, link_key=str(link) if isinstance(link, JoinLink) else join_url,
        start=start, duration_minutes=round((end - start).total_seconds() / 60), recurrence=recurrence,
        ends_at=last_occurrence(recurrence, start) if recurrence is not None else start,
        passcode=isinstance(link, JoinLink) and bool(link.passcode), invitees=invitees,
        external_invitees=sum(1 for address in invitees if not _internal(address, internal_domains)),
        dial_in=bool(online.get("tollNumber") or online.get("tollFreeNumbers") or online.get("phones")))


def _calendar_event(event: Mapping[str, Any], *, mailbox: str, what: str) -> CalendarEvent:
    """A Graph event (JSON) as a CalendarEvent; `location`/`locations` kept as Graph sent them, for rollback."""
    body = event.get("body")
    if (not isinstance(event.get("id"), str) or not isinstance(body, Mapping)
            or not isinstance(body.get("content"), str) or not isinstance(body.get("contentType"), str)):
        raise PermanentConnectorError(SYSTEM, f"{what}: the event has no id or no body")
    location = event.get("location")
    locations = event.get("locations")
    online = event.get("onlineMeeting")
    join_url = online.get("joinUrl") if isinstance(online, Mapping) else None
    return CalendarEvent(
        mailbox=mailbox, event_id=event["id"], is_organizer=event.get("isOrganizer") is True,
        event_type=str(event.get("type") or ""), body_content_type=str(body["contentType"]).lower(),
        body=body["content"], location=dict(location) if isinstance(location, Mapping) else {},
        locations=tuple(dict(entry) for entry in locations or () if isinstance(entry, Mapping)),
        join_url=_text(join_url), change_key=_text(event.get("changeKey")))


def _event_patch(body_html: str, location: Mapping[str, JsonValue],
                 locations: Sequence[Mapping[str, JsonValue]] | None) -> Event:
    """The PATCH body: an Event with only body (HTML), location and, when given, locations."""
    patch = Event(body=ItemBody(content_type=BodyType.Html, content=body_html), location=_location_model(location))
    if locations is not None:
        patch.locations = [_location_model(entry) for entry in locations]
    return patch


_LOCATION_TEXT = {"displayName": "display_name", "locationEmailAddress": "location_email_address",
                  "locationUri": "location_uri", "uniqueId": "unique_id"}
_LOCATION_ENUMS: dict[str, tuple[str, type[LocationType] | type[LocationUniqueIdType]]] = {
    "locationType": ("location_type", LocationType), "uniqueIdType": ("unique_id_type", LocationUniqueIdType)}
_ADDRESS_TEXT = {"city": "city", "countryOrRegion": "country_or_region", "postalCode": "postal_code",
                 "state": "state", "street": "street"}
_COORDINATES = {"accuracy": "accuracy", "altitude": "altitude", "altitudeAccuracy": "altitude_accuracy",
                "latitude": "latitude", "longitude": "longitude"}


def _location_model(location: Mapping[str, JsonValue]) -> Location:
    """A location as the SDK's model, such that it serialises back to the same JSON.

    Members go through the model's typed fields when their value fits; anything the model would drop or alter (a
    null, an integer coordinate the SDK writes as a float, an enum value it does not know, an unknown member) goes
    through `additional_data` verbatim, so that a restored location reads back as it was. `@odata.*` annotations
    are not sent.
    """
    model = Location(additional_data={})
    for name, value in location.items():
        if name.startswith("@odata."):
            continue
        enum = _LOCATION_ENUMS.get(name)
        if name in _LOCATION_TEXT and isinstance(value, str):
            setattr(model, _LOCATION_TEXT[name], value)
        elif enum is not None and isinstance(value, str) and value in {member.value for member in enum[1]}:
            setattr(model, enum[0], enum[1](value))
        elif name == "address" and _fits(value, _ADDRESS_TEXT, str):
            assert isinstance(value, Mapping)
            model.address = PhysicalAddress()
            for key, item in value.items():
                setattr(model.address, _ADDRESS_TEXT[key], item)
        elif name == "coordinates" and _fits(value, _COORDINATES, float):
            assert isinstance(value, Mapping)
            model.coordinates = OutlookGeoCoordinates()
            for key, item in value.items():
                setattr(model.coordinates, _COORDINATES[key], item)
        else:
            model.additional_data[name] = value
    return model


def _fits(value: object, fields: Mapping[str, str], kind: type) -> bool:
    return isinstance(value, Mapping) and all(key in fields and type(item) is kind for key, item in value.items())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _plan_ids(sku: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(plan.get("servicePlanId")).lower() for plan in sku.get("servicePlans") or []
                     if isinstance(plan, Mapping))


def _values(body: Mapping[str, Any], what: str) -> list[Any]:
    """A page's `value` as listed (callers quarantine the items that are not objects)."""
    value = body.get("value")
    if not isinstance(value, list):
        raise ListingFailed(SYSTEM, f"{what}: a page without a value array", reason=ReasonCode.LISTING_MALFORMED)
    return value


def _list(value: object, name: str) -> list[Any]:
    """A collection property (absent or null: empty); another JSON type makes the record malformed."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{name} is not a collection")
    return value


def _json_object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise TransientConnectorError(SYSTEM, f"{what}: an empty response")
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise TransientConnectorError(SYSTEM, f"{what}: the response is not a JSON object")
    return body


def _graph_instant(moment: datetime) -> str:
    """An aware instant as Graph's query options take it (UTC, seconds, `Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(value: object) -> datetime | None:
    """A dateTimeTimeZone (UTC, a Windows zone from `Prefer: outlook.timezone`, or an IANA zone) as an instant."""
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        return None
    try:
        local = datetime.fromisoformat(str(value["dateTime"])[:26])
    except ValueError:
        return None
    zone_name = str(value.get("timeZone") or "UTC")
    try:
        zone = ZoneInfo(WINDOWS_TO_IANA.get(zone_name, zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return local.replace(tzinfo=zone) if local.tzinfo is None else local


def _iana(windows: object) -> str:
    if not isinstance(windows, str) or not windows:
        return "UTC"
    name = WINDOWS_TO_IANA.get(windows, windows)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def _internal(address: str, domains: frozenset[str]) -> bool:
    parsed = parse_email(address)
    domain = parsed.domain if isinstance(parsed, EmailAddress) else address.rpartition("@")[2].strip().lower()
    return any(domain == d.lower() or domain.endswith("." + d.lower()) for d in domains)


# ----------------------------------------------------------------------------------------------- wire helpers

def _split_account_cursor(cursor: str | None) -> tuple[bool, str | None]:
    if cursor is None:
        return False, None
    kind, _, url = cursor.partition(":")
    if kind not in ("full", "delta") or not url.startswith(("https://", "http://")):
        raise PermanentConnectorError(SYSTEM, "users: the cursor was not made by this connector")
    return kind == "delta", url


def _relative(url: str, graph_url: str) -> str:
    """A Graph URL relative to the version root, as $batch items want it (`/users/{id}/events?…`)."""
    parts = urlsplit(url)
    root = urlsplit(graph_url).path.rstrip("/")
    path = parts.path
    if root and path.startswith(root + "/"):
        path = path[len(root):]
    elif "/v1.0/" in path:
        path = path.split("/v1.0", 1)[1]
    if not path.startswith("/"):
        path = "/" + path
    return path + (f"?{parts.query}" if parts.query else "")


def _batch_responses(raw: Any, hosts: Sequence[str]) -> dict[str, tuple[int, Mapping[str, str], Any]]:
    responses = _json_object(raw, "$batch").get("responses")
    if not isinstance(responses, list):
        raise TransientConnectorError(SYSTEM, "$batch: a response without a responses array")
    found: dict[str, tuple[int, Mapping[str, str], Any]] = {}
    for item in responses:
        if not isinstance(item, dict) or not str(item.get("id", "")).isdigit():
            raise TransientConnectorError(SYSTEM, "$batch: a response item without its id")
        position = int(item["id"])
        if not 0 <= position < len(hosts):
            raise TransientConnectorError(SYSTEM, "$batch: a response item for a request that was not sent")
        headers = item.get("headers")
        found[hosts[position]] = (int(item.get("status") or 0), headers if isinstance(headers, dict) else {},
                                  item.get("body"))
    missing = [host for host in hosts if host not in found]
    if missing:
        raise TransientConnectorError(SYSTEM, f"$batch: no response for {len(missing)} request(s)")
    return found


def _item_code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((str(value) for key, value in headers.items() if key.lower() == name), None)


def _status_error(status: int, code: str, what: str, retry_after: str | None) -> ConnectorError:
    message = f"{what}: HTTP {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        return ConnectorAuthError(SYSTEM, message)
    if status == 404:
        return NotFound(SYSTEM, message)
    # Outlook answers a delta token it dropped with 410 Gone; directory resources with 400 syncStateNotFound.
    if status == 410 or code.lower() in ("syncstatenotfound", "resyncrequired", "syncstateinvalid"):
        return SyncTokenExpired(SYSTEM, message)
    if status == 412:
        return PreconditionFailed(SYSTEM, message)
    if status == 429:
        return RateLimited(SYSTEM, message, retry_after=parse_retry_after(retry_after))
    if status >= 500 or status in (408, 424):
        return TransientConnectorError(SYSTEM, message)
    return PermanentConnectorError(SYSTEM, message)


def _origin_of_request(error: httpx.RequestError) -> str:
    try:
        return origin_of(str(error.request.url))
    except RuntimeError:  # httpx raises when the error carries no request
        return "Graph"


def _mapped(error: Exception, what: str) -> ConnectorError | None:
    """The connector error for an SDK, identity or transport failure; None for anything else (a bug here)."""
    if isinstance(error, ConnectorError):
        return error
    if isinstance(error, APIError):
        code = ""
        if isinstance(error, ODataError) and error.error is not None:
            code = str(error.error.code or "")
        headers = error.response_headers or {}
        retry_after = headers.get("retry-after") if hasattr(headers, "get") else None
        return _status_error(int(error.response_status_code or 0), code, what, retry_after)
    if isinstance(error, ClientAuthenticationError):
        return ConnectorAuthError(SYSTEM, f"{what}: the token endpoint refused the client credentials")
    if isinstance(error, ServiceRequestError):
        return Unreachable(SYSTEM, "the token endpoint", type(error).__name__)
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return Unreachable(SYSTEM, _origin_of_request(error), type(error).__name__)
    if isinstance(error, ServiceResponseError):
        return TransientConnectorError(SYSTEM, f"{what}: the token endpoint is unreachable ({type(error).__name__})")
    if isinstance(error, httpx.TimeoutException):
        return TransientConnectorError(SYSTEM, f"{what}: timed out ({type(error).__name__})")
    if isinstance(error, httpx.TransportError):
        return TransientConnectorError(SYSTEM, f"{what}: connection failed ({type(error).__name__})")
    if isinstance(error, _UNREADABLE):
        return TransientConnectorError(SYSTEM, f"{what}: an unreadable response body ({type(error).__name__})")
    return None


# ----------------------------------------------------------------------------------------------- onboarding probe

def check_access(config: GraphConfig) -> AccessCheck:
    """One client-credentials token request; the application permissions granted are the token's `roles` claim.

    Read-only (no Graph call). Refused credentials (azure-identity's ClientAuthenticationError: wrong secret,
    unknown app or tenant) are a value carrying the AADSTS code; an unreachable token endpoint raises
    TransientConnectorError. The token is read without verifying its signature: only its claims are wanted.
    """
    options: dict[str, Any] = {"retry_total": 0, "connection_timeout": config.timeout_seconds,
                               "read_timeout": config.timeout_seconds}
    if config.authority is not None:
        options |= {"authority": config.authority, "disable_instance_discovery": True}
    if config.ca_file is not None:
        options["connection_verify"] = os.fspath(config.ca_file)

    async def fetch() -> str:
        credential = ClientSecretCredential(config.tenant_id, config.client_id, config.client_secret, **options)
        try:
            return (await credential.get_token(GRAPH_SCOPE)).token
        finally:
            await credential.close()

    try:
        with asyncio.Runner() as runner:
            token = runner.run(fetch())
    except ClientAuthenticationError as error:
        message = str(error.message or "")
        oauth = re.search(r"\(([a-z_]+)\)", message)
        codes = ([oauth.group(1)] if oauth else []) + sorted(set(re.findall(r"AADSTS\d+", message)))
        return AccessCheck(authenticated=False, detail=", ".join(codes) or "the token endpoint said no")
    except (ServiceRequestError, ServiceResponseError) as error:
        raise TransientConnectorError(SYSTEM, f"the token endpoint is unreachable ({type(error).__name__})") from error
    return AccessCheck(authenticated=True, granted=_token_roles(token))


def _token_roles(token: str) -> frozenset[str] | None:
    """The `roles` claim of an app-only access token (a JWT); None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    roles = claims.get("roles") if isinstance(claims, dict) else None
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(role for role in roles if isinstance(role, str))
