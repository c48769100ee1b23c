"""Repositories on SQLite and PostgreSQL: batched upserts that are idempotent and never commit by themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core import AnchorKind, DirectoryEntry, Quarantined, ReasonCode
from db import models
from db.engine import make_engine, make_session_factory
from db.repositories import CheckpointRepository, DirectoryRepository, QuarantineRepository, TenantRepository

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)


def _entries(count: int, *, domain: str = "culture.gouv.fr") -> list[DirectoryEntry]:
    return [DirectoryEntry(anchor=f"anchor-{i:05d}", anchor_kind=AnchorKind.ENTRY_UUID, dn=f"uid=a{i},ou=people",
                           primary_email=f"Agent.{i}@{domain}", aliases=(f"a{i}@culture.fr",),
                           employee_id=f"{i:07d}", display_name=f"Agent É{i}", disabled=i % 7 == 0,
                           last_logon=NOW - timedelta(days=i % 30))
            for i in range(count)]


def _snapshot(session: object) -> list[tuple[object, ...]]:
    rows = session.execute(select(models.DirectoryEntry).order_by(models.DirectoryEntry.anchor)).scalars()  # type: ignore[attr-defined]
    return [(r.anchor, r.primary_email, r.email_normalised, tuple(r.aliases), r.disabled, r.last_logon, r.content_hash,
             r.created_at, r.updated_at, r.removed_at) for r in rows]


def _sessions(url: str):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(url))


def test_upserting_the_same_batch_twice_changes_nothing(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    batch = _entries(2500)  # more than one statement page
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        first = DirectoryRepository(session, "t1").upsert(batch, now=NOW, pass_id="p1")
    assert (first.inserted, first.updated, first.unchanged) == (2500, 0, 0)
    with sessions() as session:
        before = _snapshot(session)
    with sessions.begin() as session:
        second = DirectoryRepository(session, "t1").upsert(batch, now=NOW + timedelta(hours=1), pass_id="p2")
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2500)
    with sessions() as session:
        assert _snapshot(session) == before


def test_a_changed_record_is_updated_and_reported(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    batch = _entries(10)
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        DirectoryRepository(session, "t1").upsert(batch, now=NOW, pass_id="p1")
    changed = [*batch[:9], DirectoryEntry(**{**{f: getattr(batch[9], f) for f in batch[9].__slots__},  # type: ignore[arg-type]
                                             "primary_email": "renamed@culture.gouv.fr"})]
    later = NOW + timedelta(days=1)
    with sessions.begin() as session:
        result = DirectoryRepository(session, "t1").upsert(changed, now=later, pass_id="p2")
        assert (result.inserted, result.updated, result.unchanged) == (0, 1, 9)
        removed = DirectoryRepository(session, "t1").mark_removed(pass_id="p2", now=later)
        assert removed == 0
    with sessions() as session:
        row = session.execute(select(models.DirectoryEntry)
                              .where(models.DirectoryEntry.anchor == "anchor-00009")).scalar_one()
        assert row.email_normalised == "renamed@culture.gouv.fr"
        assert row.updated_at == later and row.created_at == NOW
        assert row.last_logon is not None and row.last_logon.tzinfo is not None


def test_entries_missing_from_a_complete_pass_are_marked_not_deleted(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        repo = DirectoryRepository(session, "t1")
        repo.upsert(_entries(20), now=NOW, pass_id="p1")
        repo.upsert(_entries(15), now=NOW, pass_id="p2")
        assert repo.mark_removed(pass_id="p2", now=NOW) == 5
        assert repo.count() == 15
        assert repo.count(include_removed=True) == 20
        # coming back clears the mark and counts as a change
        back = repo.upsert(_entries(20)[15:], now=NOW + timedelta(seconds=1), pass_id="p3")
        assert back.updated == 5
        assert repo.count() == 20


def test_repositories_never_commit(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
    session = sessions()
    DirectoryRepository(session, "t1").upsert(_entries(5), now=NOW, pass_id="p1")
    QuarantineRepository(session, "t1").upsert([Quarantined(ReasonCode.MISSING_MAIL, "uid=x")], stage="s",
                                                source="directory", now=NOW, pass_id="p1")
    CheckpointRepository(session, "t1").save("directory", "entries", pass_id="p1", cursor="5", items_done=5,
                                             complete=False, now=NOW)
    session.rollback()
    session.close()
    with sessions() as fresh:
        assert DirectoryRepository(fresh, "t1").count() == 0
        assert QuarantineRepository(fresh, "t1").open_counts() == {}
        assert CheckpointRepository(fresh, "t1").get("directory", "entries") is None


def test_quarantine_is_idempotent_and_resolves_what_a_pass_no_longer_sees(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    items = [Quarantined(ReasonCode.MISSING_MAIL, "uid=a"), Quarantined(ReasonCode.LDIF_BAD_BASE64, "uid=b")]
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        repo = QuarantineRepository(session, "t1")
        repo.upsert(items, stage="load", source="directory", now=NOW, pass_id="p1")
        repo.upsert(items, stage="load", source="directory", now=NOW, pass_id="p1")
        assert repo.open_counts() == {"LDIF_BAD_BASE64": 1, "MISSING_MAIL": 1}
        repo.upsert(items[:1], stage="load", source="directory", now=NOW, pass_id="p2")
        assert repo.resolve_unseen(source="directory", pass_id="p2", now=NOW) == 1
        assert repo.open_counts(source="directory") == {"MISSING_MAIL": 1}


def test_checkpoint_round_trip(migrated_url: str) -> None:
    sessions = _sessions(migrated_url)
    with sessions.begin() as session:
        TenantRepository(session).ensure("t1", name="T", siret=None, config_path=None, config_hash=None, now=NOW)
        repo = CheckpointRepository(session, "t1")
        repo.start("zoom", "users", pass_id="p1", now=NOW)
        repo.save("zoom", "users", pass_id="p1", cursor="tok-2", items_done=600, complete=False, now=NOW)
        state = repo.get("zoom", "users")
        assert state is not None and (state.pass_id, state.cursor, state.items_done, state.complete) == (
            "p1", "tok-2", 600, False)
        repo.save("zoom", "users", pass_id="p1", cursor=None, items_done=900, complete=True, now=NOW)
        done = repo.get("zoom", "users")
        assert done is not None and done.complete and done.cursor is None
