"""Content hashes detect change and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

from core import AnchorKind, DirectoryEntry
from core.hashing import content_hash


def _entry(**changes: object) -> DirectoryEntry:
    values: dict[str, object] = {
        "anchor": "6f1d7b52-0c3c-403f-8a8e-4b1c6e0e2a11", "anchor_kind": AnchorKind.OBJECT_GUID,
        "dn": "CN=Claire Martin,OU=Agents", "primary_email": "claire.martin@culture.gouv.fr",
        "aliases": ("c.martin@culture.fr",), "last_logon": datetime(2026, 10, 16, 8, tzinfo=UTC)}
    values.update(changes)
    return DirectoryEntry(**values)  # type: ignore[arg-type]


def test_equal_records_hash_equal() -> None:
    assert content_hash(_entry()) == content_hash(_entry())


def test_any_field_change_changes_the_hash() -> None:
    base = content_hash(_entry())
    assert content_hash(_entry(primary_email="claire.durand@culture.gouv.fr")) != base
    assert content_hash(_entry(aliases=())) != base
    assert content_hash(_entry(disabled=True)) != base
    assert content_hash(_entry(last_logon=datetime(2026, 10, 17, 8, tzinfo=UTC))) != base
