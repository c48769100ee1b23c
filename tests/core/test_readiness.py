"""Readiness checks as values: the SIRET rule (proconnect.md section 6), scopes, prices, domains, the verdict."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core import AnchorKind, DirectoryEntry, Platform
from core.readiness import (
    AccessCheck,
    AgentPicker,
    CheckResult,
    CheckStatus,
    PriceLine,
    ReadinessReport,
    SiretRule,
    check_siret,
    cost_model_result,
    credentials_result,
    directory_result,
    luhn_ok,
    not_ready_summary,
    scopes_result,
    siret_ok,
    siret_result,
    verdict,
    visio_domain_result,
)
from core.visio import DomainCheck, DomainVerdict, VisioRefusal, VisioRefusalReason, domain_check_from

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------- SIRET

@pytest.mark.parametrize(("raw", "accepted", "rule", "status"), [
    # the documented examples
    ("12345678200010", True, SiretRule.LUHN, CheckStatus.OK),                      # invented valid example
    ("35600000000048", True, SiretRule.LUHN, CheckStatus.OK),                      # La Poste head office, Luhn
    ("35600000049837", True, SiretRule.LA_POSTE_DIGIT_SUM, CheckStatus.OK),        # only INSEE's digit-sum rule
    ("35600000012345", True, SiretRule.LA_POSTE_PREFIX_ONLY, CheckStatus.WARNING),  # ProConnect's test value
    # ordinary values
    ("11000201100044", True, SiretRule.LUHN, CheckStatus.OK),
    ("12345678200011", False, SiretRule.LUHN_FAILED, CheckStatus.FAILED),          # last digit off by one
    ("12345678200001", False, SiretRule.LUHN_FAILED, CheckStatus.FAILED),          # two digits swapped
    # length and characters
    ("1234567820001", False, SiretRule.NOT_14_CHARACTERS, CheckStatus.FAILED),     # 13 digits
    ("123456782000100", False, SiretRule.NOT_14_CHARACTERS, CheckStatus.FAILED),   # 15 digits
    ("", False, SiretRule.NOT_14_CHARACTERS, CheckStatus.FAILED),
    ("1234567820001A", False, SiretRule.NOT_DIGITS, CheckStatus.FAILED),
    ("123-456-782-00", False, SiretRule.NOT_DIGITS, CheckStatus.FAILED),
    ("１２３４５６７８２０００１０", False, SiretRule.NOT_DIGITS, CheckStatus.FAILED),  # full-width digits
    ("3560000001234", False, SiretRule.NOT_14_CHARACTERS, CheckStatus.FAILED),     # La Poste prefix, 13 digits
    ("35600000O12345", False, SiretRule.NOT_DIGITS, CheckStatus.FAILED),           # a letter O, not a zero
    # whitespace is stripped first (ProConnect does the same)
    (" 123 456 782 00010 ", True, SiretRule.LUHN, CheckStatus.OK),
    ("123456782\t00010\n", True, SiretRule.LUHN, CheckStatus.OK),
    ("356 000 000 12345", True, SiretRule.LA_POSTE_PREFIX_ONLY, CheckStatus.WARNING),
    ("356 000 000 49837", True, SiretRule.LA_POSTE_DIGIT_SUM, CheckStatus.OK),
])
def test_siret_rule(raw: str, accepted: bool, rule: SiretRule, status: CheckStatus) -> None:
    found = check_siret(raw)
    assert (found.accepted, found.rule) == (accepted, rule)
    assert siret_ok(raw) is accepted
    assert found.value == "".join(raw.split())
    result = siret_result(raw)
    assert result.name == "siret"
    assert result.status is status
    assert (result.action != "") is (status is not CheckStatus.OK)


def test_siret_ok_agrees_with_the_contract_reference_implementation() -> None:
    def reference(raw: str) -> bool:  # proconnect.md section 6, verbatim
        s = "".join(raw.split())
        if len(s) != 14 or not s.isdigit():
            return False
        if s.startswith("356000000"):
            return True
        total = 0
        for i, ch in enumerate(reversed(s)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return total % 10 == 0

    for number in range(12345678200000, 12345678200400, 7):
        for text in (str(number), f"356000000{number % 100000:05d}"):
            assert siret_ok(text) is reference(text), text


@pytest.mark.parametrize(("raw", "reason"), [
    ("1234567820001", "SIRET '1234567820001' has 13 characters, not 14"),
    ("1234567820001A", "SIRET '1234567820001A' contains characters other than digits"),
    ("12345678200011", "SIRET 12345678200011 fails the Luhn check (a typo?)"),
    ("35600000012345", "SIRET 35600000012345 is a La Poste establishment that fails INSEE's digit-sum rule; "
                       "ProConnect accepts it anyway"),
    ("35600000049837", "SIRET 35600000049837 is valid (La Poste digit-sum rule)"),
    ("12345678200010", "SIRET 12345678200010 is valid"),
])
def test_siret_reasons_say_what_is_wrong(raw: str, reason: str) -> None:
    assert siret_result(raw).reason == reason


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")


# ----------------------------------------------------------------------------------------------- verdict

def _check(name: str, status: CheckStatus) -> CheckResult:
    return CheckResult(name, status, f"{name} is {status.value}")


@pytest.mark.parametrize(("statuses", "ready"), [
    ((), True),
    ((CheckStatus.OK,), True),
    ((CheckStatus.OK, CheckStatus.WARNING, CheckStatus.SKIPPED), True),
    ((CheckStatus.WARNING,) * 5, True),
    ((CheckStatus.OK, CheckStatus.FAILED), False),
    ((CheckStatus.FAILED,), False),
    ((CheckStatus.WARNING, CheckStatus.SKIPPED, CheckStatus.FAILED, CheckStatus.OK), False),
])
def test_ready_iff_no_check_failed(statuses: tuple[CheckStatus, ...], ready: bool) -> None:
    checks = tuple(_check(f"c{index}", status) for index, status in enumerate(statuses))
    assert verdict(checks) is ready
    report = ReadinessReport("t", NOW, checks)
    assert report.ready is ready
    assert [check.name for check in report.failed] == [c.name for c in checks if c.status is CheckStatus.FAILED]


def test_report_round_trips_through_json_and_names_failures() -> None:
    checks = (_check("siret", CheckStatus.FAILED), _check("zoom.scopes", CheckStatus.WARNING),
              CheckResult("directory", CheckStatus.OK, "fine", details={"people": 12, "quarantined": {"X": 1}}))
    report = ReadinessReport("min-x", NOW, checks, config_hash="abc")
    document = report.to_json()
    assert document["ready"] is False
    assert document["counts"] == {"ok": 1, "warning": 1, "failed": 1, "skipped": 0}
    assert ReadinessReport.from_json(document) == report
    assert not_ready_summary(report) == "siret: siret is failed"


# ----------------------------------------------------------------------------------------------- scopes

ALL_ZOOM = frozenset({"user:read:admin", "meeting:read:admin", "webinar:read:admin", "user:write:admin"})


@pytest.mark.parametrize(("platform", "access", "status", "reason"), [
    (Platform.ZOOM, AccessCheck(True, ALL_ZOOM), CheckStatus.OK,
     "Zoom token carries every read and write scope bascule needs"),
    (Platform.ZOOM, AccessCheck(True, ALL_ZOOM - {"meeting:read:admin"}), CheckStatus.FAILED,
     "Zoom token lacks read scope(s) meeting:read:admin, needed now to extract"),
    (Platform.ZOOM, AccessCheck(True, ALL_ZOOM - {"user:write:admin"}), CheckStatus.WARNING,
     "Zoom token lacks write scope user:write:admin, needed later by decommission (Zoom licence release)"),
    (Platform.ZOOM, AccessCheck(True, frozenset({"user:read:list_users:admin", "meeting:read:list_meetings:admin",
                                                 "webinar:read:admin", "user:write:admin"})), CheckStatus.OK,
     "Zoom token carries every read and write scope bascule needs"),   # granular names count
    (Platform.ZOOM, AccessCheck(True, None), CheckStatus.WARNING,
     "Zoom token read scope(s) user:read:admin, meeting:read:admin, webinar:read:admin not reported by Zoom; "
     "user:write:admin unverified until first use (needed later by decommission (Zoom licence release))"),
    (Platform.TEAMS, AccessCheck(True, frozenset({"User.Read.All", "Organization.Read.All", "Calendars.ReadWrite",
                                                  "LicenseAssignment.ReadWrite.All"})), CheckStatus.OK,
     "Microsoft Entra token carries every read and write scope bascule needs"),
    (Platform.TEAMS, AccessCheck(True, frozenset({"User.Read.All", "LicenseAssignment.Read.All", "Calendars.Read"})),
     CheckStatus.WARNING,
     "Microsoft Entra token lacks write scope Calendars.ReadWrite, needed later by cutover (rewriting Teams "
     "meetings in calendars); lacks write scope LicenseAssignment.ReadWrite.All, needed later by decommission "
     "(Teams licence release)"),
    (Platform.TEAMS, AccessCheck(True, frozenset({"Organization.Read.All", "Calendars.ReadWrite",
                                                  "LicenseAssignment.ReadWrite.All"})), CheckStatus.FAILED,
     "Microsoft Entra token lacks read scope(s) User.Read.All, needed now to extract"),
    (Platform.TEAMS, AccessCheck(True, frozenset({"Directory.ReadWrite.All", "Calendars.ReadWrite"})),
     CheckStatus.OK, "Microsoft Entra token carries every read and write scope bascule needs"),
    (Platform.WEBEX, AccessCheck(True, frozenset({"spark-admin:people_read", "spark-admin:licenses_read",
                                                  "meeting:admin_schedule_read"}),
                                 unverified=frozenset({"spark-admin:people_write"})), CheckStatus.WARNING,
     "Webex token spark-admin:people_write unverified until first use (needed later by decommission (Webex "
     "licence release))"),
    (Platform.WEBEX, AccessCheck(True, frozenset({"spark-admin:people_read", "meeting:admin_schedule_read"}),
                                 refused=frozenset({"spark-admin:licenses_read"}),
                                 unverified=frozenset({"spark-admin:people_write"})), CheckStatus.FAILED,
     "Webex token lacks read scope(s) spark-admin:licenses_read, needed now to extract"),
    (Platform.WEBEX, AccessCheck(False, detail="HTTP 401"), CheckStatus.SKIPPED,
     "not checked: Webex refused the credentials"),
])
def test_scopes(platform: Platform, access: AccessCheck, status: CheckStatus, reason: str) -> None:
    result = scopes_result(platform, access)
    assert (result.name, result.status, result.reason) == (f"{platform.value}.scopes", status, reason)


def test_credentials_refused_names_the_system_and_the_secret_to_check() -> None:
    result = credentials_result(Platform.ZOOM, AccessCheck(False, detail="HTTP 401, invalid_client"),
                                secret_name="ZOOM_SECRET")
    assert (result.name, result.status) == ("zoom.credentials", CheckStatus.FAILED)
    assert result.reason == "credentials refused by Zoom (HTTP 401, invalid_client)"
    assert "ZOOM_SECRET" in result.action
    assert credentials_result(Platform.ZOOM, AccessCheck(True, ALL_ZOOM), secret_name="S").status is CheckStatus.OK


# ----------------------------------------------------------------------------------------------- prices

def _line(platform: Platform, origin: str = "C-1", price: str | None = "10", **changes: object) -> PriceLine:
    values: dict[str, object] = {"platform": platform, "sku_key": f"{platform.value}:sku", "origin": origin,
                                 "annual_unit_cost": Decimal(price) if price else None, "currency": "EUR"}
    values.update(changes)
    return PriceLine(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("lines", "status", "fragment"), [
    ([], CheckStatus.WARNING, "no contract line and no price: figures will be estimated at the €10 benchmark"),
    ([_line(Platform.ZOOM), _line(Platform.TEAMS, "C-2")], CheckStatus.OK, "2 price line(s) cover teams, zoom"),
    ([_line(Platform.ZOOM)], CheckStatus.WARNING, "no price for teams: figures will be estimated at the €10 "
                                                  "benchmark"),
    ([_line(Platform.ZOOM), _line(Platform.TEAMS, price=None)], CheckStatus.WARNING,
     "contract line(s) without unit_price: C-1/teams:sku"),
    ([_line(Platform.ZOOM), _line(Platform.TEAMS, "C-2"), _line(Platform.WEBEX, "C-3")], CheckStatus.WARNING,
     "line(s) for a platform that is not a configured source: C-3"),
    ([_line(Platform.ZOOM), _line(Platform.TEAMS, "C-2", currency="USD")], CheckStatus.WARNING,
     "currency USD differs from the cost model's EUR"),
    ([_line(Platform.ZOOM), _line(Platform.ZOOM), _line(Platform.TEAMS, "C-2")], CheckStatus.WARNING,
     "duplicate contract line(s): C-1/zoom:sku"),
    ([_line(Platform.ZOOM, term_end=date(2026, 1, 1), auto_renew=False), _line(Platform.TEAMS, "C-2")],
     CheckStatus.WARNING, "contract(s) whose term has ended: C-1"),
    ([_line(Platform.ZOOM, term_end=date(2026, 1, 1)), _line(Platform.TEAMS, "C-2")], CheckStatus.OK,
     "cover"),  # renews by itself
])
def test_cost_model(lines: list[PriceLine], status: CheckStatus, fragment: str) -> None:
    result = cost_model_result(lines, platforms=[Platform.ZOOM, Platform.TEAMS], currency="EUR",
                               today=date(2026, 11, 23))
    assert (result.name, result.status) == ("cost_model", status)
    assert fragment in result.reason


# ----------------------------------------------------------------------------------------------- directory

@pytest.mark.parametrize(("people", "quarantined", "status"), [
    (500, {}, CheckStatus.OK),
    (490, {"MISSING_MAIL": 10}, CheckStatus.OK),
    (400, {"MISSING_MAIL": 60, "INVALID_EMAIL": 40}, CheckStatus.WARNING),
    (0, {"LDIF_MALFORMED": 3}, CheckStatus.FAILED),
    (0, {}, CheckStatus.FAILED),
])
def test_directory(people: int, quarantined: dict[str, int], status: CheckStatus) -> None:
    result = directory_result(source="LDIF export d.ldif", people=people, quarantined=quarantined, out_of_scope=4,
                              records=people + sum(quarantined.values()) + 4)
    assert (result.name, result.status) == ("directory", status)
    assert result.reason.startswith(f"LDIF export d.ldif: first page read, {people} people, "
                                    f"{sum(quarantined.values())} quarantined, 4 entries out of scope")


# ----------------------------------------------------------------------------------------------- Visio domains

def _found(verdict: DomainVerdict) -> DomainCheck:
    refusals = {DomainVerdict.NOT_ALLOWED: VisioRefusalReason.DOMAIN_NOT_ALLOWED,
                DomainVerdict.USER_MUST_LOG_IN_FIRST: VisioRefusalReason.USER_NOT_FOUND,
                DomainVerdict.DUPLICATE_USERS: VisioRefusalReason.DUPLICATE_USERS,
                DomainVerdict.REFUSED: VisioRefusalReason.USER_INACTIVE}
    if verdict is DomainVerdict.ALLOWED:
        return domain_check_from("a.gouv.fr", "user-1")
    return domain_check_from("a.gouv.fr", VisioRefusal(refusals[verdict], status=400))


@pytest.mark.parametrize(("verdict", "precreates", "status", "reason"), [
    (DomainVerdict.ALLOWED, False, CheckStatus.OK, "the Visio application accepts a.gouv.fr"),
    (DomainVerdict.ALLOWED, True, CheckStatus.OK, "the Visio application accepts a.gouv.fr; this request may have "
                                                  "pre-created the Visio user of agent guid-1"),
    (DomainVerdict.NOT_ALLOWED, False, CheckStatus.FAILED,
     "the Visio application is not authorised for the e-mail domain a.gouv.fr"),
    (DomainVerdict.USER_MUST_LOG_IN_FIRST, False, CheckStatus.OK,
     "a.gouv.fr is allowed; agent guid-1 has no Visio account yet and this instance does not pre-create users: "
     "hosts must log in to Visio once before their rooms are created"),
    (DomainVerdict.USER_MUST_LOG_IN_FIRST, True, CheckStatus.WARNING,
     'a.gouv.fr is allowed, but Visio answered "User not found" for agent guid-1: the instance does not pre-create '
     "users although the tenant file says it does"),
    (DomainVerdict.DUPLICATE_USERS, False, CheckStatus.FAILED,
     "several Visio users share the e-mail of agent guid-1 (a.gouv.fr): Visio refuses tokens for it"),
    (DomainVerdict.REFUSED, False, CheckStatus.WARNING,
     "Visio refused the token request for agent guid-1 (user inactive): a.gouv.fr not verified"),
    (None, False, CheckStatus.WARNING,
     "no enabled agent with a primary e-mail on a.gouv.fr in the directory: domain not tested"),
])
def test_visio_domain(verdict: DomainVerdict | None, precreates: bool, status: CheckStatus, reason: str) -> None:
    found = _found(verdict) if verdict is not None else None
    result = visio_domain_result("a.gouv.fr", found, anchor="guid-1" if found else None, precreates_users=precreates)
    assert (result.name, result.status, result.reason) == ("visio.domain:a.gouv.fr", status, reason)
    assert "@" not in str(result.to_json())


def _entry(anchor: str, email: str, *, disabled: bool = False, population: str | None = None) -> DirectoryEntry:
    return DirectoryEntry(anchor=anchor, anchor_kind=AnchorKind.OBJECT_GUID, dn=f"cn={anchor}", primary_email=email,
                          disabled=disabled, population=population)


def test_agent_picker_takes_the_first_agent_who_will_be_migrated_per_domain() -> None:
    picker = AgentPicker(["A.gouv.fr", "b.gouv.fr", "c.gouv.fr"], excluded_patterns=[r"^(salle|bal)[.-]", r"^adm[.-]"],
                         excluded_populations=["prestataire"])
    for entry in [_entry("1", "salle.12@a.gouv.fr"), _entry("2", "adm-jdupont@a.gouv.fr"),
                  _entry("3", "old@a.gouv.fr", disabled=True), _entry("4", "ext@a.gouv.fr", population="prestataire"),
                  _entry("5", "not an address"), _entry("6", "someone@elsewhere.fr"),
                  _entry("7", " Jean.Dupont@A.GOUV.FR "), _entry("8", "second@a.gouv.fr"),
                  _entry("9", "anne@b.gouv.fr")]:
        picker.offer(entry)
    assert not picker.done
    picked = picker.picked()
    assert list(picked) == ["a.gouv.fr", "b.gouv.fr", "c.gouv.fr"]
    assert picked["a.gouv.fr"] is not None and picked["a.gouv.fr"].anchor == "7"
    assert picked["b.gouv.fr"] is not None and picked["b.gouv.fr"].anchor == "9"
    assert picked["c.gouv.fr"] is None
    assert "@" not in repr(picked["a.gouv.fr"])  # the e-mail stays out of logs and reprs
    picker.offer(_entry("10", "x@c.gouv.fr"))
    assert picker.done


def test_agent_picker_compares_domains_in_their_normal_form() -> None:
    picker = AgentPicker(["défense.gouv.fr", "CULTURE.GOUV.FR", "xn--mairie-couen-heb.fr"])
    for entry in [_entry("1", "a@XN--DFENSE-BVA.gouv.fr"), _entry("2", "b@culture.gouv.fr"),
                  _entry("3", "c@Mairie-Écouen.fr")]:
        picker.offer(entry)
    assert picker.done
    assert {domain: agent.anchor if agent else None for domain, agent in picker.picked().items()} == {
        "culture.gouv.fr": "2", "xn--dfense-bva.gouv.fr": "1", "xn--mairie-couen-heb.fr": "3"}
