"""A tenant (ministry) described by a TOML file: who it is, how to reach its systems, what it pays.

Secrets never appear in the file: it names the environment variables (or Prefect Secret blocks) that hold them.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.contracts import Contract, ContractInvalid
from core.emails import normalise_domain
from core.identity import routing_table
from core.money import Money
from core.records import Platform
from core.release_policy import ReleasePolicy
from flows.errors import OperatorError

_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ISO_4217 = re.compile(r"[A-Z]{3}")  # the code's form; whether the currency exists is not checked


class TenantFileError(OperatorError, ValueError):
    """The tenant file is missing, unreadable or invalid (message fits on one line).

    `code` says which, for reports and tests: TENANT_FILE_MISSING, TENANT_FILE_UNREADABLE, TENANT_NOT_TOML,
    INVALID:<pydantic error type> (e.g. INVALID:extra_forbidden, INVALID:missing, INVALID:value_error), and for a file
    the tenant names NAMED_FILE_MISSING, NAMED_FILE_NOT_A_FILE or NAMED_FILE_UNREADABLE.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("must be the NAME of an environment variable (A-Z, 0-9, _), not a secret value")
    return value


def _mail_domains(domains: list[str]) -> list[str]:
    """Kept as the file spells them (for display); compared by their normal form (core.emails.normalise_domain)."""
    for domain in domains:
        if normalise_domain(domain) is None:
            raise ValueError(f"{domain!r} is not a mail domain (e.g. culture.gouv.fr, défense.gouv.fr)")
    return domains


class IdentitySettings(_Strict):
    """How persons are recognised, and which identity provider serves which domain (any spelling of a domain:
    accents, capitals or punycode are one domain)."""

    idp_by_domain: dict[str, str] = Field(default_factory=dict)
    non_person_patterns: list[str] = Field(default_factory=list)
    privileged_patterns: list[str] = Field(default_factory=list)
    population_policy: list[str] = Field(default_factory=lambda: ["prestataire", "stagiaire", "partenaire"])

    @field_validator("idp_by_domain")
    @classmethod
    def _domains_route_once(cls, idp_by_domain: dict[str, str]) -> dict[str, str]:
        routing_table(idp_by_domain)  # refuses a key that is no domain, or one domain routed to two providers
        return idp_by_domain

    @field_validator("non_person_patterns", "privileged_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            re.compile(pattern)
        return patterns


class DirectorySettings(_Strict):
    """The ministry directory: an LDIF export or a live LDAP server."""

    kind: Literal["ldif", "ldap"] = "ldif"
    flavour: Literal["ad", "supann"]
    ldif_path: Path | None = None
    url: str | None = None
    bind_dn: str | None = None
    password_env: str | None = None
    base_dn: str | None = None
    search_filter: str | None = None
    page_size: int = Field(default=500, ge=1, le=1000)
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)
    extra_attributes: list[str] = Field(default_factory=list)
    disabled_attribute: str | None = None
    disabled_values: list[str] = Field(default_factory=list)

    _check_env = field_validator("password_env")(_env_name)

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> DirectorySettings:
        if self.kind == "ldif" and self.ldif_path is None:
            raise ValueError("kind = 'ldif' needs ldif_path")
        if self.kind == "ldap" and not (self.url and self.base_dn):
            raise ValueError("kind = 'ldap' needs url and base_dn")
        return self


class ZoomSettings(_Strict):
    """A Zoom Server-to-Server OAuth app of the ministry's Zoom account."""

    account_id: str
    client_id: str
    client_secret_env: str
    api_url: str = "https://api.zoom.us/v2"
    oauth_url: str = "https://zoom.us/oauth/token"
    plan: Literal["free", "pro", "business"] = "pro"

    _check_env = field_validator("client_secret_env")(_env_name)


class TeamsSettings(_Strict):
    """An Entra application with Graph application permissions."""

    tenant_id: str
    client_id: str
    client_secret_env: str
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority: str | None = None   # the Entra login host; None: Microsoft's
    ca_file: Path | None = None    # extra CA to trust for `authority` (the sandbox's self-signed certificate)

    _check_env = field_validator("client_secret_env")(_env_name)


class WebexSettings(_Strict):
    """A Webex service app (or admin integration) of the ministry's organisation."""

    org_id: str
    access_token_env: str
    api_url: str = "https://webexapis.com/v1/"

    _check_env = field_validator("access_token_env")(_env_name)


class SourcesSettings(_Strict):
    """Which licensed platforms the ministry has; an absent table means the platform is not used."""

    zoom: ZoomSettings | None = None
    teams: TeamsSettings | None = None
    webex: WebexSettings | None = None


class LiveKitSettings(_Strict):
    """Visio's LiveKit (adoption evidence): the server to poll and the API key whose secret signs its webhooks."""

    url: str
    api_key: str
    api_secret_env: str

    _check_env = field_validator("api_secret_env")(_env_name)


class VisioSettings(_Strict):
    """The Visio (La Suite Meet) External API application bascule acts through."""

    base_url: str
    api_url: str
    client_id: str
    client_secret_env: str
    # True only when the instance runs with APPLICATION_ALLOW_USER_CREATION, OIDC_FALLBACK_TO_EMAIL_FOR_IDENTIFICATION
    # and a mutable OIDC sub (visio-meet.md §1, §5): a token request then pre-creates an unknown host. Otherwise a
    # host must log in to Visio once before rooms can be created for them.
    precreates_users: bool = False
    livekit: LiveKitSettings | None = None

    _check_env = field_validator("client_secret_env")(_env_name)


class MailSettings(_Strict):
    """The ministry's mail relay, and the migration mailbox that sends calendar updates on organisers' behalf."""

    host: str
    port: int = Field(default=25, ge=1, le=65535)
    mailbox: str
    mailbox_name: str = "Bascule Visio"
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None

    _check_env = field_validator("password_env")(_env_name)


class CalDAVSettings(_Strict):
    """Organisers' calendars on a CalDAV server (Zimbra, BlueMind, SOGo, sabre/dav services…)."""

    calendar_url: str                          # an organiser's calendar; "{user}" is replaced (see `user`)
    user: Literal["local", "email"] = "local"  # what names an organiser's calendar: the address's local part, or all
    username: str | None = None                # a service account allowed to write organisers' calendars
    password_env: str | None = None
    remote_user_header: str | None = None      # or a header a trusted proxy takes as the user (e.g. X-Remote-User)
    force_send: bool = False                   # sabre/dav family: SCHEDULE-FORCE-SEND=REQUEST on a link change

    _check_env = field_validator("password_env")(_env_name)

    @model_validator(mode="after")
    def _one_way_in(self) -> CalDAVSettings:
        if "{user}" not in self.calendar_url:
            raise ValueError("calendar_url must contain {user} (each organiser's own calendar)")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        if self.username is None and self.remote_user_header is None:
            raise ValueError("give a service account (username, password_env) or a remote_user_header")
        return self


class CalendarSettings(_Strict):
    """Where organisers keep their Zoom and Webex series: Exchange Online (Graph, the [sources.teams] application)
    or a CalDAV server; the scan reads `window_days` ahead. Later scans read only what changed (the server's change
    token) over the window of the last full listing, until that window has slid by `relist_days`: then each
    calendar is listed whole again under the new window."""

    system: Literal["graph", "caldav"]
    caldav: CalDAVSettings | None = None
    window_days: int = Field(default=180, ge=1, le=800)
    relist_days: int = Field(default=7, ge=0, le=90)

    @model_validator(mode="after")
    def _caldav_given(self) -> CalendarSettings:
        if self.system == "caldav" and self.caldav is None:
            raise ValueError("system = \"caldav\" needs a [calendar.caldav] section")
        return self


class WaveSettings(_Strict):
    """How cutover waves run for this ministry."""

    rollback_guard_hours: float = Field(default=24.0, gt=0)   # how long after a cutover it may be rolled back
    hosts_in_parallel: int = Field(default=8, ge=1, le=64)    # hosts whose actions run at the same time
    visio_requests_per_second: float = Field(default=20.0, gt=0)


# Microsoft SKUs that are Teams alone (part numbers): the only Microsoft licences whose removal frees a paid Teams
# seat. Teams inside a suite (E1/E3/E5…) is never removed: the suite carries mail and files, billing is per SKU.
TEAMS_STANDALONE_SKUS = ("Microsoft_Teams_Enterprise_New", "Microsoft_Teams_EEA_New", "Microsoft_Teams_Essentials",
                         "TEAMS_ESSENTIALS_AAD", "Teams_Ess")


class ReleaseSettings(_Strict):
    """When a person's source licence may go (core.release_policy) and how releases run (issue 12)."""

    min_visio_days: int = Field(default=3, ge=1)            # distinct days seen in Visio…
    window_days: int = Field(default=30, ge=1)              # …within this many days
    grace_days: int = Field(default=7, ge=0)                # after the wave was verified
    exempt_webinar_hosts: bool = True
    exempt_large_meetings: bool = True
    large_meeting_invitees: int = Field(default=150, ge=1)  # "large": more invitees than this
    keep_licence_csv: Path | None = None                    # people who keep their licence (email or anchor column)
    teams_standalone_skus: list[str] = Field(default_factory=lambda: list(TEAMS_STANDALONE_SKUS))
    restore_window_days: int = Field(default=30, ge=0)      # how long after its release a licence may be restored
    batch_size: int = Field(default=100, ge=1, le=2000)     # licences per Prefect task (never one task per person)

    @model_validator(mode="after")
    def _window_holds_the_days(self) -> ReleaseSettings:
        if self.window_days < self.min_visio_days:
            raise ValueError(f"window_days ({self.window_days}) must be at least min_visio_days "
                             f"({self.min_visio_days}): a day counts once")
        return self

    def policy(self, exempt_anchors: frozenset[str] = frozenset()) -> ReleasePolicy:
        return ReleasePolicy(min_visio_days=self.min_visio_days, window_days=self.window_days,
                             grace_days=self.grace_days, exempt_webinar_hosts=self.exempt_webinar_hosts,
                             exempt_large_meetings=self.exempt_large_meetings, exempt_anchors=exempt_anchors)


def _ninety_days() -> dict[Literal["zoom", "teams", "webex"], int]:
    return {"zoom": 90, "teams": 90, "webex": 90}


class SavingsSettings(_Strict):
    """How the savings are read (savings.md §4): the activity threshold per tool, and the scenario finance toggles."""

    activity_days: dict[Literal["zoom", "teams", "webex"], int] = Field(
        default_factory=_ninety_days)   # a seat is active when used within this many days
    zoom_activity_buffer_days: int = Field(default=3, ge=0)   # Zoom's last_login_time lags (savings.md §4.4)
    visio_cost_per_user: Decimal | None = Field(default=None, ge=0)      # charge-back scenario (unconfirmed)
    one_off_costs_amortised: Decimal | None = Field(default=None, ge=0)  # migration costs per year
    reduction_delay_months: int = Field(default=0, ge=0)       # planned reductions taking effect later

    @field_validator("activity_days")
    @classmethod
    def _positive(cls, days: dict[str, int]) -> dict[str, int]:
        for tool, count in days.items():
            if count < 1:
                raise ValueError(f"{tool}: at least 1 day, not {count}")
        return days


class SkuPrice(_Strict):
    """A contract price per SKU, per user per year."""

    platform: Literal["zoom", "teams", "webex"]
    sku_key: str
    annual_unit_cost: Decimal = Field(gt=0)


class CostModel(_Strict):
    """Prices; without a contract price a SKU costs the government benchmark (€10 per user per year)."""

    currency: str = "EUR"
    vat_included: bool = False
    default_annual_unit_cost: Decimal = Decimal("10.00")
    skus: list[SkuPrice] = Field(default_factory=list)


class ContractLine(_Strict):
    """One contract line (shared/contracts/savings.md section 5)."""

    contract_ref: str
    vendor: str
    platform: Literal["zoom", "teams", "webex"]
    sku_key: str
    unit_price: Decimal | None = Field(default=None, gt=0)
    renewal_unit_price: Decimal | None = Field(default=None, gt=0)
    currency: str = "EUR"
    billing_period_months: int = Field(default=12, ge=1)
    committed_qty: int = Field(ge=0)
    commit_floor: int = Field(default=0, ge=0)
    term_start: date | None = None
    term_end: date | None = None
    renewal_date: date | None = None
    notice_days: int = Field(default=0, ge=0)
    auto_renew: bool = True
    true_down_dates: list[date] = Field(default_factory=list)
    cancellation_window_days: int = Field(default=0, ge=0)
    vat_included: bool = False

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if not _ISO_4217.fullmatch(value):
            raise ValueError(f"must be an ISO 4217 code in capitals such as EUR, not {value!r}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ContractLine:
        if self.commit_floor > self.committed_qty:
            raise ValueError(f"commit_floor must not exceed committed_qty ({self.commit_floor} > "
                             f"{self.committed_qty})")
        if self.term_start and self.term_end and self.term_start >= self.term_end:
            raise ValueError("term_start must be before term_end")
        if self.term_start is not None and (self.renewal_date or self.term_end) is not None:
            self.to_contract()  # every other rule of core.contracts.Contract (ContractInvalid names the field)
        return self

    def to_contract(self) -> Contract:
        """The line as a `core.contracts.Contract`; ContractInvalid (a ValueError naming the field) when it cannot
        be one, e.g. without `term_start` or without both `renewal_date` and `term_end`."""
        if self.term_start is None:
            raise ContractInvalid("term_start", "required to record the contract")
        renewal = self.renewal_date or self.term_end
        if renewal is None:
            raise ContractInvalid("renewal_date", "required (or term_end) to record the contract")
        price = Money(self.unit_price, self.currency) if self.unit_price is not None else None
        renewal_price = (Money(self.renewal_unit_price, self.currency) if self.renewal_unit_price is not None
                         else None)
        return Contract(vendor=self.vendor, contract_ref=self.contract_ref, platform=Platform(self.platform),
                        sku_key=self.sku_key, unit_price=price, committed_qty=self.committed_qty,
                        term_start=self.term_start, renewal_date=renewal, commit_floor=self.commit_floor,
                        billing_period_months=self.billing_period_months, term_end=self.term_end,
                        renewal_unit_price=renewal_price, notice_days=self.notice_days,
                        auto_renew=self.auto_renew, true_down_dates=tuple(self.true_down_dates),
                        cancellation_window_days=self.cancellation_window_days, vat_included=self.vat_included)


def _where(loc: tuple[int | str, ...], document: dict[str, object]) -> str:
    """`contracts[ZOOM-2025-001].unit_price` rather than `contracts.0.unit_price`: a contract line is named by its
    reference when it has one."""
    parts = [str(part) for part in loc]
    lines = document.get("contracts")
    if len(loc) >= 2 and loc[0] == "contracts" and isinstance(loc[1], int) and isinstance(lines, list):
        line = lines[loc[1]] if loc[1] < len(lines) else None
        ref = line.get("contract_ref") if isinstance(line, dict) else None
        if isinstance(ref, str) and ref.strip():
            parts[:2] = [f"contracts[{ref}]"]
    return ".".join(parts) or "(top level)"


class TenantConfig(_Strict):
    """Everything bascule knows about one ministry, except its secrets."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str
    siret: str
    domains: list[str] = Field(min_length=1)
    alias_domains: list[str] = Field(default_factory=list)
    identity: IdentitySettings = IdentitySettings()
    directory: DirectorySettings
    sources: SourcesSettings = SourcesSettings()
    visio: VisioSettings | None = None
    mail: MailSettings | None = None
    calendar: CalendarSettings | None = None
    waves: WaveSettings = WaveSettings()
    cost_model: CostModel = CostModel()
    contracts: list[ContractLine] = Field(default_factory=list)
    release: ReleaseSettings = ReleaseSettings()
    savings: SavingsSettings = SavingsSettings()

    _check_domains = field_validator("domains", "alias_domains")(_mail_domains)

    @field_validator("contracts")
    @classmethod
    def _unique_refs(cls, lines: list[ContractLine]) -> list[ContractLine]:
        seen: set[str] = set()
        for line in lines:
            if line.contract_ref in seen:
                raise ValueError(f"contract_ref {line.contract_ref!r} appears twice (unique per tenant)")
            seen.add(line.contract_ref)
        return lines

    @classmethod
    def load(cls, path: Path) -> TenantConfig:
        """Read and validate a tenant file; relative paths in it are relative to the file."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise TenantFileError(f"tenant file not found: {path}", code="TENANT_FILE_MISSING") from None
        except OSError as exc:
            raise TenantFileError(f"tenant file unreadable: {path}: {exc.strerror}",
                                  code="TENANT_FILE_UNREADABLE") from None
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TenantFileError(f"tenant file {path} is not valid TOML: {exc}", code="TENANT_NOT_TOML") from None
        try:
            config = cls.model_validate(document)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _where(first["loc"], document)
            message = first["msg"].removeprefix("Value error, ")
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise TenantFileError(f"tenant file {path}: {where}: {message}{more}",
                                  code=f"INVALID:{first['type']}") from None
        if config.directory.ldif_path is not None and not config.directory.ldif_path.is_absolute():
            directory = config.directory.model_copy(
                update={"ldif_path": (path.parent / config.directory.ldif_path).resolve()})
            config = config.model_copy(update={"directory": directory})
        keep = config.release.keep_licence_csv
        if keep is not None and not keep.is_absolute():
            config = config.model_copy(update={"release": config.release.model_copy(
                update={"keep_licence_csv": (path.parent / keep).resolve()})})
        teams = config.sources.teams
        if teams is not None and teams.ca_file is not None and not teams.ca_file.is_absolute():
            sources = config.sources.model_copy(
                update={"teams": teams.model_copy(update={"ca_file": (path.parent / teams.ca_file).resolve()})})
            config = config.model_copy(update={"sources": sources})
        config.check_files(path)
        return config

    def check_files(self, path: Path) -> None:
        """Every file the tenant names exists and can be read; else one line naming the setting and the file."""
        named = {"directory.ldif_path": self.directory.ldif_path if self.directory.kind == "ldif" else None,
                 "sources.teams.ca_file": self.sources.teams.ca_file if self.sources.teams else None,
                 "release.keep_licence_csv": self.release.keep_licence_csv}
        for setting, file in named.items():
            if file is None:
                continue
            if not file.exists():
                raise TenantFileError(f"tenant file {path}: {setting}: {file} does not exist",
                                      code="NAMED_FILE_MISSING")
            if not file.is_file():
                raise TenantFileError(f"tenant file {path}: {setting}: {file} is not a file",
                                      code="NAMED_FILE_NOT_A_FILE")
            try:
                with file.open("rb") as handle:
                    handle.read(1)
            except OSError as exc:
                raise TenantFileError(f"tenant file {path}: {setting}: {file} cannot be read ({exc.strerror})",
                                      code="NAMED_FILE_UNREADABLE") from None

    @staticmethod
    def file_hash(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()
