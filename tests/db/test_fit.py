"""Values that do not fit their columns: stored the same way on SQLite and PostgreSQL, never failing a page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core import AccountStatus, AnchorKind, DirectoryEntry, Platform, Quarantined, ReasonCode, SourceAccount
from db import models
from db.engine import make_engine, make_session_factory
from db.fit import clean_json, clean_text, fit_row
from db.models import table_of
from db.repositories import DirectoryRepository, QuarantineRepository, SourceAccountRepository, TenantRepository

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def _entry(index: int, **changes: object) -> DirectoryEntry:
    values: dict[str, object] = {"anchor": f"anchor-{index:03d}", "anchor_kind": AnchorKind.OBJECT_GUID,
                                 "dn": f"CN=Agent {index},OU=People", "primary_email": f"agent.{index}@culture.gouv.fr",
                                 "display_name": f"Agent {index}", "department": "DNUM/SDI"}
    values.update(changes)
    return DirectoryEntry(**values)  # type: ignore[arg-type]


def _account(external_id: str, **changes: object) -> SourceAccount:
    values: dict[str, object] = {"platform": Platform.ZOOM, "external_id": external_id,
                                 "email": f"{external_id}@culture.gouv.fr", "status": AccountStatus.ACTIVE,
                                 "licences": ("zoom:type:2",), "licensed": True}
    values.update(changes)
    return SourceAccount(**values)  # type: ignore[arg-type]


def test_clean_text_keeps_tabs_and_newlines_and_drops_other_controls() -> None:
    assert clean_text("a\x00b\x07c\td\ne\rf\x1bg\x7fh") == "abc\td\ne\rfgh"
    assert clean_json({"k\x00": ["x\x00y", {"z": "\x01"}], "n": 3}) == {"k": ["xy", {"z": ""}], "n": 3}


def test_fit_row_truncates_descriptions_and_refuses_identifiers() -> None:
    table = table_of(models.DirectoryEntry)
    fitted = fit_row(table, {"anchor": "a1", "display_name": "x" * 600, "dn": "CN=\x00A"})
    assert len(fitted.row["display_name"]) == 512 and fitted.refused is None
    assert {note.reason for note in fitted.notes} == {ReasonCode.VALUE_TRUNCATED, ReasonCode.CONTROL_CHARACTERS}
    assert fitted.row["dn"] == "CN=A"
    too_long = fit_row(table, {"anchor": "a" * 300, "display_name": "ok"})
    assert too_long.refused is not None and too_long.refused.reason is ReasonCode.VALUE_TOO_LONG
    controlled = fit_row(table, {"anchor": "a\x00b"})
    assert controlled.refused is not None and controlled.refused.reason is ReasonCode.MALFORMED_RECORD


def test_derived_tables_shorten_long_keys_with_a_stable_digest() -> None:
    table = table_of(models.Quarantine)
    first = fit_row(table, {"record_key": "k" * 600 + "1"}, shorten_keys=True).row["record_key"]
    second = fit_row(table, {"record_key": "k" * 600 + "2"}, shorten_keys=True).row["record_key"]
    assert len(first) == 512 and first != second
    assert first == fit_row(table, {"record_key": "k" * 600 + "1"}, shorten_keys=True).row["record_key"]


def test_a_page_with_bad_values_loads_the_same_on_both_databases(migrated_url: str) -> None:
    sessions = make_session_factory(make_engine(migrated_url))
    page = [_entry(1), _entry(2, display_name="Agent\x00 deux\x07", department="D" * 700),
            _entry(3, dn="CN=Agent\x00 3"), _entry(4, anchor="x" * 400), _entry(5, surname="Nom\x1b[31m")]
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        result = DirectoryRepository(session, "t1").upsert(page, now=NOW, pass_id="p1")
        QuarantineRepository(session, "t1").upsert(list(result.quarantined), stage="load", source="directory",
                                                    now=NOW, pass_id="p1")
    assert result.inserted == 4  # the over-long anchor is refused, the others are loaded
    reasons = sorted((item.record_key, item.reason.value) for item in result.quarantined)
    assert ("directory:anchor-002", "CONTROL_CHARACTERS") in reasons
    assert ("directory:anchor-002", "VALUE_TRUNCATED") in reasons
    assert ("directory:anchor-003", "CONTROL_CHARACTERS") in reasons
    assert ("directory:anchor-005", "CONTROL_CHARACTERS") in reasons
    assert any(reason == "VALUE_TOO_LONG" for _key, reason in reasons)
    with sessions() as session:
        rows = {row.anchor: row for row in session.execute(select(models.DirectoryEntry)).scalars()}
        assert rows["anchor-002"].display_name == "Agent deux" and len(rows["anchor-002"].department or "") == 512
        assert rows["anchor-003"].dn == "CN=Agent 3"
        assert rows["anchor-005"].surname == "Nom[31m"
        assert QuarantineRepository(session, "t1").open_counts()["VALUE_TOO_LONG"] == 1


def test_the_same_id_twice_in_a_listing_is_reported_and_the_first_kept(migrated_url: str) -> None:
    sessions = make_session_factory(make_engine(migrated_url))
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        repository = SourceAccountRepository(session, "t1", Platform.ZOOM)
        first_page = repository.upsert([_account("u1"), _account("u2"), _account("u1", display_name="Second")],
                                       now=NOW, pass_id="p1")
        second_page = repository.upsert([_account("u3"), _account("u2", display_name="Again")], now=NOW,
                                        pass_id="p1")
    assert first_page.inserted == 2 and second_page.inserted == 1
    duplicates = [item for item in (*first_page.quarantined, *second_page.quarantined)
                  if item.reason is ReasonCode.DUPLICATE_SOURCE_ID]
    assert sorted(item.record_key for item in duplicates) == ["zoom:user:u1#duplicate", "zoom:user:u2#duplicate"]
    with sessions() as session:
        names = dict(session.execute(select(models.SourceAccount.external_id, models.SourceAccount.display_name)).all())
        assert names == {"u1": None, "u2": None, "u3": None}


def test_a_delta_page_may_repeat_an_account_and_its_last_state_wins(migrated_url: str) -> None:
    sessions = make_session_factory(make_engine(migrated_url))
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        result = SourceAccountRepository(session, "t1", Platform.TEAMS).upsert(
            [_account("g1", platform=Platform.TEAMS), _account("g1", platform=Platform.TEAMS, display_name="Now")],
            now=NOW, pass_id="d1", delta=True)
    assert result.inserted == 1 and not result.quarantined
    with sessions() as session:
        assert session.execute(select(models.SourceAccount.display_name)).scalar_one() == "Now"


@pytest.mark.parametrize("key", ["k" * 700, "with\x00nul"])
def test_quarantine_keys_that_do_not_fit_are_stored(migrated_url: str, key: str) -> None:
    sessions = make_session_factory(make_engine(migrated_url))
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        QuarantineRepository(session, "t1").upsert(
            [Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="d\x00", payload={"raw": "v\x00"}),
             Quarantined(ReasonCode.MALFORMED_RECORD, key, detail="again")], stage="s", source="zoom:users",
            now=NOW, pass_id="p1")
    with sessions() as session:
        assert QuarantineRepository(session, "t1").open_counts() == {"MALFORMED_RECORD": 1}
