"""Onboarding readiness: each check as a value, the SIRET rule, scope coverage, the verdict (no I/O here).

A check has a stable `name` (`siret`, `cost_model`, `directory`, `zoom.credentials`, `zoom.scopes`,
`teams.credentials`, `teams.scopes`, `webex.credentials`, `webex.scopes`, `visio.application`,
`visio.domain:<domain>`), a status, a one-line reason a migration team understands and what to do about it.
A tenant is ready when no check failed; warnings and skipped checks do not block.

Reports never hold secrets nor agents' e-mail addresses: domains, directory anchors, scope names and counts only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import cast

from core.emails import EmailAddress, normalise_domain, parse_email
from core.records import DirectoryEntry, JsonValue, Platform
from core.visio import DomainCheck, DomainVerdict, VisioRefusal, VisioRefusalReason

BENCHMARK = "€10"
LA_POSTE_SIREN = "356000000"


class CheckStatus(StrEnum):
    """How one check came out; only FAILED blocks the tenant."""

    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the readiness report."""

    name: str
    status: CheckStatus
    reason: str
    action: str = ""
    details: Mapping[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        return {"name": self.name, "status": self.status.value, "reason": self.reason, "action": self.action,
                "details": dict(self.details)}

    @classmethod
    def from_json(cls, document: Mapping[str, JsonValue]) -> CheckResult:
        details = document.get("details")
        return cls(name=str(document["name"]), status=CheckStatus(str(document["status"])),
                   reason=str(document.get("reason") or ""), action=str(document.get("action") or ""),
                   details=dict(details) if isinstance(details, dict) else {})


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Every check of one onboarding run; `ready` is the verdict."""

    tenant_id: str
    checked_at: datetime
    checks: tuple[CheckResult, ...]
    config_hash: str | None = None

    @property
    def ready(self) -> bool:
        return verdict(self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if check.status is CheckStatus.FAILED)

    def check(self, name: str) -> CheckResult | None:
        return next((check for check in self.checks if check.name == name), None)

    def counts(self) -> dict[str, int]:
        return {status.value: sum(1 for check in self.checks if check.status is status) for status in CheckStatus}

    def to_json(self) -> dict[str, JsonValue]:
        return {"tenant": self.tenant_id, "ready": self.ready, "checked_at": self.checked_at.isoformat(),
                "config_hash": self.config_hash, "counts": cast(dict[str, JsonValue], self.counts()),
                "checks": [check.to_json() for check in self.checks]}

    @classmethod
    def from_json(cls, document: Mapping[str, JsonValue]) -> ReadinessReport:
        checks = document.get("checks")
        config_hash = document.get("config_hash")
        return cls(tenant_id=str(document["tenant"]), checked_at=datetime.fromisoformat(str(document["checked_at"])),
                   checks=tuple(CheckResult.from_json(item) for item in (checks if isinstance(checks, list) else [])
                                if isinstance(item, dict)),
                   config_hash=str(config_hash) if config_hash else None)


def verdict(checks: Iterable[CheckResult]) -> bool:
    """Ready iff no check failed (warnings and skipped checks do not block)."""
    return all(check.status is not CheckStatus.FAILED for check in checks)


def not_ready_summary(report: ReadinessReport) -> str:
    """One line naming the failed checks and why, for an error message."""
    return "; ".join(f"{check.name}: {check.reason}" for check in report.failed)


# ----------------------------------------------------------------------------------------------- SIRET

class SiretRule(StrEnum):
    """Which rule accepted or refused a SIRET (proconnect.md section 6)."""

    LUHN = "luhn"                          # an ordinary establishment
    LA_POSTE_DIGIT_SUM = "la_poste_digit_sum"  # SIREN 356000000, INSEE's rule: digits sum to a multiple of 5
    LA_POSTE_PREFIX_ONLY = "la_poste_prefix_only"  # accepted by ProConnect, fails INSEE's rule: a warning
    NOT_14_CHARACTERS = "not_14_characters"
    NOT_DIGITS = "not_digits"
    LUHN_FAILED = "luhn_failed"


@dataclass(frozen=True, slots=True)
class SiretCheck:
    """A SIRET as ProConnect will see it (whitespace removed), whether it accepts it, and under which rule."""

    value: str
    accepted: bool
    rule: SiretRule

    @property
    def warning(self) -> bool:
        return self.rule is SiretRule.LA_POSTE_PREFIX_ONLY


def luhn_ok(digits: str) -> bool:
    """The Luhn check over a string of digits (double every second digit from the right)."""
    total = 0
    for index, character in enumerate(reversed(digits)):
        doubled = int(character) * (2 if index % 2 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def check_siret(raw: str) -> SiretCheck:
    """ProConnect's rule: strip whitespace, 14 digits, Luhn, or any value starting with La Poste's SIREN."""
    value = "".join(raw.split())
    if len(value) != 14:
        return SiretCheck(value, False, SiretRule.NOT_14_CHARACTERS)
    if not (value.isascii() and value.isdigit()):
        return SiretCheck(value, False, SiretRule.NOT_DIGITS)
    if value.startswith(LA_POSTE_SIREN):
        if luhn_ok(value):
            return SiretCheck(value, True, SiretRule.LUHN)
        if sum(int(character) for character in value) % 5 == 0:
            return SiretCheck(value, True, SiretRule.LA_POSTE_DIGIT_SUM)
        return SiretCheck(value, True, SiretRule.LA_POSTE_PREFIX_ONLY)
    if luhn_ok(value):
        return SiretCheck(value, True, SiretRule.LUHN)
    return SiretCheck(value, False, SiretRule.LUHN_FAILED)


def siret_ok(raw: str) -> bool:
    """True when ProConnect accepts the value as a SIRET."""
    return check_siret(raw).accepted


def siret_result(raw: str) -> CheckResult:
    """The `siret` check of the tenant's SIRET."""
    found = check_siret(raw)
    details: dict[str, JsonValue] = {"siret": found.value, "rule": found.rule.value}
    fix = ("correct `siret` in the tenant file (14 digits: SIREN + NIC, from the SIRENE registry, "
           "e.g. annuaire-entreprises.data.gouv.fr)")
    if found.rule is SiretRule.NOT_14_CHARACTERS:
        return CheckResult("siret", CheckStatus.FAILED,
                           f"SIRET {found.value!r} has {len(found.value)} characters, not 14", fix, details)
    if found.rule is SiretRule.NOT_DIGITS:
        return CheckResult("siret", CheckStatus.FAILED, f"SIRET {found.value!r} contains characters other than "
                           "digits", fix, details)
    if found.rule is SiretRule.LUHN_FAILED:
        return CheckResult("siret", CheckStatus.FAILED, f"SIRET {found.value} fails the Luhn check (a typo?)",
                           fix, details)
    if found.rule is SiretRule.LA_POSTE_PREFIX_ONLY:
        return CheckResult("siret", CheckStatus.WARNING,
                           f"SIRET {found.value} is a La Poste establishment that fails INSEE's digit-sum rule; "
                           "ProConnect accepts it anyway",
                           "check the NIC against the SIRENE registry; nothing blocks the migration", details)
    if found.rule is SiretRule.LA_POSTE_DIGIT_SUM:
        return CheckResult("siret", CheckStatus.OK, f"SIRET {found.value} is valid (La Poste digit-sum rule)",
                           details=details)
    return CheckResult("siret", CheckStatus.OK, f"SIRET {found.value} is valid", details=details)


# ----------------------------------------------------------------------------------------------- prices

@dataclass(frozen=True, slots=True)
class PriceLine:
    """A price the tenant declared: a cost-model SKU price, or a contract line (its price may be missing)."""

    platform: Platform
    sku_key: str
    origin: str                        # "cost_model" or the contract reference
    annual_unit_cost: Decimal | None
    currency: str
    term_start: date | None = None
    term_end: date | None = None
    auto_renew: bool = True


def cost_model_result(lines: Sequence[PriceLine], *, platforms: Iterable[Platform], currency: str,
                      today: date) -> CheckResult:
    """The `cost_model` check: prices and contract lines present for each source platform, and coherent."""
    used = sorted(set(platforms))
    fix_prices = "add [[cost_model.skus]] prices or unit_price on the [[contracts]] lines"
    if not lines:
        return CheckResult("cost_model", CheckStatus.WARNING,
                           f"no contract line and no price: figures will be estimated at the {BENCHMARK} benchmark",
                           fix_prices, {"lines": 0})
    problems: list[str] = []
    unpriced = [platform.value for platform in used
                if not any(line.platform is platform and line.annual_unit_cost is not None for line in lines)]
    if unpriced:
        problems.append(f"no price for {', '.join(unpriced)}: figures will be estimated at the {BENCHMARK} "
                        "benchmark")
    without_price = sorted({f"{line.origin}/{line.sku_key}" for line in lines if line.annual_unit_cost is None})
    if without_price:
        problems.append(f"contract line(s) without unit_price: {', '.join(without_price)}")
    unused = sorted({line.origin for line in lines if line.platform not in used})
    if unused:
        problems.append(f"line(s) for a platform that is not a configured source: {', '.join(unused)}")
    currencies = sorted({line.currency for line in lines if line.currency != currency})
    if currencies:
        problems.append(f"currency {', '.join(currencies)} differs from the cost model's {currency}")
    seen: set[tuple[str, str]] = set()
    duplicates: set[str] = set()
    for line in lines:
        if line.origin == "cost_model":
            continue
        key = (line.origin, line.sku_key)
        if key in seen:
            duplicates.add(f"{line.origin}/{line.sku_key}")
        seen.add(key)
    if duplicates:
        problems.append(f"duplicate contract line(s): {', '.join(sorted(duplicates))}")
    ended = sorted({line.origin for line in lines
                    if line.term_end is not None and line.term_end < today and not line.auto_renew})
    if ended:
        problems.append(f"contract(s) whose term has ended: {', '.join(ended)}")
    details: dict[str, JsonValue] = {"lines": len(lines),
                                     "contracts": len({line.origin for line in lines if line.origin != "cost_model"})}
    if problems:
        return CheckResult("cost_model", CheckStatus.WARNING, "; ".join(problems),
                           "complete the [cost_model] and [[contracts]] tables of the tenant file", details)
    return CheckResult("cost_model", CheckStatus.OK,
                       f"{len(lines)} price line(s) cover {', '.join(p.value for p in used) or 'no source'}",
                       details=details)


# ----------------------------------------------------------------------------------------------- directory

def directory_result(*, source: str, people: int, quarantined: Mapping[str, int], out_of_scope: int,
                     records: int) -> CheckResult:
    """The `directory` check from the first page read: people, quarantined records, entries out of scope."""
    held = sum(quarantined.values())
    details: dict[str, JsonValue] = {"source": source, "records_read": records, "people": people,
                                     "quarantined": cast(dict[str, JsonValue], dict(quarantined)),
                                     "out_of_scope": out_of_scope}
    summary = (f"{source}: first page read, {people} people, {held} quarantined, {out_of_scope} entries "
               "out of scope")
    if people == 0:
        return CheckResult("directory", CheckStatus.FAILED, f"{summary}: no person entry could be read",
                           "check the export (or base DN and filter) and the directory flavour", details)
    if held * 10 > people + held:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(quarantined.items()))
        return CheckResult("directory", CheckStatus.WARNING, f"{summary} (more than 10 %: {reasons})",
                           "look at the quarantined records before loading the directory", details)
    return CheckResult("directory", CheckStatus.OK, summary, details=details)


def directory_failure(source: str, reason: str, action: str) -> CheckResult:
    """The `directory` check when the directory could not be read at all."""
    return CheckResult("directory", CheckStatus.FAILED, f"{source}: {reason}", action, {"source": source})


# ----------------------------------------------------------------------------------------------- scopes

@dataclass(frozen=True, slots=True)
class ScopeNeed:
    """A permission bascule needs: any one of `any_of` grants it. `later` names the step that needs a write."""

    name: str
    any_of: frozenset[str]
    later: str | None = None          # None: needed now (reading); else the later step that will need it

    @property
    def write(self) -> bool:
        return self.later is not None


def _need(name: str, *alternatives: str, later: str | None = None) -> ScopeNeed:
    return ScopeNeed(name, frozenset((name, *alternatives)), later)


# zoom.md section 1 (classic names; granular equivalents from current docs in second place).
ZOOM_NEEDS = (
    _need("user:read:admin", "user:read:list_users:admin"),
    _need("meeting:read:admin", "meeting:read:list_meetings:admin"),
    _need("webinar:read:admin", "webinar:read:list_webinars:admin"),
    _need("user:write:admin", later="decommission (Zoom licence release)"),
)
# graph.md section 1: application permissions (the token's `roles`); a broader permission covers a narrower one.
GRAPH_NEEDS = (
    _need("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    _need("Organization.Read.All", "Organization.ReadWrite.All", "LicenseAssignment.Read.All",
          "LicenseAssignment.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    _need("Calendars.Read", "Calendars.ReadWrite"),
    _need("Calendars.ReadWrite", later="cutover (rewriting Teams meetings in calendars)"),
    _need("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All",
          later="decommission (Teams licence release)"),
)
# webex.md section 1.
WEBEX_NEEDS = (
    _need("spark-admin:people_read"),
    _need("spark-admin:licenses_read"),
    _need("meeting:admin_schedule_read"),
    _need("spark-admin:people_write", later="decommission (Webex licence release)"),
)
NEEDS: dict[Platform, tuple[ScopeNeed, ...]] = {Platform.ZOOM: ZOOM_NEEDS, Platform.TEAMS: GRAPH_NEEDS,
                                                Platform.WEBEX: WEBEX_NEEDS}
SYSTEM_NAMES = {Platform.ZOOM: "Zoom", Platform.TEAMS: "Microsoft Entra", Platform.WEBEX: "Webex"}
SCOPE_FIXES = {
    Platform.ZOOM: "add the scope(s) to the Server-to-Server OAuth app (Zoom App Marketplace), then re-activate it",
    Platform.TEAMS: "grant the application permission(s) to the Entra app registration, with admin consent",
    Platform.WEBEX: "re-authorise the Webex service app (Control Hub) with the scope(s)",
}
CREDENTIAL_FIXES = {
    Platform.ZOOM: "check the account id, client id and the secret in {secret} (Zoom App Marketplace)",
    Platform.TEAMS: "check the tenant id, client id and the secret in {secret} (Entra app registration; secrets "
                    "expire)",
    Platform.WEBEX: "renew the access token in {secret} (service app token or admin integration; tokens expire)",
}


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """What a probe of a source learnt: whether the credentials were accepted, and which scopes the token carries.

    `granted` None: the service did not say (no scope list in the token response). `refused`: scopes a probe call
    showed missing. `unverified`: scopes no read-only call can prove.
    """

    authenticated: bool
    granted: frozenset[str] | None = None
    refused: frozenset[str] = frozenset()
    unverified: frozenset[str] = frozenset()
    detail: str = ""


def credentials_result(platform: Platform, access: AccessCheck, *, secret_name: str) -> CheckResult:
    """The `<platform>.credentials` check."""
    system = SYSTEM_NAMES[platform]
    name = f"{platform.value}.credentials"
    if not access.authenticated:
        return CheckResult(name, CheckStatus.FAILED,
                           f"credentials refused by {system}" + (f" ({access.detail})" if access.detail else ""),
                           CREDENTIAL_FIXES[platform].format(secret=secret_name))
    return CheckResult(name, CheckStatus.OK, f"{system} accepted the credentials and issued a token")


def scopes_result(platform: Platform, access: AccessCheck,
                  needs: Sequence[ScopeNeed] | None = None) -> CheckResult:
    """The `<platform>.scopes` check: a missing read scope fails, a missing write scope warns (naming the step)."""
    name = f"{platform.value}.scopes"
    system = SYSTEM_NAMES[platform]
    wanted = tuple(needs if needs is not None else NEEDS[platform])
    if not access.authenticated:
        return CheckResult(name, CheckStatus.SKIPPED, f"not checked: {system} refused the credentials")
    granted = access.granted
    missing_read: list[str] = []
    missing_write: list[ScopeNeed] = []
    unverified: list[ScopeNeed] = []
    for need in wanted:
        if granted is not None and need.any_of & granted:
            continue
        if need.any_of & access.refused or (granted is not None and not need.any_of & access.unverified):
            if need.write:
                missing_write.append(need)
            else:
                missing_read.append(need.name)
        else:
            unverified.append(need)
    details: dict[str, JsonValue] = {
        "granted": cast(list[JsonValue], sorted(granted)) if granted is not None else None,
        "missing_read": cast(list[JsonValue], missing_read),
        "missing_write": [need.name for need in missing_write],
        "unverified": [need.name for need in unverified]}
    fix = SCOPE_FIXES[platform]
    if missing_read:
        return CheckResult(name, CheckStatus.FAILED,
                           f"{system} token lacks read scope(s) {', '.join(missing_read)}, needed now to extract",
                           fix, details)
    notes = [f"lacks write scope {need.name}, needed later by {need.later}" for need in missing_write]
    unverified_reads = [need.name for need in unverified if not need.write]
    notes += [f"{need.name} unverified until first use (needed later by {need.later})"
              for need in unverified if need.write]
    if unverified_reads:
        notes.insert(0, f"read scope(s) {', '.join(unverified_reads)} not reported by {system}")
    if notes:
        action = fix if missing_write or unverified_reads else (
            "make sure the app was authorised with " + ", ".join(need.name for need in unverified)
            + " before that step runs")
        return CheckResult(name, CheckStatus.WARNING, f"{system} token {'; '.join(notes)}", action, details)
    return CheckResult(name, CheckStatus.OK,
                       f"{system} token carries every read and write scope bascule needs", details=details)


def source_failure(platform: Platform, check: str, reason: str, action: str) -> CheckResult:
    """A source check that could not run (secret not set, service unreachable, an unexpected answer)."""
    return CheckResult(f"{platform.value}.{check}", CheckStatus.FAILED, reason, action)


# Where the tenant file sets each system's addresses: what to check when it answers something unexpected.
URL_SETTINGS = {Platform.ZOOM: "sources.zoom.api_url and oauth_url",
                Platform.TEAMS: "sources.teams.graph_url and authority", Platform.WEBEX: "sources.webex.api_url"}
VISIO_URL_SETTING = "visio.api_url"


def unexpected_answer(system: str, status: int, excerpt: str, *, url_setting: str) -> tuple[str, str]:
    """Reason and action for an HTTP status the system's contract does not document (it answered: not a network
    problem). `excerpt` is the connector's redacted excerpt of the body."""
    reason = f"{system} answered HTTP {status}, which bascule does not expect" + (f": {excerpt}" if excerpt else "")
    if status == 415:
        action = (f"{system} refuses the encoding of bascule's request: this version of bascule does not speak "
                  f"this version of {system}'s API; update bascule, or report the status and the {system} version "
                  "to bascule's maintainers")
    elif 300 <= status < 400:
        action = (f"check {url_setting}: {system} redirects it (http instead of https, a missing trailing slash, "
                  "a moved API); bascule follows no redirect")
    elif status in (404, 405):
        action = f"check {url_setting}: there is no such endpoint at that address (host or path)"
    elif status in (401, 403, 407):
        action = (f"check {url_setting} and any proxy in between: something other than {system} may be answering, "
                  "or the credentials are refused in a way bascule does not recognise")
    else:
        action = f"check {url_setting}; if it is right, ask the {system} operators what HTTP {status} means there"
    return reason, action


# ----------------------------------------------------------------------------------------------- Visio domains

@dataclass(frozen=True, slots=True)
class DomainAgent:
    """The agent whose token request stands for a domain: an anchor for the report, the e-mail for the request."""

    domain: str
    anchor: str
    email: str = field(repr=False)


# Refusals that say nothing about the domain but stop the whole application (credentials, switched off).
APPLICATION_REFUSALS = frozenset({VisioRefusalReason.INVALID_CREDENTIALS, VisioRefusalReason.APPLICATION_INACTIVE,
                                  VisioRefusalReason.APPLICATIONS_DISABLED, VisioRefusalReason.INVALID_REQUEST})
_APPLICATION_ACTIONS = {
    VisioRefusalReason.INVALID_CREDENTIALS: "check visio.client_id and the secret in {secret}",
    VisioRefusalReason.APPLICATION_INACTIVE: "ask the Visio operators to activate the application",
    VisioRefusalReason.APPLICATIONS_DISABLED: "ask the Visio operators to enable EXTERNAL_API_ENABLED and "
                                              "APPLICATION_ENABLED, and check visio.api_url",
    VisioRefusalReason.INVALID_REQUEST: "check visio.api_url: the token endpoint did not understand the request",
}


def application_refusal(check: DomainCheck) -> VisioRefusal | None:
    """The refusal of a domain check when it concerns the application rather than the domain, else None."""
    refusal = check.refusal
    if check.verdict is DomainVerdict.REFUSED and refusal is not None and refusal.reason in APPLICATION_REFUSALS:
        return refusal
    return None


def visio_application_result(refusal: VisioRefusal | None, *, secret_name: str, domains: int) -> CheckResult:
    """The `visio.application` check: did the Visio application answer token requests at all?"""
    if refusal is None:
        return CheckResult("visio.application", CheckStatus.OK,
                           f"the Visio application answered token requests for {domains} domain(s)")
    what = ("credentials refused by Visio" if refusal.reason is VisioRefusalReason.INVALID_CREDENTIALS
            else f"Visio refused the application ({refusal.reason.value.lower().replace('_', ' ')})")
    return CheckResult("visio.application", CheckStatus.FAILED,
                       what + (f": {refusal.detail}" if refusal.detail else ""),
                       _APPLICATION_ACTIONS.get(refusal.reason, "ask the Visio operators").format(secret=secret_name),
                       {"refusal": refusal.reason.value, "status": refusal.status})


def visio_domain_result(domain: str, check: DomainCheck | None, *, anchor: str | None,
                        precreates_users: bool) -> CheckResult:
    """The `visio.domain:<domain>` check (None: no agent of that domain was found in the directory).

    `precreates_users` is what the tenant file says of the instance: with it, a successful request may have
    pre-created the agent's Visio user (a provisional user the agent claims at first login), and the report says so.
    """
    name = f"visio.domain:{domain}"
    details: dict[str, JsonValue] = {"domain": domain, "anchor": anchor}
    if check is None or anchor is None:
        return CheckResult(name, CheckStatus.WARNING,
                           f"no enabled agent with a primary e-mail on {domain} in the directory: domain not tested",
                           "check the domain list of the tenant file, or test the domain once it has agents",
                           details)
    details["verdict"] = check.verdict.value
    if check.verdict is DomainVerdict.NOT_ALLOWED:
        return CheckResult(name, CheckStatus.FAILED,
                           f"the Visio application is not authorised for the e-mail domain {domain}",
                           f"ask the Visio operators to add {domain} to the application's allowed domains "
                           "(ApplicationDomain)", details)
    if check.verdict is DomainVerdict.DUPLICATE_USERS:
        return CheckResult(name, CheckStatus.FAILED,
                           f"several Visio users share the e-mail of agent {anchor} ({domain}): Visio refuses "
                           "tokens for it",
                           "ask the Visio operators to merge the duplicates (manage.py merge_duplicate_users)",
                           details)
    if check.verdict is DomainVerdict.USER_MUST_LOG_IN_FIRST:
        if precreates_users:
            return CheckResult(name, CheckStatus.WARNING,
                               f"{domain} is allowed, but Visio answered \"User not found\" for agent {anchor}: the "
                               "instance does not pre-create users although the tenant file says it does",
                               "set visio.precreates_users = false, or ask the Visio operators to enable the three "
                               "pre-creation settings", details)
        return CheckResult(name, CheckStatus.OK,
                           f"{domain} is allowed; agent {anchor} has no Visio account yet and this instance does "
                           "not pre-create users: hosts must log in to Visio once before their rooms are created",
                           "plan a first-login campaign before the cutover", details)
    if check.verdict is DomainVerdict.REFUSED:
        reason = check.refusal.reason.value if check.refusal is not None else "unknown"
        details["refusal"] = reason
        return CheckResult(name, CheckStatus.WARNING,
                           f"Visio refused the token request for agent {anchor} ({reason.lower().replace('_', ' ')})"
                           f": {domain} not verified", "run onboarding again; if it persists, ask the Visio "
                           "operators", details)
    provisional = check.may_have_created_user and precreates_users
    details["may_have_created_user"] = provisional
    note = f"; this request may have pre-created the Visio user of agent {anchor}" if provisional else ""
    return CheckResult(name, CheckStatus.OK, f"the Visio application accepts {domain}{note}", details=details)


def calendar_result(system: str, *, anchor: str | None = None, schedules: bool | None = None,
                    syncs: bool | None = None) -> CheckResult:
    """The `calendar` check: whether bascule can reach the organisers' calendars, who will tell the attendees of an
    in-place rewrite, and whether later scans can read only the changes. `anchor`: the directory anchor of the
    agent whose calendar was tried (CalDAV)."""
    if system == "graph":
        return CheckResult("calendar", CheckStatus.OK, "Exchange Online mailboxes through the Teams application "
                           "(Calendars.ReadWrite, see teams.scopes): Exchange tells the attendees of each rewrite; "
                           "scans after the first read only the changes (calendarView delta)",
                           details={"system": system, "schedules": True, "syncs": True})
    told = ("the server tells the attendees of each rewrite itself (RFC 6638)" if schedules else
            "the server does not schedule: bascule will mail the iTIP update under the original UID")
    delta = ("scans after the first read only the changes (sync-collection)" if syncs else
             "the server does not track changes: every scan lists every calendar whole")
    return CheckResult("calendar", CheckStatus.OK if syncs else CheckStatus.WARNING,
                       f"CalDAV calendar of agent {anchor} read: {told}; {delta}",
                       "" if syncs else "expect each calendar scan to take as long as the first",
                       {"system": system, "anchor": anchor, "schedules": schedules, "syncs": syncs})


def calendar_failure(status: CheckStatus, reason: str, action: str) -> CheckResult:
    """The `calendar` check when the calendars could not be tried, or refused."""
    return CheckResult("calendar", status, reason, action)


def visio_failure(reason: str, action: str) -> CheckResult:
    """The `visio.application` check when the application itself cannot be used (not configured, refused)."""
    return CheckResult("visio.application", CheckStatus.FAILED, reason, action)


class AgentPicker:
    """One agent per tenant domain who will be migrated anyway: the first enabled person entry whose primary
    e-mail is on that domain and is not a service, room or privileged account (tenant patterns)."""

    def __init__(self, domains: Iterable[str], *, excluded_patterns: Iterable[str] = (),
                 excluded_populations: Iterable[str] = ()) -> None:
        # The normal form parsed addresses carry; a value that is no domain stays wanted (reported "not tested").
        self._wanted = {normalise_domain(domain) or domain.strip().lower() for domain in domains}
        self._patterns = [re.compile(pattern) for pattern in excluded_patterns]
        self._populations = {population.lower() for population in excluded_populations}
        self._picked: dict[str, DomainAgent] = {}

    @property
    def done(self) -> bool:
        return self._wanted <= self._picked.keys()

    def offer(self, entry: DirectoryEntry) -> None:
        if entry.disabled or (entry.population or "").lower() in self._populations:
            return
        address = parse_email(entry.primary_email)
        if not isinstance(address, EmailAddress) or address.domain not in self._wanted:
            return
        if address.domain in self._picked or any(p.search(address.local) for p in self._patterns):
            return
        self._picked[address.domain] = DomainAgent(address.domain, entry.anchor, entry.primary_email.strip())

    def picked(self) -> dict[str, DomainAgent | None]:
        """Every wanted domain, with its agent or None."""
        return {domain: self._picked.get(domain) for domain in sorted(self._wanted)}
