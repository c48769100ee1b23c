"""Generated records served from disk: an offset index per JSON Lines file and an overlay for writes.

A 20,000-agent ministry is about 300 MB of JSON; the sandbox keeps only where each record starts, reads a record
when it is asked for, and keeps what clients changed (PATCH, PUT) in memory so that later reads show it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

Record = dict[str, Any]


class JsonlStore:
    """Records of one JSON Lines file by key, in file order, with secondary groupings (by host, by mailbox)."""

    def __init__(self, path: Path, *, key: Callable[[Record], str],
                 groups: dict[str, Callable[[Record], list[str]]] | None = None) -> None:
        self._path = path
        self._offsets: dict[str, tuple[int, int]] = {}
        self._order: list[str] = []
        self._groups: dict[str, dict[str, list[str]]] = {name: {} for name in (groups or {})}
        self._group_of = dict(groups or {})
        self._overlay: dict[str, Record] = {}
        self._deleted: set[str] = set()
        self._lock = threading.Lock()
        self._local = threading.local()
        if not path.exists():
            return
        with path.open("rb") as handle:
            offset = 0
            for line in handle:
                if line.strip():
                    record = orjson.loads(line)
                    record_key = key(record)
                    self._offsets[record_key] = (offset, len(line))
                    self._order.append(record_key)
                    for name, group_of in (groups or {}).items():
                        for group in group_of(record):
                            self._groups[name].setdefault(group, []).append(record_key)
                offset += len(line)

    def __len__(self) -> int:
        return len(self._order) - len(self._deleted)

    def __contains__(self, key: str) -> bool:
        return (key in self._offsets or key in self._overlay) and key not in self._deleted

    def get(self, key: str) -> Record | None:
        """The record as it is now (a copy: callers may change it freely)."""
        if key in self._deleted:
            return None
        changed = self._overlay.get(key)
        if changed is not None:
            copy: Record = orjson.loads(orjson.dumps(changed))
            return copy
        where = self._offsets.get(key)
        if where is None:
            return None
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = self._local.handle = self._path.open("rb")
        handle.seek(where[0])
        return orjson.loads(handle.read(where[1]))  # type: ignore[no-any-return]

    def keys(self) -> list[str]:
        """Keys in file order (records added later come last)."""
        return [key for key in self._order if key not in self._deleted]

    def group(self, name: str, value: str) -> list[str]:
        return [key for key in self._groups[name].get(value, []) if key not in self._deleted]

    def records(self, keys: list[str] | None = None) -> Iterator[Record]:
        for key in self.keys() if keys is None else keys:
            record = self.get(key)
            if record is not None:
                yield record

    def put(self, key: str, record: Record) -> None:
        """Replace (or add) a record; later reads return it (an added record joins its groups)."""
        with self._lock:
            if key not in self._offsets and key not in self._overlay:
                self._order.append(key)
                for name, group_of in self._group_of.items():
                    for group in group_of(record):
                        self._groups[name].setdefault(group, []).append(key)
            self._overlay[key] = orjson.loads(orjson.dumps(record))
            self._deleted.discard(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._deleted.add(key)


def public(record: Record) -> Record:
    """The record without the sandbox's own bookkeeping keys (`_host`, `_truth`, …)."""
    return {key: value for key, value in record.items() if not key.startswith("_")}
