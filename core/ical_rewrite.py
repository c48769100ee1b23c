"""Rewriting an organiser's iCalendar object in place: the Zoom or Webex link block becomes a Visio block, every
other byte stays (contracts/calendars.md §3 and §5).

The object is read as content lines (RFC 5545 §3.1: a line folded over several physical lines is one property).
Only the properties that change are written again, folded at 75 octets with the object's own line ending:

- `DESCRIPTION`: the link block — the line holding the join URL, the invitation lines just before it ("Rejoindre
  la réunion Zoom", separators) and the meeting details after it (meeting id, passcode, one-tap and dial-in numbers,
  SIP) — becomes a Visio block. The block is found in the escaped TEXT value itself (lines split at `\\n`), so the
  organiser's text around it keeps its exact bytes, escapes included. A join URL also outside the block refuses
  the object: never a guess.
- `LOCATION`: the join URL in it becomes the Visio URL (the rest of the location is kept).
- `SEQUENCE` + 1 on each component changed (the master and every `RECURRENCE-ID` override of the same UID, all in
  one object, one PUT); a component without SEQUENCE gets `SEQUENCE:1`.
- With `force_send` (sabre/dav servers stay silent on a location-only change), `SCHEDULE-FORCE-SEND=REQUEST` on
  each `ATTENDEE` of a changed component (RFC 6638 §7.3).

Re-running is idempotent: an object whose components no longer hold the join URL but show the Visio URL is
returned unchanged (nothing to PUT). A restore puts the original bytes back with one change: its `SEQUENCE` goes
above the rewrite's (attendees' clients ignore an update whose SEQUENCE is not higher, RFC 5546 §2.1.4).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import recurring_ical_events
from icalendar import Calendar

from core.links import JoinLink, parse_join_url

__all__ = [
    "CalendarChanges",
    "CalendarObject",
    "CalendarWrite",
    "IcalRefusal",
    "IcalRefused",
    "Restored",
    "Rewritten",
    "StoredEvent",
    "itip_request",
    "join_keys_in",
    "occurs_between",
    "read_object",
    "restore_object",
    "rewrite_object",
    "shows_link",
    "unrewrite_object",
]

FOLD_OCTETS = 75
_URL = re.compile(r"https?://[^\s<>\"'\\]+", re.IGNORECASE)
_TEXT_BREAK = re.compile(r"\\[nN]")
# Lines of the invitation around the join URL that belong to the platform's block (French and English wording of
# the Zoom and Webex invitations and add-ins). A line is part of the block when it matches; a blank line inside
# the details is kept in the block only when more details follow.
_BLOCK_LINE = re.compile(
    r"""^\s*(?:
      [-_=─━~*.]{3,}
    | .*\b(?:zoom|webex)\b.*
    | (?:rejoindre|participer|join|se\ joindre|joindre)\b.*
    | (?:id|identifiant|numéro|numero|n°)\s+(?:de\ (?:la\ )?)?(?:réunion|reunion|meeting|conférence)\b.*
    | (?:meeting\ (?:id|number)|webinar\ id)\b.*
    | (?:code\ secret|code\ d.accès|mot\ de\ passe|passcode|password|access\ code)\b.*
    | code\ de\ la\ réunion\b.*
    | (?:mobile\ en\ un\ clic|one\ tap\ mobile|composez|dial\ by\ your\ location|appel\ (?:par|via)|join\ by)\b.*
    | (?:trouvez\ votre\ numéro|find\ your\ local\ number|numéros?\ (?:d'appel|locaux|internationaux))\b.*
    | (?:sip|h\.?323|tap\ to\ join|appuyez)\b.*
    | \+?[\d\s().,#*-]{6,}(?:\s+\S.*)?
    | \#+.*
    )\s*$""", re.IGNORECASE | re.VERBOSE)
_VISIO_HEADING = "Réunion Visio"


class IcalRefusal(StrEnum):
    """Why an object is not rewritten (quarantine reason codes)."""

    NOT_ICALENDAR = "ICAL_NOT_ICALENDAR"
    LINK_NOT_FOUND = "ICAL_LINK_NOT_FOUND"
    LINK_OUTSIDE_BLOCK = "ICAL_LINK_OUTSIDE_BLOCK"


@dataclass(frozen=True, slots=True)
class IcalRefused:
    reason: IcalRefusal
    detail: str


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The object to PUT (`changed` False: it already shows the Visio link, nothing to write)."""

    data: bytes
    changed: bool
    components: int              # VEVENTs rewritten (the master and its overrides)
    sequence: int                # the master's SEQUENCE after the rewrite


@dataclass(frozen=True, slots=True)
class CalendarObject:
    """What bascule needs to know of a stored object: whose it is and which join links it carries."""

    uid: str
    organizer: str | None        # lower-cased address of ORGANIZER (mailto: removed)
    summary: str
    sequence: int
    recurring: bool
    overrides: int
    attendees: tuple[str, ...]
    join_keys: tuple[str, ...]   # link keys (core.links) found in LOCATION and DESCRIPTION, master first


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An organiser's calendar object as read: where it is, its ETag and bytes, what it holds."""

    organiser: str
    href: str
    etag: str | None
    data: bytes
    parsed: CalendarObject


@dataclass(frozen=True, slots=True)
class CalendarWrite:
    """A rewrite or restore done: the bytes before and after, the ETag after, how many 412s were met."""

    href: str
    before: bytes
    after: bytes
    etag: str | None
    changed: bool
    conflicts: int
    attendee_status: dict[str, str]          # address → SCHEDULE-STATUS the server stamped (scheduling servers)
    kept: tuple[str, ...] = ()               # restore: properties the organiser changed after the rewrite


@dataclass(frozen=True, slots=True)
class CalendarChanges:
    """What an organiser's calendar holds now, as far as the last sync token tells (a delta scan): the linked
    events new or changed since, the stored ones to forget (deleted, link removed, moved out of the window), and the
    token the next scan starts from. `full`: everything was listed (no token yet, or the server no longer knew it),
    so a stored event not among `events` is gone too."""

    events: Sequence[StoredEvent]
    gone: Sequence[str]                      # hrefs
    token: str | None                        # None: the server cannot track changes (every scan lists all)
    full: bool
    read: int = 0                            # events read to learn it (what a delta saves shows here)


@dataclass(slots=True)
class _Line:
    raw: bytes                   # the physical lines as stored, endings included
    text: str                    # unfolded
    name: str
    params: str                  # ";A=B;C=D" as written ("" when none)
    value: str
    changed: bool = False


def _split_lines(data: bytes) -> tuple[list[_Line], bytes]:
    physical = re.split(rb"(?<=\n)", data)
    if physical and physical[-1] == b"":
        physical.pop()
    ending = b"\r\n" if b"\r\n" in data else b"\n"
    logical: list[list[bytes]] = []
    for line in physical:
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1].append(line)
        else:
            logical.append([line])
    lines = []
    for parts in logical:
        text = "".join((part if index == 0 else part[1:]).rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                       for index, part in enumerate(parts))
        name, params, value = _property(text)
        lines.append(_Line(b"".join(parts), text, name, params, value))
    return lines, ending


def _property(text: str) -> tuple[str, str, str]:
    """(NAME upper-cased, ";params" as written, value) of a content line; quotes protect ':' and ';'."""
    quoted = False
    name_end = None
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ";:" and name_end is None:
            name_end = index
            if char == ":":
                return text[:index].upper(), "", text[index + 1:]
        elif not quoted and char == ":" and name_end is not None:
            return text[:name_end].upper(), text[name_end:index], text[index + 1:]
    return text.upper(), "", ""


def _fold(text: str, ending: bytes) -> bytes:
    """A content line folded at FOLD_OCTETS octets, never inside a UTF-8 character."""
    encoded = text.encode("utf-8", "surrogateescape")
    out: list[bytes] = []
    start, limit = 0, FOLD_OCTETS
    while len(encoded) - start > limit:
        cut = start + limit
        while cut > start and (encoded[cut] & 0xC0) == 0x80:
            cut -= 1
        out.append(encoded[start:cut])
        start, limit = cut, FOLD_OCTETS - 1
    out.append(encoded[start:])
    return (ending + b" ").join(out) + ending


def _set(line: _Line, value: str, params: str | None = None) -> None:
    line.value = value
    if params is not None:
        line.params = params
    line.text = _rebuild(line)
    line.changed = True


def _rebuild(line: _Line) -> str:
    written_name = line.text.split(";", 1)[0].split(":", 1)[0]
    return f"{written_name}{line.params}:{line.value}"


def _components(lines: list[_Line]) -> list[tuple[int, int]]:
    """(index of BEGIN:VEVENT, index of its END) for each VEVENT."""
    spans, start = [], None
    for index, line in enumerate(lines):
        if line.name == "BEGIN" and line.value.strip().upper() == "VEVENT":
            start = index
        elif line.name == "END" and line.value.strip().upper() == "VEVENT" and start is not None:
            spans.append((start, index))
            start = None
    return spans


def join_keys_in(text: str) -> list[tuple[str, str]]:
    """(link key, URL as written) of each join URL in `text`, in order, each key once."""
    found: list[tuple[str, str]] = []
    for key, url in _all_join_urls(text):
        if key not in {known for known, _ in found}:
            found.append((key, url))
    return found


def _urls_of(text: str, key: str) -> list[str]:
    return [url for found_key, url in _all_join_urls(text) if found_key == key]


def _all_join_urls(text: str) -> list[tuple[str, str]]:
    out = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;)")
        parsed = parse_join_url(url)
        if isinstance(parsed, JoinLink):
            out.append((parsed.key, url))
    return out


def read_object(data: bytes) -> CalendarObject | IcalRefused:
    """The object's UID, organiser, attendees, SEQUENCE and the join links it carries."""
    lines, _ending = _split_lines(data)
    spans = _components(lines)
    if not spans:
        return IcalRefused(IcalRefusal.NOT_ICALENDAR, "no VEVENT")
    keys: list[str] = []
    master: dict[str, str] = {}
    attendees: list[str] = []
    overrides = 0
    for start, end in spans:
        props = lines[start + 1:end]
        if any(line.name == "RECURRENCE-ID" for line in props):
            overrides += 1
        else:
            for line in props:
                master.setdefault(line.name, line.value)
                if line.name == "ATTENDEE":
                    attendees.append(_address(line.value))
        for line in props:
            if line.name in ("LOCATION", "DESCRIPTION", "X-ALT-DESC"):
                keys += [key for key, _ in join_keys_in(line.value.replace("\\:", ":")) if key not in keys]
    organizer = master.get("ORGANIZER")
    return CalendarObject(
        uid=master.get("UID", "") or next((line.value for line in lines if line.name == "UID"), ""),
        organizer=_address(organizer) if organizer else None, summary=master.get("SUMMARY", ""),
        sequence=_int(master.get("SEQUENCE")), recurring="RRULE" in master, overrides=overrides,
        attendees=tuple(attendees), join_keys=tuple(keys))


def occurs_between(data: bytes, start: datetime, end: datetime) -> bool:
    """Whether the object has an occurrence overlapping [start, end) (its recurrence expanded, overrides and
    EXDATEs applied) — the window test a server's time-range query does, for objects a sync reported. An object
    that cannot be expanded counts as inside: it is kept rather than silently dropped."""
    try:
        calendar = Calendar.from_ical(data)
        return any(True for _ in recurring_ical_events.of(calendar).between(start, end))
    except Exception:   # malformed rules, unknown zones: icalendar and the expander raise many kinds
        return True


def shows_link(data: bytes, url: str) -> bool:
    """Whether the object's LOCATION or DESCRIPTION carries `url` (lines unfolded: a long link is folded)."""
    lines, _ending = _split_lines(data)
    return any(url in line.value.replace("\\:", ":") for line in lines
               if line.name in ("LOCATION", "DESCRIPTION", "X-ALT-DESC"))


def _address(value: str) -> str:
    return re.sub(r"^mailto:", "", value.strip(), flags=re.IGNORECASE).lower()


def _int(value: str | None) -> int:
    try:
        return int((value or "0").strip())
    except ValueError:
        return 0


def _visio_block(visio_url: str, phone: str | None, pin: str | None) -> list[str]:
    block = [_VISIO_HEADING, f"Rejoindre : {visio_url}"]
    if phone and pin:
        block.append(f"Par téléphone : {phone} (code {pin})")
    return [_escape(line) for line in block]


def _is_block_line(escaped: str) -> bool:
    """Whether a line of a TEXT value (as escaped in the object) reads as part of a platform's invitation block."""
    return bool(_BLOCK_LINE.match(re.sub(r"\\([,;\\])", r"\1", escaped)))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


def _rewrite_description(value: str, key: str, visio_url: str, phone: str | None, pin: str | None
                         ) -> str | IcalRefused | None:
    """The DESCRIPTION value with the link block replaced; None when it holds no such link."""
    pieces = _TEXT_BREAK.split(value)
    breaks = _TEXT_BREAK.findall(value)
    holding = [index for index, piece in enumerate(pieces) if _urls_of(piece, key)]
    if not holding:
        return None
    first, last = holding[0], holding[-1]
    start = first
    while start > 0 and pieces[start - 1].strip() and _is_block_line(pieces[start - 1]):
        start -= 1
    end = first
    index = first + 1
    while index < len(pieces):
        piece = pieces[index]
        if piece.strip() and (_is_block_line(piece) or _urls_of(piece, key)):
            end = index
        elif piece.strip():
            break
        index += 1
    if last > end:
        return IcalRefused(IcalRefusal.LINK_OUTSIDE_BLOCK, "the join URL appears outside its invitation block")
    new = pieces[:start] + _visio_block(visio_url, phone, pin) + pieces[end + 1:]
    # The breaks between kept lines are the original ones; the block's own use the object's first style.
    style = breaks[0] if breaks else "\\n"
    joins = breaks[:start] + [style] * (len(_visio_block(visio_url, phone, pin)) - 1) + breaks[end:]
    out = new[0]
    for join, piece in zip(joins, new[1:], strict=True):
        out += join + piece
    return out


def rewrite_object(data: bytes, *, join_key: str, visio_url: str, force_send: bool = False,
                   phone: str | None = None, pin: str | None = None) -> Rewritten | IcalRefused:
    """The object with the link of `join_key` replaced by `visio_url` in each VEVENT that holds it."""
    lines, ending = _split_lines(data)
    spans = _components(lines)
    if not spans:
        return IcalRefused(IcalRefusal.NOT_ICALENDAR, "no VEVENT")
    rewritten = 0
    shows_visio = False
    for start, end in reversed(spans):      # from the last: a SEQUENCE inserted moves no component still to do
        props = lines[start + 1:end]
        touched = False
        for line in props:
            if line.name in ("LOCATION", "X-ALT-DESC") and _urls_of(line.value, join_key):
                value = line.value
                for url in _urls_of(value, join_key):
                    value = value.replace(url, visio_url)
                _set(line, value)
                touched = True
            elif line.name == "DESCRIPTION":
                new = _rewrite_description(line.value, join_key, visio_url, phone, pin)
                if isinstance(new, IcalRefused):
                    return new
                if new is not None:
                    _set(line, new)
                    touched = True
                elif visio_url in line.value:
                    shows_visio = True
        if not touched:
            continue
        rewritten += 1
        _bump(lines, start, props, above=None)
        if force_send:
            for line in props:
                if line.name == "ATTENDEE" and "SCHEDULE-FORCE-SEND" not in line.params.upper():
                    _set(line, line.value, line.params + ";SCHEDULE-FORCE-SEND=REQUEST")
    if rewritten == 0:
        if shows_visio:
            return Rewritten(data, changed=False, components=0, sequence=_master_sequence(lines))
        return IcalRefused(IcalRefusal.LINK_NOT_FOUND, f"no {join_key.split(':', 1)[0]} join link of this meeting")
    out = b"".join(_fold(line.text, ending) if line.changed else line.raw for line in lines)
    return Rewritten(out, changed=True, components=rewritten, sequence=_master_sequence(lines))


def _master_sequence(lines: list[_Line]) -> int:
    for start, end in _components(lines):
        props = lines[start + 1:end]
        if not any(line.name == "RECURRENCE-ID" for line in props):
            return _int(next((line.value for line in props if line.name == "SEQUENCE"), "0"))
    return 0


def _bump(lines: list[_Line], start: int, props: list[_Line], *, above: int | None) -> None:
    """SEQUENCE + 1 (or above `above` + 1) in the component starting at `start`; added after UID when missing."""
    sequence = next((line for line in props if line.name == "SEQUENCE"), None)
    if sequence is not None:
        current = _int(sequence.value)
        _set(sequence, str((max(current, above) if above is not None else current) + 1))
        return
    value = str((above if above is not None else 0) + 1)
    uid_at = next((start + 1 + i for i, line in enumerate(props) if line.name == "UID"), start)
    lines.insert(uid_at + 1, _Line(b"", f"SEQUENCE:{value}", "SEQUENCE", "", value, changed=True))


def restore_object(original: bytes, *, above: int) -> bytes:
    """The original object, its components' SEQUENCE raised above `above` (the rewrite's): the only bytes that
    differ from what was stored before the cutover."""
    lines, ending = _split_lines(original)
    for start, end in reversed(_components(lines)):
        _bump(lines, start, lines[start + 1:end], above=above)
    return b"".join(_fold(line.text, ending) if line.changed else line.raw for line in lines)


_REWRITTEN_PROPERTIES = ("LOCATION", "DESCRIPTION", "X-ALT-DESC")


def _component_key(lines: list[_Line], start: int, end: int) -> str:
    """Which component of a series this is: the master ("") or the override's RECURRENCE-ID value."""
    return next((line.value.strip() for line in lines[start + 1:end] if line.name == "RECURRENCE-ID"), "")


def _rewritten_values(data: bytes) -> dict[tuple[str, str], str]:
    lines, _ending = _split_lines(data)
    values: dict[tuple[str, str], str] = {}
    for start, end in _components(lines):
        key = _component_key(lines, start, end)
        for line in lines[start + 1:end]:
            if line.name in _REWRITTEN_PROPERTIES:
                values.setdefault((key, line.name), line.value)
    return values


@dataclass(frozen=True, slots=True)
class Restored:
    """What to PUT back, and the properties left as the organiser changed them since the rewrite."""

    data: bytes
    kept: tuple[str, ...]        # "DESCRIPTION" or "DESCRIPTION@<RECURRENCE-ID>" the organiser edited after us


def unrewrite_object(current: bytes, *, rewritten: bytes, original: bytes, above: int) -> Restored:
    """The organiser's current object with bascule's rewrite undone where it is still as bascule wrote it: each
    LOCATION / DESCRIPTION / X-ALT-DESC equal to the rewrite's gets the original's value back; one the organiser
    changed since is kept (and named); SEQUENCE goes above `above`. Used when the exact restore meets a 412."""
    ours, before = _rewritten_values(rewritten), _rewritten_values(original)
    lines, ending = _split_lines(current)
    kept: list[str] = []
    for start, end in reversed(_components(lines)):
        component = _component_key(lines, start, end)
        props = lines[start + 1:end]
        for line in props:
            slot = (component, line.name)
            if line.name not in _REWRITTEN_PROPERTIES or slot not in before or before[slot] == ours.get(slot):
                continue
            if line.value == ours.get(slot):
                _set(line, before[slot])
            else:
                kept.append(line.name + (f"@{component}" if component else ""))
        _bump(lines, start, props, above=above)
    return Restored(b"".join(_fold(line.text, ending) if line.changed else line.raw for line in lines),
                    tuple(sorted(kept)))


_SERVER_PARAMS = re.compile(r';SCHEDULE-(?:STATUS|FORCE-SEND|AGENT)=(?:"[^"]*"|[^;:]*)', re.IGNORECASE)


def itip_request(data: bytes) -> bytes:
    """The stored object as an iTIP REQUEST (RFC 5546 §3.2.2): `METHOD:REQUEST` after `BEGIN:VCALENDAR`, the
    scheduling parameters a server keeps for itself (SCHEDULE-STATUS, -FORCE-SEND, -AGENT) removed; UID, SEQUENCE
    and everything else as stored."""
    lines, ending = _split_lines(data)
    out: list[bytes] = []
    for line in lines:
        if line.name == "METHOD":
            continue
        if line.name in ("ATTENDEE", "ORGANIZER") and _SERVER_PARAMS.search(line.params):
            line.params = _SERVER_PARAMS.sub("", line.params)
            line.text = _rebuild(line)
            line.changed = True
        out.append(_fold(line.text, ending) if line.changed else line.raw)
        if line.name == "BEGIN" and line.value.strip().upper() == "VCALENDAR":
            out.append(b"METHOD:REQUEST" + ending)
    return b"".join(out)
