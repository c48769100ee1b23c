"""Generate a synthetic ministry: directory export, platform datasets and the ground truth, streaming.

Agent i is a function of (seed, i) and of the address allocators, so the same seed gives byte-identical files.
Nothing holds the ministry in memory: each agent is written and forgotten; only unique-key allocators and a
bounded pool of recent colleagues (for invitation lists) are kept.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from core import ConflictKind, MatchMethod, Platform, ReasonCode
from sandbox.generator import names
from sandbox.generator.directory import DirectoryWriter, Flavour, b64, default_base_dn
from sandbox.generator.identities import (
    NO_ACCOUNT_TRAITS,
    POLICY_POPULATIONS,
    QUARANTINED_TRAITS,
    TRAIT_DESCRIPTIONS,
    Agent,
    AgentFactory,
    Domains,
    Trait,
    ascii_fold,
    pick,
)
from sandbox.generator.meetings import (
    Colleague,
    Host,
    Hosting,
    InlineMeetings,
    MeetingContext,
    ProcessMeetings,
)
from sandbox.generator.platforms import (
    SKUS,
    Sku,
    graph_user,
    rand_id,
    rand_uuid,
    webex_id,
    webex_person,
    zoom_user,
)
from sandbox.generator.truth import Truth

GENERATOR_VERSION = 1
PARALLEL_FROM = 10_000
DEFAULT_SIRET = "11004601800013"

@dataclass(frozen=True, slots=True)
class GeneratorOptions:
    """What to generate."""

    agents: int
    seed: int
    flavour: Flavour = Flavour.AD
    as_of: date | None = None  # None: today (UTC); give it for byte-identical output across days
    base_dn: str | None = None
    siret: str = DEFAULT_SIRET
    domains: Domains = field(default_factory=Domains)
    parallel: bool | None = None  # meetings in a second process; None: from PARALLEL_FROM agents on


@dataclass(frozen=True, slots=True)
class Sites:
    """Where the platforms live for this ministry."""

    zoom_vanity: str = "culture-gouv.zoom.us"
    webex_primary: str = "culture-gouv.webex.com"
    webex_secondary: str = "patrimoines-gouv.webex.com"
    entra_domain: str = "cultureexemple.onmicrosoft.com"


class _Streams:
    """The JSON Lines outputs, with line counts for the manifest."""

    def __init__(self, out: Path, stack: ExitStack) -> None:
        self._out = out
        self.stack = stack
        self._files: dict[str, BinaryIO] = {}
        self.lines: dict[str, int] = {}

    def write(self, name: str, record: dict[str, object]) -> None:
        handle = self._files.get(name)
        if handle is None:
            path = self._out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._files[name] = self.stack.enter_context(path.open("wb", buffering=1 << 20))
            self.lines[name] = 0
        handle.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self.lines[name] += 1

    def touch(self, name: str) -> None:
        if name not in self._files:
            path = self._out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[name] = self.stack.enter_context(path.open("wb"))
            self.lines[name] = 0


def generate_ministry(out: Path, options: GeneratorOptions) -> dict[str, object]:
    """Write a ministry into `out` (created if needed) and return its manifest (also in manifest.json)."""
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ldif_file = stack.enter_context((out / "directory.ldif").open("wb", buffering=1 << 20))
        generator = _MinistryGenerator(out, options, ldif_file, _Streams(out, stack))
        manifest = generator.run()
    (out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
                                        + b"\n")
    return manifest


class _MinistryGenerator:
    def __init__(self, out: Path, options: GeneratorOptions, ldif_file: BinaryIO, streams: _Streams) -> None:
        self.options = options
        self.out = out
        self.factory = AgentFactory(seed=options.seed, domains=options.domains)
        self.sites = Sites()
        self.as_of = options.as_of or datetime.now(UTC).date()
        self.now = datetime(self.as_of.year, self.as_of.month, self.as_of.day, 8, tzinfo=UTC)
        self.base_dn = options.base_dn or default_base_dn(options.flavour)
        self.directory = DirectoryWriter(ldif_file, flavour=options.flavour, base_dn=self.base_dn,
                                         siret=options.siret, as_of=self.as_of)
        self.streams = streams
        self.truth = Truth()
        seed_rng = self.factory.rng("tenant", 0)
        self.entra_tenant_id = str(rand_uuid(seed_rng))
        self.webex_org_uuid = str(rand_uuid(seed_rng))
        self.webex_org_id = webex_id("ORGANIZATION", self.webex_org_uuid)
        self.licensing_group = str(rand_uuid(seed_rng))
        self.zoom_account_id = rand_id(seed_rng)
        self.webex_licences = {
            "meeting_a": webex_id("LICENSE", f"{self.webex_org_uuid}/MC_8a1f_{self.sites.webex_primary}"),
            "meeting_b": webex_id("LICENSE", f"{self.webex_org_uuid}/MC_8a1f_{self.sites.webex_secondary}"),
            "messaging": webex_id("LICENSE", f"{self.webex_org_uuid}/MS_52d3"),
            "calling": webex_id("LICENSE", f"{self.webex_org_uuid}/BCSTD_9e11"),
        }
        self.clean_primaries: deque[str] = deque(maxlen=64)
        self.taken_primaries: set[str] = set()
        self.pmi_seq = 0
        self.host_sequence = 0
        context = MeetingContext(seed=options.seed, as_of=self.as_of, now=self.now,
                                 entra_tenant_id=self.entra_tenant_id, zoom_vanity=self.sites.zoom_vanity)
        parallel = options.parallel if options.parallel is not None else options.agents >= PARALLEL_FROM
        self.meetings: InlineMeetings | ProcessMeetings = (ProcessMeetings(out, context) if parallel
                                                           else InlineMeetings(out, context, streams.stack))
        self.sku_consumed: dict[str, int] = dict.fromkeys(SKUS, 0)
        self.webex_consumed: dict[str, int] = dict.fromkeys(self.webex_licences, 0)
        self.zoom_licensed = 0

    # ------------------------------------------------------------------------------------------ run

    def run(self) -> dict[str, object]:
        self.directory.write_containers()
        for name in ("zoom/users.jsonl", "teams/users.jsonl", "webex/people.jsonl"):
            self.streams.touch(name)
        try:
            for index in range(self.options.agents):
                self._agent(index)
                self._extras(index)
            meeting_truth = self.meetings.finish()
        except BaseException:
            if isinstance(self.meetings, ProcessMeetings):
                self.meetings.abort()
            raise
        self.truth.meetings = meeting_truth.meetings
        self.truth.meeting_flags = meeting_truth.flags
        for source, counter in meeting_truth.quarantine.items():
            self.truth.extract_quarantine[source].update(counter)
        self.streams.lines.update(meeting_truth.lines)
        self.directory.flush()
        self._write_catalogues()
        self.truth.directory["records"] = self.directory.records
        self.truth.directory["out_of_scope"] = self.directory.out_of_scope
        self.truth.files = {"directory.ldif": {"records": self.directory.records},
                            **{name: {"lines": count} for name, count in self.streams.lines.items()}}
        manifest: dict[str, object] = {
            "generator": {"version": GENERATOR_VERSION, "seed": self.options.seed, "agents": self.options.agents,
                          "flavour": str(self.options.flavour), "as_of": self.as_of.isoformat(),
                          "base_dn": self.base_dn},
            "tenant": {"siret": self.options.siret, "domains": [self.options.domains.primary,
                                                                 self.options.domains.secondary],
                       "alias_domains": [self.options.domains.legacy],
                       "unrouted_domains": [self.options.domains.unrouted],
                       "zoom_account_id": self.zoom_account_id, "zoom_vanity_host": self.sites.zoom_vanity,
                       "entra_tenant_id": self.entra_tenant_id, "entra_domain": self.sites.entra_domain,
                       "webex_org_id": self.webex_org_id,
                       "webex_sites": [self.sites.webex_primary, self.sites.webex_secondary]},
            "dirty_kinds": {str(trait): text for trait, text in TRAIT_DESCRIPTIONS.items()} | _EXTRA_DIRTY_KINDS,
            **self.truth.as_manifest(),
            # Organisers' own calendar events (calendars/events.jsonl): held by a calendar, without one, strays.
            "calendars": dict(sorted(meeting_truth.calendars.items())),
        }
        return manifest

    # ------------------------------------------------------------------------------------------ agents

    def _agent(self, index: int) -> None:
        agent = self.factory.build(index)
        rng = self.factory.rng("accounts", index)
        truth = self.truth
        if agent.trait not in (Trait.NONE, Trait.ALIAS_IS_OTHER_PRIMARY):
            truth.dirty[agent.trait] += 1
        directory_mail = self._directory_mail(agent, rng)
        aliases = [agent.legacy_alias] if agent.legacy_alias else []
        if agent.trait is Trait.ALIAS_IS_OTHER_PRIMARY:
            other = next((mail for mail in self.clean_primaries if mail not in self.taken_primaries), None)
            if other is not None:
                self.taken_primaries.add(other)
                agent.extra_aliases.append(other)
                aliases.append(other)
                truth.dirty[agent.trait] += 1
                truth.conflict(ConflictKind.DUPLICATE_EMAIL_DIRECTORY)
        self.directory.write_person(agent, self.factory.rng("directory", index), mail=directory_mail,
                                    aliases=aliases)
        if agent.trait in QUARANTINED_TRAITS:
            reason = _LOAD_REASONS[agent.trait]
            truth.directory_quarantine[reason] += 1
            return
        self._count_person(agent)
        if aliases:
            truth.directory["with_aliases"] += 1
        if agent.trait is Trait.SHARED_PRIMARY_MAIL:
            twin = self.factory.build_twin(agent)
            self.directory.write_person(twin, self.factory.rng("twin-directory", index), mail=twin.mail, aliases=[])
            self._count_person(twin)
            truth.conflict(ConflictKind.DUPLICATE_EMAIL_DIRECTORY)
            truth.conflict(ConflictKind.VISIO_EMAIL_COLLISION)
        if agent.trait is Trait.UNROUTED_DOMAIN:
            truth.conflict(ConflictKind.DOMAIN_NOT_ROUTED)
        if not agent.disabled:
            self.meetings.send(Colleague(agent.mail, agent.display))
            if agent.trait is Trait.NONE:
                self.clean_primaries.append(agent.mail)
        if agent.trait in NO_ACCOUNT_TRAITS:
            return
        self._agent_accounts(agent, directory_mail or agent.mail, rng)

    def _count_person(self, agent: Agent) -> None:
        self.truth.directory["people"] += 1
        self.truth.populations[agent.population] += 1
        if agent.disabled:
            self.truth.directory["disabled"] += 1
        if agent.population in POLICY_POPULATIONS:
            self.truth.conflict(ConflictKind.POPULATION_POLICY)

    def _directory_mail(self, agent: Agent, rng: random.Random) -> str | None:
        if agent.trait is Trait.MISSING_MAIL:
            return None
        if agent.trait is Trait.INVALID_DIRECTORY_MAIL:
            local, _, domain = agent.mail.partition("@")
            return pick(rng, (f"{local}@", f"{local.replace('.', ' ')}@{domain}", f"{local}@@{domain}",
                               f"{local}.{domain}"))
        if agent.trait is Trait.DIRECTORY_MAIL_CASE:
            local, _, domain = agent.mail.partition("@")
            return ".".join(part.capitalize() for part in local.split(".")) + "@" + domain
        return agent.mail

    def _agent_accounts(self, agent: Agent, directory_mail: str, rng: random.Random) -> None:
        trait = agent.trait
        on_zoom = trait in (Trait.DOUBLE_ZOOM_ACCOUNT, Trait.PRIVILEGED) or rng.random() < 0.60
        on_teams = trait is Trait.RENAMED_ON_PLATFORM or rng.random() < 0.75
        on_webex = rng.random() < 0.15
        if trait in (Trait.ACCOUNT_CASE_VARIANT, Trait.ACCOUNT_ON_ALIAS) and not (on_zoom or on_teams or on_webex):
            on_zoom = True
        variant_platform = (Platform.ZOOM if on_zoom else Platform.TEAMS if on_teams else Platform.WEBEX)
        licensed_any = False

        def address(platform: Platform) -> tuple[str, MatchMethod, tuple[ConflictKind, ...]]:
            """The e-mail this platform shows for the agent, how it matches, and the conflicts it raises."""
            if platform is variant_platform and trait is Trait.ACCOUNT_ON_ALIAS:
                assert agent.legacy_alias is not None
                return agent.legacy_alias, MatchMethod.ALIAS, (ConflictKind.ALIAS_ONLY_MATCH,)
            if platform is variant_platform and trait is Trait.ACCOUNT_CASE_VARIANT:
                # Entra trims what it stores; Zoom and Webex exports were seen carrying stray spaces.
                variants = [agent.mail.capitalize(), agent.mail.upper()]
                if platform is not Platform.TEAMS:
                    variants += [f" {agent.mail} ", f"{agent.mail} "]
                variant = pick(rng, variants)
                return variant, MatchMethod.PRIMARY_EMAIL, (ConflictKind.CASE_OR_UNICODE_MISMATCH,)
            shown = directory_mail if platform is Platform.TEAMS else agent.mail  # Entra syncs the directory
            conflicts = (ConflictKind.CASE_OR_UNICODE_MISMATCH,) if shown != directory_mail else ()
            return shown, MatchMethod.PRIMARY_EMAIL, conflicts

        if on_zoom:
            email, method, conflicts = address(Platform.ZOOM)
            privileged = trait is Trait.PRIVILEGED
            licensed_any |= self._zoom_account(agent, rng, email=email, method=method, conflicts=conflicts,
                                               privileged=privileged)
            if trait is Trait.DOUBLE_ZOOM_ACCOUNT:
                assert agent.legacy_alias is not None
                self._zoom_account(agent, rng, email=agent.legacy_alias, method=MatchMethod.ALIAS,
                                   conflicts=(ConflictKind.ALIAS_ONLY_MATCH,), privileged=False, second=True)
                self.truth.conflict(ConflictKind.MULTI_SOURCE_ACCOUNTS)
        if on_teams:
            if trait is Trait.RENAMED_ON_PLATFORM:
                maiden = pick(rng, names.SURNAMES)
                former = self.factory.allocate_mail(agent.mail.rpartition("@")[2], agent.ascii_given,
                                                    ascii_fold(maiden))
                agent.former_mail = former
                method = (MatchMethod.IMMUTABLE_ID if self.options.flavour is Flavour.AD
                          else MatchMethod.EMPLOYEE_ID)
                licensed_any |= self._teams_account(agent, rng, email=former, method=method, conflicts=())
            else:
                email, method, conflicts = address(Platform.TEAMS)
                licensed_any |= self._teams_account(agent, rng, email=email, method=method, conflicts=conflicts)
        if on_webex:
            email, method, conflicts = address(Platform.WEBEX)
            licensed_any |= self._webex_account(agent, rng, email=email, method=method, conflicts=conflicts)
        if agent.disabled and licensed_any:
            self.truth.conflict(ConflictKind.DEPARTED_OR_DISABLED)

    # ------------------------------------------------------------------------------------------ Zoom

    def _zoom_account(self, agent: Agent, rng: random.Random, *, email: str, method: MatchMethod,
                      conflicts: tuple[ConflictKind, ...], privileged: bool, second: bool = False) -> bool:
        """Write a Zoom user (and its meetings); True when it holds a paid licence and is matched."""
        status = "active" if second else rng.choices(("active", "inactive", "pending"), (93, 4, 3))[0]
        user_type = 2 if second else rng.choices((2, 1, 4, 99), (78, 20, 1, 1))[0]
        user_id = None if status == "pending" else rand_id(rng)
        licensed = user_type == 2
        if privileged:
            truth = self.truth.account(Platform.ZOOM, outcome="conflict:PRIVILEGED_ACCOUNT", status=status,
                                       licensed=licensed, conflicts=(ConflictKind.PRIVILEGED_ACCOUNT,))
        else:
            truth = self.truth.account(Platform.ZOOM, outcome=f"match:{method}", status=status, licensed=licensed,
                                       conflicts=conflicts, method=method)
        user = self._zoom_user_record(rng, user_id=user_id, email=email, first=agent.given, last=agent.surname,
                                      user_type=user_type, status=status, timezone=agent.timezone,
                                      dept=agent.department_code, role_id="1" if privileged else "2",
                                      sso_id=agent.employee_id if rng.random() < 0.5 else None)
        user["_truth"] = {**truth, "agent": agent.index}
        self.streams.write("zoom/users.jsonl", user)
        if licensed and status == "active" and user_id is not None:
            self._hosts(Host(Platform.ZOOM, user_id, email.strip().lower(), agent.display, agent.timezone,
                             agent.direction[0], agent.login, pmi=_as_int(user.get("pmi"))))
        return licensed and not privileged

    def _zoom_user_record(self, rng: random.Random, *, user_id: str | None, email: str, first: str, last: str,
                          user_type: int, status: str, timezone: str, dept: str, role_id: str,
                          sso_id: str | None) -> dict[str, object]:
        pmi = None
        if user_id is not None:
            self.pmi_seq += 1
            pmi = 5_000_000_000 + (self.pmi_seq * 9_973_331 + 71_173) % 1_000_000_000
        if user_type == 2:
            self.zoom_licensed += 1
        return zoom_user(rng, user_id=user_id, email=email, first=first, last=last, user_type=user_type,
                         status=status, pmi=pmi, timezone=timezone, dept=dept, role_id=role_id, sso_id=sso_id,
                         as_of=self.now)

    # ------------------------------------------------------------------------------------------ Teams

    def _teams_account(self, agent: Agent, rng: random.Random, *, email: str, method: MatchMethod,
                       conflicts: tuple[ConflictKind, ...]) -> bool:
        skus, disabled_teams = self._draw_skus(rng)
        licensed = any(sku.has_teams for sku in skus) and not disabled_teams
        user_id = str(rand_uuid(rng))
        ad = self.options.flavour is Flavour.AD
        truth = self.truth.account(Platform.TEAMS, outcome=f"match:{method}", status="active" if not agent.disabled
                                   else "inactive", licensed=licensed, conflicts=conflicts, method=method)
        upn = email.strip()
        user = graph_user(rng, user_id=user_id, display=agent.display, given=agent.given, surname=agent.surname,
                          mail=upn, upn=upn, aliases=[agent.legacy_alias] if agent.legacy_alias else [],
                          employee_id=agent.employee_id, department=agent.department_path,
                          company=agent.direction[1], title=agent.title, enabled=not agent.disabled, guest=False,
                          immutable_id=b64(agent.anchor.bytes_le) if ad else None, skus=skus,
                          disabled_teams=disabled_teams, group_id=self.licensing_group if rng.random() < 0.3 else None,
                          as_of=self.now)
        user["_truth"] = {**truth, "agent": agent.index}
        self.streams.write("teams/users.jsonl", user)
        if licensed and not agent.disabled:
            self._hosts(Host(Platform.TEAMS, user_id, upn.lower(), agent.display, agent.timezone,
                             agent.direction[0], agent.login))
        return licensed

    def _draw_skus(self, rng: random.Random) -> tuple[list[Sku], bool]:
        roll = rng.random()
        keys = (["E3"] if roll < 0.55 else ["E1"] if roll < 0.73 else ["M365E3"] if roll < 0.83
                else ["E3_NO_TEAMS"] + (["TEAMS_ENT"] if rng.random() < 0.5 else []) if roll < 0.90
                else ["EXCHANGE"] if roll < 0.95 else [])
        if rng.random() < 0.2:
            keys.append("PBI_FREE")
        for key in keys:
            self.sku_consumed[key] += 1
        return [SKUS[key] for key in keys], rng.random() < 0.02

    # ------------------------------------------------------------------------------------------ Webex

    def _webex_account(self, agent: Agent, rng: random.Random, *, email: str, method: MatchMethod,
                       conflicts: tuple[ConflictKind, ...]) -> bool:
        pending = rng.random() < 0.03
        login_enabled = not agent.disabled and rng.random() > 0.02
        site_key = "meeting_a" if rng.random() < 0.8 else "meeting_b"
        has_meeting = rng.random() < 0.85
        licences = [self.webex_licences["messaging"]]
        self.webex_consumed["messaging"] += 1
        site = self.sites.webex_primary if site_key == "meeting_a" else self.sites.webex_secondary
        if has_meeting:
            licences.append(self.webex_licences[site_key])
            self.webex_consumed[site_key] += 1
        if rng.random() < 0.1:
            licences.append(self.webex_licences["calling"])
            self.webex_consumed["calling"] += 1
        status = "pending" if pending else ("active" if login_enabled else "inactive")
        truth = self.truth.account(Platform.WEBEX, outcome=f"match:{method}", status=status, licensed=has_meeting,
                                   conflicts=conflicts, method=method)
        person_id = webex_id("PEOPLE", str(rand_uuid(rng)))
        person = webex_person(rng, person_id=person_id, org_id=self.webex_org_id, emails=[email],
                              display=agent.display, first=agent.given, last=agent.surname, licences=licences,
                              site_urls=[site] if has_meeting else [], department=agent.department_code,
                              title=agent.title, pending=pending, login_enabled=login_enabled,
                              as_boolean=rng.random() < 0.1, timezone=agent.timezone,
                              personal_room=f"{agent.login}@{site}" if has_meeting else None, as_of=self.now)
        person["_truth"] = {**truth, "agent": agent.index}
        self.streams.write("webex/people.jsonl", person)
        if has_meeting and status == "active":
            self._hosts(Host(Platform.WEBEX, person_id, email.strip().lower(), agent.display, agent.timezone,
                             agent.direction[0], agent.login, site))
        return has_meeting

    # ------------------------------------------------------------------------------------------ extras

    def _extras(self, index: int) -> None:
        """Accounts that belong to no directory person, and directory entries that are not people."""
        rng = self.factory.rng("extra", index)
        roll = rng.random()
        if roll < 0.008:
            self._departed(index, rng)
        elif roll < 0.011:
            self._service_account(index, rng)
        elif roll < 0.021:
            self._guest(index, rng)
        elif roll < 0.022:
            self._admin_account(index, rng)
        elif roll < 0.024:
            self._invalid_account(index, rng)
        if self.options.flavour is Flavour.AD and rng.random() < 0.004:
            self.directory.write_computer(index, rng)
            self.truth.dirty["ad_computer"] += 1

    def _departed(self, index: int, rng: random.Random) -> None:
        display, given, mail = self.factory.build_outsider("departed", index)
        surname = display.removeprefix(given).strip()
        self.truth.dirty["departed_still_licensed"] += 1
        platforms = [p for p, chance in ((Platform.ZOOM, 0.7), (Platform.TEAMS, 0.5), (Platform.WEBEX, 0.15))
                     if rng.random() < chance] or [Platform.ZOOM]
        for platform in platforms:
            self._orphan_account(platform, rng, email=mail, display=display, given=given, surname=surname,
                                 conflict=ConflictKind.SOURCE_UNMATCHED, licensed=True)

    def _service_account(self, index: int, rng: random.Random) -> None:
        code = pick(rng, names.DIRECTIONS)[0].lower()
        prefix = pick(rng, ("salle", "secretariat", "accueil", "bal", "noreply", "zoomroom"))
        separator = "-" if prefix in ("salle", "zoomroom", "noreply") else "."
        mail = self.factory.allocate_local(self.options.domains.primary, f"{prefix}{separator}{code}")
        display = {"salle": f"Salle de réunion {code.upper()}", "secretariat": f"Secrétariat {code.upper()}",
                   "accueil": f"Accueil {code.upper()}", "bal": f"Boîte fonctionnelle {code.upper()}",
                   "noreply": "Ne pas répondre", "zoomroom": f"Zoom Room {code.upper()}"}[prefix]
        self.truth.dirty["service_or_room_account"] += 1
        platform = Platform.ZOOM if rng.random() < 0.5 else Platform.TEAMS
        self._orphan_account(platform, rng, email=mail, display=display, given=None, surname=None,
                             conflict=ConflictKind.NON_PERSON_ACCOUNT, licensed=rng.random() < 0.7)

    def _guest(self, index: int, rng: random.Random) -> None:
        display, given, _mail = self.factory.build_outsider("guest", index)
        domain = pick(rng, names.EXTERNAL_DOMAINS)
        mail = self.factory.allocate_local(domain, _mail.partition("@")[0])
        self.truth.dirty["external_guest"] += 1
        self._orphan_account(Platform.TEAMS, rng, email=mail, display=display, given=given,
                             surname=display.removeprefix(given).strip(), conflict=ConflictKind.SOURCE_UNMATCHED,
                             licensed=False, guest=True)

    def _admin_account(self, index: int, rng: random.Random) -> None:
        display, given, mail = self.factory.build_outsider("admin", index)
        local, _, domain = mail.partition("@")
        admin_mail = self.factory.allocate_local(domain, "adm-" + local)
        self.truth.dirty["admin_account"] += 1
        self._orphan_account(Platform.TEAMS, rng, email=admin_mail, display=f"ADM {display}", given=given,
                             surname=display.removeprefix(given).strip(), conflict=ConflictKind.PRIVILEGED_ACCOUNT,
                             licensed=False)

    def _invalid_account(self, index: int, rng: random.Random) -> None:
        display, given, mail = self.factory.build_outsider("invalid", index)
        local, _, domain = mail.partition("@")
        broken = pick(rng, (f"{local}@@{domain}", f"{local.replace('.', ' ')}@{domain}",
                             f"{local}@{domain.split('.')[0]}", f"{local}.{domain}"))
        self.truth.dirty["invalid_address_account"] += 1
        platform = Platform.ZOOM if rng.random() < 0.6 else Platform.WEBEX
        surname = display.removeprefix(given).strip()
        if platform is Platform.ZOOM:
            truth = self.truth.account(platform, outcome="", status="active", licensed=False,
                                       quarantined=ReasonCode.INVALID_EMAIL)
            user = self._zoom_user_record(rng, user_id=rand_id(rng), email=broken, first=given, last=surname,
                                          user_type=1, status="active", timezone="Europe/Paris", dept="",
                                          role_id="2", sso_id=None)
            user["_truth"] = {**truth, "agent": None}
            self.streams.write("zoom/users.jsonl", user)
        else:
            truth = self.truth.account(platform, outcome="", status="active", licensed=False,
                                       quarantined=ReasonCode.INVALID_EMAIL)
            person = webex_person(rng, person_id=webex_id("PEOPLE", str(rand_uuid(rng))), org_id=self.webex_org_id,
                                  emails=[broken], display=display, first=given, last=surname,
                                  licences=[self.webex_licences["messaging"]], site_urls=[], department=None,
                                  title=None, pending=False, login_enabled=True, as_boolean=False,
                                  timezone="Europe/Paris", personal_room=None, as_of=self.now)
            self.webex_consumed["messaging"] += 1
            person["_truth"] = {**truth, "agent": None}
            self.streams.write("webex/people.jsonl", person)

    def _orphan_account(self, platform: Platform, rng: random.Random, *, email: str, display: str,
                        given: str | None, surname: str | None, conflict: ConflictKind, licensed: bool,
                        guest: bool = False) -> None:
        """An account no directory person owns: departed staff, rooms and services, guests, admin identities."""
        truth = self.truth.account(platform, outcome=f"conflict:{conflict}", status="active", licensed=licensed,
                                   conflicts=(conflict,))
        dept = "SG"
        if platform is Platform.ZOOM:
            user_id = rand_id(rng)
            user = self._zoom_user_record(rng, user_id=user_id, email=email, first=given or display,
                                          last=surname or "", user_type=2 if licensed else 1, status="active",
                                          timezone="Europe/Paris", dept=dept, role_id="2", sso_id=None)
            user["_truth"] = {**truth, "agent": None}
            self.streams.write("zoom/users.jsonl", user)
            if licensed:
                self._hosts(Host(platform, user_id, email, display, "Europe/Paris", dept, email.split("@")[0],
                                 pmi=_as_int(user.get("pmi"))))
        elif platform is Platform.TEAMS:
            skus = [SKUS["E1"]] if licensed else []
            for _sku in skus:
                self.sku_consumed["E1"] += 1
            user_id = str(rand_uuid(rng))
            upn = (f"{email.replace('@', '_')}#EXT#@{self.sites.entra_domain}" if guest else email)
            user = graph_user(rng, user_id=user_id, display=display, given=given, surname=surname, mail=email,
                              upn=upn, aliases=[], employee_id=None, department=None, company=None, title=None,
                              enabled=True, guest=guest, immutable_id=None, skus=skus, disabled_teams=False,
                              group_id=None, as_of=self.now)
            user["_truth"] = {**truth, "agent": None}
            self.streams.write("teams/users.jsonl", user)
            if licensed:
                self._hosts(Host(platform, user_id, email, display, "Europe/Paris", dept, email.split("@")[0]))
        else:
            licences = [self.webex_licences["messaging"], self.webex_licences["meeting_a"]]
            self.webex_consumed["messaging"] += 1
            self.webex_consumed["meeting_a"] += 1
            person_id = webex_id("PEOPLE", str(rand_uuid(rng)))
            person = webex_person(rng, person_id=person_id, org_id=self.webex_org_id, emails=[email],
                                  display=display, first=given, last=surname, licences=licences,
                                  site_urls=[self.sites.webex_primary], department=None, title=None, pending=False,
                                  login_enabled=True, as_boolean=False, timezone="Europe/Paris",
                                  personal_room=None, as_of=self.now)
            person["_truth"] = {**truth, "agent": None}
            self.streams.write("webex/people.jsonl", person)
            self._hosts(Host(platform, person_id, email, display, "Europe/Paris", dept,
                             email.split("@")[0].replace(".", ""), self.sites.webex_primary))

    def _hosts(self, host: Host) -> None:
        """`host` has meetings: hand it to the meeting writer with the next sequence number (its seed)."""
        self.host_sequence += 1
        self.meetings.send(Hosting(host, self.host_sequence))

    # ------------------------------------------------------------------------------------------ catalogues

    def _write_catalogues(self) -> None:
        """Seat counts are known only at the end: subscribedSkus, Webex licences, the Zoom plan."""
        skus: list[dict[str, object]] = []
        for key, sku in SKUS.items():
            consumed = self.sku_consumed[key]
            skus.append({
                "id": f"{self.entra_tenant_id}_{sku.sku_id}", "accountId": self.entra_tenant_id,
                "accountName": "Ministère de la Culture (exemple)", "appliesTo": "User",
                "capabilityStatus": "Enabled", "consumedUnits": consumed,
                "prepaidUnits": {"enabled": consumed + max(5, consumed // 10), "suspended": 0, "warning": 0,
                                 "lockedOut": 0},
                "servicePlans": [{"servicePlanId": plan_id, "servicePlanName": plan_name,
                                  "provisioningStatus": "Success", "appliesTo": "User"}
                                 for plan_name, plan_id in sku.plans],
                "skuId": sku.sku_id, "skuPartNumber": sku.part_number,
                "subscriptionIds": [str(rand_uuid(self.factory.rng("subscription", len(skus))))],
            })
        _write_json(self.out / "teams" / "subscribed_skus.json", {"value": skus})
        _write_json(self.out / "teams" / "organization.json",
                    {"id": self.entra_tenant_id, "displayName": "Ministère de la Culture (exemple)",
                     "verifiedDomains": [{"name": d, "isDefault": i == 0} for i, d in enumerate(
                         [self.options.domains.primary, self.options.domains.secondary, self.sites.entra_domain])]})
        names_by_key = {"meeting_a": ("Meeting - Webex Meeting Center", self.sites.webex_primary),
                        "meeting_b": ("Meeting - Webex Meeting Center", self.sites.webex_secondary),
                        "messaging": ("Messaging", None), "calling": ("Webex Calling - Professional", None)}
        licences = []
        for key, licence_id in self.webex_licences.items():
            name, site = names_by_key[key]
            consumed = self.webex_consumed[key]
            item: dict[str, object] = {"id": licence_id, "name": name, "totalUnits": consumed + max(5, consumed // 10),
                                       "consumedUnits": consumed, "consumedByUsers": consumed,
                                       "consumedByWorkspaces": 0, "subscriptionId": "Sub-CULTURE01"}
            if site is not None:
                item |= {"siteUrl": site, "siteType": "Control Hub managed site"}
            licences.append(item)
        _write_json(self.out / "webex" / "licenses.json", {"items": licences})
        _write_json(self.out / "webex" / "organization.json",
                    {"id": self.webex_org_id, "displayName": "Ministère de la Culture (exemple)"})
        _write_json(self.out / "zoom" / "account.json",
                    {"account_id": self.zoom_account_id, "plan": "business",
                     "plan_base": {"type": "monthly", "hosts": self.zoom_licensed + max(5, self.zoom_licensed // 10),
                                   "usage": self.zoom_licensed}})


_LOAD_REASONS = {Trait.MISSING_MAIL: ReasonCode.MISSING_MAIL, Trait.INVALID_DIRECTORY_MAIL: ReasonCode.INVALID_EMAIL,
                 Trait.BROKEN_BASE64: ReasonCode.LDIF_BAD_BASE64, Trait.UNKNOWN_ATTRIBUTE: ReasonCode.UNKNOWN_ATTRIBUTE}
_EXTRA_DIRTY_KINDS = {
    "departed_still_licensed": "accounts of people no longer in the directory, still licensed (1-3 platforms)",
    "service_or_room_account": "room, secretariat, shared and no-reply mailboxes holding accounts",
    "external_guest": "Entra B2B guests (userType Guest, #EXT# UPN) with external addresses",
    "admin_account": "separate administration identities (adm-…) in Entra",
    "invalid_address_account": "Zoom or Webex accounts whose e-mail is not an address",
    "ad_computer": "AD computer objects (objectClass user, objectCategory Computer): out of scope, not people",
}


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def iter_jsonl(path: Path) -> Iterator[dict[str, object]]:
    """Read a generated JSON Lines file back, one record at a time."""
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield orjson.loads(line)
