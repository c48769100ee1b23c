"""The overrides CSV as people fill it in, one table per rule: the bytes a spreadsheet saves, the delimiter, the
header, rows about a person, a shared e-mail or the tenant, and what their decisions do to a person."""

from __future__ import annotations

import pytest

from core import ConflictKind
from core.csv_text import DecodedText, NotText, decode, delimiter_of, sep_hint
from core.identity import (
    OVERRIDE_COLUMNS,
    ConflictAction,
    ConflictDecision,
    DecisionRow,
    Decisions,
    OverrideRow,
    RefusedRow,
    Target,
    decided_person,
    email_given_away,
    header_refusal,
    parse_override_row,
    target_of,
)
from core.records import Conflict

NAME = "Hélène Dupré, Œuvre — « sœur »"


@pytest.mark.parametrize(("data", "encoding"), [
    (NAME.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + NAME.encode("utf-8"), "utf-8-sig"),
    (NAME.encode("cp1252"), "cp1252"),
    (NAME.encode("utf-16"), "utf-16"),
])
def test_every_encoding_a_spreadsheet_saves_is_read_back_exactly(data: bytes, encoding: str) -> None:
    assert decode(data) == DecodedText(NAME, encoding)


@pytest.mark.parametrize(("data", "says"), [
    (b"PK\x03\x04rest of a zip", "Excel workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Excel workbook"),
    (b"caf\xe9\x81", "neither UTF-8 nor Windows-1252"),       # 0x81: no character in Windows-1252
    (b"\x00\x01\x02\xe9\xff", "binary data"),
    (b"caf\xe9\x02\x03", "binary data"),                    # control characters in a non-UTF-8 file
    (b"\xef\xbb\xbfcaf\xe9", "starts as UTF-8"),
])
def test_what_is_not_text_is_refused_with_what_to_do(data: bytes, says: str) -> None:
    found = decode(data)
    assert isinstance(found, NotText) and says in found.reason and "CSV UTF-8" in found.reason


@pytest.mark.parametrize(("header", "delimiter"), [
    (",".join(OVERRIDE_COLUMNS), ","),
    (";".join(OVERRIDE_COLUMNS) + "\r\n", ";"),
    ("\t".join(OVERRIDE_COLUMNS), "\t"),
    ('"kind";"subject";"action"', ";"),
    ("Kind ; Subject ; ACTION", ";"),
    ("nom;prénom", ";"),      # no expected name: the delimiter that makes cells, for the message naming them
    ("nothing", ","),
])
def test_the_delimiter_is_the_one_that_splits_the_header(header: str, delimiter: str) -> None:
    assert delimiter_of(header, OVERRIDE_COLUMNS) == delimiter


def test_excel_sep_line_names_the_delimiter() -> None:
    assert [sep_hint(line) for line in ("sep=;\r\n", '"sep=,"\n', "kind;subject", "sep=")] == [";", ",", None, None]


@pytest.mark.parametrize(("header", "code"), [
    (["kind", "subject", "value", "action"], None),
    (["platform", "account_external_id", "action"], None),
    (["Platform", "Account_External_Id", " Action "], None),
    (["Nom", "Prénom", "Décision"], "NO_ACTION_COLUMN"),
    (["platform", "action"], "MISSING_COLUMNS"),
])
def test_a_header_needs_the_action_and_a_key(header: list[str], code: str | None) -> None:
    refusal = header_refusal(header)
    assert (refusal.code if refusal else None) == code
    if refusal is not None:
        assert "found: " + ", ".join(header) in refusal.reason


@pytest.mark.parametrize(("kind", "subject", "target"), [
    (ConflictKind.SOURCE_UNMATCHED, "zoom:abc", Target.ACCOUNT),
    (ConflictKind.NON_PERSON_ACCOUNT, "teams:abc", Target.ACCOUNT),
    (ConflictKind.NON_PERSON_ACCOUNT, "a-guid", Target.PERSON),
    (ConflictKind.POPULATION_POLICY, "a-guid", Target.PERSON),
    (ConflictKind.DUPLICATE_EMAIL_DIRECTORY, "directory", Target.EMAIL),
    (ConflictKind.VISIO_EMAIL_COLLISION, "visio", Target.EMAIL),
    (ConflictKind.VISIO_EMAIL_COLLISION, "a-guid", Target.PERSON),   # an entry that lost its e-mail by decision
    (ConflictKind.NO_PROCONNECT_COVERAGE, "tenant:min-culture", Target.TENANT),
])
def test_what_a_conflict_is_about_comes_from_its_subject(kind: ConflictKind, subject: str, target: Target) -> None:
    assert target_of(kind, subject) is target


def _row(**cells: str) -> OverrideRow | DecisionRow | RefusedRow | None:
    return parse_override_row(7, cells)


@pytest.mark.parametrize(("cells", "expected"), [
    ({"kind": "population_policy", "subject": "p1", "value": "stagiaire", "action": " Exclude "},
     ConflictDecision(ConflictKind.POPULATION_POLICY, "p1", "stagiaire", ConflictAction.EXCLUDE)),
    ({"kind": "DOMAIN_NOT_ROUTED", "subject": "p1", "value": "x.fr", "action": "accept"},
     ConflictDecision(ConflictKind.DOMAIN_NOT_ROUTED, "p1", "x.fr", ConflictAction.ACCEPT)),
    ({"kind": "NON_PERSON_ACCOUNT", "subject": "p1", "value": "salle@x.fr", "action": "include"},
     ConflictDecision(ConflictKind.NON_PERSON_ACCOUNT, "p1", "salle@x.fr", ConflictAction.INCLUDE)),
    ({"kind": "DUPLICATE_EMAIL_DIRECTORY", "subject": "directory", "value": "a@x.fr", "action": "force_match",
      "person_anchor": "p2"},
     ConflictDecision(ConflictKind.DUPLICATE_EMAIL_DIRECTORY, "directory", "a@x.fr", ConflictAction.FORCE_MATCH,
                      "p2")),
    ({"kind": "NO_PROCONNECT_COVERAGE", "subject": "tenant:t", "value": "", "action": "accept"},
     ConflictDecision(ConflictKind.NO_PROCONNECT_COVERAGE, "tenant:t", "", ConflictAction.ACCEPT)),
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "stagiaire", "action": "clear"}, None),
])
def test_rows_about_persons_emails_and_the_tenant_are_decisions(cells: dict[str, str],
                                                                expected: ConflictDecision | None) -> None:
    row = _row(**cells)
    assert isinstance(row, DecisionRow) and row.line == 7 and row.decision == expected


@pytest.mark.parametrize(("cells", "code"), [
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "v", "action": "include"}, "ACTION_NOT_FOR_KIND"),
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "v", "action": "force_match", "person_anchor": "p2"},
     "ACTION_NOT_FOR_KIND"),
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "v", "action": "mark_service"}, "ACTION_NOT_FOR_KIND"),
    ({"kind": "DUPLICATE_EMAIL_DIRECTORY", "subject": "directory", "value": "a@x.fr", "action": "exclude"},
     "ACTION_NOT_FOR_KIND"),
    ({"kind": "NO_PROCONNECT_COVERAGE", "subject": "tenant:t", "value": "", "action": "exclude"},
     "ACTION_NOT_FOR_KIND"),
    ({"kind": "DUPLICATE_EMAIL_DIRECTORY", "subject": "directory", "value": "a@x.fr", "action": "force_match"},
     "FORCE_MATCH_WITHOUT_PERSON"),
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "v", "action": "exclude", "person_anchor": "p2"},
     "EXCLUDE_WITH_PERSON"),
    ({"kind": "STAGIAIRE", "subject": "p1", "value": "v", "action": "exclude"}, "UNKNOWN_KIND"),
    ({"kind": "POPULATION_POLICY", "subject": "p1", "value": "v", "action": "merge"}, "UNKNOWN_ACTION"),
    ({"kind": "", "subject": "", "value": "", "action": "exclude"}, "UNKNOWN_PLATFORM"),
])
def test_a_decision_that_does_not_fit_its_conflict_is_refused(cells: dict[str, str], code: str) -> None:
    row = _row(**cells)
    assert isinstance(row, RefusedRow) and row.code == code


def test_what_decisions_do_to_a_person() -> None:
    decisions = Decisions.of([
        ConflictDecision(ConflictKind.NON_PERSON_ACCOUNT, "room", "salle@x.fr", ConflictAction.INCLUDE),
        ConflictDecision(ConflictKind.POPULATION_POLICY, "intern", "stagiaire", ConflictAction.EXCLUDE),
        ConflictDecision(ConflictKind.DOMAIN_NOT_ROUTED, "p", "y.fr", ConflictAction.ACCEPT),
        ConflictDecision(ConflictKind.VISIO_EMAIL_COLLISION, "visio", "a@x.fr", ConflictAction.FORCE_MATCH, "keep"),
    ])
    room = Conflict(ConflictKind.NON_PERSON_ACCOUNT, "room", "salle@x.fr", "")
    other = Conflict(ConflictKind.DOMAIN_NOT_ROUTED, "room", "x.fr", "")
    assert decided_person("room", ConflictKind.NON_PERSON_ACCOUNT, [room, other], decisions) == (None, [other])
    assert decided_person("admin", ConflictKind.PRIVILEGED_ACCOUNT, [], decisions) == (
        ConflictKind.PRIVILEGED_ACCOUNT, [])
    assert decided_person("intern", None, [], decisions) == (ConflictKind.POPULATION_POLICY, [])
    assert decided_person("p", None, [], decisions) == (None, [])
    assert decisions.accepted == {("DOMAIN_NOT_ROUTED", "p", "y.fr")}

    lost = email_given_away("lose", "a@x.fr", ["keep", "lose"], decisions)
    assert lost is not None and (lost.kind, lost.subject, lost.value) == (
        ConflictKind.VISIO_EMAIL_COLLISION, "lose", "a@x.fr") and "entry keep" in lost.detail
    assert email_given_away("keep", "a@x.fr", ["keep", "lose"], decisions) is None
    assert email_given_away("lose", "a@x.fr", ["lose"], decisions) is None   # the keeper no longer holds it
    assert email_given_away("lose", "b@x.fr", ["keep", "lose"], decisions) is None
