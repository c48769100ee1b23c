"""Batched `INSERT … ON CONFLICT` for SQLite and PostgreSQL, with change detection by content hash.

Every row goes through db.fit first (control characters, values longer than their column), so that SQLite and
PostgreSQL store the same thing and one bad value never fails a page. A synced table's rows also pass a
duplicate check: the same key twice in one batch, or a key the same pass already wrote, is reported
(DUPLICATE_SOURCE_ID) and the first one kept — unless the caller says its batches may repeat a key (a delta
pass), where the last one wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Table, case, literal, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core import Quarantined, ReasonCode
from db.fit import fit_row

_BOOKKEEPING = frozenset({"id", "created_at", "updated_at", "last_seen_pass", "removed_at"})
_LOOKUP_CHUNK = 500


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What one or more upserts did: new rows, rows whose content changed, rows seen again unchanged, and the
    quarantine entries they raised (values changed to fit, rows refused; `refused` holds the keys of rows that were
    not written at all — a repeat within one batch leaves its key written by the first row)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: tuple[Quarantined, ...] = ()
    refused: frozenset[tuple[Any, ...]] = frozenset()

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(self.inserted + other.inserted, self.updated + other.updated,
                            self.unchanged + other.unchanged, self.quarantined + other.quarantined,
                            self.refused | other.refused)

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def dialect_insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT construct, which knows ON CONFLICT."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for dialect {name}")


def upsert_synced(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
                  now: datetime, pass_id: str, record_key: Callable[[Mapping[str, Any]], str],
                  duplicates: Literal["report", "last_wins"] = "report") -> UpsertResult:
    """Upsert rows of a synced table (see db.models.SyncedMixin); never commits.

    Content columns and `updated_at` change only when `content_hash` differs (or the row had been marked
    removed); `last_seen_pass` always moves to `pass_id`, which is how a full pass finds what disappeared.
    `record_key(row)` names a row in the quarantine entries the fitting and the duplicate check raise.
    """
    checked, outcome = _checked_rows(session, table, rows, key=key, pass_id=pass_id, record_key=record_key,
                                     duplicates=duplicates)
    if not checked:
        return outcome
    stamped = [{**row, "created_at": now, "updated_at": now, "last_seen_pass": pass_id, "removed_at": None}
               for row in checked]
    insert = dialect_insert(session, table)
    excluded = insert.excluded
    changed = table.c.content_hash.is_distinct_from(excluded.content_hash) | table.c.removed_at.is_not(None)
    content_columns = [name for name in stamped[0] if name not in _BOOKKEEPING and name not in key]
    assignments: dict[str, Any] = {name: case((changed, excluded[name]), else_=table.c[name])
                                   for name in content_columns}
    assignments["updated_at"] = case((changed, excluded.updated_at), else_=table.c.updated_at)
    assignments["removed_at"] = literal(None)
    assignments["last_seen_pass"] = excluded.last_seen_pass
    statement = insert.on_conflict_do_update(index_elements=list(key), set_=assignments).returning(
        table.c.created_at, table.c.updated_at)
    inserted = updated = unchanged = 0
    for created_at, updated_at in session.execute(statement, stamped).all():
        if created_at == now:
            inserted += 1
        elif updated_at == now:
            updated += 1
        else:
            unchanged += 1
    return UpsertResult(inserted, updated, unchanged) + outcome


def _checked_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
                  pass_id: str, record_key: Callable[[Mapping[str, Any]], str],
                  duplicates: Literal["report", "last_wins"]) -> tuple[list[dict[str, Any]], UpsertResult]:
    """Rows fitted to their columns and without duplicate keys, and the quarantine entries that raised."""
    notes: list[Quarantined] = []
    refused: set[tuple[Any, ...]] = set()
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        fitted = fit_row(table, row)
        name = record_key(row)
        notes += [Quarantined(note.reason, name, detail=note.detail) for note in fitted.notes]
        identity = tuple(row[column] for column in key)
        if fitted.refused is not None:
            notes.append(Quarantined(fitted.refused.reason, name, detail=fitted.refused.detail))
            refused.add(identity)
            continue
        if identity in kept and duplicates == "report":
            notes.append(Quarantined(ReasonCode.DUPLICATE_SOURCE_ID, f"{name}#duplicate",
                                     detail="the listing returned this id more than once: the first one is kept"))
            continue
        kept[identity] = fitted.row
    if duplicates == "report" and kept:
        for identity in _written_in_pass(session, table, key, list(kept), pass_id=pass_id):
            row = kept.pop(identity)
            refused.add(identity)
            notes.append(Quarantined(ReasonCode.DUPLICATE_SOURCE_ID, f"{record_key(row)}#duplicate",
                                     detail="this pass already stored a record with this id: the first one is kept"))
    return list(kept.values()), UpsertResult(quarantined=tuple(notes), refused=frozenset(refused))


def _written_in_pass(session: Session, table: Table, key: Sequence[str], identities: list[tuple[Any, ...]], *,
                     pass_id: str) -> set[tuple[Any, ...]]:
    """The keys among `identities` that this pass already wrote (an earlier page of the same listing)."""
    columns = [table.c[column] for column in key]
    found: set[tuple[Any, ...]] = set()
    for start in range(0, len(identities), _LOOKUP_CHUNK):
        chunk = identities[start:start + _LOOKUP_CHUNK]
        query = select(*columns).where(tuple_(*columns).in_(chunk), table.c.last_seen_pass == pass_id)
        found.update(tuple(row) for row in session.execute(query).all())
    return found


def mark_unseen(session: Session, table: Table, *, pass_id: str, now: datetime, **scope: str) -> int:
    """After a complete pass: rows of `scope` (column = value) not seen in `pass_id` get `removed_at = now`."""
    conditions = [table.c[column] == value for column, value in scope.items()]
    result = session.execute(
        update(table)
        .where(*conditions, table.c.last_seen_pass != pass_id, table.c.removed_at.is_(None))
        .values(removed_at=now, updated_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def upsert_plain(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
                 update: Sequence[str]) -> int:
    """Insert rows, or overwrite `update` columns on conflict with `key`; returns rows written. Never commits.

    Rows are fitted to their columns (an identifying value too long is shortened with a digest: these tables hold
    derived data) and a key given twice is written once, with its last row."""
    if not rows:
        return 0
    # One statement may not touch a row twice (PostgreSQL refuses it): the last row of a key wins.
    rows = list({tuple(fitted[column] for column in key): fitted
                 for fitted in (fit_row(table, row, shorten_keys=True).row for row in rows)}.values())
    insert = dialect_insert(session, table)
    if update:
        statement = insert.on_conflict_do_update(index_elements=list(key),
                                                 set_={name: insert.excluded[name] for name in update})
    else:
        statement = insert.on_conflict_do_nothing(index_elements=list(key))
    session.execute(statement, list(rows))
    return len(rows)
