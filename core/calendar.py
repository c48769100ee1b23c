"""Rewriting a Teams event's body for Visio: find the Teams online-meeting block, put a Visio block in its place.

The block is found by the event's join URL (raw, or HTML-escaped: `&` as `&amp;`), then delimited:

- by the nearest underscore separators around the link (Outlook's "modern" `<div><span>____</span></div>` lines and
  the "legacy" `<div>____</div>` lines): the span runs from the start of the separator before the link to the end
  of the separator after it, both separators included;
- without separators around it (an organiser deleted them by hand), by the smallest `<p>`/`<div>` element that
  holds the link, provided that element holds no other `<p>`/`<div>` (a link loose in a container is refused: the
  rest of the container is the organiser's text).

Every byte outside that span is kept (CRLFs, entities, Word markup); the Visio block carries the same separators so
it can be found again. When the URL is nowhere, appears in two different blocks, or also outside the block, the
body is refused (BodyRefused) for the quarantine: never a guess.

Re-running is idempotent: a body that no longer holds the join URL but already holds exactly the Visio block asked
for is returned unchanged (the caller then sees nothing to send); any other body without the join URL is refused.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise

from core.records import JsonValue

__all__ = [
    "BlockRefusal",
    "BodyRefused",
    "CalendarEvent",
    "rewrite_event",
    "rewrite_teams_block",
    "shows_visio",
    "visio_block",
    "visio_location",
]

_VISIO_HEADING = "Réunion Visio"
_VISIO_LOCATION_NAME = "Visio"
# The separator Teams' modern invitations use: the Visio block reuses it so that the block reads like the one it
# replaces and is found again by the same rule.
_SEPARATOR_HTML = ('<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36">'
                   + "_" * 80 + "</span></div>")
_FILLER = r"(?:\s|&nbsp;|<(?:span|font|o:p|b|strong)\b[^<>]*>|</(?:span|font|o:p|b|strong)\s*>)*"
# A line of at least 20 underscores alone in its <div>/<p>, possibly inside spans (Word adds <o:p>).
_SEPARATOR = re.compile(rf"<(div|p)\b[^<>]*>{_FILLER}_{{20,}}{_FILLER}</\1\s*>", re.IGNORECASE)
_BLOCK_TAG = re.compile(r"<(/?)(div|p)\b([^<>]*)>", re.IGNORECASE)
# What may touch a URL in HTML without being part of it (an attribute quote, a tag, a space, a bracket).
_BEFORE_URL = frozenset("\"'>([ \t\r\n\f")
_AFTER_URL = frozenset("\"'<)] \t\r\n\f")


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """An organiser's calendar event as bascule reads and rewrites it."""

    mailbox: str                      # Graph user id whose calendar holds it
    event_id: str
    is_organizer: bool
    event_type: str                   # "seriesMaster", "singleInstance", ...
    body_content_type: str            # "html" or "text"
    body: str = field(repr=False)
    location: Mapping[str, JsonValue] = field(hash=False)      # the event's `location` object as Graph returned it
    locations: tuple[Mapping[str, JsonValue], ...] = field(hash=False)
    join_url: str | None = field(repr=False)                   # onlineMeeting.joinUrl
    change_key: str | None = None


class BlockRefusal(StrEnum):
    """Why a body cannot be rewritten safely (quarantine, never guess)."""

    NOT_HTML = "NOT_HTML"
    NOT_ORGANIZER = "NOT_ORGANIZER"
    BLOCK_NOT_FOUND = "TEAMS_BLOCK_NOT_FOUND"
    AMBIGUOUS = "TEAMS_BLOCK_AMBIGUOUS"


@dataclass(frozen=True, slots=True)
class BodyRefused:
    """A body left alone, with the reason code the quarantine shows."""

    reason: BlockRefusal
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Element:
    start: int          # the `<` of the opening tag
    inner: int          # just after the opening tag
    close: int          # the `<` of the closing tag
    end: int            # just after the closing tag


def visio_block(visio_url: str, *, phone: str | None = None, pin: str | None = None) -> str:
    """The HTML block put in place of the Teams block: heading, link, dial-in line, between two separators.

    The dial-in line needs both `phone` and `pin` (a Visio room may have a PIN and no number yet): with only one of
    them there is no line.
    """
    if not visio_url or any(char.isspace() for char in visio_url):
        raise ValueError("visio_url must be a non-empty URL without spaces")
    link = html.escape(visio_url, quote=True)
    lines = [
        _SEPARATOR_HTML,
        '<div lang="fr-FR" style="color:#252424;font-family:Marianne,Arial,sans-serif">',
        f'<div style="margin-top:24px;margin-bottom:20px"><span style="font-size:24px">{_VISIO_HEADING}</span></div>',
        f'<div style="margin-bottom:20px"><span style="font-size:14px">Rejoindre : </span><a style="font-size:14px"'
        f' href="{link}" target="_blank" rel="noreferrer noopener">{link}</a></div>',
    ]
    if phone and pin:
        lines.append(f'<div style="margin-bottom:20px"><span style="font-size:14px">Par téléphone : '
                     f"{html.escape(phone)} puis le code {html.escape(pin)}</span></div>")
    lines += ['<div style="margin-bottom:24px"><span style="font-size:12px;color:#616161">Visio, le service de'
              " visioconférence de l'État</span></div>", "</div>", _SEPARATOR_HTML]
    return "\r\n".join(lines)


def visio_location(visio_url: str) -> dict[str, JsonValue]:
    """The event location pointing at the Visio room."""
    return {"displayName": _VISIO_LOCATION_NAME, "locationUri": visio_url}


def rewrite_teams_block(body_html: str, *, join_url: str, visio_url: str, phone: str | None = None,
                        pin: str | None = None) -> str | BodyRefused:
    """The body with its one Teams block replaced by the Visio block, every other byte unchanged; or a refusal."""
    replacement = visio_block(visio_url, phone=phone, pin=pin)
    if not join_url:
        return BodyRefused(BlockRefusal.BLOCK_NOT_FOUND, "the event has no join URL")
    occurrences = _occurrences(body_html, join_url)
    if not occurrences:
        if replacement in body_html:
            return body_html
        already = _has_visio_block(body_html, None)
        return BodyRefused(BlockRefusal.BLOCK_NOT_FOUND, "the body already shows another Visio block" if already
                           else "the join URL is not in the body")
    separators = [(m.start(), m.end()) for m in _SEPARATOR.finditer(body_html)]
    elements: list[_Element] | None = None
    spans: set[tuple[int, int]] = set()
    loose = 0
    for start, end in occurrences:
        span = _between_separators(separators, start, end)
        if span is None:
            if elements is None:
                elements = _elements(body_html)
            span = _enclosing_leaf(elements, start, end)
        if span is None:
            loose += 1
        else:
            spans.add(span)
    if len(spans) > 1:
        return BodyRefused(BlockRefusal.AMBIGUOUS, f"the join URL is in {len(spans)} different blocks")
    if not spans:
        return BodyRefused(BlockRefusal.BLOCK_NOT_FOUND, "the join URL is neither between separators nor in an"
                           " element of its own")
    if loose:
        return BodyRefused(BlockRefusal.AMBIGUOUS, "the join URL also appears outside its block")
    start, end = spans.pop()
    return body_html[:start] + replacement + body_html[end:]


def shows_visio(event: CalendarEvent, visio_url: str) -> bool:
    """The event shows Visio: a Visio block linking `visio_url`, no Teams link left in the body, the Visio location."""
    if event.body_content_type.lower() != "html" or not _has_visio_block(event.body, visio_url):
        return False
    if event.join_url and _occurrences(event.body, event.join_url):
        return False
    return event.location.get("locationUri") == visio_url


def rewrite_event(event: CalendarEvent, *, visio_url: str, phone: str | None = None,
                  pin: str | None = None) -> tuple[str, dict[str, JsonValue]] | BodyRefused:
    """(new body, new location) for an organiser's HTML event whose body carries its join URL; refusals otherwise."""
    if not event.is_organizer:
        return BodyRefused(BlockRefusal.NOT_ORGANIZER, "only the organiser's copy may be rewritten")
    if event.body_content_type.lower() != "html":
        return BodyRefused(BlockRefusal.NOT_HTML, f"the body is {event.body_content_type or 'untyped'}")
    if not event.join_url:
        return BodyRefused(BlockRefusal.BLOCK_NOT_FOUND, "the event has no onlineMeeting.joinUrl")
    body = rewrite_teams_block(event.body, join_url=event.join_url, visio_url=visio_url, phone=phone, pin=pin)
    if isinstance(body, BodyRefused):
        return body
    return body, visio_location(visio_url)


# ----------------------------------------------------------------------------------------------- locating

def _forms(url: str) -> tuple[str, ...]:
    """A URL as HTML may carry it: raw, `&` as `&amp;`, fully escaped."""
    return tuple(dict.fromkeys((url, url.replace("&", "&amp;"), html.escape(url, quote=True))))


def _occurrences(body: str, url: str) -> list[tuple[int, int]]:
    """Where the URL stands on its own in the body (not inside a longer URL), in any of its HTML forms."""
    found: set[tuple[int, int]] = set()
    for form in _forms(url):
        position = body.find(form)
        while position != -1:
            end = position + len(form)
            if ((position == 0 or body[position - 1] in _BEFORE_URL)
                    and (end == len(body) or body[end] in _AFTER_URL)):
                found.add((position, end))
            position = body.find(form, position + 1)
    return sorted(found)


def _between_separators(separators: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    before = [sep for sep in separators if sep[1] <= start]
    after = [sep for sep in separators if sep[0] >= end]
    if not before or not after:
        return None
    return before[-1][0], after[0][1]


def _elements(body: str) -> list[_Element]:
    """The <p> and <div> elements whose opening and closing tags pair up (an unclosed one is no element)."""
    elements: list[_Element] = []
    stack: list[tuple[str, int, int]] = []   # (name, start, inner)
    for match in _BLOCK_TAG.finditer(body):
        closing, name, attributes = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if not closing:
            if not attributes.rstrip().endswith("/"):
                stack.append((name, match.start(), match.end()))
            continue
        depth = next((i for i in range(len(stack) - 1, -1, -1) if stack[i][0] == name), None)
        if depth is None:
            continue
        _name, start, inner = stack[depth]
        del stack[depth:]   # elements opened inside and never closed are dropped with it
        elements.append(_Element(start, inner, match.start(), match.end()))
    return elements


def _enclosing_leaf(elements: list[_Element], start: int, end: int) -> tuple[int, int] | None:
    holding = [e for e in elements if e.inner <= start and end <= e.close]
    if not holding:
        return None
    smallest = min(holding, key=lambda e: e.end - e.start)
    if any(smallest.inner <= e.start and e.end <= smallest.close for e in elements):
        return None
    return smallest.start, smallest.end


def _has_visio_block(body: str, visio_url: str | None) -> bool:
    """A separator-delimited block carries the Visio heading (and a link to `visio_url`, when given)."""
    separators = [(m.start(), m.end()) for m in _SEPARATOR.finditer(body)]
    for (_start, first_end), (second_start, _end) in pairwise(separators):
        inside = body[first_end:second_start]
        if _VISIO_HEADING in inside and (visio_url is None or _occurrences(inside, visio_url)):
            return True
    return False
