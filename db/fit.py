"""Values made to fit their columns the same way on SQLite and PostgreSQL.

SQLite stores whatever it is given; PostgreSQL refuses a NUL character in text or JSONB and a string longer than
its VARCHAR. Left alone, one such value in a page made the whole page fail on PostgreSQL only (a directory of
200,000 entries loaded 0 persons because of one display name). Every row written goes through `fit_row` first:

- control characters (C0 but tab, line feed and carriage return, and DEL) are removed from text and from the
  strings of JSON documents; a value that identifies the row (a column of a unique constraint or an index, or an
  e-mail column) is never altered: the row is refused instead (MALFORMED_RECORD);
- a descriptive value longer than its column is cut to fit (VALUE_TRUNCATED); an identifying one refuses the row
  (VALUE_TOO_LONG): two different ids cut to the same prefix would be merged.

Each change is reported as a note (reason code, column, what happened; never the value), which the repositories
turn into quarantine entries: the record is loaded, and the migration team sees what was changed. For derived
tables (`shorten_keys=True`), an identifying value too long for its column is replaced by a prefix and a digest of
the whole value, which keeps it unique and stable across runs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Index, String, Table, UniqueConstraint

from core import ReasonCode

__all__ = ["Fitted", "clean_json", "clean_text", "fit_row", "identifying_columns"]

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIGEST_CHARS = 16


@dataclass(frozen=True, slots=True)
class Note:
    """One change made to a row (or the reason it was refused): no value, only where and what."""

    reason: ReasonCode
    column: str
    detail: str


@dataclass(slots=True)
class Fitted:
    """A row as it will be written, the changes made to it, and `refused` when it must not be written at all."""

    row: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    refused: Note | None = None


def clean_text(value: str) -> str:
    """`value` without control characters (tab, line feed and carriage return are kept)."""
    return _CONTROL.sub("", value)


def clean_json(value: Any) -> Any:
    """A JSON document with every string (and object key) cleaned of control characters."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(item) for item in value]
    return value


@lru_cache(maxsize=128)
def identifying_columns(table: Table) -> frozenset[str]:
    """Columns that identify a row: in a unique constraint or an index, or holding an e-mail (tenant_id aside)."""
    names: set[str] = set()
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            names.update(column.name for column in constraint.columns)
    for index in table.indexes:
        if isinstance(index, Index):
            names.update(column.name for column in index.columns)
    names.update(column.name for column in table.columns if "email" in column.name)
    names.discard("tenant_id")
    return frozenset(names)


def fit_row(table: Table, row: Mapping[str, Any], *, shorten_keys: bool = False) -> Fitted:
    """`row` made to fit `table` (see the module docstring); nothing is changed in place."""
    fitted = Fitted(dict(row))
    identifying = identifying_columns(table)
    for name, value in row.items():
        if name not in table.columns:
            continue
        column = table.columns[name]
        if isinstance(value, str):
            _fit_text(fitted, name, value, column.type, identifying=name in identifying, shorten=shorten_keys)
        elif isinstance(value, Mapping | list | tuple):
            cleaned = clean_json(value)
            if cleaned != _plain(value):
                fitted.notes.append(Note(ReasonCode.CONTROL_CHARACTERS, name, "control characters removed"))
            fitted.row[name] = cleaned
        if fitted.refused is not None:
            break
    return fitted


def _fit_text(fitted: Fitted, name: str, value: str, kind: Any, *, identifying: bool, shorten: bool) -> None:
    cleaned = clean_text(value)
    if cleaned != value:
        if identifying and not shorten:
            fitted.refused = Note(ReasonCode.MALFORMED_RECORD, name, f"control characters in {name}")
            return
        fitted.notes.append(Note(ReasonCode.CONTROL_CHARACTERS, name, f"control characters removed from {name}"))
    limit = kind.length if isinstance(kind, String) else None
    if limit is not None and len(cleaned) > limit:
        if identifying and shorten:
            digest = hashlib.sha256(cleaned.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
            cleaned = f"{cleaned[:limit - _DIGEST_CHARS - 1]}~{digest}"
        elif identifying:
            fitted.refused = Note(ReasonCode.VALUE_TOO_LONG, name,
                                  f"{name} is {len(cleaned)} characters, its column holds {limit}")
            return
        else:
            fitted.notes.append(Note(ReasonCode.VALUE_TRUNCATED, name,
                                     f"{name} cut from {len(cleaned)} to {limit} characters"))
            cleaned = cleaned[:limit]
    fitted.row[name] = cleaned


def _plain(value: Any) -> Any:
    """A JSON document as clean_json returns it when nothing needs cleaning (tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
