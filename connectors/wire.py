"""Reading one record off the wire without letting it stop the stage it belongs to.

Vendors' payloads are read by tolerant parsers, but a field of an unexpected JSON type (a string where Graph
sends a list, a list where Zoom sends a number, an object where Webex sends a string) still makes some line of
a parser raise. Such a record is quarantined as MALFORMED_RECORD with the exception's type and the rest of the
page goes on: `parse_record` is the one place that decides it, and every connector maps records through it.
The detail never carries the value itself (it may hold an address).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from core import Quarantined, ReasonCode

__all__ = ["MALFORMED_ERRORS", "parse_record", "record_key"]

T = TypeVar("T")
log = logging.getLogger(__name__)

# What a parser raises on a value of the wrong type or shape (never a connector or transport error).
MALFORMED_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)
_KEY_CHARS = 200


def record_key(prefix: str, identifier: object) -> str:
    """A quarantine key for a record whose id may itself be of the wrong type (`zoom:meeting:<id>`)."""
    if isinstance(identifier, str | int) and not isinstance(identifier, bool):
        text = str(identifier)
    elif identifier is None:
        text = "(no id)"
    else:
        text = f"({type(identifier).__name__} id)"
    return f"{prefix}:{text}"[:_KEY_CHARS]


def parse_record(key: Callable[[], str], parse: Callable[[], T | Quarantined]) -> T | Quarantined:
    """`parse()`, or the record quarantined as MALFORMED_RECORD when a field of it has the wrong type or shape."""
    try:
        return parse()
    except MALFORMED_ERRORS as error:
        where = _where(error)
        try:
            found = key()
        except MALFORMED_ERRORS:
            found = "(unreadable id)"
        log.info("record %s quarantined: %s%s", found, type(error).__name__, where)
        return Quarantined(ReasonCode.MALFORMED_RECORD, found,
                           detail=f"a field has an unexpected type or shape ({type(error).__name__}{where})")


def _where(error: BaseException) -> str:
    """The innermost frame of our own code that raised (function name only): enough to find the field."""
    trace = error.__traceback__
    name = ""
    while trace is not None:
        module = trace.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(("connectors.", "core.")):
            name = trace.tb_frame.f_code.co_name
        trace = trace.tb_next
    return f" in {name}" if name else ""
