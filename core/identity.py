"""Identity mapping: one person per directory entry, each source account tied to a person, conflicts as values.

The anchor is the directory's immutable id (entryUUID / objectGUID / employee number), never the ProConnect `sub`.
Source accounts match a person by primary e-mail, then alias, then the directory anchor the platform carries
(Entra's onPremisesImmutableId), then the employee id, then a former e-mail of the person (an address the directory
gave up, remembered from the e-mail-changed history) — never by display name. A value held by several entries is
contested and held back: a primary beats an alias (the alias holder loses it), an alias beats a former e-mail; two
primaries lose it both.
Directory entries that the tenant's patterns recognise as rooms, shared mailboxes or administrator identities (on
the e-mail local part or the login) stay persons but are excluded from waves, with the conflict that says why; an
account tied to one is held back with the same reason. Domains compare in one normal form (core.emails).
Conflicts are values with a reason code (core.ConflictKind); the flow stores them and closes those that a later
run no longer finds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from core.emails import EmailAddress, normalise_domain, normalise_email, parse_email
from core.records import Conflict, ConflictKind, DirectoryEntry, MatchMethod, Platform, SourceAccount


class KeyKind(StrEnum):
    """What kind of identifier a directory key is."""

    PRIMARY = "primary"
    ALIAS = "alias"
    IMMUTABLE = "immutable"
    EMPLOYEE = "employee"
    # A primary e-mail the entry had before a change: history, not derived from the current entry, so a complete
    # pass keeps it; looked up as an e-mail with the lowest priority.
    FORMER = "former"


# The e-mails an entry holds now (those that can be shared, contested, asserted by ProConnect).
EMAIL_KINDS = frozenset({KeyKind.PRIMARY, KeyKind.ALIAS})
# Every key an account's e-mail is looked up in, in the order the owner rule prefers them.
EMAIL_LOOKUP_KINDS = (KeyKind.PRIMARY, KeyKind.ALIAS, KeyKind.FORMER)


class Lookup(StrEnum):
    """What a source account's value is looked up as: any e-mail of an entry, its anchor, its employee id."""

    EMAIL = "email"
    IMMUTABLE = "immutable"
    EMPLOYEE = "employee"


def lookup_of(kind: KeyKind) -> Lookup:
    """Primary, alias and former e-mail keys answer the same e-mail lookup (the owner rule decides between them)."""
    return Lookup.EMAIL if kind in EMAIL_LOOKUP_KINDS else Lookup(kind.value)


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
    """A value several entries claim (through keys of one kind): nobody gets it until a human decides."""

    value: str
    anchors: tuple[str, ...]
    kind: KeyKind = KeyKind.PRIMARY


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

    def __post_init__(self) -> None:
        # Whatever the spelling of the tenant file, the table is keyed by the normal form parsed addresses carry.
        object.__setattr__(self, "idp_by_domain", routing_table(self.idp_by_domain))

    def provider_of(self, domain: str) -> str | None:
        """The identity provider ProConnect routes `domain` to (any spelling), or None (ProConnect Identité)."""
        key = normalise_domain(domain)
        return self.idp_by_domain.get(key) if key is not None else None

    @classmethod
    def build(cls, *, idp_by_domain: Mapping[str, str], non_person_patterns: Iterable[str] = (),
              privileged_patterns: Iterable[str] = (), population_policy: Iterable[str] = (),
              siret: str | None = None, visio_base_url: str | None = None,
              visio_precreates_users: bool = False) -> IdentityPolicy:
        return cls(idp_by_domain=idp_by_domain,
                   non_person_patterns=tuple(re.compile(p, re.IGNORECASE) for p in non_person_patterns),
                   privileged_patterns=tuple(re.compile(p, re.IGNORECASE) for p in privileged_patterns),
                   population_policy=frozenset(p.lower() for p in population_policy), siret=siret,
                   visio_base_url=visio_base_url, visio_precreates_users=visio_precreates_users)


def routing_table(idp_by_domain: Mapping[str, str]) -> dict[str, str]:
    """The identity providers by domain keyed by the domains' normal form. ValueError (one line) for a key that is
    not a domain, or for one domain declared twice (two spellings) with different providers."""
    table: dict[str, str] = {}
    spelled: dict[str, str] = {}
    for domain, idp in idp_by_domain.items():
        key = normalise_domain(domain)
        if key is None:
            raise ValueError(f"{domain!r} is not a mail domain")
        if key in table and table[key] != idp:
            raise ValueError(f"{spelled[key]!r} and {domain!r} are one domain ({key}) routed to two identity "
                             f"providers ({table[key]!r}, {idp!r})")
        table[key], spelled[key] = idp, domain
    return table


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
    ConflictKind.NON_PERSON_ACCOUNT: "a room, service or shared account or directory entry: needs a human owner, "
                                     "never in a wave",
    ConflictKind.PRIVILEGED_ACCOUNT: "an administrator account or directory entry: never matched automatically, "
                                     "never in a wave",
    ConflictKind.CASE_OR_UNICODE_MISMATCH: "same address written differently (informational)",
    ConflictKind.DEPARTED_OR_DISABLED: "a disabled person still holding licences",
    ConflictKind.EMAIL_CHANGED: "the directory e-mail changed, or an account still shows the former one",
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
    """Who a value belongs to: its one primary holder, else its one alias holder, else its one former holder (the
    address went to nobody since); several of the first kind present → contested."""
    for tier in (*EMAIL_LOOKUP_KINDS, KeyKind.IMMUTABLE, KeyKind.EMPLOYEE):
        candidates = {key.anchor: key for key in holders if key.kind is tier}
        if len(candidates) == 1:
            key = next(iter(candidates.values()))
            return Owner(key.anchor, key.kind, key.raw)
        if len(candidates) > 1:
            return Contested(value, tuple(sorted(candidates)), tier)
    raise ValueError(f"no holder for {value!r}")


def former_key(anchor: str, previous: str) -> IdentityKey | None:
    """The key that keeps a person's previous primary e-mail, so that an account still showing it finds them."""
    value = normalise_email(previous)
    return IdentityKey(KeyKind.FORMER, value, anchor, previous.strip()) if value is not None else None


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
    hint = None
    if email is not None and policy.visio_base_url:
        hint = f"{policy.visio_base_url.rstrip('/')}/?login_hint={quote(email, safe='@')}"
    return Expectation(proconnect_email=email,
                       expected_idp=policy.provider_of(parsed.domain) if isinstance(parsed, EmailAddress) else None,
                       siret=policy.siret, login_hint_url=hint,
                       visio_provisioning="precreated" if policy.visio_precreates_users else "first_login")


def person_conflicts(entry: DirectoryEntry, policy: IdentityPolicy) -> list[Conflict]:
    """Conflicts that belong to the person: not a person a wave moves (room, shared mailbox, administrator), an
    unrouted domain, a population the ministry must decide on."""
    conflicts = []
    if (excluded := excluded_kind(entry, policy)) is not None:
        email = normalise_email(entry.primary_email) or entry.primary_email.strip().lower()
        conflicts.append(Conflict(excluded, entry.anchor, email, _EXCLUDED_DETAIL[excluded]))
    parsed = parse_email(entry.primary_email)
    if isinstance(parsed, EmailAddress) and policy.provider_of(parsed.domain) is None:
        conflicts.append(Conflict(ConflictKind.DOMAIN_NOT_ROUTED, entry.anchor, parsed.domain,
                                  "no identity provider of the tenant declares this domain: ProConnect Identité only"))
    if entry.population and entry.population.lower() in policy.population_policy:
        conflicts.append(Conflict(ConflictKind.POPULATION_POLICY, entry.anchor, entry.population.lower(),
                                  "population the ministry decides on"))
    return conflicts


_EXCLUDED_DETAIL = {
    ConflictKind.NON_PERSON_ACCOUNT: "a room, service or shared mailbox in the directory: never selected in a wave; "
                                     "its meetings need a human owner",
    ConflictKind.PRIVILEGED_ACCOUNT: "an administrator identity in the directory: never selected in a wave (the "
                                     "person's own entry is)",
}


def excluded_kind(entry: DirectoryEntry, policy: IdentityPolicy) -> ConflictKind | None:
    """Why a directory entry is not a person a wave may select — a room, service or shared mailbox
    (NON_PERSON_ACCOUNT) or an administrator identity (PRIVILEGED_ACCOUNT), by the tenant's patterns on its e-mail
    local part or its login — or None for a person."""
    email = normalise_email(entry.primary_email) or entry.primary_email.strip().lower()
    names = [email.partition("@")[0]]
    if entry.login and entry.login.strip():
        # sAMAccountName or uid; a UPN or DOMAIN\name where a mapping takes those: patterns see the name.
        names.append(entry.login.strip().rpartition("\\")[2].partition("@")[0].casefold())
    if _any_match(policy.non_person_patterns, names):
        return ConflictKind.NON_PERSON_ACCOUNT
    if _any_match(policy.privileged_patterns, names):
        return ConflictKind.PRIVILEGED_ACCOUNT
    return None


def _any_match(patterns: Iterable[re.Pattern[str]], names: Sequence[str]) -> bool:
    return any(pattern.search(name) for pattern in patterns for name in names if name)


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
                  policy: IdentityPolicy, override: Override | None = None,
                  excluded: Mapping[str, ConflictKind] | None = None) -> AccountOutcome:
    """Tie one source account to a person, or say why not. `lookups` holds the owner of every value the account
    offers (see lookup_values); a value nobody holds is simply absent. `excluded` gives, for the owners that are
    not persons a wave moves, why (excluded_kind): an account tied to one is held back with that reason, unless
    the migration team's override ties it."""
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
    if _any_match(policy.non_person_patterns, [local]):
        return AccountUnmatched(account.platform, account.external_id, Conflict(
            ConflictKind.NON_PERSON_ACCOUNT, subject, email, "room, service or shared account: needs a human owner"))
    roles = policy.privileged_roles.get(account.platform, frozenset())
    if (account.role is not None and account.role in roles) or _any_match(policy.privileged_patterns, [local]):
        return AccountUnmatched(account.platform, account.external_id, Conflict(
            ConflictKind.PRIVILEGED_ACCOUNT, subject, email, "administrator: never matched automatically"))

    found = lookups.get((Lookup.EMAIL, email))
    if isinstance(found, Owner) and found.kind in EMAIL_KINDS:
        method = MatchMethod.PRIMARY_EMAIL if found.kind is KeyKind.PRIMARY else MatchMethod.ALIAS
        conflicts: list[Conflict] = []
        if method is MatchMethod.ALIAS:
            conflicts.append(Conflict(ConflictKind.ALIAS_ONLY_MATCH, subject, email,
                                      "matched through an alias: ProConnect will assert the primary e-mail"))
        if account.email != found.raw:
            conflicts.append(Conflict(ConflictKind.CASE_OR_UNICODE_MISMATCH, subject, email,
                                      "same address written differently (case, spaces or Unicode form)"))
        return _tie(account, found.anchor, method, conflicts, excluded)
    for kind, raw, method in ((Lookup.IMMUTABLE, account.immutable_id, MatchMethod.IMMUTABLE_ID),
                              (Lookup.EMPLOYEE, account.employee_id, MatchMethod.EMPLOYEE_ID)):
        value = normalise_id(raw)
        if value is None:
            continue
        owner = lookups.get((kind, value.upper() if kind is Lookup.EMPLOYEE else value))
        if isinstance(owner, Owner):
            return _tie(account, owner.anchor, method, [], excluded)
    if isinstance(found, Owner):  # a former e-mail: the weakest key, after the ids the platform carries
        return _tie(account, found.anchor, MatchMethod.FORMER_EMAIL, [Conflict(
            ConflictKind.EMAIL_CHANGED, subject, email,
            f"still on a former e-mail of person {found.anchor}: the platform has not caught up with the directory "
            "(ProConnect will assert the current one)")], excluded)
    if isinstance(found, Contested):
        reason = ("its e-mail is a former address of several directory entries" if found.kind is KeyKind.FORMER
                  else "its e-mail is claimed by several directory entries")
    else:
        reason = "no directory entry (departed, external, guest or typo)"
    return AccountUnmatched(account.platform, account.external_id,
                            Conflict(ConflictKind.SOURCE_UNMATCHED, subject, email, reason))


def _tie(account: SourceAccount, anchor: str, method: MatchMethod, conflicts: Sequence[Conflict],
         excluded: Mapping[str, ConflictKind] | None) -> AccountMatched | AccountUnmatched:
    """The match, unless the person found is not one a wave moves: then the account is held back with that reason
    (as an account recognised by its own address would be)."""
    kind = (excluded or {}).get(anchor)
    if kind is None:
        return AccountMatched(account.platform, account.external_id, anchor, method, tuple(conflicts))
    email = normalise_email(account.email) or account.email.strip().lower()
    what = ("a room, service or shared mailbox" if kind is ConflictKind.NON_PERSON_ACCOUNT
            else "an administrator identity")
    return AccountUnmatched(account.platform, account.external_id, Conflict(
        kind, account_subject(account), email,
        f"tied ({method}) to directory entry {anchor}, {what}: never matched automatically"))


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


# ------------------------------------------------------------------------------------------------- decisions

class ConflictAction(StrEnum):
    """What a migration team decided about a conflict that is not about one source account."""

    ACCEPT = "accept"            # known and accepted: no longer reported open, no longer holds the person back
    EXCLUDE = "exclude"          # the person is never selected in a wave
    INCLUDE = "include"          # an entry the tenant's patterns took for a room or an administrator is a person
    FORCE_MATCH = "force_match"  # a contested e-mail belongs to person_anchor: the other entries lose it


# The subjects of conflicts about an e-mail value rather than a person or an account.
EMAIL_SUBJECTS = {"directory": ConflictKind.DUPLICATE_EMAIL_DIRECTORY, "visio": ConflictKind.VISIO_EMAIL_COLLISION}
TENANT_PREFIX = "tenant:"
# The entry-level conflicts that keep a directory entry out of waves, which `include` lifts.
EXCLUDING_KINDS = frozenset({ConflictKind.NON_PERSON_ACCOUNT, ConflictKind.PRIVILEGED_ACCOUNT})


class Target(StrEnum):
    """What a conflict is about, by its subject: what a decision on it can do."""

    ACCOUNT = "account"   # platform:external_id
    PERSON = "person"     # a directory anchor
    EMAIL = "email"       # an e-mail value several entries hold
    TENANT = "tenant"     # the tenant itself (its SIRET)


def target_of(kind: ConflictKind, subject: str) -> Target:
    if split_account_subject(subject) is not None:
        return Target.ACCOUNT
    if EMAIL_SUBJECTS.get(subject) is kind:
        return Target.EMAIL
    if subject.startswith(TENANT_PREFIX) and kind is ConflictKind.NO_PROCONNECT_COVERAGE:
        return Target.TENANT
    return Target.PERSON


# The actions a row may take, by what its conflict is about (an account's are OverrideAction's).
ACTIONS_FOR = {
    Target.PERSON: (ConflictAction.ACCEPT, ConflictAction.EXCLUDE, ConflictAction.INCLUDE),
    Target.EMAIL: (ConflictAction.FORCE_MATCH, ConflictAction.ACCEPT),
    Target.TENANT: (ConflictAction.ACCEPT,),
}


@dataclass(frozen=True, slots=True)
class ConflictDecision:
    """A decision on one conflict about a person, an e-mail or the tenant, applied on every run."""

    kind: ConflictKind
    subject: str
    value: str
    action: ConflictAction
    person_anchor: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectPerson:
    """Whom a conflict is about, as people recognise them (the CSV's informative columns)."""

    display_name: str
    email: str
    department: str


@dataclass(frozen=True, slots=True)
class Decisions:
    """The standing decisions as a pass applies them."""

    accepted: frozenset[tuple[str, str, str]] = frozenset()   # (kind, subject, value) reported no more
    excluded: Mapping[str, ConflictKind] = field(default_factory=dict)  # anchor → the kind it was excluded for
    included: frozenset[tuple[ConflictKind, str]] = frozenset()  # (kind, anchor): the entry is a person after all
    email_owner: Mapping[str, str] = field(default_factory=dict)  # e-mail value → the entry that keeps it

    @classmethod
    def of(cls, decisions: Iterable[ConflictDecision]) -> Decisions:
        accepted: set[tuple[str, str, str]] = set()
        excluded: dict[str, ConflictKind] = {}
        included: set[tuple[ConflictKind, str]] = set()
        owner: dict[str, str] = {}
        for decision in sorted(decisions, key=lambda d: (d.subject, d.kind, d.value)):
            if decision.action is ConflictAction.ACCEPT:
                accepted.add((decision.kind.value, decision.subject, decision.value))
            elif decision.action is ConflictAction.EXCLUDE:
                excluded.setdefault(decision.subject, decision.kind)
            elif decision.action is ConflictAction.INCLUDE:
                included.add((decision.kind, decision.subject))
            elif decision.person_anchor is not None:
                owner.setdefault(decision.value, decision.person_anchor)
        return cls(frozenset(accepted), excluded, frozenset(included), owner)


def decided_person(anchor: str, excluded: ConflictKind | None, conflicts: Sequence[Conflict],
                   decisions: Decisions) -> tuple[ConflictKind | None, list[Conflict]]:
    """A person as the decisions leave them: why no wave selects them (the patterns' reason unless the team said
    `include`, else the kind of the conflict the team excluded them for), and their conflicts (the one `include`
    answered is gone)."""
    kept = list(conflicts)
    if excluded is not None and (excluded, anchor) in decisions.included:
        kept = [c for c in kept if not (c.kind is excluded and c.subject == anchor)]
        excluded = None
    if excluded is None:
        excluded = decisions.excluded.get(anchor)
    return excluded, kept


def email_given_away(anchor: str, value: str, holders: Iterable[str], decisions: Decisions) -> Conflict | None:
    """The conflict of an entry whose primary e-mail the team gave to another entry holding it (`force_match` on
    a shared e-mail): its ProConnect e-mail is held back until the directory gives it one of its own."""
    owner = decisions.email_owner.get(value)
    if owner is None or owner == anchor or owner not in set(holders):
        return None
    return Conflict(ConflictKind.VISIO_EMAIL_COLLISION, anchor, value,
                    f"primary e-mail given to entry {owner} by decision: give this entry an e-mail of its own "
                    "in the directory, or exclude it")


# ------------------------------------------------------------------------------------------------- overrides CSV

# The CSV the migration team edits: the conflict and whom it is about (context: edited or not, ignored on import),
# then the decision columns. The key of a row: platform + account_external_id for an account (or a subject
# `platform:id`), else kind + subject + value.
OVERRIDE_COLUMNS = ("kind", "subject", "display_name", "email", "department", "value", "detail", "platform",
                    "account_external_id", "action", "person_anchor", "reason")
# The columns a decision is read from.
DECISION_COLUMNS = ("kind", "subject", "value", "platform", "account_external_id", "action", "person_anchor",
                    "reason")
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
class DecisionRow:
    """One decision on a conflict about a person, an e-mail or the tenant; `decision=None` removes it."""

    line: int
    kind: ConflictKind
    subject: str
    value: str
    target: Target
    decision: ConflictDecision | None
    reason: str


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RowRefusal(StrEnum):
    """Why a row of the overrides CSV (or the whole file: the first four) is not applied."""

    NO_ACTION_COLUMN = "NO_ACTION_COLUMN"            # the header is not the one export-conflicts writes
    UNREADABLE_CSV = "UNREADABLE_CSV"                # the file is not CSV the reader can take (a NUL, a broken quote)
    NOT_TEXT = "NOT_TEXT"                            # neither UTF-8 nor Windows-1252 text (a workbook, binary data)
    MISSING_COLUMNS = "MISSING_COLUMNS"              # no column saying which account or conflict a row decides
    UNKNOWN_PLATFORM = "UNKNOWN_PLATFORM"
    NO_ACCOUNT = "NO_ACCOUNT"                        # account_external_id empty
    UNKNOWN_ACTION = "UNKNOWN_ACTION"
    FORCE_MATCH_WITHOUT_PERSON = "FORCE_MATCH_WITHOUT_PERSON"
    EXCLUDE_WITH_PERSON = "EXCLUDE_WITH_PERSON"
    DECIDED_TWICE = "DECIDED_TWICE"                  # a second row deciding otherwise about the same thing
    CONTROL_CHARACTERS = "CONTROL_CHARACTERS"        # a cell holds NUL or another control character
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"              # not among the extracted accounts
    UNKNOWN_PERSON = "UNKNOWN_PERSON"                # no current directory entry with that anchor
    UNKNOWN_KIND = "UNKNOWN_KIND"                    # a row about a person or an e-mail whose kind is no conflict kind
    UNKNOWN_CONFLICT = "UNKNOWN_CONFLICT"            # no such conflict was ever found (kind, subject, value)
    ACTION_NOT_FOR_KIND = "ACTION_NOT_FOR_KIND"      # e.g. include on a population conflict, exclude on an e-mail
    EMAIL_NOT_HELD = "EMAIL_NOT_HELD"                # force_match of an e-mail to an entry that does not hold it


# Refusals of the whole file: nothing of it is read.
FILE_REFUSALS = frozenset({RowRefusal.NO_ACTION_COLUMN, RowRefusal.UNREADABLE_CSV, RowRefusal.NOT_TEXT,
                           RowRefusal.MISSING_COLUMNS})


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A row that is not applied, and why (one line the migration team can act on), with its code."""

    line: int
    reason: str
    code: RowRefusal

    def __str__(self) -> str:
        return f"row {self.line}: {self.reason} [{self.code}]"


def split_account_subject(subject: str) -> tuple[Platform, str] | None:
    """`zoom:abc` → (ZOOM, "abc"); None for subjects that are not source accounts (persons, values, tenant)."""
    platform, sep, external_id = subject.partition(":")
    if not sep or not external_id or platform not in {p.value for p in Platform}:
        return None
    return Platform(platform), external_id


def header_refusal(header: Sequence[str]) -> RefusedRow | None:
    """Why a header cannot be read as the overrides CSV (naming the columns it lacks), or None."""
    names = {name.strip().lower() for name in header}
    found = ", ".join(name for name in header if name.strip()) or "nothing"
    if "action" not in names:
        return RefusedRow(1, f"the header has no 'action' column (found: {found}); use the file export-conflicts "
                             "writes", RowRefusal.NO_ACTION_COLUMN)
    if not ({"platform", "account_external_id"} <= names or "subject" in names):
        missing = [name for name in ("kind", "subject", "value", "platform", "account_external_id")
                   if name not in names]
        return RefusedRow(1, "the header lacks the columns " + ", ".join(missing) + f" (found: {found}); use the "
                             "file export-conflicts writes", RowRefusal.MISSING_COLUMNS)
    return None


def parse_override_row(line: int, row: Mapping[str, str | None]) -> OverrideRow | DecisionRow | RefusedRow | None:
    """Read one CSV row: None when it carries no decision, else the decision or why it is refused (the
    account, person and conflict still have to exist: the caller checks them against the database)."""
    def cell(name: str) -> str:
        return (row.get(name) or "").strip()

    action = cell("action").lower()
    if not action:
        return None
    if any(_CONTROL.search(value or "") for value in row.values() if isinstance(value, str)):
        return RefusedRow(line, "a cell holds a NUL or another control character (an export gone wrong?)",
                          RowRefusal.CONTROL_CHARACTERS)
    platform_text, account = cell("platform").lower(), cell("account_external_id")
    if not platform_text and not account:
        if (parsed := split_account_subject(cell("subject"))) is not None:
            platform_text, account = parsed[0].value, parsed[1]
        elif cell("subject"):
            return _parse_decision_row(line, action, cell("kind").upper(), cell("subject"), cell("value"),
                                       cell("person_anchor") or None, cell("reason"))
    if not platform_text and not account:
        return RefusedRow(line, "the row names no account (platform, account_external_id) and no conflict (kind, "
                                "subject, value): keep the columns export-conflicts wrote", RowRefusal.UNKNOWN_PLATFORM)
    if platform_text not in {p.value for p in Platform}:
        return RefusedRow(line, f"platform {platform_text or '(empty)'!r} is not one of "
                                + ", ".join(p.value for p in Platform), RowRefusal.UNKNOWN_PLATFORM)
    if not account:
        return RefusedRow(line, "account_external_id is empty: a decision is about one source account",
                          RowRefusal.NO_ACCOUNT)
    anchor = cell("person_anchor") or None
    platform = Platform(platform_text)
    if action == CLEAR:
        return OverrideRow(line, platform, account, None, cell("reason"))
    try:
        chosen = OverrideAction(action)
    except ValueError:
        return RefusedRow(line, f"action {action!r} is not one of "
                                + ", ".join([*(a.value for a in OverrideAction), CLEAR]), RowRefusal.UNKNOWN_ACTION)
    if chosen is OverrideAction.FORCE_MATCH and anchor is None:
        return RefusedRow(line, "force_match needs person_anchor (the directory anchor of the person)",
                          RowRefusal.FORCE_MATCH_WITHOUT_PERSON)
    if chosen is OverrideAction.EXCLUDE and anchor is not None:
        return RefusedRow(line, "exclude takes no person_anchor (to tie the account to a person, use force_match)",
                          RowRefusal.EXCLUDE_WITH_PERSON)
    return OverrideRow(line, platform, account, Override(platform, account, chosen, anchor), cell("reason"))


def _parse_decision_row(line: int, action: str, kind_text: str, subject: str, value: str, anchor: str | None,
                        reason: str) -> DecisionRow | RefusedRow:
    try:
        kind = ConflictKind(kind_text)
    except ValueError:
        return RefusedRow(line, f"kind {kind_text or '(empty)'!r} is not a conflict kind (keep the kind column "
                                "export-conflicts wrote)", RowRefusal.UNKNOWN_KIND)
    target = target_of(kind, subject)
    if action == CLEAR:
        return DecisionRow(line, kind, subject, value, target, None, reason)
    allowed = ACTIONS_FOR[target]
    if action not in {a.value for a in ConflictAction} and action not in {a.value for a in OverrideAction}:
        return RefusedRow(line, f"action {action!r} is not one of " + ", ".join([*allowed, CLEAR]),
                          RowRefusal.UNKNOWN_ACTION)
    chosen = ConflictAction(action) if action in {a.value for a in ConflictAction} else None
    if chosen not in allowed or (chosen is ConflictAction.INCLUDE and kind not in EXCLUDING_KINDS):
        usable = [a for a in allowed if a is not ConflictAction.INCLUDE or kind in EXCLUDING_KINDS]
        return RefusedRow(line, f"{action} does not apply to a {kind} conflict about {_ABOUT[target]}: use "
                                + ", ".join([*usable, CLEAR]), RowRefusal.ACTION_NOT_FOR_KIND)
    if chosen is ConflictAction.FORCE_MATCH and anchor is None:
        return RefusedRow(line, "force_match of a shared e-mail needs person_anchor (the entry that keeps it)",
                          RowRefusal.FORCE_MATCH_WITHOUT_PERSON)
    if chosen is not ConflictAction.FORCE_MATCH and anchor is not None:
        return RefusedRow(line, f"{chosen} takes no person_anchor (the row's subject is whom it is about)",
                          RowRefusal.EXCLUDE_WITH_PERSON)
    return DecisionRow(line, kind, subject, value, target, ConflictDecision(kind, subject, value, chosen, anchor),
                       reason)


_ABOUT = {Target.PERSON: "a person", Target.EMAIL: "an e-mail several entries hold", Target.TENANT: "the tenant",
          Target.ACCOUNT: "a source account"}
