"""Whole outcomes, compared whole: the plan rows of a host, refusals and their messages, conflicts and matches with
every field, boundaries of e-mail lengths, invitation texts and zones. Written from the survivors of a mutation run
over core/ (tests/mutation/run_mutation.py): each test here failed on at least one mutant the other tests let
through."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core import AccountStatus, AnchorKind, DirectoryEntry, MatchMethod, Platform, SourceAccount
from core.emails import EmailAddress, InvalidEmail, normalise_domain, parse_email
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
    owners,
    person_conflicts,
    several_accounts,
    sub_drift,
    value_conflicts,
)
from core.invitations import (
    InvitationUpdate,
    build_invitation_update,
    build_rollback_update,
    invitation_from_payload,
    invitation_payload,
)
from core.licences import CostModel, annual_unit_cost
from core.records import (
    ActionKind,
    ActionState,
    Conflict,
    ConflictKind,
    Meeting,
    MeetingKind,
    OccurrenceChange,
    Recurrence,
)
from core.recurrence import classify_meeting, next_occurrence, recurrence_from_webex, recurrence_from_zoom
from core.waves import Flag, Host, TransitionRefused, WaveAction, WaveSelection, WaveState, check_transition, plan_host

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
HOST = Host("anchor-1", "anne.martin@culture.example.gouv.fr")


def exactly(message: str) -> str:
    """A `pytest.raises(match=…)` pattern for this whole message and nothing else."""
    return f"^{re.escape(message)}$"


def series(**changes: Any) -> Meeting:
    base = Meeting(platform=Platform.ZOOM, external_id="81234567890", host_account_id="zoom-user-1",
                   host_email="anne.martin@culture.example.gouv.fr", topic="Point hebdo", kind=MeetingKind.WEEKLY,
                   timezone="Europe/Paris", join_url="https://zoom.us/j/81234567890", link_key="zoom:81234567890",
                   start=NOW, duration_minutes=60, invitees=("a@culture.example.gouv.fr",))
    return replace(base, **changes)


def _link(meeting: Meeting) -> dict[str, Any]:
    return {"platform": meeting.platform.value, "meeting_id": meeting.external_id, "old_key": meeting.link_key,
            "old_url": meeting.join_url, "topic": meeting.topic}


# ----------------------------------------------------------------------------------------------- waves: plan rows

def test_a_zoom_series_with_exceptions_plans_exactly_these_two_rows() -> None:
    week = timedelta(days=7)
    meeting = series(external_invitees=1, exclusions=(NOW + week,), invitees_known=False, invitees=(),
                     exceptions=(OccurrenceChange(NOW + 2 * week, NOW + 2 * week + timedelta(hours=1), 30),))
    flags = (Flag.EXTERNAL_GUESTS, Flag.UID_UNKNOWN)     # no calendar holds it: mailed under a made-up UID
    assert plan_host("w1", HOST, [meeting], now=NOW) == [
        WaveAction(ActionKind.CREATE_ROOM, "w1:room:zoom:81234567890", Platform.ZOOM, "81234567890", "anchor-1",
                   flags=flags, payload={"owner_email": HOST.visio_email, "access_level": "trusted",
                                         "links": [_link(meeting)]}),
        WaveAction(ActionKind.SEND_INVITATION, "w1:invite:zoom:81234567890", Platform.ZOOM, "81234567890",
                   "anchor-1", depends_on="w1:room:zoom:81234567890", flags=flags,
                   payload={"channel": "mail_invented_uid", "invitees": 0, "invitees_known": False,
                            "exclusions": ["2026-11-30T08:00:00+00:00"],
                            "exceptions": [{"original": "2026-12-07T08:00:00+00:00",
                                            "start": "2026-12-07T09:00:00+00:00", "duration_minutes": 30}]}),
    ]


def test_a_teams_series_plans_exactly_a_room_and_a_rewrite() -> None:
    teams = series(platform=Platform.TEAMS, external_id="AAMkEvent", host_account_id="graph-user-1",
                   join_url="https://teams.microsoft.com/meet/1?p=a", link_key="teams:meet:1", dial_in=True)
    assert plan_host("w1", HOST, [teams], now=NOW) == [
        WaveAction(ActionKind.CREATE_ROOM, "w1:room:teams:AAMkEvent", Platform.TEAMS, "AAMkEvent", "anchor-1",
                   flags=(Flag.DIAL_IN,), payload={"owner_email": HOST.visio_email, "access_level": "trusted",
                                                   "links": [_link(teams)]}),
        WaveAction(ActionKind.REWRITE_EVENT, "w1:rewrite:teams:AAMkEvent", Platform.TEAMS, "AAMkEvent", "anchor-1",
                   depends_on="w1:room:teams:AAMkEvent", flags=(Flag.DIAL_IN,),
                   payload={"mailbox": "graph-user-1", "event_id": "AAMkEvent", "join_url": teams.join_url,
                            "channel": "calendar_in_place"}),
    ]


def test_a_skipped_meeting_and_a_personal_room_are_exactly_these_rows() -> None:
    webinar = series(webinar=True, dial_in=True)
    room = series(platform=Platform.WEBEX, kind=MeetingKind.PERSONAL_ROOM, external_id="webex-room-1", start=None,
                  link_key="webex:room:1", invitees=(), registration=True)
    assert plan_host("w1", HOST, [room, webinar], now=NOW) == [
        WaveAction(ActionKind.CREATE_ROOM, "w1:skip:zoom:81234567890", Platform.ZOOM, "81234567890", "anchor-1",
                   ActionState.SKIPPED, flags=(Flag.WEBINAR, Flag.DIAL_IN), reason="webinar",
                   payload={"links": [_link(webinar)]}),
        WaveAction(ActionKind.CREATE_ROOM, "w1:room:personal:anchor-1", Platform.WEBEX, "webex-room-1", "anchor-1",
                   flags=(Flag.REGISTRATION,), payload={"owner_email": HOST.visio_email, "access_level": "trusted",
                                                        "links": [_link(room)]}),
    ]


@pytest.mark.parametrize(("ends_at", "skipped"), [
    (NOW - timedelta(microseconds=1), True), (NOW, False), (NOW + timedelta(days=1), False)])
def test_a_series_whose_last_occurrence_starts_now_is_still_migrated(ends_at: datetime, skipped: bool) -> None:
    first = plan_host("w1", HOST, [series(ends_at=ends_at)], now=NOW)[0]
    assert (first.state is ActionState.SKIPPED) is skipped


# ----------------------------------------------------------------------------------------------- waves: states

@pytest.mark.parametrize(("current", "target", "reason"), [
    (WaveState.CUT_OVER, WaveState.PLANNED, "allowed from cut_over: cut_over, rolled_back, verified"),
    (WaveState.PLANNED, WaveState.VERIFIED, "allowed from planned: cancelled, frozen, planned"),
    (WaveState.ROLLED_BACK, WaveState.PLANNED, "allowed from rolled_back: nothing (final state)"),
    (WaveState.FROZEN, WaveState.PLANNED, "the plan is frozen: unfreeze it explicitly to plan again"),
])
def test_a_refused_transition_says_exactly_why(current: WaveState, target: WaveState, reason: str) -> None:
    assert check_transition(current, target, now=NOW) == TransitionRefused(current, target, reason)


def test_a_selection_of_anchors_or_emails_alone_is_valid_and_round_trips() -> None:
    for selection in (WaveSelection(anchors=("a1", "a2")), WaveSelection(emails=("x@culture.gouv.fr",)),
                      WaveSelection(departments=("DGCA",), anchors=("a1",), emails=("x@culture.gouv.fr",))):
        assert WaveSelection.from_json(selection.to_json()) == selection
    assert WaveSelection(("D",), ("a",), ("e",)).to_json() == {"departments": ["D"], "anchors": ["a"],
                                                               "emails": ["e"]}
    assert WaveSelection.from_json({"departments": ["D"], "anchors": "a1", "emails": None}) == WaveSelection(("D",))
    with pytest.raises(ValueError, match=exactly("a wave selects at least one department, anchor or e-mail")):
        WaveSelection()


def test_only_slashes_are_trimmed_from_a_selected_department() -> None:
    selection = WaveSelection(departments=("SDX/",))
    assert selection.includes_department("SDX") and selection.includes_department("SDX/B1")
    assert not selection.includes_department("SD") and not selection.includes_department("SD/B1")


# ----------------------------------------------------------------------------------------------- licences

def test_the_unit_cost_does_not_depend_on_the_callers_decimal_context() -> None:
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        assert annual_unit_cost(Decimal("0.12345"), 12) == Decimal("0.1234")


@pytest.mark.parametrize(("unit_price", "months", "error", "message"), [
    (Decimal("10"), 1.5, TypeError, "billing_period_months must be an integer number of months"),
    (Decimal("10"), 0, ValueError, "billing_period_months must be at least 1"),
    (Decimal("-0.01"), 12, ValueError, "unit_price must not be negative"),
])
def test_a_refused_unit_cost_says_exactly_why(unit_price: Decimal, months: Any, error: type[Exception],
                                              message: str) -> None:
    with pytest.raises(error, match=exactly(message)):
        annual_unit_cost(unit_price, months)


def test_free_and_cheap_prices_are_prices() -> None:
    for price in (Decimal("0"), Decimal("0.5")):
        model = CostModel(price, {(Platform.ZOOM, "Zoom Pro"): price, (Platform.ZOOM, "Zoom Business"): Decimal(2)})
        assert model.default_annual_unit_cost == price


@pytest.mark.parametrize(("default", "prices", "message"), [
    (Decimal("-1"), {}, "default_annual_unit_cost must not be negative"),
    (Decimal("1"), {(Platform.ZOOM, "Zoom Pro"): Decimal("-1")}, "negative price for zoom/Zoom Pro"),
    (Decimal("1"), {(Platform.ZOOM, "Zoom Pro"): Decimal("1"), (Platform.ZOOM, " zoom pro"): Decimal("2")},
     "zoom/ zoom pro is priced twice with different prices"),
])
def test_a_refused_cost_model_says_exactly_why(default: Decimal, prices: dict[tuple[Platform, str], Decimal],
                                               message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        CostModel(default, prices)


# ----------------------------------------------------------------------------------------------- e-mails

D253 = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
D189 = "a" * 63 + "." + "b" * 63 + "." + "c" * 61


@pytest.mark.parametrize(("raw", "reason"), [
    ("  ", "empty"),
    ("jean dupont@culture.gouv.fr", "whitespace inside the address"),
    ("culture.gouv.fr", "no local part or no @"),
    ("a@b@culture.gouv.fr", "more than one @"),
    ("x" * 65 + "@culture.gouv.fr", "invalid local part"),
    ("jean@culture..gouv.fr", "invalid domain"),
    ("x" * 64 + "@" + D189 + "z", "address too long"),
])
def test_an_invalid_address_keeps_its_raw_value_and_says_exactly_why(raw: str, reason: str) -> None:
    assert parse_email(raw) == InvalidEmail(raw, reason)


def test_the_longest_valid_addresses_and_domains_pass() -> None:
    assert parse_email("x" * 64 + "@" + D189) == EmailAddress("x" * 64, D189)
    assert parse_email("x" * 64 + "@culture.gouv.fr") == EmailAddress("x" * 64, "culture.gouv.fr")
    assert normalise_domain(D253) == D253
    assert normalise_domain(D253 + "e") is None


@pytest.mark.parametrize("text", ["culture@gouv.fr", "culture gouv.fr", "", "@"])
def test_a_domain_with_an_at_sign_or_a_blank_is_no_domain(text: str) -> None:
    assert normalise_domain(text) is None


# ----------------------------------------------------------------------------------------------- identity

def _policy() -> IdentityPolicy:
    """Built inside each test: a policy built at import would be built before a mutant is switched on."""
    return IdentityPolicy.build(idp_by_domain={"Culture.Gouv.FR": "fi-culture"},
                                non_person_patterns=[r"^SALLE[.-]"], privileged_patterns=[r"^adm[.-]", r"[.-]adm$"],
                                population_policy=["Prestataire"], siret="11004601800013",
                                visio_base_url="https://visio.example.gouv.fr/X/", visio_precreates_users=True)


def test_a_policy_keeps_every_setting_it_is_built_with() -> None:
    policy = _policy()
    assert policy.idp_by_domain == {"culture.gouv.fr": "fi-culture"}
    assert policy.population_policy == frozenset({"prestataire"})
    assert (policy.siret, policy.visio_base_url, policy.visio_precreates_users) == (
        "11004601800013", "https://visio.example.gouv.fr/X/", True)
    assert [pattern.pattern for pattern in policy.non_person_patterns] == [r"^SALLE[.-]"]
    assert [pattern.pattern for pattern in policy.privileged_patterns] == [r"^adm[.-]", r"[.-]adm$"]
    assert all(pattern.search("SALLE-A") and pattern.search("salle-a") for pattern in policy.non_person_patterns)
    assert policy.privileged_patterns[0].search("ADM-jean")
    assert IdentityPolicy.build(idp_by_domain={}).visio_precreates_users is False
    assert policy.provider_of("CULTURE.gouv.fr") == "fi-culture"


def test_an_expectation_is_exactly_what_proconnect_and_visio_will_see() -> None:
    person = DirectoryEntry(anchor="A", anchor_kind=AnchorKind.OBJECT_GUID, dn="CN=A",
                            primary_email="Jean.Dupont@culture.gouv.fr")
    found = expectation(person, _policy(), primary_contested=False)
    assert (found.proconnect_email, found.expected_idp, found.siret, found.login_hint_url,
            found.visio_provisioning) == (
        "Jean.Dupont@culture.gouv.fr", "fi-culture", "11004601800013",
        "https://visio.example.gouv.fr/X/?login_hint=Jean.Dupont@culture.gouv.fr", "precreated")
    invalid = expectation(replace(person, primary_email="not an address"), _policy(), primary_contested=True)
    assert (invalid.proconnect_email, invalid.expected_idp, invalid.login_hint_url) == (None, None, None)


def _outcome(account: SourceAccount, *entries: DirectoryEntry, override: Override | None = None,
             excluded: dict[str, ConflictKind] | None = None, extra: tuple[IdentityKey, ...] = ()) -> Any:
    holders: dict[tuple[Lookup, str], list[IdentityKey]] = {pair: [] for pair in lookup_values(account)}
    for entry in entries:
        for key in directory_keys(entry):
            if (lookup_of(key.kind), key.value) in holders:
                holders[(lookup_of(key.kind), key.value)].append(key)
    for key in extra:
        if (lookup_of(key.kind), key.value) in holders:
            holders[(lookup_of(key.kind), key.value)].append(key)
    return match_account(account, lookups=owners(holders), policy=_policy(), override=override, excluded=excluded)


def _entry(anchor: str, mail: str, *aliases: str) -> DirectoryEntry:
    return DirectoryEntry(anchor=anchor, anchor_kind=AnchorKind.OBJECT_GUID, dn=f"CN={anchor}", primary_email=mail,
                          aliases=aliases)


def _account(email: str, **changes: Any) -> SourceAccount:
    return SourceAccount(Platform.WEBEX, "p1", email, AccountStatus.ACTIVE, **changes)


SUBJECT = "webex:p1"


@pytest.mark.parametrize(("account", "override", "expected"), [
    (_account("x@culture.gouv.fr"), Override(Platform.WEBEX, "p1", OverrideAction.EXCLUDE),
     AccountExcluded(Platform.WEBEX, "p1")),
    (_account("x@culture.gouv.fr"), Override(Platform.WEBEX, "p1", OverrideAction.FORCE_MATCH, "B"),
     AccountMatched(Platform.WEBEX, "p1", "B", MatchMethod.OVERRIDE)),
    (_account("Accueil@culture.gouv.fr"), Override(Platform.WEBEX, "p1", OverrideAction.MARK_SERVICE),
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.NON_PERSON_ACCOUNT, SUBJECT,
                                                      "accueil@culture.gouv.fr",
                                                      "marked as a service account: name its owner"))),
    (_account("jean-adm@old@culture.gouv.fr"), None,  # not an address: its first local part is still judged
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.PRIVILEGED_ACCOUNT, SUBJECT,
                                                      "jean-adm@old@culture.gouv.fr",
                                                      "administrator: never matched automatically"))),
    (_account("jean-adm@culture.gouv.fr"), None,
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.PRIVILEGED_ACCOUNT, SUBJECT,
                                                      "jean-adm@culture.gouv.fr",
                                                      "administrator: never matched automatically"))),
    (_account("Salle-A@culture.gouv.fr"), None,
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.NON_PERSON_ACCOUNT, SUBJECT,
                                                      "salle-a@culture.gouv.fr",
                                                      "room, service or shared account: needs a human owner"))),
    (_account("adm-jean@culture.gouv.fr"), None,
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.PRIVILEGED_ACCOUNT, SUBJECT,
                                                      "adm-jean@culture.gouv.fr",
                                                      "administrator: never matched automatically"))),
    (_account("J.Dupont@Culture.gouv.fr"), None,
     AccountMatched(Platform.WEBEX, "p1", "A", MatchMethod.ALIAS, (
         Conflict(ConflictKind.ALIAS_ONLY_MATCH, SUBJECT, "j.dupont@culture.gouv.fr",
                  "matched through an alias: ProConnect will assert the primary e-mail"),
         Conflict(ConflictKind.CASE_OR_UNICODE_MISMATCH, SUBJECT, "j.dupont@culture.gouv.fr",
                  "same address written differently (case, spaces or Unicode form)")))),
    (_account("NOT AN ADDRESS "), None,
     AccountUnmatched(Platform.WEBEX, "p1", Conflict(ConflictKind.SOURCE_UNMATCHED, SUBJECT, "not an address",
                                                      "no directory entry (departed, external, guest or typo)"))),
])
def test_a_match_outcome_is_exactly_this(account: SourceAccount, override: Override | None, expected: Any) -> None:
    assert _outcome(account, _entry("A", "jean.dupont@culture.gouv.fr", "j.dupont@culture.gouv.fr"),
                    override=override) == expected


def test_former_and_contested_e_mails_are_exactly_these_outcomes() -> None:
    former = former_key("A", "Ancien.Nom@culture.gouv.fr")
    other = former_key("B", "ancien.nom@culture.gouv.fr")
    assert former is not None and other is not None
    entry = _entry("A", "jean.dupont@culture.gouv.fr")
    account = _account("ancien.nom@culture.gouv.fr")
    assert _outcome(account, entry, extra=(former,)) == AccountMatched(
        Platform.WEBEX, "p1", "A", MatchMethod.FORMER_EMAIL, (Conflict(
            ConflictKind.EMAIL_CHANGED, SUBJECT, "ancien.nom@culture.gouv.fr",
            "still on a former e-mail of person A: the platform has not caught up with the directory (ProConnect "
            "will assert the current one)"),))
    held = _outcome(account, entry, extra=(former,), excluded={"A": ConflictKind.PRIVILEGED_ACCOUNT})
    assert held == AccountUnmatched(Platform.WEBEX, "p1", Conflict(
        ConflictKind.PRIVILEGED_ACCOUNT, SUBJECT, "ancien.nom@culture.gouv.fr",
        "tied (former_email) to directory entry A, an administrator identity: never matched automatically"))
    assert _outcome(account, entry, extra=(former, other)) == AccountUnmatched(Platform.WEBEX, "p1", Conflict(
        ConflictKind.SOURCE_UNMATCHED, SUBJECT, "ancien.nom@culture.gouv.fr",
        "its e-mail is a former address of several directory entries"))
    shared = _account("x@culture.gouv.fr")
    assert _outcome(shared, _entry("A", "x@culture.gouv.fr"), _entry("B", "X@culture.gouv.fr")) == AccountUnmatched(
        Platform.WEBEX, "p1", Conflict(ConflictKind.SOURCE_UNMATCHED, SUBJECT, "x@culture.gouv.fr",
                                       "its e-mail is claimed by several directory entries"))


def test_an_invalid_address_is_looked_up_and_reported_lower_case() -> None:
    account = _account(" NOT AN ADDRESS ", employee_id="e1")
    assert lookup_values(account) == [(Lookup.EMAIL, "not an address"), (Lookup.EMPLOYEE, "E1")]
    entry = replace(_entry("A", "jean.dupont@culture.gouv.fr"), employee_id="e1")
    assert _outcome(account, entry, excluded={"A": ConflictKind.NON_PERSON_ACCOUNT}) == AccountUnmatched(
        Platform.WEBEX, "p1", Conflict(
            ConflictKind.NON_PERSON_ACCOUNT, SUBJECT, "not an address",
            "tied (employee_id) to directory entry A, a room, service or shared mailbox: never matched automatically"))
    room = replace(_entry("S", " SALLE-C AT CULTURE "), population=None)
    assert [(c.kind, c.value) for c in person_conflicts(room, _policy())] == [
        (ConflictKind.NON_PERSON_ACCOUNT, "salle-c at culture")]


def test_patterns_see_the_local_part_of_an_e_mail_and_of_a_login() -> None:
    by_mail = _entry("P", "jean-adm@culture.gouv.fr")
    by_upn = replace(_entry("Q", "jean.dupont@culture.gouv.fr"), login="jdupont-adm@culture.gouv.fr")
    by_sam = replace(_entry("R", "jean.dupont@culture.gouv.fr"), login="CULTURE\\JDUPONT-ADM")
    for entry in (by_mail, by_upn, by_sam):
        assert excluded_kind(entry, _policy()) is ConflictKind.PRIVILEGED_ACCOUNT, entry.anchor
    assert excluded_kind(_entry("S", "jean.dupont@culture.gouv.fr"), _policy()) is None


def test_keys_and_owners_keep_what_the_directory_wrote() -> None:
    entry = replace(_entry("A", "Jean.Dupont@culture.gouv.fr"), employee_id=" ab1 ", immutable_id=" Wm9v ")
    assert directory_keys(entry) == [
        IdentityKey(KeyKind.PRIMARY, "jean.dupont@culture.gouv.fr", "A", "Jean.Dupont@culture.gouv.fr"),
        IdentityKey(KeyKind.IMMUTABLE, "Wm9v", "A", "Wm9v"),
        IdentityKey(KeyKind.EMPLOYEE, "AB1", "A", "ab1")]
    keys = [IdentityKey(KeyKind.PRIMARY, "x@culture.gouv.fr", anchor, "x@culture.gouv.fr") for anchor in "BA"]
    assert owners({(Lookup.EMAIL, "x@culture.gouv.fr"): keys}) == {
        (Lookup.EMAIL, "x@culture.gouv.fr"): Contested("x@culture.gouv.fr", ("A", "B"), KeyKind.PRIMARY)}
    assert email_changed("A", before="old@culture.gouv.fr", after="new@culture.gouv.fr") == Conflict(
        ConflictKind.EMAIL_CHANGED, "A", "new@culture.gouv.fr", "was old@culture.gouv.fr")


def test_an_account_tied_to_an_excluded_entry_is_held_back_with_its_reason() -> None:
    outcome = _outcome(_account("Jean.Dupont@culture.gouv.fr"), _entry("A", "jean.dupont@culture.gouv.fr"),
                       excluded={"A": ConflictKind.NON_PERSON_ACCOUNT})
    assert outcome == AccountUnmatched(Platform.WEBEX, "p1", Conflict(
        ConflictKind.NON_PERSON_ACCOUNT, SUBJECT, "jean.dupont@culture.gouv.fr",
        "tied (primary_email) to directory entry A, a room, service or shared mailbox: never matched automatically"))


def test_conflicts_of_persons_and_values_are_exactly_these() -> None:
    keys = [IdentityKey(KeyKind.PRIMARY, "x@culture.gouv.fr", "A", "x@culture.gouv.fr"),
            IdentityKey(KeyKind.PRIMARY, "x@culture.gouv.fr", "B", "X@culture.gouv.fr")]
    assert value_conflicts("x@culture.gouv.fr", keys) == [
        Conflict(ConflictKind.DUPLICATE_EMAIL_DIRECTORY, "directory", "x@culture.gouv.fr", "entries A, B"),
        Conflict(ConflictKind.VISIO_EMAIL_COLLISION, "visio", "x@culture.gouv.fr", "one Visio user for entries A, B")]
    entry = replace(_entry("S", "Salle-B@autre.gouv.fr"), population="Prestataire")
    assert person_conflicts(entry, _policy()) == [
        Conflict(ConflictKind.NON_PERSON_ACCOUNT, "S", "salle-b@autre.gouv.fr",
                 "a room, service or shared mailbox in the directory: never selected in a wave; its meetings need a "
                 "human owner"),
        Conflict(ConflictKind.DOMAIN_NOT_ROUTED, "S", "autre.gouv.fr",
                 "no identity provider of the tenant declares this domain: ProConnect Identité only"),
        Conflict(ConflictKind.POPULATION_POLICY, "S", "prestataire", "population the ministry decides on")]
    assert disabled_but_licensed("A", ["zoom", "teams", "zoom"]) == Conflict(
        ConflictKind.DEPARTED_OR_DISABLED, "A", "disabled", "licensed on teams, zoom")
    assert several_accounts("A", Platform.ZOOM, ["u2", "u1"]) == Conflict(
        ConflictKind.MULTI_SOURCE_ACCOUNTS, "A", "zoom", "accounts u1, u2")
    assert sub_drift("A", ["s1", "s2", "s1", "s3"]) == Conflict(ConflictKind.SUB_DRIFT, "A", "s3", "3 subs observed")
    assert coverage(False, "t1", None) == Conflict(ConflictKind.NO_PROCONNECT_COVERAGE, "tenant:t1", "",
                                                   "missing or invalid SIRET (14 digits, Luhn; La Poste prefix "
                                                   "356000000)")


def test_one_holder_of_a_kind_owns_the_value() -> None:
    from core.identity import owner_of

    key = IdentityKey(KeyKind.EMPLOYEE, "E1", "A", "e1")
    assert owner_of("E1", [key]) == Owner("A", KeyKind.EMPLOYEE, "e1")
    with pytest.raises(ValueError, match=exactly("no holder for 'E1'")):
        owner_of("E1", [])


# ----------------------------------------------------------------------------------------------- invitations

def _meeting(platform: Platform = Platform.ZOOM) -> Meeting:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    return series(platform=platform, start=start, topic="Point hebdo DSI", join_url="https://old.example/j/1",
                  recurrence=Recurrence("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;COUNT=10", "Europe/Paris"),
                  exclusions=(start + timedelta(days=7),),
                  exceptions=(OccurrenceChange(start + timedelta(days=14), start + timedelta(days=14, hours=1)),))


@pytest.mark.parametrize(("platform", "name"), [(Platform.ZOOM, "Zoom"), (Platform.WEBEX, "Webex")])
def test_the_texts_of_an_update_and_of_its_rollback_are_exactly_these(platform: Platform, name: str) -> None:
    update = build_invitation_update(_meeting(platform), visio_url="https://visio.example.gouv.fr/abc",
                                     previous_sequence=0, idempotency_key="k", organiser_name="Anne Martin")
    assert isinstance(update, InvitationUpdate)
    assert update.organiser_name == "Anne Martin"
    assert update.subject == "Mise à jour : Point hebdo DSI a lieu désormais sur Visio"
    assert update.description == (
        "Cette réunion a lieu désormais sur Visio, le service de visioconférence de l'État.\n\n"
        "Rejoindre la réunion : https://visio.example.gouv.fr/abc\n\n"
        f"Ce lien remplace l'ancien lien {name}. L'horaire et la récurrence ne changent pas.")
    rollback = build_rollback_update(update, idempotency_key="r")
    assert rollback.subject == f"Mise à jour : Point hebdo DSI reste sur {name}"
    assert rollback.description == (f"Le passage de cette réunion sur Visio est annulé : elle reste sur {name}.\n\n"
                                    "Rejoindre la réunion : https://old.example/j/1\n\n"
                                    "L'horaire et la récurrence ne changent pas.")


def test_a_payload_comes_back_in_the_series_zone() -> None:
    update = build_invitation_update(_meeting(), visio_url="https://visio.example.gouv.fr/abc", previous_sequence=0,
                                     idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    restored = invitation_from_payload(invitation_payload(update))
    paris = ZoneInfo("Europe/Paris")
    assert [moment.tzinfo for moment in restored.exclusions] == [paris]
    assert [(change.original.tzinfo, change.start.tzinfo) for change in restored.exceptions] == [(paris, paris)]


@pytest.mark.parametrize(("changes", "message"), [
    ({"attendees": "a@b.fr"}, "attendees must be a list"),
    ({"sequence": "1"}, "duration_seconds and sequence must be integers"),
    ({"duration_seconds": 3600.0}, "duration_seconds and sequence must be integers"),
    ({"exclusions": "2026-12-14"}, "exclusions and exceptions must be lists"),
    ({"exceptions": {"original": "x"}}, "exclusions and exceptions must be lists"),
    ({"exceptions": ["2026-12-14"]}, "an exception must be an object"),
    ({"exceptions": [{"original": "2026-12-21T09:00:00+00:00", "start": "2026-12-21T10:00:00+00:00",
                      "duration_minutes": "30"}]}, "duration_minutes must be an integer"),
])
def test_a_payload_that_does_not_fit_says_exactly_why(changes: dict[str, Any], message: str) -> None:
    update = build_invitation_update(_meeting(), visio_url="https://visio.example.gouv.fr/abc", previous_sequence=0,
                                     idempotency_key="k")
    assert isinstance(update, InvitationUpdate)
    with pytest.raises(ValueError, match=exactly(message)):
        invitation_from_payload({**invitation_payload(update), **changes})


@pytest.mark.parametrize(("call", "message"), [
    ({"visio_url": "", "previous_sequence": 0}, "visio_url is required"),
    ({"visio_url": "https://v/abc", "previous_sequence": -1}, "previous_sequence must be 0 or more"),
])
def test_a_refused_update_says_exactly_why(call: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        build_invitation_update(_meeting(), idempotency_key="k", **call)


def test_a_refused_rollback_says_exactly_why() -> None:
    sent = build_invitation_update(_meeting(), visio_url="https://v/abc", previous_sequence=3, idempotency_key="k")
    assert isinstance(sent, InvitationUpdate)
    with pytest.raises(ValueError, match=exactly("previous_sequence is older than the update being rolled back")):
        build_rollback_update(sent, idempotency_key="r", previous_sequence=3)
    with pytest.raises(ValueError, match=exactly("only a cutover update can be rolled back")):
        build_rollback_update(build_rollback_update(sent, idempotency_key="r"), idempotency_key="rr")


# ----------------------------------------------------------------------------------------------- recurrence

@pytest.mark.parametrize(("rule", "kind"), [
    ("FREQ=WEEKLY;BYDAY=MO", MeetingKind.WEEKLY),                       # no INTERVAL: every week
    ("FREQ=MONTHLY;BYDAY=MO", MeetingKind.WEEKLY),
    ("FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=1", MeetingKind.MONTHLY_DAY),
    ("FREQ=YEARLY;BYDAY=MO", MeetingKind.MONTHLY_DAY),
    ("FREQ=MONTHLY;BYMONTHDAY=10", MeetingKind.MONTHLY_DAY),
])
def test_rules_without_an_interval_or_with_plain_weekdays_are_classified(rule: str, kind: MeetingKind) -> None:
    assert classify_meeting(recurrence=Recurrence(rule, "Europe/Paris"), start=None, now=NOW) is kind


def test_an_unknown_frequency_and_a_naive_instant_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=exactly("not a bascule recurrence rule: FREQ=HOURLY")):
        classify_meeting(recurrence=Recurrence("FREQ=HOURLY", "UTC"), start=None, now=NOW)
    with pytest.raises(ValueError, match=exactly("now must be an aware datetime")):
        classify_meeting(recurrence=None, start=None, now=NOW.replace(tzinfo=None))
    weekly = Recurrence("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO", "Europe/Paris")
    with pytest.raises(ValueError, match=exactly("after must be an aware datetime")):
        next_occurrence(weekly, NOW, after=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match=exactly("start must be an aware datetime")):
        next_occurrence(weekly, NOW.replace(tzinfo=None), after=NOW)


@pytest.fixture
def host_in_noumea(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone is not UTC (an operator's laptop, a server set to local time)."""
    monkeypatch.setenv("TZ", "Pacific/Noumea")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("host_in_noumea")
@pytest.mark.parametrize(("source", "rrule"), [
    ("zoom", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20260330T090000Z"),
    ("webex", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20260329T220000Z"),
    ("webex-date", "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL=20260330T215959Z"),
])
def test_until_is_written_in_utc_whatever_the_machines_zone(source: str, rrule: str) -> None:
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    if source == "zoom":
        found = recurrence_from_zoom({"type": 2, "repeat_interval": 1, "weekly_days": "2",
                                      "end_date_time": "2026-03-30T09:00:00Z"}, start=start, timezone="Europe/Paris")
    else:
        until = "20260330T000000" if source == "webex" else "20260330"
        found = recurrence_from_webex(f"FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;UNTIL={until}", start=start,
                                      timezone="Europe/Paris")
    assert found == Recurrence(rrule, "Europe/Paris")
