"""A CSV file as people save it from a spreadsheet: the bytes decoded, the delimiter found.

Excel writes « CSV (séparateur : point-virgule) » in Windows-1252 with semicolons and CRLF, « CSV UTF-8 » with a
byte-order mark (and the list separator of the locale: a semicolon in French), LibreOffice and scripts UTF-8 with
commas, « Texte Unicode » UTF-16 with tabs. UTF-8 is tried first (with or without a BOM); Windows-1252 only when the
bytes are not UTF-8 — a Windows-1252 file with accents is never valid UTF-8, the other way round mostly is. A file
that is none of these (a workbook saved as .xlsx, binary data) is refused with what to do, never guessed at.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass

DELIMITERS = (",", ";", "\t")

_SAVE_AS = ("save it from the spreadsheet as « CSV (séparateur : point-virgule) » or « CSV UTF-8 » "
            "and give that file")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Excel reads (and some tools write) a first line `sep=;` naming the delimiter; it is no row of the table.
_SEP_LINE = re.compile(r'^"?sep=(.)"?\s*$')


@dataclass(frozen=True, slots=True)
class DecodedText:
    """The text of a file and the encoding it was read in (utf-8, utf-8-sig, cp1252, utf-16)."""

    text: str
    encoding: str


@dataclass(frozen=True, slots=True)
class NotText:
    """A file that is not text bascule can read, and what to do (one line)."""

    reason: str


def decode(data: bytes) -> DecodedText | NotText:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252; anything else is NotText."""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        return NotText(f"this is an Excel workbook (.xlsx/.xls), not CSV: {_SAVE_AS}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return DecodedText(data.decode("utf-16"), "utf-16")
        except UnicodeDecodeError:
            return NotText(f"the file starts as UTF-16 but is not: {_SAVE_AS}")
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return DecodedText(data[3:].decode("utf-8"), "utf-8-sig")
        except UnicodeDecodeError:
            return NotText(f"the file starts as UTF-8 (byte-order mark) but is not: {_SAVE_AS}")
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data:
        return NotText(f"binary data, not text (or UTF-16 without a byte-order mark): {_SAVE_AS}")
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return NotText(f"neither UTF-8 nor Windows-1252 text: {_SAVE_AS}")
    if _CONTROL.search(text):
        return NotText(f"binary data, not text: {_SAVE_AS}")
    return DecodedText(text, "cp1252")


def sep_hint(line: str) -> str | None:
    """The delimiter a `sep=;` first line names, or None for any other line."""
    found = _SEP_LINE.match(line.strip("\r\n"))
    return found.group(1) if found else None


def delimiter_of(header: str, expected: Iterable[str]) -> str:
    """The delimiter that splits the header line into the most expected column names (then into the most cells);
    a comma when nothing fits."""
    wanted = {name.casefold() for name in expected}

    def score(delimiter: str) -> tuple[int, int]:
        try:
            cells = next(csv.reader([header.rstrip("\r\n")], delimiter=delimiter), [])
        except csv.Error:
            return (-1, 0)
        return (sum(1 for cell in cells if cell.strip().casefold() in wanted), len(cells))

    best = max(DELIMITERS, key=score)
    return best if score(best) > (0, 1) else ","
