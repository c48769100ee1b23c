"""Identity decisions, one table per rule: match methods, the owner rule, every conflict kind, domains in any
spelling, directory objects that are not persons, former e-mails."""

from __future__ import annotations

import pytest

from core import AccountStatus, AnchorKind, ConflictKind, DirectoryEntry, MatchMethod, Platform, SourceAccount
from core.identity import (
    AccountExcluded,
    AccountMatched,
    AccountUnmatched,
    Contested,
    IdentityKey,
    IdentityPolicy,
    KeyKind,
    Lookup,
    Override,
    OverrideAction,
    Owner,
    coverage,
    directory_keys,
    disabled_but_licensed,
    email_changed,
    excluded_kind,
    expectation,
    former_key,
    lookup_of,
    lookup_values,
    match_account,
    owner_of,
    owners,
    person_conflicts,
    routing_table,
    several_accounts,
    sub_drift,
    value_conflicts,
)

POLICY = IdentityPolicy.build(
    idp_by_domain={"culture.gouv.fr": "fi-culture", "patrimoines.gouv.fr": "proconnect-identite"},
    non_person_patterns=[r"^(salle|secretariat|accueil|bal|noreply|zoomroom)[.-]"],
    privileged_patterns=[r"^adm[.-]"], population_policy=["prestataire", "stagiaire", "partenaire"],
    siret="11004601800013", visio_base_url="https://visio.example.gouv.fr")


def entry(anchor: str, mail: str, *aliases: str, employee: str | None = None, immutable: str | None = None,
          population: str | None = "agent", disabled: bool = False, login: str | None = None) -> DirectoryEntry:
    return DirectoryEntry(anchor=anchor, anchor_kind=AnchorKind.OBJECT_GUID, dn=f"CN={anchor}", primary_email=mail,
                          aliases=aliases, employee_id=employee, immutable_id=immutable, population=population,
                          disabled=disabled, login=login)


def account(email: str, *, platform: Platform = Platform.ZOOM, external_id: str = "u1", role: str | None = None,
            employee: str | None = None, immutable: str | None = None) -> SourceAccount:
    return SourceAccount(platform, external_id, email, AccountStatus.ACTIVE, role=role, employee_id=employee,
                         immutable_id=immutable)


DIRECTORY = [
    entry("A", "jean.dupont@culture.gouv.fr", "j.dupont@culture.fr", employee="0042", immutable="Wm9vYmFy"),
    entry("B", "Claire.Martin@culture.gouv.fr", employee="0043"),
    entry("C", "marie.roy@culture.gouv.fr", "jean.dupont@culture.gouv.fr"),   # alias = A's primary
    entry("D", "paul.petit@culture.gouv.fr"),
    entry("E", "Paul.Petit@culture.gouv.fr"),                                  # shares D's primary
    entry("F", "anne.noel@culture.gouv.fr", "shared@culture.fr"),
    entry("G", "luc.noel@culture.gouv.fr", "shared@culture.fr"),               # two aliases, no primary
]


def lookups_for(*accounts: SourceAccount, directory: list[DirectoryEntry] = DIRECTORY,
                extra: tuple[IdentityKey, ...] = ()) -> dict[tuple[Lookup, str], Owner | Contested]:
    keys = [key for e in directory for key in directory_keys(e)] + list(extra)
    wanted = {pair for a in accounts for pair in lookup_values(a)}
    holders: dict[tuple[Lookup, str], list[IdentityKey]] = {pair: [] for pair in wanted}
    for key in keys:
        pair = (lookup_of(key.kind), key.value)
        if pair in holders:
            holders[pair].append(key)
    return owners(holders)


@pytest.mark.parametrize(("source", "anchor", "method", "conflicts"), [
    (account("jean.dupont@culture.gouv.fr"), "A", MatchMethod.PRIMARY_EMAIL, set()),
    (account("claire.martin@culture.gouv.fr"), "B", MatchMethod.PRIMARY_EMAIL,
     {ConflictKind.CASE_OR_UNICODE_MISMATCH}),
    (account(" jean.dupont@culture.gouv.fr "), "A", MatchMethod.PRIMARY_EMAIL,
     {ConflictKind.CASE_OR_UNICODE_MISMATCH}),
    (account("J.Dupont@Culture.fr"), "A", MatchMethod.ALIAS,
     {ConflictKind.ALIAS_ONLY_MATCH, ConflictKind.CASE_OR_UNICODE_MISMATCH}),
    (account("j.dupont@culture.fr"), "A", MatchMethod.ALIAS, {ConflictKind.ALIAS_ONLY_MATCH}),
    (account("old.name@culture.gouv.fr", platform=Platform.TEAMS, immutable="Wm9vYmFy", employee="9999"), "A",
     MatchMethod.IMMUTABLE_ID, set()),
    (account("old.name@culture.gouv.fr", employee=" 0043 "), "B", MatchMethod.EMPLOYEE_ID, set()),
])
def test_match_methods(source: SourceAccount, anchor: str, method: MatchMethod, conflicts: set[ConflictKind]) -> None:
    outcome = match_account(source, lookups=lookups_for(source), policy=POLICY)
    assert isinstance(outcome, AccountMatched)
    assert (outcome.anchor, outcome.method) == (anchor, method)
    assert {c.kind for c in outcome.conflicts} == conflicts


def test_a_primary_beats_an_alias_and_two_primaries_lose_it_both() -> None:
    keys = [key for e in DIRECTORY for key in directory_keys(e)]
    holders = [k for k in keys if k.value == "jean.dupont@culture.gouv.fr"]
    assert owner_of("jean.dupont@culture.gouv.fr", holders) == Owner("A", KeyKind.PRIMARY,
                                                                     "jean.dupont@culture.gouv.fr")
    assert owner_of("paul.petit@culture.gouv.fr", [k for k in keys if k.value == "paul.petit@culture.gouv.fr"]) == \
        Contested("paul.petit@culture.gouv.fr", ("D", "E"))
    assert isinstance(owner_of("shared@culture.fr", [k for k in keys if k.value == "shared@culture.fr"]), Contested)


@pytest.mark.parametrize(("source", "kind"), [
    (account("paul.petit@culture.gouv.fr"), ConflictKind.SOURCE_UNMATCHED),      # contested value
    (account("shared@culture.fr"), ConflictKind.SOURCE_UNMATCHED),               # contested alias
    (account("parti.depuis@culture.gouv.fr"), ConflictKind.SOURCE_UNMATCHED),    # departed
    (account("partner@gmail.com", platform=Platform.TEAMS), ConflictKind.SOURCE_UNMATCHED),  # guest
    (account("salle-dnum@culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),
    (account("secretariat.sg@culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),
    (account("jean.dupont@culture.gouv.fr", role="1"), ConflictKind.PRIVILEGED_ACCOUNT),
    (account("adm-jdupont@culture.gouv.fr", platform=Platform.TEAMS), ConflictKind.PRIVILEGED_ACCOUNT),
])
def test_accounts_that_are_not_matched_say_why(source: SourceAccount, kind: ConflictKind) -> None:
    outcome = match_account(source, lookups=lookups_for(source), policy=POLICY)
    assert isinstance(outcome, AccountUnmatched)
    assert outcome.conflict.kind is kind
    assert outcome.conflict.subject == f"{source.platform}:{source.external_id}"


def test_roles_are_privileged_only_on_their_platform() -> None:
    webex = account("jean.dupont@culture.gouv.fr", platform=Platform.WEBEX, role="1")
    assert isinstance(match_account(webex, lookups=lookups_for(webex), policy=POLICY), AccountMatched)


def test_never_by_display_name() -> None:
    source = SourceAccount(Platform.ZOOM, "u9", "unknown@culture.gouv.fr", AccountStatus.ACTIVE,
                           display_name="Jean Dupont", given_name="Jean", surname="Dupont")
    assert isinstance(match_account(source, lookups=lookups_for(source), policy=POLICY), AccountUnmatched)


@pytest.mark.parametrize(("override", "expected"), [
    (Override(Platform.ZOOM, "u1", OverrideAction.FORCE_MATCH, "D"), ("matched", "D")),
    (Override(Platform.ZOOM, "u1", OverrideAction.EXCLUDE), ("excluded", None)),
    (Override(Platform.ZOOM, "u1", OverrideAction.MARK_SERVICE), ("service", None)),
    (Override(Platform.ZOOM, "u1", OverrideAction.MARK_SERVICE, "B"), ("matched", "B")),
])
def test_overrides_win_over_the_rules(override: Override, expected: tuple[str, str | None]) -> None:
    source = account("paul.petit@culture.gouv.fr")
    outcome = match_account(source, lookups=lookups_for(source), policy=POLICY, override=override)
    if expected[0] == "matched":
        assert isinstance(outcome, AccountMatched)
        assert (outcome.anchor, outcome.method) == (expected[1], MatchMethod.OVERRIDE)
    elif expected[0] == "excluded":
        assert isinstance(outcome, AccountExcluded)
    else:
        assert isinstance(outcome, AccountUnmatched)
        assert outcome.conflict.kind is ConflictKind.NON_PERSON_ACCOUNT


def test_value_conflicts() -> None:
    keys = [key for e in DIRECTORY for key in directory_keys(e)]

    def of(value: str) -> set[ConflictKind]:
        return {c.kind for c in value_conflicts(value, [k for k in keys if k.value == value])}

    assert of("jean.dupont@culture.gouv.fr") == {ConflictKind.DUPLICATE_EMAIL_DIRECTORY}
    assert of("paul.petit@culture.gouv.fr") == {ConflictKind.DUPLICATE_EMAIL_DIRECTORY,
                                                ConflictKind.VISIO_EMAIL_COLLISION}
    assert of("shared@culture.fr") == {ConflictKind.DUPLICATE_EMAIL_DIRECTORY}
    assert of("marie.roy@culture.gouv.fr") == set()


@pytest.mark.parametrize(("person", "kinds"), [
    (entry("P1", "a@culture.gouv.fr"), set()),
    (entry("P2", "a@operateurs.example.fr"), {ConflictKind.DOMAIN_NOT_ROUTED}),
    (entry("P3", "a@culture.gouv.fr", population="prestataire"), {ConflictKind.POPULATION_POLICY}),
    (entry("P4", "a@CULTURE.gouv.fr", population="Stagiaire"), {ConflictKind.POPULATION_POLICY}),
    (entry("P5", "a@x.fr", population="partenaire"), {ConflictKind.DOMAIN_NOT_ROUTED, ConflictKind.POPULATION_POLICY}),
])
def test_person_conflicts(person: DirectoryEntry, kinds: set[ConflictKind]) -> None:
    assert {c.kind for c in person_conflicts(person, POLICY)} == kinds


def test_expectations_for_proconnect_and_visio() -> None:
    person = entry("P", "Jean.Dupont@Patrimoines.gouv.fr")
    expected = expectation(person, POLICY, primary_contested=False)
    assert expected.proconnect_email == "Jean.Dupont@Patrimoines.gouv.fr"
    assert expected.expected_idp == "proconnect-identite"
    assert expected.siret == "11004601800013"
    assert expected.login_hint_url == "https://visio.example.gouv.fr/?login_hint=Jean.Dupont@Patrimoines.gouv.fr"
    assert expected.visio_provisioning == "first_login"
    held = expectation(person, POLICY, primary_contested=True)
    assert held.proconnect_email is None and held.login_hint_url is None


def test_time_and_aggregate_conflicts() -> None:
    assert email_changed("A", before="a@x.fr", after="a@x.fr") is None
    changed = email_changed("A", before="a@x.fr", after="b@x.fr")
    assert changed is not None and changed.kind is ConflictKind.EMAIL_CHANGED and changed.value == "b@x.fr"
    assert sub_drift("A", ["s1", "s1"]) is None
    drift = sub_drift("A", ["s1", "s2"])
    assert drift is not None and drift.kind is ConflictKind.SUB_DRIFT and drift.value == "s2"
    assert disabled_but_licensed("A", ["zoom", "teams"]).kind is ConflictKind.DEPARTED_OR_DISABLED
    multi = several_accounts("A", Platform.ZOOM, ["u2", "u1"])
    assert (multi.kind, multi.subject, multi.value) == (ConflictKind.MULTI_SOURCE_ACCOUNTS, "A", "zoom")
    assert coverage(True, "t", "11004601800013") is None
    assert coverage(False, "t", "123").kind is ConflictKind.NO_PROCONNECT_COVERAGE  # type: ignore[union-attr]


def test_directory_keys_drop_invalid_and_duplicate_aliases() -> None:
    keys = directory_keys(entry("A", "A@x.fr", "a@x.fr", "not an address", "b@x.fr", "B@X.FR", employee=" e1 "))
    assert [(k.kind, k.value) for k in keys] == [(KeyKind.PRIMARY, "a@x.fr"), (KeyKind.ALIAS, "b@x.fr"),
                                                 (KeyKind.EMPLOYEE, "E1")]


# ------------------------------------------------------------------------------------------------- domains (IDN)

# One domain written with accents, one in capitals, one in punycode: the table is the tenant file's spelling.
IDN_POLICY = IdentityPolicy.build(idp_by_domain={"défense.example.gouv.fr": "fi-armees",
                                                 "CULTURE.GOUV.FR": "fi-culture",
                                                 "xn--mairie-couen-heb.fr": "fi-ecouen"})


@pytest.mark.parametrize(("mail", "idp"), [
    ("agent@défense.example.gouv.fr", "fi-armees"),
    ("agent@DÉFENSE.Example.Gouv.FR", "fi-armees"),
    ("agent@xn--dfense-bva.example.gouv.fr", "fi-armees"),
    ("agent@de\u0301fense.example.gouv.fr", "fi-armees"),          # NFD
    ("agent@culture.gouv.fr", "fi-culture"),
    ("Agent@Culture.Gouv.Fr", "fi-culture"),
    ("AGENT@CULTURE.GOUV.FR.", "fi-culture"),
    ("agent@mairie-écouen.fr", "fi-ecouen"),
    ("agent@MAIRIE-ÉCOUEN.FR", "fi-ecouen"),
    ("agent@XN--MAIRIE-COUEN-HEB.fr", "fi-ecouen"),
])
def test_every_spelling_of_a_routed_domain_is_routed(mail: str, idp: str) -> None:
    person = entry("P", mail)
    assert expectation(person, IDN_POLICY, primary_contested=False).expected_idp == idp
    assert ConflictKind.DOMAIN_NOT_ROUTED not in {c.kind for c in person_conflicts(person, IDN_POLICY)}
    assert IDN_POLICY.provider_of(mail.rpartition("@")[2]) == idp


def test_an_unrouted_domain_is_reported_in_its_normal_form() -> None:
    (conflict,) = person_conflicts(entry("P", "agent@opérateurs.example.fr"), IDN_POLICY)
    assert (conflict.kind, conflict.value) == (ConflictKind.DOMAIN_NOT_ROUTED, "xn--oprateurs-c4a.example.fr")


def test_routing_table_refuses_what_is_not_one_domain_one_provider() -> None:
    assert routing_table({"Défense.gouv.fr": "fi", "xn--dfense-bva.gouv.fr": "fi"}) == {"xn--dfense-bva.gouv.fr": "fi"}
    with pytest.raises(ValueError, match=r"'défense\.gouv\.fr' and 'XN--DFENSE-BVA\.GOUV\.FR' are one domain"):
        routing_table({"défense.gouv.fr": "fi-a", "XN--DFENSE-BVA.GOUV.FR": "fi-b"})
    for broken in ("culture", "culture gouv.fr", "@culture.gouv.fr", "culture..gouv.fr", "xn--zz.fr"):
        with pytest.raises(ValueError, match="is not a mail domain"):
            IdentityPolicy.build(idp_by_domain={broken: "fi"})


# ------------------------------------------------------------------------------------------------- not persons

@pytest.mark.parametrize(("person", "kind"), [
    (entry("R1", "salle-dnum@culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),
    (entry("R2", "Secretariat.SG@Culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),
    (entry("R3", "visio-12@culture.gouv.fr", login="zoomroom-12"), ConflictKind.NON_PERSON_ACCOUNT),
    (entry("A1", "adm-jdupont@culture.gouv.fr"), ConflictKind.PRIVILEGED_ACCOUNT),
    (entry("A2", "jean.dupont.admin@culture.gouv.fr", login="adm-jdupont"), ConflictKind.PRIVILEGED_ACCOUNT),
    (entry("A3", "jean.dupont.admin@culture.gouv.fr", login="CULTURE\\ADM.jdupont"), ConflictKind.PRIVILEGED_ACCOUNT),
    (entry("A4", "jean.dupont.admin@culture.gouv.fr", login="adm-jdupont@ad.culture.local"),
     ConflictKind.PRIVILEGED_ACCOUNT),
    (entry("P1", "jean.dupont@culture.gouv.fr", login="jdupont"), None),
    (entry("P2", "balthazar.admin@culture.gouv.fr", login="badmin"), None),   # 'bal' and 'adm' not at a separator
])
def test_directory_objects_that_are_not_persons(person: DirectoryEntry, kind: ConflictKind | None) -> None:
    assert excluded_kind(person, POLICY) is kind
    found = {c.kind: c for c in person_conflicts(person, POLICY)}
    if kind is None:
        assert not found.keys() & {ConflictKind.NON_PERSON_ACCOUNT, ConflictKind.PRIVILEGED_ACCOUNT}
    else:
        assert found[kind].subject == person.anchor


ROOMS = [*DIRECTORY,
         entry("R", "salle-dnum@culture.gouv.fr", "visio-dnum@culture.gouv.fr"),
         entry("ADM", "jean.dupont.admin@culture.gouv.fr", employee="A042", login="adm-jdupont")]
EXCLUDED = {"R": ConflictKind.NON_PERSON_ACCOUNT, "ADM": ConflictKind.PRIVILEGED_ACCOUNT}


@pytest.mark.parametrize(("source", "kind"), [
    (account("salle-dnum@culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),          # as before: its own address
    (account("visio-dnum@culture.gouv.fr"), ConflictKind.NON_PERSON_ACCOUNT),          # the room's alias
    (account("jean.dupont.admin@culture.gouv.fr", platform=Platform.TEAMS), ConflictKind.PRIVILEGED_ACCOUNT),
    (account("someone@culture.gouv.fr", employee="a042"), ConflictKind.PRIVILEGED_ACCOUNT),
])
def test_an_account_tied_to_a_directory_object_that_is_not_a_person_is_held_back(source: SourceAccount,
                                                                                  kind: ConflictKind) -> None:
    outcome = match_account(source, lookups=lookups_for(source, directory=ROOMS), policy=POLICY, excluded=EXCLUDED)
    assert isinstance(outcome, AccountUnmatched)
    assert (outcome.conflict.kind, outcome.conflict.subject) == (kind, f"{source.platform}:{source.external_id}")
    # Without the exclusion (no persons phase yet, or the patterns changed) the same lookups match.
    if source.email != "salle-dnum@culture.gouv.fr":
        assert isinstance(match_account(source, lookups=lookups_for(source, directory=ROOMS), policy=POLICY),
                          AccountMatched)


def test_the_migration_team_may_still_tie_an_account_to_it() -> None:
    source = account("visio-dnum@culture.gouv.fr")
    outcome = match_account(source, lookups=lookups_for(source, directory=ROOMS), policy=POLICY, excluded=EXCLUDED,
                            override=Override(Platform.ZOOM, "u1", OverrideAction.FORCE_MATCH, "R"))
    assert isinstance(outcome, AccountMatched) and outcome.method is MatchMethod.OVERRIDE


# ------------------------------------------------------------------------------------------------- former e-mails

def test_former_keys_are_e_mail_keys_of_the_lowest_priority() -> None:
    former = former_key("X", " Old.Name@Culture.gouv.fr ")
    assert former == IdentityKey(KeyKind.FORMER, "old.name@culture.gouv.fr", "X", "Old.Name@Culture.gouv.fr")
    assert former_key("X", "not an address") is None
    assert lookup_of(KeyKind.FORMER) is Lookup.EMAIL
    primary = IdentityKey(KeyKind.PRIMARY, former.value, "Y", former.value)
    alias = IdentityKey(KeyKind.ALIAS, former.value, "Z", former.value)
    assert owner_of(former.value, [former]) == Owner("X", KeyKind.FORMER, former.raw)
    assert owner_of(former.value, [former, primary]) == Owner("Y", KeyKind.PRIMARY, former.value)
    assert owner_of(former.value, [alias, former]) == Owner("Z", KeyKind.ALIAS, former.value)
    other = IdentityKey(KeyKind.FORMER, former.value, "W", former.value)
    assert owner_of(former.value, [former, other]) == Contested(former.value, ("W", "X"), KeyKind.FORMER)
    # A former address is not held by the directory: no duplicate, no Visio collision with its new holder.
    assert value_conflicts(former.value, [former, primary]) == []
    assert KeyKind.FORMER not in {key.kind for e in DIRECTORY for key in directory_keys(e)}


def test_an_account_on_a_former_e_mail_matches_its_person_and_says_the_platform_lags() -> None:
    source = account("Old.Name@culture.gouv.fr", external_id="u7")
    former = former_key("D", "old.name@culture.gouv.fr")
    assert former is not None
    outcome = match_account(source, lookups=lookups_for(source, extra=(former,)), policy=POLICY)
    assert isinstance(outcome, AccountMatched)
    assert (outcome.anchor, outcome.method) == ("D", MatchMethod.FORMER_EMAIL)
    assert [(c.kind, c.subject, c.value) for c in outcome.conflicts] == [
        (ConflictKind.EMAIL_CHANGED, "zoom:u7", "old.name@culture.gouv.fr")]
    # Without the former key: departed, as before.
    unmatched = match_account(source, lookups=lookups_for(source), policy=POLICY)
    assert isinstance(unmatched, AccountUnmatched) and unmatched.conflict.kind is ConflictKind.SOURCE_UNMATCHED


def test_a_former_e_mail_yields_to_the_current_holder_and_to_the_ids() -> None:
    source = account("marie.roy@culture.gouv.fr", platform=Platform.TEAMS, immutable=None)
    given_away = former_key("A", "marie.roy@culture.gouv.fr")          # C's primary today
    assert given_away is not None
    outcome = match_account(source, lookups=lookups_for(source, extra=(given_away,)), policy=POLICY)
    assert isinstance(outcome, AccountMatched) and (outcome.anchor, outcome.method) == ("C", MatchMethod.PRIMARY_EMAIL)
    renamed = account("old.name@culture.gouv.fr", platform=Platform.TEAMS, immutable="Wm9vYmFy")
    former = former_key("D", "old.name@culture.gouv.fr")
    assert former is not None
    by_anchor = match_account(renamed, lookups=lookups_for(renamed, extra=(former,)), policy=POLICY)
    assert isinstance(by_anchor, AccountMatched)
    assert (by_anchor.anchor, by_anchor.method) == ("A", MatchMethod.IMMUTABLE_ID)
    twice = (former, IdentityKey(KeyKind.FORMER, former.value, "B", former.value))
    held = match_account(account("old.name@culture.gouv.fr"), lookups=lookups_for(
        account("old.name@culture.gouv.fr"), extra=twice), policy=POLICY)
    assert isinstance(held, AccountUnmatched) and "former address of several" in held.conflict.detail
