"""Agents of the synthetic ministry: names, unique addresses and logins, organisation, dirty traits."""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from sandbox.generator import names

_T = TypeVar("_T")


class Trait(StrEnum):
    """One deliberate anomaly per agent at most, so that the ground truth stays exact."""

    NONE = "none"
    DISABLED = "disabled_but_licensed"
    UNROUTED_DOMAIN = "unrouted_domain"
    DIRECTORY_MAIL_CASE = "directory_mail_case"
    ACCOUNT_CASE_VARIANT = "account_case_or_whitespace"
    ACCOUNT_ON_ALIAS = "account_on_alias"
    DOUBLE_ZOOM_ACCOUNT = "double_zoom_account"
    RENAMED_ON_PLATFORM = "renamed_on_platform"
    PRIVILEGED = "privileged_account"
    ALIAS_IS_OTHER_PRIMARY = "alias_is_other_primary"
    SHARED_PRIMARY_MAIL = "shared_primary_mail"
    MISSING_MAIL = "missing_mail"
    INVALID_DIRECTORY_MAIL = "invalid_directory_mail"
    BROKEN_BASE64 = "broken_base64"
    UNKNOWN_ATTRIBUTE = "unknown_attribute"


TRAIT_DESCRIPTIONS: dict[str, str] = {
    Trait.DISABLED: "disabled in the directory (AD userAccountControl 514/66050, SupAnn {COMPTE}I) but still "
                    "holding source accounts, some licensed",
    Trait.UNROUTED_DOMAIN: "primary e-mail on a domain that no identity provider of the tenant declares",
    Trait.DIRECTORY_MAIL_CASE: "directory mail written with capitals; Zoom/Webex accounts use lower case",
    Trait.ACCOUNT_CASE_VARIANT: "one source account's e-mail differs from the directory only by case or "
                                "surrounding whitespace",
    Trait.ACCOUNT_ON_ALIAS: "one source account uses the legacy alias instead of the primary e-mail",
    Trait.DOUBLE_ZOOM_ACCOUNT: "two Zoom accounts for one person: primary e-mail and legacy alias",
    Trait.RENAMED_ON_PLATFORM: "Teams account still on a former e-mail (name change); only the directory "
                               "anchor (AD) or the employee id (SupAnn) ties it to the person",
    Trait.PRIVILEGED: "the person's Zoom account is an account administrator (role_id 1)",
    Trait.ALIAS_IS_OTHER_PRIMARY: "an alias of this entry is another entry's primary e-mail",
    Trait.SHARED_PRIMARY_MAIL: "two directory entries (homonyms) share one primary e-mail, differing by case",
    Trait.MISSING_MAIL: "directory entry without mail",
    Trait.INVALID_DIRECTORY_MAIL: "directory mail that is not an address",
    Trait.BROKEN_BASE64: "a base64 value (name::) that does not decode",
    Trait.UNKNOWN_ATTRIBUTE: "an attribute outside the flavour's schema (courrielPro)",
}

# Cumulative draw: each agent gets at most one trait. Rates are per agent.
TRAIT_RATES: tuple[tuple[Trait, float], ...] = (
    (Trait.DISABLED, 0.030),
    (Trait.UNROUTED_DOMAIN, 0.010),
    (Trait.DIRECTORY_MAIL_CASE, 0.010),
    (Trait.ACCOUNT_CASE_VARIANT, 0.015),
    (Trait.ACCOUNT_ON_ALIAS, 0.015),
    (Trait.DOUBLE_ZOOM_ACCOUNT, 0.005),
    (Trait.RENAMED_ON_PLATFORM, 0.005),
    (Trait.PRIVILEGED, 0.003),
    (Trait.ALIAS_IS_OTHER_PRIMARY, 0.002),
    (Trait.SHARED_PRIMARY_MAIL, 0.002),
    (Trait.MISSING_MAIL, 0.003),
    (Trait.INVALID_DIRECTORY_MAIL, 0.002),
    (Trait.BROKEN_BASE64, 0.001),
    (Trait.UNKNOWN_ATTRIBUTE, 0.001),
)

# Entries with these traits are quarantined when the directory is loaded: no person, no accounts.
QUARANTINED_TRAITS = frozenset({Trait.MISSING_MAIL, Trait.INVALID_DIRECTORY_MAIL, Trait.BROKEN_BASE64,
                                Trait.UNKNOWN_ATTRIBUTE})
# Entries whose e-mail is contested by another entry get no source accounts (matching by e-mail is held back).
NO_ACCOUNT_TRAITS = QUARANTINED_TRAITS | {Trait.SHARED_PRIMARY_MAIL}

POPULATIONS: tuple[tuple[str, float], ...] = (
    ("agent", 0.86), ("contractuel", 0.07), ("prestataire", 0.035), ("stagiaire", 0.025), ("partenaire", 0.01),
)
POLICY_POPULATIONS = frozenset({"prestataire", "stagiaire", "partenaire"})

OVERSEAS_ZONES = ("America/Cayenne", "America/Guadeloupe", "America/Martinique", "Indian/Reunion",
                  "Indian/Mayotte", "Pacific/Noumea", "Pacific/Tahiti")


@dataclass(frozen=True, slots=True)
class Domains:
    """The ministry's mail domains."""

    primary: str = "culture.example.gouv.fr"
    secondary: str = "patrimoines.example.gouv.fr"
    legacy: str = "culture.example.fr"
    unrouted: str = "operateurs-culture.example.fr"


@dataclass(slots=True)
class Agent:
    """One person of the ministry as the generator knows them (ground truth, not what systems show)."""

    index: int
    anchor: uuid.UUID
    given: str
    surname: str
    display: str
    ascii_given: str
    ascii_surname: str
    login: str
    mail: str
    legacy_alias: str | None
    employee_id: str
    direction: tuple[str, str]
    sous_direction: str
    bureau: int
    title: str
    population: str
    disabled: bool
    trait: Trait
    timezone: str
    cn: str
    extra_aliases: list[str] = field(default_factory=list)
    former_mail: str | None = None

    @property
    def department_code(self) -> str:
        """SupAnn entity code: DNUM-SDI-B2."""
        return f"{self.direction[0]}-{self.sous_direction}-B{self.bureau}"

    @property
    def department_path(self) -> str:
        """AD department text: DNUM/SDI/B2."""
        return f"{self.direction[0]}/{self.sous_direction}/B{self.bureau}"

    @property
    def loaded(self) -> bool:
        """True when the directory load keeps this entry (it becomes a person)."""
        return self.trait not in QUARANTINED_TRAITS


def pick(rng: random.Random, items: Sequence[_T]) -> _T:
    """rng.choice without its rejection sampling: ten times cheaper, and plenty for synthetic data."""
    return items[int(rng.random() * len(items))]


def between(rng: random.Random, low: int, high: int) -> int:
    """between(rng, low, high), cheaper."""
    return low + int(rng.random() * (high - low + 1))


def ascii_fold(text: str) -> str:
    """Accents off, apostrophes and spaces to what mail systems use (Le Goff → le-goff, N'Diaye → ndiaye)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.replace("'", "").replace("’", "").lower()
    return "-".join(part for part in plain.replace("-", " ").split() if part)


class Allocator:
    """Hands out unique keys (mail local parts, logins, CNs) by suffixing repeats: jean.dupont, jean.dupont2.

    Bases never contain digits (they come from names), so a suffixed key cannot collide with another base.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = defaultdict(int)

    def take(self, base: str) -> str:
        count = self._seen[base] + 1
        self._seen[base] = count
        return base if count == 1 else f"{base}{count}"


class AgentFactory:
    """Builds agent i from (seed, i) plus the allocators that keep addresses unique."""

    def __init__(self, *, seed: int, domains: Domains) -> None:
        self._seed = seed
        self.domains = domains
        self._mail_locals: dict[str, Allocator] = defaultdict(Allocator)
        self._logins = Allocator()
        self._cns = Allocator()

    def rng(self, stream: str, index: int) -> random.Random:
        """A generator of its own for (stream, index): adding draws to one stream never shifts another."""
        return random.Random(f"{self._seed}:{stream}:{index}")

    def draw_trait(self, rng: random.Random) -> Trait:
        roll = rng.random()
        acc = 0.0
        for trait, rate in TRAIT_RATES:
            acc += rate
            if roll < acc:
                return trait
        return Trait.NONE

    def draw_name(self, rng: random.Random) -> tuple[str, str, str, str, str]:
        """(given, surname, display, ascii given, ascii surname)."""
        roll = rng.random()
        if roll < 0.012:
            given, surname, latin_given, latin_surname = pick(rng, names.NON_LATIN)
            return given, surname, f"{given} {surname}", ascii_fold(latin_given), ascii_fold(latin_surname)
        given = pick(rng, names.GIVEN_FEMALE if rng.random() < 0.52 else names.GIVEN_MALE)
        surname = pick(rng, names.SURNAMES_TRICKY) if roll < 0.08 else pick(rng, names.SURNAMES)
        return given, surname, f"{given} {surname}", ascii_fold(given), ascii_fold(surname)

    def allocate_mail(self, domain: str, ascii_given: str, ascii_surname: str) -> str:
        return self.allocate_local(domain, f"{ascii_given}.{ascii_surname}")

    def allocate_local(self, domain: str, base: str) -> str:
        """A unique address on `domain` from a local-part base (jean.dupont, salle-dnum, adm-jean.dupont)."""
        return f"{self._mail_locals[domain].take(base)}@{domain}"

    def allocate_login(self, ascii_given: str, ascii_surname: str) -> str:
        return self._logins.take((ascii_given[:1] + ascii_surname.replace("-", ""))[:18])

    def allocate_cn(self, display: str) -> str:
        return self._cns.take(display)

    def build(self, index: int) -> Agent:
        rng = self.rng("agent", index)
        trait = self.draw_trait(rng)
        given, surname, display, a_given, a_surname = self.draw_name(rng)
        if trait is Trait.UNROUTED_DOMAIN:
            domain = self.domains.unrouted
        else:
            domain = self.domains.primary if rng.random() < 0.86 else self.domains.secondary
        mail = self.allocate_mail(domain, a_given, a_surname)
        wants_alias = trait in (Trait.ACCOUNT_ON_ALIAS, Trait.DOUBLE_ZOOM_ACCOUNT) or rng.random() < 0.4
        legacy_alias = (self.allocate_mail(self.domains.legacy, a_given[:1], a_surname) if wants_alias else None)
        direction = pick(rng, names.DIRECTIONS)
        population = rng.choices([p for p, _ in POPULATIONS], [w for _, w in POPULATIONS])[0]
        timezone = ("Indian/Reunion" if direction[0] == "DRAC-REU"
                    else pick(rng, OVERSEAS_ZONES) if rng.random() < 0.02 else "Europe/Paris")
        return Agent(
            index=index,
            anchor=uuid.UUID(int=rng.getrandbits(128), version=4),
            given=given, surname=surname, display=display, ascii_given=a_given, ascii_surname=a_surname,
            login=self.allocate_login(a_given, a_surname),
            mail=mail,
            legacy_alias=legacy_alias,
            employee_id=f"{(index * 7_919 + 1_234_567) % 10_000_000:07d}",
            direction=(direction[0], direction[1]),
            sous_direction=pick(rng, direction[2]),
            bureau=between(rng, 1, names.BUREAU_COUNT),
            title=pick(rng, names.TITLES),
            population=population,
            disabled=trait is Trait.DISABLED,
            trait=trait,
            timezone=timezone,
            cn=self.allocate_cn(display),
        )

    def build_twin(self, agent: Agent) -> Agent:
        """A homonym entry that was given `agent`'s mail by mistake (differing by case only)."""
        rng = self.rng("twin", agent.index)
        given = pick(rng, names.GIVEN_FEMALE + names.GIVEN_MALE)
        display = f"{given} {agent.surname}"
        local, _, domain = agent.mail.partition("@")
        return Agent(
            index=agent.index, anchor=uuid.UUID(int=rng.getrandbits(128), version=4), given=given,
            surname=agent.surname, display=display, ascii_given=ascii_fold(given),
            ascii_surname=agent.ascii_surname, login=self.allocate_login(ascii_fold(given), agent.ascii_surname),
            mail=f"{local.capitalize()}@{domain}", legacy_alias=None,
            employee_id=f"9{(agent.index * 7_919 + 1_234_567) % 10_000_000:07d}",
            direction=agent.direction, sous_direction=agent.sous_direction, bureau=agent.bureau,
            title=pick(rng, names.TITLES), population="agent", disabled=False, trait=Trait.SHARED_PRIMARY_MAIL,
            timezone=agent.timezone, cn=self.allocate_cn(display),
        )

    def build_outsider(self, stream: str, index: int, domain: str | None = None) -> tuple[str, str, str]:
        """A person who is not (or no longer) in the directory: (display, given, mail)."""
        rng = self.rng(stream, index)
        given, _surname, display, a_given, a_surname = self.draw_name(rng)
        mail = self.allocate_mail(domain or self.domains.primary, a_given, a_surname)
        return display, given, mail
