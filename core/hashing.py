"""Stable content hashes of records, to detect change between extraction passes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def content_hash(record: DataclassInstance | Mapping[str, object]) -> str:
    """SHA-256 over a canonical JSON rendering of a dataclass record or a row (field order independent)."""
    fields = dict(record) if isinstance(record, Mapping) else dataclasses.asdict(record)
    canonical = json.dumps(fields, sort_keys=True, default=_plain, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plain(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")
