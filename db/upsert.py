"""Batched `INSERT … ON CONFLICT` for SQLite and PostgreSQL, with change detection by content hash."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_BOOKKEEPING = frozenset({"id", "created_at", "updated_at", "last_seen_pass", "removed_at"})


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What one or more upserts did: new rows, rows whose content changed, rows seen again unchanged."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(self.inserted + other.inserted, self.updated + other.updated,
                            self.unchanged + other.unchanged)

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
                  now: datetime, pass_id: str) -> UpsertResult:
    """Upsert rows of a synced table (see db.models.SyncedMixin); never commits.

    Content columns and `updated_at` change only when `content_hash` differs (or the row had been marked
    removed); `last_seen_pass` always moves to `pass_id`, which is how a full pass finds what disappeared.
    """
    if not rows:
        return UpsertResult()
    stamped = [{**row, "created_at": now, "updated_at": now, "last_seen_pass": pass_id, "removed_at": None}
               for row in rows]
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
    result = UpsertResult()
    for created_at, updated_at in session.execute(statement, stamped).all():
        if created_at == now:
            result += UpsertResult(inserted=1)
        elif updated_at == now:
            result += UpsertResult(updated=1)
        else:
            result += UpsertResult(unchanged=1)
    return result


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
    """Insert rows, or overwrite `update` columns on conflict with `key`; returns rows written. Never commits."""
    if not rows:
        return 0
    insert = dialect_insert(session, table)
    if update:
        statement = insert.on_conflict_do_update(index_elements=list(key),
                                                 set_={name: insert.excluded[name] for name in update})
    else:
        statement = insert.on_conflict_do_nothing(index_elements=list(key))
    session.execute(statement, list(rows))
    return len(rows)
