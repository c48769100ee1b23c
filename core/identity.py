"""Identity mapping: one person per directory entry, each source account tied to a person, conflicts as values.

The anchor is the directory's immutable id (entryUUID / objectGUID / employee number), never the ProConnect `sub`.
Source accounts match a person by primary e-mail, then alias, then the directory anchor the platform carries
(Entra's onPremisesImmutableId), then the employee id — never by display name. A value held by several entries is
contested and held back: a primary beats an alias (the alias holder loses it); two primaries lose it both.
Conflicts are values with a reason code (core.ConflictKind); the flow stores them and closes those that a later
run no longer finds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from core.emails import EmailAddress, normalise_email, parse_email
from core.records import Conflict, ConflictKind, DirectoryEntry, MatchMethod, Platform, SourceAccount


class KeyKind(StrEnum):
    """What kind of identifier a directory key is."""

    PRIMARY = "primary"
    ALIAS = "alias"
    IMMUTABLE = "immutable"
    EMPLOYEE = "employee"


EMAIL_KINDS = frozenset({KeyKind.PRIMARY, KeyKind.ALIAS})


class Lookup(StrEnum):
    """What a source account's value is looked up as: any e-mail of an entry, its anchor, its employee id."""

    EMAIL = "email"
    IMMUTABLE = "immutable"
    EMPLOYEE = "employee"


def lookup_of(kind: KeyKind) -> Lookup:
    """Primary and alias keys answer the same e-mail lookup (the owner rule decides between them)."""
    return Lookup.EMAIL if kind in EMAIL_KINDS else Lookup(kind.value)


@dataclass(frozen=True, slots=True)
class IdentityKey:
    """One identifier of a directory entry: its normal form (the match key) and the form the directory holds."""

    kind: KeyKind
    value: str
    anchor: str
    raw: str


@dataclass(frozen=True, slots=True)
class Owner:
    """The one entry a value belongs to, through which kind of key, as the directory writes it."""

    anchor: str
    kind: KeyKind
    raw: str


@dataclass(frozen=True, slots=True)
class Contested:
    """A value several entries claim: nobody gets it until a human decides."""

    value: str
    anchors: tuple[str, ...]


class OverrideAction(StrEnum):
    """What a migration team decided about a source account."""

    FORCE_MATCH = "force_match"
    EXCLUDE = "exclude"
    MARK_SERVICE = "mark_service"


@dataclass(frozen=True, slots=True)
class Override:
    """A decision from the overrides CSV, applied on every run."""

    platform: Platform
    account_external_id: str
    action: OverrideAction
    person_anchor: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityPolicy:
    """The tenant's rules: identity providers by domain, non-person and privileged accounts, populations."""

    idp_by_domain: Mapping[str, str] = field(default_factory=dict)
    non_person_patterns: tuple[re.Pattern[str], ...] = ()
    privileged_patterns: tuple[re.Pattern[str], ...] = ()
    population_policy: frozenset[str] = frozenset({"prestataire", "stagiaire", "partenaire"})
    # Zoom role_id 0 (owner) and 1 (admin); Webex and Graph admins are recognised by the patterns.
    privileged_roles: Mapping[Platform, frozenset[str]] = field(
        default_factory=lambda: {Platform.ZOOM: frozenset({"0", "1"})})
    siret: str | None = None
    visio_base_url: str | None = None
    visio_precreates_users: bool = False

    @classmethod
    def build(cls, *, idp_by_domain: Mapping[str, str], non_person_patterns: Iterable[str] = (),
              privileged_patterns: Iterable[str] = (), population_policy: Iterable[str] = (),
              siret: str | None = None, visio_base_url: str | None = None,
              visio_precreates_users: bool = False) -> IdentityPolicy:
        return cls(idp_by_domain={domain.lower(): idp for domain, idp in idp_by_domain.items()},
                   non_person_patterns=tuple(re.compile(p, re.IGNORECASE) for p in non_person_patterns),
                   privileged_patterns=tuple(re.compile(p, re.IGNORECASE) for p in privileged_patterns),
                   population_policy=frozenset(p.lower() for p in population_policy), siret=siret,
                   visio_base_url=visio_base_url, visio_precreates_users=visio_precreates_users)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What ProConnect will assert and what Visio will need, for one person."""

    proconnect_email: str | None       # None: the person's primary e-mail is contested, held back
    expected_idp: str | None           # None: no identity provider declares the domain (ProConnect Identité only)
    siret: str | None
    login_hint_url: str | None
    visio_provisioning: str            # "precreated" (by token request) or "first_login" (must log in first)


@dataclass(frozen=True, slots=True)
class AccountMatched:
    """A source account tied to a person, how, and the informational conflicts the match raises."""

    platform: Platform
    external_id: str
    anchor: str
    method: MatchMethod
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True, slots=True)
class AccountUnmatched:
    """A source account with no person, and why."""

    platform: Platform
    external_id: str
    conflict: Conflict


@dataclass(frozen=True, slots=True)
class AccountExcluded:
    """A source account the migration team took out of scope."""

    platform: Platform
    external_id: str


AccountOutcome = AccountMatched | AccountUnmatched | AccountExcluded


# What each conflict kind means for the migration team (artifact, report, CSV).
CONFLICT_MEANING: dict[ConflictKind, str] = {
    ConflictKind.DUPLICATE_EMAIL_DIRECTORY: "an e-mail held by several directory entries (held back)",
    ConflictKind.VISIO_EMAIL_COLLISION: "several persons would share one Visio user (primary e-mail held back)",
    ConflictKind.SOURCE_UNMATCHED: "a source account with no person (departed, external, guest)",
    ConflictKind.MULTI_SOURCE_ACCOUNTS: "a person with several accounts on one platform",
    ConflictKind.ALIAS_ONLY_MATCH: "matched through an alias: ProConnect asserts the primary e-mail",
    ConflictKind.DOMAIN_NOT_ROUTED: "a domain no ministry identity provider declares (ProConnect Identité)",
    ConflictKind.NO_PROCONNECT_COVERAGE: "the tenant SIRET is missing or invalid",
    ConflictKind.NON_PERSON_ACCOUNT: "a room, service or shared account: needs a human owner",
    ConflictKind.PRIVILEGED_ACCOUNT: "an administrator account: never matched automatically",
    ConflictKind.CASE_OR_UNICODE_MISMATCH: "same address written differently (informational)",
    ConflictKind.DEPARTED_OR_DISABLED: "a disabled person still holding licences",
    ConflictKind.EMAIL_CHANGED: "the directory e-mail changed since the previous pass",
    ConflictKind.SUB_DRIFT: "several ProConnect subs observed for one person",
    ConflictKind.POPULATION_POLICY: "a population the ministry decides on (contractor, intern, partner)",
    ConflictKind.PROVISIONAL_NEVER_ACTIVATED: "a Visio user pre-created for a host who never logged in",
}


# ------------------------------------------------------------------------------------------------- keys

def normalise_id(value: str | None) -> str | None:
    """Employee and immutable ids compare trimmed, case-insensitively for employee numbers."""
    if value is None:
        return None
    text = value.strip()
    return text or None


def directory_keys(entry: DirectoryEntry) -> list[IdentityKey]:
    """Every identifier an entry offers for matching (invalid aliases are simply not keys)."""
    keys: list[IdentityKey] = []
    primary = normalise_email(entry.primary_email)
    if primary is not None:
        keys.append(IdentityKey(KeyKind.PRIMARY, primary, entry.anchor, entry.primary_email.strip()))
    seen = {primary}
    for alias in entry.aliases:
        value = normalise_email(alias)
        if value is not None and value not in seen:
            seen.add(value)
            keys.append(IdentityKey(KeyKind.ALIAS, value, entry.anchor, alias.strip()))
    immutable = normalise_id(entry.immutable_id)
    if immutable is not None:
        keys.append(IdentityKey(KeyKind.IMMUTABLE, immutable, entry.anchor, immutable))
    employee = normalise_id(entry.employee_id)
    if employee is not None:
        keys.append(IdentityKey(KeyKind.EMPLOYEE, employee.upper(), entry.anchor, employee))
    return keys


def owner_of(value: str, holders: Sequence[IdentityKey]) -> Owner | Contested:
    """Who a value belongs to: its one primary holder, else its one alias holder; several → contested."""
    for tier in ((KeyKind.PRIMARY,), (KeyKind.ALIAS,), (KeyKind.IMMUTABLE,), (KeyKind.EMPLOYEE,)):
        candidates = {key.anchor: key for key in holders if key.kind in tier}
        if len(candidates) == 1:
            key = next(iter(candidates.values()))
            return Owner(key.anchor, key.kind, key.raw)
        if len(candidates) > 1:
            return Contested(value, tuple(sorted(candidates)))
    raise ValueError(f"no holder for {value!r}")


def value_conflicts(value: str, holders: Sequence[IdentityKey]) -> list[Conflict]:
    """Conflicts of one e-mail value: held by several entries; held as a primary by several (one Visio user)."""
    anchors = sorted({key.anchor for key in holders if key.kind in EMAIL_KINDS})
    conflicts = []
    if len(anchors) > 1:
        conflicts.append(Conflict(ConflictKind.DUPLICATE_EMAIL_DIRECTORY, "directory", value,
                                  "entries " + ", ".join(anchors)))
    primaries = sorted({key.anchor for key in holders if key.kind is KeyKind.PRIMARY})
    if len(primaries) > 1:
        conflicts.append(Conflict(ConflictKind.VISIO_EMAIL_COLLISION, "visio", value,
                                  "one Visio user for entries " + ", ".join(primaries)))
    return conflicts


# ------------------------------------------------------------------------------------------------- persons

def expectation(entry: DirectoryEntry, policy: IdentityPolicy, *, primary_contested: bool) -> Expectation:
    """The e-mail ProConnect will assert, the identity provider its domain routes to, the Visio onboarding."""
    email = None if primary_contested else entry.primary_email.strip()
    parsed = parse_email(entry.primary_email)
    domain = parsed.domain if isinstance(parsed, EmailAddress) else None
    hint = None
    if email is not None and policy.visio_base_url:
        hint = f"{policy.visio_base_url.rstrip('/')}/?login_hint={quote(email, safe='@')}"
    return Expectation(proconnect_email=email, expected_idp=policy.idp_by_domain.get(domain or ""),
                       siret=policy.siret, login_hint_url=hint,
                       visio_provisioning="precreated" if policy.visio_precreates_users else "first_login")


def person_conflicts(entry: DirectoryEntry, policy: IdentityPolicy) -> list[Conflict]:
    """Conflicts that belong to the person: an unrouted domain, a population the ministry must decide on."""
    conflicts = []
    parsed = parse_email(entry.primary_email)
    if isinstance(parsed, EmailAddress) and parsed.domain not in policy.idp_by_domain:
        conflicts.append(Conflict(ConflictKind.DOMAIN_NOT_ROUTED, entry.anchor, parsed.domain,
                                  "no identity provider of the tenant declares this domain: ProConnect Identité only"))
    if entry.population and entry.population.lower() in policy.population_policy:
        conflicts.append(Conflict(ConflictKind.POPULATION_POLICY, entry.anchor, entry.population.lower(),
                                  "population the ministry decides on"))
    return conflicts


_WAS = "was "


def email_changed(anchor: str, *, before: str, after: str) -> Conflict | None:
    """The directory's primary e-mail moved since the last run (the anchor re-keys the person). It stays open
    while a source account still shows the previous address (see IdentityRepository.standing_email_changes)."""
    if before == after:
        return None
    return Conflict(ConflictKind.EMAIL_CHANGED, anchor, after, f"{_WAS}{before}")


def email_changed_from(detail: str) -> str | None:
    """The previous address an EMAIL_CHANGED conflict records."""
    return detail.removeprefix(_WAS) if detail.startswith(_WAS) else None


def disabled_but_licensed(anchor: str, platforms: Iterable[str]) -> Conflict:
    """A disabled person still holding licences: release them, migrate nothing."""
    return Conflict(ConflictKind.DEPARTED_OR_DISABLED, anchor, "disabled",
                    "licensed on " + ", ".join(sorted(set(platforms))))


def several_accounts(anchor: str, platform: Platform, account_ids: Iterable[str]) -> Conflict:
    """A person with several accounts (double licences) on one platform."""
    return Conflict(ConflictKind.MULTI_SOURCE_ACCOUNTS, anchor, str(platform),
                    "accounts " + ", ".join(sorted(account_ids)))


def sub_drift(anchor: str, subs: Sequence[str]) -> Conflict | None:
    """ProConnect subs seen for one person: more than one means a new identity provider and a new Visio user."""
    distinct = list(dict.fromkeys(subs))
    if len(distinct) < 2:
        return None
    return Conflict(ConflictKind.SUB_DRIFT, anchor, distinct[-1], f"{len(distinct)} subs observed")


# ------------------------------------------------------------------------------------------------- accounts

def account_subject(account: SourceAccount) -> str:
    return f"{account.platform}:{account.external_id}"


def match_account(account: SourceAccount, *, lookups: Mapping[tuple[Lookup, str], Owner | Contested],
                  policy: IdentityPolicy, override: Override | None = None) -> AccountOutcome:
    """Tie one source account to a person, or say why not. `lookups` holds the owner of every value the account
    offers (see lookup_values); a value nobody holds is simply absent."""
    subject = account_subject(account)
    email = normalise_email(account.email) or account.email.strip().lower()
    if override is not None:
        if override.action is OverrideAction.EXCLUDE:
            return AccountExcluded(account.platform, account.external_id)
        if override.person_anchor is not None:
            return AccountMatched(account.platform, account.external_id, override.person_anchor,
                                  MatchMethod.OVERRIDE)
        if override.action is OverrideAction.MARK_SERVICE:
            return AccountUnmatched(account.platform, account.external_id, Conflict(
                ConflictKind.NON_PERSON_ACCOUNT, subject, email, "marked as a service account: name its owner"))
    local = email.partition("@")[0]
    if any(pattern.search(local) for pattern in policy.non_person_patterns):
        return AccountUnmatched(account.platform, account.external_id, Conflict(
            ConflictKind.NON_PERSON_ACCOUNT, subject, email, "room, service or shared account: needs a human owner"))
    roles = policy.privileged_roles.get(account.platform, frozenset())
    if (account.role is not None and account.role in roles) or any(
            pattern.search(local) for pattern in policy.privileged_patterns):
        return AccountUnmatched(account.platform, account.external_id, Conflict(
            ConflictKind.PRIVILEGED_ACCOUNT, subject, email, "administrator: never matched automatically"))

    contested = False
    found = lookups.get((Lookup.EMAIL, email))
    if isinstance(found, Owner):
        method = MatchMethod.PRIMARY_EMAIL if found.kind is KeyKind.PRIMARY else MatchMethod.ALIAS
        conflicts: list[Conflict] = []
        if method is MatchMethod.ALIAS:
            conflicts.append(Conflict(ConflictKind.ALIAS_ONLY_MATCH, subject, email,
                                      "matched through an alias: ProConnect will assert the primary e-mail"))
        if account.email != found.raw:
            conflicts.append(Conflict(ConflictKind.CASE_OR_UNICODE_MISMATCH, subject, email,
                                      "same address written differently (case, spaces or Unicode form)"))
        return AccountMatched(account.platform, account.external_id, found.anchor, method, tuple(conflicts))
    contested = isinstance(found, Contested)
    for kind, raw, method in ((Lookup.IMMUTABLE, account.immutable_id, MatchMethod.IMMUTABLE_ID),
                              (Lookup.EMPLOYEE, account.employee_id, MatchMethod.EMPLOYEE_ID)):
        value = normalise_id(raw)
        if value is None:
            continue
        owner = lookups.get((kind, value.upper() if kind is Lookup.EMPLOYEE else value))
        if isinstance(owner, Owner):
            return AccountMatched(account.platform, account.external_id, owner.anchor, method)
    reason = ("its e-mail is claimed by several directory entries" if contested
              else "no directory entry (departed, external, guest or typo)")
    return AccountUnmatched(account.platform, account.external_id,
                            Conflict(ConflictKind.SOURCE_UNMATCHED, subject, email, reason))


def lookup_values(account: SourceAccount) -> list[tuple[Lookup, str]]:
    """The (lookup, value) pairs `match_account` will look up for this account."""
    values: list[tuple[Lookup, str]] = []
    email = normalise_email(account.email) or account.email.strip().lower()
    values.append((Lookup.EMAIL, email))
    if (immutable := normalise_id(account.immutable_id)) is not None:
        values.append((Lookup.IMMUTABLE, immutable))
    if (employee := normalise_id(account.employee_id)) is not None:
        values.append((Lookup.EMPLOYEE, employee.upper()))
    return values


def owners(holders_by_value: Mapping[tuple[Lookup, str], Sequence[IdentityKey]]) -> dict[tuple[Lookup, str],
                                                                                         Owner | Contested]:
    """The owner of each looked-up value, from every directory key holding it."""
    return {(lookup, value): owner_of(value, holders) for (lookup, value), holders in holders_by_value.items()
            if holders}


def coverage(siret_valid: bool, tenant_id: str, siret: str | None) -> Conflict | None:
    """A tenant whose SIRET ProConnect would reject: its agents get the identity provider's default SIRET."""
    if siret_valid:
        return None
    return Conflict(ConflictKind.NO_PROCONNECT_COVERAGE, f"tenant:{tenant_id}", siret or "",
                    "missing or invalid SIRET (14 digits, Luhn; La Poste prefix 356000000)")


# ------------------------------------------------------------------------------------------------- overrides CSV

# The CSV the migration team edits: the conflict (read-only context), then the decision columns.
OVERRIDE_COLUMNS = ("kind", "subject", "value", "detail", "platform", "account_external_id", "action",
                    "person_anchor", "reason")
CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """One decision read from the CSV: an override to store, or `override=None` to remove the account's."""

    line: int
    platform: Platform
    account_external_id: str
    override: Override | None
    reason: str


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A row that is not applied, and why (one line the migration team can act on)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"row {self.line}: {self.reason}"


def split_account_subject(subject: str) -> tuple[Platform, str] | None:
    """`zoom:abc` → (ZOOM, "abc"); None for subjects that are not source accounts (persons, values, tenant)."""
    platform, sep, external_id = subject.partition(":")
    if not sep or not external_id or platform not in {p.value for p in Platform}:
        return None
    return Platform(platform), external_id


def parse_override_row(line: int, row: Mapping[str, str | None]) -> OverrideRow | RefusedRow | None:
    """Read one CSV row: None when it carries no decision, else the decision or why it is refused (the
    account and person still have to exist: the caller checks them against the database)."""
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    action = cell("action").lower()
    if not action:
        return None
    platform_text, account = cell("platform").lower(), cell("account_external_id")
    if not platform_text and not account and (parsed := split_account_subject(cell("subject"))):
        platform_text, account = parsed[0].value, parsed[1]
    if platform_text not in {p.value for p in Platform}:
        return RefusedRow(line, f"platform {platform_text or '(empty)'!r} is not one of "
                                + ", ".join(p.value for p in Platform))
    if not account:
        return RefusedRow(line, "account_external_id is empty: a decision is about one source account")
    anchor = cell("person_anchor") or None
    platform = Platform(platform_text)
    if action == CLEAR:
        return OverrideRow(line, platform, account, None, cell("reason"))
    try:
        chosen = OverrideAction(action)
    except ValueError:
        return RefusedRow(line, f"action {action!r} is not one of "
                                + ", ".join([*(a.value for a in OverrideAction), CLEAR]))
    if chosen is OverrideAction.FORCE_MATCH and anchor is None:
        return RefusedRow(line, "force_match needs person_anchor (the directory anchor of the person)")
    if chosen is OverrideAction.EXCLUDE and anchor is not None:
        return RefusedRow(line, "exclude takes no person_anchor (to tie the account to a person, use force_match)")
    return OverrideRow(line, platform, account, Override(platform, account, chosen, anchor), cell("reason"))

