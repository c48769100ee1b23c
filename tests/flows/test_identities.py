"""The map-identities flow on generated ministries: the conflicts a correct mapping must find, account by account,
re-runs that change nothing, an e-mail that changes, overrides that round-trip, a run killed and resumed."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from core import AccountStatus, ConflictKind, Platform, SourceAccount
from db.migrate import upgrade
from sandbox.generator.directory import Flavour
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from tests.conftest import AS_OF, write_tenant
from tests.support.state import TruthRecord, load_ministry

TENANT = "min-culture-exemple"


def _prepare(tmp_path: Path, out: Path, manifest: dict[str, Any], url: str,
             monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[TruthRecord]]:
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    tenant = write_tenant(tmp_path, manifest, ldif_path=out / "directory.ldif")
    truths = load_ministry(url, TENANT, out, flavour=manifest["generator"]["flavour"])
    return tenant, truths


def _map(tenant: Path, **options: Any) -> dict[str, Any]:
    from flows.identities import map_identities

    result: dict[str, Any] = map_identities(tenant_file=str(tenant), force=True, **options)
    return result


def _query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def _state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a pass leaves behind, without clocks and pass ids: must not depend on how often or how it ran."""
    return {
        "persons": _query(url, "select anchor, primary_email, email_normalised, proconnect_email, expected_idp, "
                               "siret, visio_provisioning, login_hint_url, content_hash, removed_at is null "
                               "from person order by anchor"),
        "matches": _query(url, "select platform, account_external_id, person_anchor, method from identity_match "
                               "order by platform, account_external_id"),
        "conflicts": _query(url, "select kind, subject, value, detail, status from identity_conflict "
                                 "order by kind, subject, value"),
    }


def _check_against_truth(url: str, summary: dict[str, Any], manifest: dict[str, Any],
                         truths: list[TruthRecord]) -> None:
    identity = manifest["identity"]
    assert summary["persons"] == identity["persons"]
    assert summary["conflicts"] == identity["conflicts"]
    expected_methods = {method: count for method, count in identity["matches_by_method"].items() if count}
    assert summary["matches_by_method"] == expected_methods

    matches = {(platform, account): method for platform, account, _anchor, method
               in _query(url, "select platform, account_external_id, person_anchor, method from identity_match")}
    conflicts: dict[str, set[str]] = {}
    for kind, subject in _query(url, "select kind, subject from identity_conflict where status = 'open'"):
        conflicts.setdefault(subject, set()).add(kind)
    accounted = 0
    for truth in truths:
        if truth.outcome.startswith("quarantine:"):
            continue
        key = (truth.platform.value, truth.external_id)
        subject = f"{truth.platform.value}:{truth.external_id}"
        verdict, _, detail = truth.outcome.partition(":")
        if verdict == "match":
            assert matches.get(key) == detail, f"{subject}: matched {matches.get(key)}, expected {detail}"
        else:
            assert key not in matches, f"{subject} matched, expected conflict {detail}"
            assert detail in conflicts.get(subject, set()), f"{subject}: no {detail} conflict"
        assert set(truth.conflicts) <= conflicts.get(subject, set()) | {ConflictKind.SOURCE_UNMATCHED.value}
        accounted += 1
    # No extracted account is unaccounted for: matched, or held back with a conflict naming it.
    accounts = _query(url, "select platform, external_id from source_account where removed_at is null")
    for platform, external_id in accounts:
        assert (platform, external_id) in matches or f"{platform}:{external_id}" in conflicts, (
            f"{platform}:{external_id} neither matched nor in conflict")
    assert accounted == len(accounts) == identity["source_accounts_mapped"]


@pytest.mark.parametrize("fixture", ["ministry_ad", "ministry_supann"])
def test_conflicts_equal_the_manifest_account_by_account(fixture: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, manifest = request.getfixturevalue(fixture)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    tenant, truths = _prepare(tmp_path, out, manifest, url, monkeypatch)
    summary = _map(tenant, batch_size=700)
    assert not summary["resumed"]
    _check_against_truth(url, summary, manifest, truths)


@pytest.mark.parametrize(("seed", "flavour"), [(11, Flavour.AD), (1234, Flavour.SUPANN)])
def test_more_seeds_on_postgresql(seed: int, flavour: Flavour, tmp_path: Path, postgres_url: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ministry"
    manifest = generate_ministry(out, GeneratorOptions(agents=1500, seed=seed, flavour=flavour, as_of=AS_OF))
    tenant, truths = _prepare(tmp_path, out, manifest, postgres_url, monkeypatch)
    summary = _map(tenant, batch_size=400)
    _check_against_truth(postgres_url, summary, manifest, truths)


@pytest.fixture(scope="module")
def mapped_once(tmp_path_factory: pytest.TempPathFactory,
                ministry_ad: tuple[Path, dict[str, Any]]) -> tuple[Path, Path, dict[str, Any]]:
    """The AD ministry loaded and mapped once per module on SQLite: (state file, tenant file, manifest)."""
    out, manifest = ministry_ad
    directory = tmp_path_factory.mktemp("mapped")
    state = directory / "state.db"
    with pytest.MonkeyPatch.context() as patch:
        tenant, _truths = _prepare(directory, out, manifest, f"sqlite:///{state}", patch)
        _map(tenant)
    return state, tenant, manifest


@pytest.fixture
def mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           mapped_once: tuple[Path, Path, dict[str, Any]]) -> tuple[str, Path, dict[str, Any]]:
    """A copy of the mapped state of its own (SQLite's backup: the write-ahead log included)."""
    import sqlite3

    state, tenant, manifest = mapped_once
    copy = tmp_path / "state.db"
    source, target = sqlite3.connect(state), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    url = f"sqlite:///{copy}"
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    return url, tenant, manifest


def test_running_twice_changes_nothing(mapped: tuple[str, Path, dict[str, Any]]) -> None:
    url, tenant, manifest = mapped
    before = _state(url)
    second = _map(tenant)
    assert second["resolved"] == 0 and second["matches_dropped"] == 0 and second["keys_dropped"] == 0
    assert second["conflicts"] == manifest["identity"]["conflicts"]
    assert _state(url) == before


def _entry(url: str, anchor: str) -> Any:
    from db.repositories import DirectoryRepository
    from flows.runtime import transaction

    with transaction(url) as session:
        found = DirectoryRepository(session, TENANT).page(after=None, limit=100_000)
    return next(entry for entry in found if entry.anchor == anchor)


def _upsert_entry(url: str, entry: Any) -> None:
    from db.repositories import DirectoryRepository
    from flows.runtime import transaction

    with transaction(url) as session:
        DirectoryRepository(session, TENANT).upsert([entry], now=datetime.now(UTC), pass_id="edit")


def test_an_email_change_is_one_conflict_until_the_platforms_catch_up(
        mapped: tuple[str, Path, dict[str, Any]]) -> None:
    url, tenant, manifest = mapped
    # A person matched on Zoom by primary e-mail, with no other conflict.
    anchor, account, old = _query(url, """
        select m.person_anchor, m.account_external_id, p.email_normalised from identity_match m
        join person p on p.anchor = m.person_anchor
        where m.platform = 'zoom' and m.method = 'primary_email' and p.disabled = 0
          and not exists (select 1 from identity_conflict c where c.subject = p.anchor)
          and (select count(*) from identity_match o where o.person_anchor = m.person_anchor) = 1
        order by m.person_anchor limit 1""")[0]
    entry = _entry(url, anchor)
    local, _, domain = old.partition("@")
    new = f"{local}.nouveau@{domain}"
    # The directory keeps the previous address as an alias, as a rename in AD or SupAnn usually does.
    _upsert_entry(url, dataclasses.replace(entry, primary_email=new, aliases=(*entry.aliases, entry.primary_email)))

    changed = _map(tenant)
    assert changed["conflicts"][ConflictKind.EMAIL_CHANGED] == 1
    assert _query(url, "select subject, value, detail from identity_conflict where kind = 'EMAIL_CHANGED' "
                       "and status = 'open'") == [(anchor, new, f"was {old}")]
    assert _query(url, "select proconnect_email from person where anchor = :a", a=anchor) == [(new,)]
    assert _query(url, "select method from identity_match where account_external_id = :a", a=account) == [("alias",)]
    expected = Counter(manifest["identity"]["conflicts"])
    expected.update({ConflictKind.EMAIL_CHANGED.value: 1, ConflictKind.ALIAS_ONLY_MATCH.value: 1})
    assert changed["conflicts"] == dict(expected)

    # Still open while Zoom shows the previous address; closed once Zoom has the new one.
    assert _map(tenant)["conflicts"][ConflictKind.EMAIL_CHANGED] == 1
    from db.repositories import SourceAccountRepository
    from flows.runtime import transaction

    with transaction(url) as session:
        repository = SourceAccountRepository(session, TENANT, Platform.ZOOM)
        zoom = next(a for a in repository.page(after=None, limit=100_000) if a.external_id == account)
        repository.upsert([dataclasses.replace(zoom, email=new)], now=datetime.now(UTC), pass_id="edit")
    caught_up = _map(tenant)
    assert caught_up["conflicts"][ConflictKind.EMAIL_CHANGED] == 0
    assert caught_up["conflicts"] == manifest["identity"]["conflicts"]
    assert _query(url, "select status from identity_conflict where kind = 'EMAIL_CHANGED'") == [("resolved",)]


def _export(url: str) -> list[dict[str, str]]:
    from flows.identity_report import write_conflicts_csv

    buffer = io.StringIO()
    write_conflicts_csv(url, TENANT, buffer)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def _csv(rows: list[dict[str, str]]) -> list[str]:
    from core.identity import OVERRIDE_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OVERRIDE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().splitlines(keepends=True)


def test_overrides_round_trip(mapped: tuple[str, Path, dict[str, Any]]) -> None:
    from flows.identity_report import apply_overrides

    url, tenant, manifest = mapped
    exported = _export(url)
    assert len(exported) == sum(manifest["identity"]["conflicts"].values())
    unmatched = next(row for row in exported if row["kind"] == "SOURCE_UNMATCHED" and row["platform"] == "teams")
    privileged = next(row for row in exported if row["kind"] == "PRIVILEGED_ACCOUNT")
    # A person without a Teams account, so that forcing this one adds no MULTI_SOURCE_ACCOUNTS.
    (owner,) = _query(url, """select p.anchor from person p where not p.disabled
        and not exists (select 1 from identity_match m where m.person_anchor = p.anchor and m.platform = 'teams')
        and not exists (select 1 from identity_conflict c where c.subject = p.anchor) order by p.anchor limit 1""")[0:1]
    decisions = [
        {**unmatched, "action": "force_match", "person_anchor": owner[0], "reason": "shared mailbox of the bureau"},
        {**privileged, "action": "exclude", "reason": "tenant admin, not migrated"},
        {**unmatched, "account_external_id": "no-such-account", "subject": "", "action": "exclude"},
        {**privileged, "subject": "", "account_external_id": privileged["account_external_id"] + "-x",
         "platform": privileged["platform"], "action": "force_match", "person_anchor": owner[0]},
        {**unmatched, "subject": "", "action": "force_match", "person_anchor": "no-such-person",
         "account_external_id": _query(url, "select external_id from source_account where platform = 'webex' "
                                            "order by external_id limit 1")[0][0], "platform": "webex"},
    ]
    outcome = apply_overrides(url, TENANT, _csv(decisions), author="equipe-migration")
    assert [row.line for row in outcome.applied] == [2, 3]
    assert [str(row) for row in outcome.refused] == [
        "row 4: unknown account teams:no-such-account (not in the extracted accounts) [UNKNOWN_ACCOUNT]",
        f"row 5: unknown account {privileged['platform']}:{privileged['account_external_id']}-x "
        "(not in the extracted accounts) [UNKNOWN_ACCOUNT]",
        "row 6: unknown person no-such-person (no current directory entry) [UNKNOWN_PERSON]",
    ]
    audited = _query(url, "select actor, action, target_id from audit_event order by id")
    assert audited == [("equipe-migration", "identity.override", unmatched["subject"]),
                       ("equipe-migration", "identity.override", privileged["subject"])]

    after = _map(tenant)
    forced = (unmatched["platform"], unmatched["account_external_id"])
    assert _query(url, "select person_anchor, method from identity_match where platform = :p and "
                       "account_external_id = :a", p=forced[0], a=forced[1]) == [(owner[0], "override")]
    assert after["matches_by_method"]["override"] == 1
    expected = Counter(manifest["identity"]["conflicts"])
    expected.subtract({"SOURCE_UNMATCHED": 1, "PRIVILEGED_ACCOUNT": 1})
    assert after["conflicts"] == dict(expected)
    assert after["resolved"] == 2
    subjects = {row["subject"] for row in _export(url)}
    assert unmatched["subject"] not in subjects and privileged["subject"] not in subjects

    # The decisions stand on every run; clearing one brings the conflict back.
    assert _map(tenant)["conflicts"] == dict(expected)
    cleared = apply_overrides(url, TENANT, _csv([{**unmatched, "action": "clear"}]), author="equipe-migration")
    assert len(cleared.applied) == 1 and not cleared.refused
    back = _map(tenant)
    assert back["conflicts"]["SOURCE_UNMATCHED"] == manifest["identity"]["conflicts"]["SOURCE_UNMATCHED"]
    assert "override" not in back["matches_by_method"]


# ----------------------------------------------------------------------------------------------- overrides CSV

def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from flows.cli import app

    return CliRunner().invoke(app, list(args))


def _owner_without_teams(url: str) -> str:
    """A person without a Teams account and without conflicts (forcing an account to them adds no conflict)."""
    (owner,) = _query(url, """select p.anchor from person p where not p.disabled
        and not exists (select 1 from identity_match m where m.person_anchor = p.anchor and m.platform = 'teams')
        and not exists (select 1 from identity_conflict c where c.subject = p.anchor) order by p.anchor limit 1""")[0]
    return str(owner)


def _write(path: Path, rows: list[dict[str, str]], *, delimiter: str, encoding: str, newline: str) -> bytes:
    from core.identity import OVERRIDE_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OVERRIDE_COLUMNS, delimiter=delimiter, lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding, errors="replace")  # as Excel does: "?" for what cp1252 lacks
    path.write_bytes(data)
    return data


def test_export_rows_name_whom_each_conflict_is_about(mapped: tuple[str, Path, dict[str, Any]]) -> None:
    url, _tenant, _manifest = mapped
    rows = _export(url)
    persons = {anchor: (name or "", email, department or "") for anchor, name, email, department
               in _query(url, "select anchor, display_name, primary_email, department from person")}
    accounts = {f"{platform}:{external_id}": (name or "", email, department or "")
                for platform, external_id, name, email, department
                in _query(url, "select platform, external_id, display_name, email, department from source_account")}
    matched = {f"{platform}:{account}": anchor for platform, account, anchor
               in _query(url, "select platform, account_external_id, person_anchor from identity_match")}

    def named(row: dict[str, str]) -> tuple[str, str, str]:
        return row["display_name"], row["email"], row["department"]

    about_persons = [row for row in rows if row["subject"] in persons]
    assert {row["kind"] for row in about_persons} >= {"POPULATION_POLICY", "DOMAIN_NOT_ROUTED", "DEPARTED_OR_DISABLED"}
    assert all(named(row) == persons[row["subject"]] for row in about_persons)
    unmatched = [row for row in rows if row["kind"] == "SOURCE_UNMATCHED"]
    assert unmatched and all(named(row) == accounts[row["subject"]] for row in unmatched)
    through_alias = [row for row in rows if row["kind"] == "ALIAS_ONLY_MATCH"]
    assert through_alias and all(named(row) == persons[matched[row["subject"]]] for row in through_alias)
    shared = [row for row in rows if row["kind"] == "DUPLICATE_EMAIL_DIRECTORY"]
    for row in shared:
        holders = row["detail"].removeprefix("entries ").split(", ")
        assert named(row) == (" | ".join(persons[a][0] for a in holders), row["value"],
                              " | ".join(persons[a][2] for a in holders))
    assert shared and all(row["email"] and row["display_name"] for row in rows)


def test_a_french_excel_csv_is_applied_end_to_end(mapped: tuple[str, Path, dict[str, Any]], tmp_path: Path) -> None:
    """Exported for Excel, saved by French Excel (« CSV (séparateur : point-virgule) »: Windows-1252, semicolons,
    CRLF, a name edited on the way), applied through the CLI; then a UTF-8 file with a BOM and commas clears one."""
    from core.identity import OVERRIDE_COLUMNS

    url, tenant, manifest = mapped
    exported = tmp_path / "conflits.csv"
    result = _cli("identities", "export-conflicts", "--tenant", str(tenant), "--out", str(exported), "--excel")
    assert result.exit_code == 0, result.output
    raw = exported.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf" + ";".join(OVERRIDE_COLUMNS).encode() + b"\r\n")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert len(rows) == sum(manifest["identity"]["conflicts"].values())
    to_stdout = _cli("identities", "export-conflicts", "--tenant", str(tenant), "--excel")
    assert to_stdout.exit_code == 0 and to_stdout.stdout_bytes == raw

    owner = _owner_without_teams(url)
    ((owner_email,),) = _query(url, "select primary_email from person where anchor = :a", a=owner)
    unmatched = next(row for row in rows if row["kind"] == "SOURCE_UNMATCHED" and row["platform"] == "teams")
    with_accounts = {anchor for (anchor,) in _query(url, "select person_anchor from identity_match")}
    intern = next(row for row in rows if row["kind"] == "POPULATION_POLICY" and row["subject"] in with_accounts)
    # The person named by e-mail, as people do (in capitals, even): the anchor is what is stored.
    unmatched.update(action="force_match", person_anchor=f" {owner_email.upper()} ",
                     reason="boîte partagée de Hélène Dupré — Œuvre")
    intern.update(action="Exclude", reason="stagiaire : décision de la DRH", display_name="Hélène Dupré (édité)")
    french = tmp_path / "conflits-excel.csv"
    data = _write(french, rows, delimiter=";", encoding="cp1252", newline="\r\n")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    result = _cli("identities", "apply-overrides", str(french), "--tenant", str(tenant), "--author", "équipe")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"2 decisions applied, 0 refused, {len(rows) - 2} rows without a decision")
    assert _query(url, "select platform, account_external_id, action, person_anchor, reason, author "
                       "from identity_override") == [
        ("teams", unmatched["account_external_id"], "force_match", owner, "boîte partagée de Hélène Dupré — Œuvre",
         "équipe")]
    assert _query(url, "select kind, subject, value, action, reason from identity_decision") == [
        ("POPULATION_POLICY", intern["subject"], intern["value"], "exclude", "stagiaire : décision de la DRH")]

    intern_accounts = "select platform, account_external_id, method from identity_match where person_anchor = :a"
    matched_before = _query(url, intern_accounts, a=intern["subject"])
    _map(tenant)
    assert _query(url, "select person_anchor, method from identity_match where platform = 'teams' and "
                       "account_external_id = :a", a=unmatched["account_external_id"]) == [(owner, "override")]
    # Never in a wave, but still the person behind their accounts (their licences are released all the same).
    assert _query(url, "select excluded_reason from person where anchor = :a", a=intern["subject"]) == [
        ("POPULATION_POLICY",)]
    assert _query(url, intern_accounts, a=intern["subject"]) == matched_before
    from flows.waves import plan_wave

    plan = plan_wave(str(tenant), "vague-stagiaires", departments=[intern["department"]], force=True)
    members = {anchor for (anchor,) in _query(url, "select person_anchor from wave_member")}
    assert members and intern["subject"] not in members and plan["excluded"] == {"POPULATION_POLICY": 1}

    # « CSV UTF-8 » with commas (LibreOffice, a script): the byte-order mark and the commas are read as well.
    cleared = tmp_path / "annulation.csv"
    _write(cleared, [{**unmatched, "action": "clear", "reason": "erreur — à revoir"}], delimiter=",",
           encoding="utf-8-sig", newline="\n")
    result = _cli("identities", "apply-overrides", str(cleared), "--tenant", str(tenant), "--author", "équipe")
    assert result.exit_code == 0, result.output
    assert _query(url, "select count(*) from identity_override") == [(0,)]
    assert sorted(_query(url, "select action, target_id from audit_event where action like 'identity.%'")) == [
        ("identity.decision", intern["subject"]), ("identity.override", unmatched["subject"]),
        ("identity.override_cleared", unmatched["subject"])]


@pytest.mark.parametrize(("content", "code", "says"), [
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)), "NOT_TEXT", "Excel workbook"),
    (bytes(range(0x80, 0x100)) * 4, "NOT_TEXT", "neither UTF-8 nor Windows-1252"),
    ("Nom;Prénom;Décision\r\nDupré;Hélène;exclure\r\n".encode("cp1252"), "NO_ACTION_COLUMN",
     "found: Nom, Prénom, Décision"),
    ("nom;action;motif\r\nDupré;exclude;départ\r\n".encode("cp1252"), "MISSING_COLUMNS",
     "lacks the columns kind, subject, value, platform, account_external_id"),
    (b'platform,account_external_id,action\nzoom,"z-1,exclude\n', "UNREADABLE_CSV", "not readable CSV"),
])
def test_a_file_that_cannot_be_read_is_refused_whole_in_one_line(
        mapped: tuple[str, Path, dict[str, Any]], tmp_path: Path, content: bytes, code: str, says: str) -> None:
    url, tenant, _manifest = mapped
    file = tmp_path / "decisions.csv"
    file.write_bytes(content)
    result = _cli("identities", "apply-overrides", str(file), "--tenant", str(tenant))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"bascule: error: {file} refused: ") and says in line and f"[{code}]" in line
    assert _query(url, "select (select count(*) from identity_override) + (select count(*) from identity_decision)"
                       " + (select count(*) from audit_event)") == [(0,)]


def test_person_and_email_conflicts_are_decided_and_applied_by_map(
        mapped: tuple[str, Path, dict[str, Any]]) -> None:
    """accept (no longer open, no longer blocking, on every run), include (an entry the patterns took for a room is
    a person), force_match of a shared e-mail (one entry keeps it, the other is held back and says why), clear."""
    from flows.identity_report import apply_overrides

    url, tenant, manifest = mapped
    primary = manifest["tenant"]["domains"][0]
    # Mme Salle-Marsalle, whose address the tenant's patterns take for a room's; her Zoom account carries her
    # employee id.
    _upsert_entry(url, _person("zz-room", f"salle-marsalle@{primary}", employee="EMP-ZZ"))
    _add_accounts(url, Platform.ZOOM, SourceAccount(Platform.ZOOM, "marsalle", f"m.marsalle@{primary}",
                                                    AccountStatus.ACTIVE, employee_id="emp-zz"))
    _map(tenant)
    rows = _export(url)
    room = next(row for row in rows if row["kind"] == "NON_PERSON_ACCOUNT" and row["subject"] == "zz-room")
    unrouted = next(row for row in rows if row["kind"] == "DOMAIN_NOT_ROUTED")
    intern = next(row for row in rows if row["kind"] == "POPULATION_POLICY")
    collision = next(row for row in rows if row["kind"] == "VISIO_EMAIL_COLLISION")
    email = collision["value"]
    duplicate = next(row for row in rows if row["kind"] == "DUPLICATE_EMAIL_DIRECTORY" and row["value"] == email)
    other = next(row for row in rows if row["kind"] == "DUPLICATE_EMAIL_DIRECTORY" and row["value"] != email)
    keeper, loser = collision["detail"].removeprefix("one Visio user for entries ").split(", ")[:2]
    stranger = _owner_without_teams(url)
    decisions = [
        {**room, "action": "include", "reason": "Mme Marsalle, pas une salle"},
        {**unrouted, "action": "accept", "reason": "ProConnect Identité convient"},
        {**duplicate, "action": "force_match", "person_anchor": keeper, "reason": "l'entrée de Hélène"},
        {**collision, "action": "force_match", "person_anchor": keeper},   # the same decision: once is enough
        {**collision, "action": "force_match", "person_anchor": loser},    # otherwise: refused
        {**intern, "action": "include"},
        {**duplicate, "value": "", "action": "accept"},
        {**intern, "kind": "STAGIAIRE", "action": "exclude"},
        {**other, "action": "force_match", "person_anchor": stranger},
        {**intern, "action": "mark_service"},
    ]
    outcome = apply_overrides(url, TENANT, _csv(decisions), author="equipe-migration")
    assert [row.line for row in outcome.applied] == [2, 3, 4]
    assert [(row.line, str(row.code)) for row in outcome.refused] == [
        (6, "DECIDED_TWICE"), (7, "ACTION_NOT_FOR_KIND"), (8, "UNKNOWN_CONFLICT"), (9, "UNKNOWN_KIND"),
        (10, "EMAIL_NOT_HELD"), (11, "ACTION_NOT_FOR_KIND")]
    assert _query(url, "select action, target_kind, target_id from audit_event order by id") == [
        ("identity.decision", "person", "zz-room"), ("identity.decision", "person", unrouted["subject"]),
        ("identity.decision", "email", email)]

    before = _map(tenant)["conflicts"]
    after = _map(tenant)
    assert after["conflicts"] == before  # the decisions stand on every run
    assert _query(url, "select excluded_reason from person where anchor = 'zz-room'") == [(None,)]
    assert _query(url, "select person_anchor from identity_match where account_external_id = 'marsalle'") == [
        ("zz-room",)]
    assert _query(url, "select status from identity_conflict where kind = 'DOMAIN_NOT_ROUTED' and subject = :s",
                  s=unrouted["subject"]) == [("accepted",)]
    assert _query(url, "select kind, status from identity_conflict where value = :v and subject in "
                       "('directory', 'visio') order by kind", v=email) == [
        ("DUPLICATE_EMAIL_DIRECTORY", "resolved"), ("VISIO_EMAIL_COLLISION", "resolved")]
    assert _query(url, "select anchor, proconnect_email is not null from person where anchor in (:k, :l) "
                       "order by anchor = :l", k=keeper, l=loser) == [(keeper, 1), (loser, 0)]
    assert _query(url, "select kind, status, detail from identity_conflict where subject = :l and value = :v",
                  l=loser, v=email) == [("VISIO_EMAIL_COLLISION", "open", f"primary e-mail given to entry {keeper} "
                                         "by decision: give this entry an e-mail of its own in the directory, or "
                                         "exclude it")]
    showing = _query(url, "select m.person_anchor from source_account a join identity_match m on "
                          "m.platform = a.platform and m.account_external_id = a.external_id "
                          "where a.email_normalised = :v", v=email)
    assert {anchor for (anchor,) in showing} <= {keeper}
    exported = {(row["kind"], row["subject"]) for row in _export(url)}
    assert ("DOMAIN_NOT_ROUTED", unrouted["subject"]) not in exported
    assert ("NON_PERSON_ACCOUNT", "zz-room") not in exported
    assert ("VISIO_EMAIL_COLLISION", loser) in exported

    # Clearing the acceptance reopens the conflict on the next run.
    cleared = apply_overrides(url, TENANT, _csv([{**unrouted, "action": "clear"}]), author="equipe-migration")
    assert len(cleared.applied) == 1 and not cleared.refused
    _map(tenant)
    assert _query(url, "select status from identity_conflict where kind = 'DOMAIN_NOT_ROUTED' and subject = :s",
                  s=unrouted["subject"]) == [("open",)]


def test_override_files_are_read_in_every_encoding_and_delimiter_spreadsheets_save() -> None:
    from core.identity import OverrideRow
    from flows.identity_report import override_lines, read_override_rows

    header = ["kind", "subject", "display_name", "platform", "account_external_id", "action", "reason"]
    row = ["SOURCE_UNMATCHED", "zoom:z-1", "Hélène Dupré", "zoom", "z-1", "exclude", "Œuvre — départ"]
    for encoding, delimiter, newline, prefix in [("cp1252", ";", "\r\n", ""), ("utf-8-sig", ";", "\r\n", ""),
                                                 ("utf-8", ",", "\n", ""), ("utf-16", "\t", "\r\n", ""),
                                                 ("cp1252", ";", "\r\n", "sep=;\r\n"), ("utf-8", ",", "\r", "")]:
        text = prefix + delimiter.join(header) + newline + delimiter.join(row) + newline
        lines = override_lines(text.encode(encoding))
        assert isinstance(lines, list), (encoding, delimiter)
        rows, refused, empty = read_override_rows(lines)
        assert not refused and empty == 0, (encoding, delimiter, refused)
        (parsed,) = rows
        assert isinstance(parsed, OverrideRow) and parsed.line == 2, (encoding, delimiter)
        assert (parsed.account_external_id, parsed.reason) == ("z-1", "Œuvre — départ"), (encoding, delimiter)


def test_a_killed_pass_resumes_to_the_state_of_an_uninterrupted_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ministry_supann: tuple[Path, dict[str, Any]]) -> None:
    from db.repositories import IdentityRepository

    out, manifest = ministry_supann
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    tenant, _ = _prepare(tmp_path, out, manifest, clean_url, monkeypatch)
    broken_url = f"sqlite:///{tmp_path / 'broken.db'}"
    shutil.copy(tmp_path / "clean.db", tmp_path / "broken.db")
    _map(tenant, batch_size=500)
    clean = _state(clean_url)

    monkeypatch.setenv("BASCULE_DATABASE_URL", broken_url)
    real = IdentityRepository.upsert_matches
    calls = {"n": 0}

    def dies_on_the_fourth_batch(self: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed")
        real(self, *args, **kwargs)

    monkeypatch.setattr(IdentityRepository, "upsert_matches", dies_on_the_fourth_batch)
    with pytest.raises(RuntimeError, match="killed"):
        _map(tenant, batch_size=500)
    monkeypatch.setattr(IdentityRepository, "upsert_matches", real)
    resumed = _map(tenant, batch_size=500)
    assert resumed["resumed"]
    assert _state(broken_url) == clean


def test_a_tenant_never_onboarded_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    from flows.identities import map_identities
    from flows.onboard import TenantNotReady

    out, manifest = ministry_ad
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    monkeypatch.setenv("BASCULE_DATABASE_URL", url)
    tenant = write_tenant(tmp_path, manifest, ldif_path=out / "directory.ldif")
    with pytest.raises(TenantNotReady, match="was never onboarded"):
        map_identities(tenant_file=str(tenant))


# ----------------------------------------------------------------------------------------------- domains, any spelling

def _person(anchor: str, mail: str, *aliases: str, login: str | None = None, employee: str | None = None,
            department: str = "DNUM/SDI/B1") -> Any:
    from core import AnchorKind, DirectoryEntry

    return DirectoryEntry(anchor=anchor, anchor_kind=AnchorKind.OBJECT_GUID, dn=f"CN={anchor},OU=Test",
                          primary_email=mail, aliases=aliases, login=login, employee_id=employee, display_name=anchor,
                          department=department, population="agent")


def test_a_tenant_routes_every_spelling_of_its_domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       ministry_ad: tuple[Path, dict[str, Any]]) -> None:
    """Domains declared with accents, in capitals and in punycode route their agents' addresses written in any of
    the three forms; waves select them by any spelling too."""
    from flows.waves import plan_wave

    out, manifest = ministry_ad
    url = f"sqlite:///{tmp_path / 'state.db'}"
    tenant, _truths = _prepare(tmp_path, out, manifest, url, monkeypatch)
    text = tenant.read_text(encoding="utf-8")
    primary, secondary = manifest["tenant"]["domains"]
    for old, new in (
            (f'domains = ["{primary}", "{secondary}"]',
             f'domains = ["{primary.upper()}", "{secondary}", "défense.example.gouv.fr", "xn--mairie-couen-heb.fr"]'),
            (f'"{primary}" = "fi-culture"', f'"{primary.upper()}" = "fi-culture"\n'
                                            '"défense.example.gouv.fr" = "fi-armees"\n'
                                            '"xn--mairie-couen-heb.fr" = "fi-ecouen"')):
        assert old in text
        text = text.replace(old, new)
    tenant.write_text(text, encoding="utf-8")
    spelled = {"idn-1": ("a@défense.example.gouv.fr", "fi-armees"),
               "idn-2": ("b@DÉFENSE.EXAMPLE.GOUV.FR", "fi-armees"),
               "idn-3": ("c@xn--dfense-bva.example.gouv.fr", "fi-armees"),
               "idn-4": ("d@mairie-écouen.fr", "fi-ecouen"),
               "idn-5": ("e@MAIRIE-ÉCOUEN.FR", "fi-ecouen"),
               "idn-6": ("f@xn--mairie-couen-heb.fr", "fi-ecouen"),
               "idn-7": (f"g@{primary.title()}", "fi-culture")}
    for anchor, (mail, _idp) in spelled.items():
        _upsert_entry(url, _person(anchor, mail))

    summary = _map(tenant)
    assert summary["persons"] == manifest["identity"]["persons"] + len(spelled)
    assert summary["conflicts"] == manifest["identity"]["conflicts"]   # no DOMAIN_NOT_ROUTED beyond the unrouted
    assert _query(url, "select anchor, expected_idp from person where anchor like 'idn-%' order by anchor") == [
        (anchor, idp) for anchor, (_mail, idp) in sorted(spelled.items())]
    assert _query(url, "select count(*) from person where email_normalised like :d and expected_idp = 'fi-culture'",
                  d=f"%@{primary}") == _query(url, "select count(*) from person where email_normalised like :d",
                                               d=f"%@{primary}")

    wave = plan_wave(str(tenant), "vague-idn", emails=["B@défense.example.gouv.fr", "C@XN--DFENSE-BVA.example.gouv.fr"],
                     force=True)
    assert wave["members"] == 2
    assert _query(url, "select person_anchor from wave_member order by person_anchor") == [("idn-2",), ("idn-3",)]


# ----------------------------------------------------------------------------------------------- not persons

def _add_accounts(url: str, platform: Platform, *accounts: Any) -> None:
    from db.repositories import SourceAccountRepository
    from flows.runtime import transaction

    with transaction(url) as session:
        SourceAccountRepository(session, TENANT, platform).upsert(list(accounts), now=datetime.now(UTC),
                                                                  pass_id="edit")


def test_rooms_and_administrators_in_the_directory_are_never_in_a_wave(
        mapped: tuple[str, Path, dict[str, Any]], tmp_path: Path) -> None:
    from core import AccountStatus, SourceAccount
    from flows.identity_report import counts, render_text
    from flows.waves import plan_wave, render_plan

    url, tenant, manifest = mapped
    primary = manifest["tenant"]["domains"][0]
    (department,) = _query(url, "select department from person where department is not null and disabled = 0 "
                                "group by department order by count(*) desc limit 1")[0]
    _upsert_entry(url, _person("zz-room", f"salle-essai@{primary}", f"visio-essai@{primary}", department=department))
    _upsert_entry(url, _person("zz-admin", f"jean.essai.admin@{primary}", login="adm-jessai", employee="ADM0001",
                               department=department))
    _add_accounts(url, Platform.ZOOM,
                  SourceAccount(Platform.ZOOM, "room-own", f"salle-essai@{primary}", AccountStatus.ACTIVE),
                  SourceAccount(Platform.ZOOM, "room-alias", f"visio-essai@{primary}", AccountStatus.ACTIVE),
                  SourceAccount(Platform.ZOOM, "admin-id", f"jessai@{primary}", AccountStatus.ACTIVE,
                                employee_id="adm0001"))

    summary = _map(tenant)
    assert summary["excluded_persons"] == {"NON_PERSON_ACCOUNT": 1, "PRIVILEGED_ACCOUNT": 1}
    assert _query(url, "select anchor, excluded_reason from person where excluded_reason is not null "
                       "order by anchor") == [("zz-admin", "PRIVILEGED_ACCOUNT"), ("zz-room", "NON_PERSON_ACCOUNT")]
    # The persons' conflicts (the report shows them), and the accounts held back as before, whatever key tied them.
    assert _query(url, "select kind, subject from identity_conflict where status = 'open' and (subject like 'zz-%' "
                       "or subject in ('zoom:room-own', 'zoom:room-alias', 'zoom:admin-id')) order by subject") == [
        ("PRIVILEGED_ACCOUNT", "zoom:admin-id"), ("NON_PERSON_ACCOUNT", "zoom:room-alias"),
        ("NON_PERSON_ACCOUNT", "zoom:room-own"), ("PRIVILEGED_ACCOUNT", "zz-admin"), ("NON_PERSON_ACCOUNT", "zz-room")]
    assert _query(url, "select count(*) from identity_match where person_anchor like 'zz-%'") == [(0,)]
    expected = Counter(manifest["identity"]["conflicts"])
    expected.update({"NON_PERSON_ACCOUNT": 3, "PRIVILEGED_ACCOUNT": 2})
    assert summary["conflicts"] == dict(expected)
    report = counts(url, TENANT)
    assert report["excluded_persons"] == summary["excluded_persons"]
    assert "persons never selected in a wave: NON_PERSON_ACCOUNT 1, PRIVILEGED_ACCOUNT 1" in render_text(report)

    # A department skips them and counts them by reason.
    by_department = plan_wave(str(tenant), "vague-direction", departments=[department], force=True)
    members = {anchor for (anchor,) in _query(url, "select person_anchor from wave_member w join wave v on "
                                                   "v.id = w.wave_id where v.name = 'vague-direction'")}
    assert members and not members & {"zz-room", "zz-admin"}
    assert by_department["members"] == len(members) == _query(
        url, "select count(*) from person where department = :d and excluded_reason is null", d=department)[0][0]
    assert by_department["excluded"] == {"NON_PERSON_ACCOUNT": 1, "PRIVILEGED_ACCOUNT": 1}
    assert by_department["excluded_named"] == []

    # Named one by one (CSV or command line): planned without them, each one reported with its reason.
    (someone,) = _query(url, "select anchor from person where excluded_reason is null order by anchor limit 1")[0]
    selection = tmp_path / "selection.csv"
    selection.write_text(f"anchor,email\n{someone},\nzz-admin,\n,SALLE-ESSAI@{primary.upper()}\n", encoding="utf-8")
    named = plan_wave(str(tenant), "vague-liste", selection_csv=str(selection), emails=[f"visio-essai@{primary}"],
                      force=True)
    assert named["members"] == 1
    assert named["excluded"] == {"NON_PERSON_ACCOUNT": 1, "PRIVILEGED_ACCOUNT": 1}
    assert named["excluded_named"] == [
        {"selected": "zz-admin", "anchor": "zz-admin", "reason": "PRIVILEGED_ACCOUNT"},
        {"selected": f"SALLE-ESSAI@{primary.upper()}", "anchor": "zz-room", "reason": "NON_PERSON_ACCOUNT"}]
    printed = render_plan(named)
    assert f"left out           SALLE-ESSAI@{primary.upper()}: NON_PERSON_ACCOUNT, a room" in printed
    assert "left out           zz-admin: PRIVILEGED_ACCOUNT, an administrator" in printed
    assert "not selectable     NON_PERSON_ACCOUNT 1, PRIVILEGED_ACCOUNT 1" in printed


# ----------------------------------------------------------------------------------------------- former e-mails

def test_an_account_on_a_former_e_mail_stays_with_its_person_until_the_address_has_a_new_holder(
        mapped: tuple[str, Path, dict[str, Any]]) -> None:
    url, tenant, manifest = mapped
    # Directory pass + extraction done (fixture): a person matched on Zoom by primary e-mail, the account carrying
    # no id that would tie it anyway, the person with no other conflict.
    anchor, account, old = _query(url, """
        select m.person_anchor, m.account_external_id, p.email_normalised from identity_match m
        join person p on p.anchor = m.person_anchor
        join source_account a on a.platform = m.platform and a.external_id = m.account_external_id
        where m.platform = 'zoom' and m.method = 'primary_email' and p.disabled = 0
          and a.employee_id is null and a.immutable_id is null
          and not exists (select 1 from identity_conflict c where c.subject = p.anchor)
          and (select count(*) from identity_match o where o.person_anchor = m.person_anchor) = 1
        order by m.person_anchor limit 1""")[0]
    entry = _entry(url, anchor)
    local, _, domain = old.partition("@")
    new = f"{local}.nouveau@{domain}"
    # Second directory pass: the mail changed, and this time the directory keeps no alias of the previous one.
    _upsert_entry(url, dataclasses.replace(entry, primary_email=new))

    changed = _map(tenant)
    assert _query(url, "select person_anchor, method from identity_match where platform = 'zoom' and "
                       "account_external_id = :a", a=account) == [(anchor, "former_email")]
    assert changed["matches_by_method"]["former_email"] == 1
    assert changed["conflicts"]["SOURCE_UNMATCHED"] == manifest["identity"]["conflicts"]["SOURCE_UNMATCHED"]
    assert _query(url, "select subject, value from identity_conflict where kind = 'EMAIL_CHANGED' and status = 'open' "
                       "order by subject") == [(anchor, new), (f"zoom:{account}", old)]
    expected = Counter(manifest["identity"]["conflicts"])
    expected.update({"EMAIL_CHANGED": 2})
    assert changed["conflicts"] == dict(expected)

    # The former address is history: a complete pass keeps it, and the match stands.
    again = _map(tenant)
    assert again["keys_dropped"] == 0 and again["resolved"] == 0 and again["conflicts"] == dict(expected)
    # A database whose rename predates former keys: the e-mail-changed history restores them.
    engine = create_engine(url)
    with engine.begin() as connection:
        assert connection.execute(text("delete from identity_key where kind = 'former'")).rowcount == 1
    engine.dispose()
    _map(tenant)
    assert _query(url, "select method from identity_match where account_external_id = :a", a=account) == [
        ("former_email",)]

    # The address later given to someone else as primary: the account goes to its new holder.
    _upsert_entry(url, _person("zz-new-holder", old))
    moved = _map(tenant)
    assert _query(url, "select person_anchor, method from identity_match where platform = 'zoom' and "
                       "account_external_id = :a", a=account) == [("zz-new-holder", "primary_email")]
    assert "former_email" not in moved["matches_by_method"]
    assert _query(url, "select status from identity_conflict where kind = 'EMAIL_CHANGED' and subject = :s",
                  s=f"zoom:{account}") == [("resolved",)]
