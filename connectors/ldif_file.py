"""A directory read from an LDIF export (RFC 2849), streamed record by record.

The file is cut into records here (blank-line separated; folded lines start with a space, so they never look
blank) and each record is parsed by the `ldif` package on its own: one broken record becomes a quarantined item
instead of ending the stream, and the record index is a cursor a killed run can resume from.
"""

from __future__ import annotations

import binascii
import codecs
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldif

from connectors.directory_mapping import DirectoryMapping, MappedEntry, map_entry, normalise_attributes
from connectors.errors import PermanentConnectorError
from core import DirectoryEntry, Page, Quarantined, ReasonCode

_SYSTEM = "ldif"
_CHANGETYPE = re.compile(rb"^changetype:\s*(\S+)", re.IGNORECASE)
_URL_VALUE = re.compile(rb"^[A-Za-z0-9;.-]+:<")
_DN_LINE = re.compile(rb"^dn:(:?)\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LdifRecord:
    """One parsed record: its position in the file, its DN and its attributes (lower-case names, raw values)."""

    index: int
    dn: str
    attributes: dict[str, list[bytes]]


@dataclass(frozen=True, slots=True)
class LdifProblem:
    """A record that could not be parsed, with the reason."""

    index: int
    record_key: str
    reason: ReasonCode
    detail: str


def iter_ldif_records(path: Path, *, start: int = 0) -> Iterator[LdifRecord | LdifProblem | None]:
    """Every record from index `start` on: parsed, a problem, or None (version line, comment-only block)."""
    for index, block in enumerate(_blocks(path)):
        if index < start:
            continue
        yield _parse_block(index, block)


def count_ldif_records(path: Path) -> int:
    """Roughly how many records the export holds (lines starting with `dn:`), for progress reporting only."""
    count = 0
    tail = b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            window = tail + chunk
            count += window.count(b"\ndn:")
            tail = window[-3:]
    return count


class LdifDirectory:
    """The Directory role over an LDIF export file; the cursor is the index of the next record."""

    def __init__(self, path: Path, mapping: DirectoryMapping, *, page_size: int = 1000) -> None:
        if not path.is_file():
            raise PermanentConnectorError(_SYSTEM, f"LDIF export not found: {path}")
        self._path = path
        self._mapping = mapping
        self._page_size = page_size

    def iter_pages(self, cursor: str | None = None) -> Iterator[Page[DirectoryEntry | Quarantined]]:
        """Pages of people and quarantined records; `skipped` counts entries that are not people."""
        start = int(cursor) if cursor else 0
        items: list[DirectoryEntry | Quarantined] = []
        skipped = 0
        consumed = start
        for record in iter_ldif_records(self._path, start=start):
            consumed += 1
            if record is None:
                pass
            elif isinstance(record, LdifProblem):
                items.append(Quarantined(record.reason, record.record_key, record.detail,
                                         {"record": record.index}))
            else:
                mapped = map_entry(record.dn, record.attributes, self._mapping)
                if mapped is None:
                    skipped += 1
                elif isinstance(mapped, MappedEntry):
                    items.append(mapped.entry)
                    items.extend(mapped.held_back)
                else:
                    items.append(mapped)
            if consumed - start >= self._page_size:
                yield Page(tuple(items), str(consumed), skipped=skipped)
                items, skipped, start = [], 0, consumed
        yield Page(tuple(items), None, skipped=skipped)


def _parse_block(index: int, block: bytes) -> LdifRecord | LdifProblem | None:
    lines = _unfolded(block)
    key = _record_key(index, lines)
    for line in lines:
        change = _CHANGETYPE.match(line)
        if change and change.group(1).lower() != b"add":
            return LdifProblem(index, key, ReasonCode.LDIF_CHANGE_RECORD,
                               f"change record ({change.group(1).decode('ascii', 'replace')}) in an export")
        if _URL_VALUE.match(line):
            return LdifProblem(index, key, ReasonCode.LDIF_URL_VALUE, "value by URL reference (name:<)")
    try:
        parsed = list(ldif.LDIFParser(io.BytesIO(block), encoding=None).parse())
    except binascii.Error as exc:
        return LdifProblem(index, key, ReasonCode.LDIF_BAD_BASE64, f"base64 value does not decode: {exc}")
    except (ValueError, UnicodeError) as exc:
        return LdifProblem(index, key, ReasonCode.LDIF_MALFORMED, str(exc)[:200])
    if not parsed:
        return None
    dn, entry = parsed[0]
    if dn is None:
        if entry:
            return LdifProblem(index, key, ReasonCode.LDIF_MALFORMED, "record without dn")
        return None
    pairs = [(name, value) for name, values in entry.items() if name.lower() != "changetype" for value in values]
    attributes = normalise_attributes(pairs)
    if isinstance(attributes, str):
        return LdifProblem(index, key, ReasonCode.UNKNOWN_ATTRIBUTE, f"invalid attribute name {attributes!r}")
    return LdifRecord(index, dn, attributes)


def _record_key(index: int, lines: list[bytes]) -> str:
    for line in lines:
        match = _DN_LINE.match(line)
        if match:
            try:
                raw = binascii.a2b_base64(match.group(2)) if match.group(1) else match.group(2)
                return raw.decode("utf-8").strip() or f"record#{index}"
            except (binascii.Error, UnicodeDecodeError):
                break
    return f"record#{index}"


def _unfolded(block: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r")
        if line.startswith(b" ") and lines:
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return [line for line in lines if line and not line.startswith(b"#")]


def _blocks(path: Path) -> Iterator[bytes]:
    """Raw records separated by blank lines, whatever the file's encoding (UTF-8, UTF-8 or UTF-16 with BOM)."""
    current: list[bytes] = []
    for line in _utf8_lines(path):
        if line.strip(b"\r\n") == b"":
            if current:
                yield b"".join(current)
                current = []
        else:
            current.append(line if line.endswith(b"\n") else line + b"\n")
    if current:
        yield b"".join(current)


def _utf8_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as probe:
        head = probe.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        with path.open("r", encoding="utf-16", newline="") as text:
            for line in text:
                yield line.encode("utf-8")
        return
    with path.open("rb") as handle:
        if head.startswith(codecs.BOM_UTF8):
            handle.read(len(codecs.BOM_UTF8))
        yield from handle
