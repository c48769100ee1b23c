"""One bad record never stops a stage: every field of every platform's records, given a value of every other JSON
type, maps to a record or to a quarantine entry — never to an exception that would end the page.

The records are the generated ministry's own (one of each meeting kind, a few users), so every field a real
payload has is tried, top-level and one level down (`settings.*`, `recurrence.*`, `onlineMeeting.*`…).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.graph import map_event
from connectors.graph import map_user as graph_user
from connectors.webex import map_meeting, map_person
from connectors.zoom import map_user as zoom_user
from connectors.zoom import meeting_from_zoom
from core import HostRef, LicenceSku, Meeting, Quarantined, Removed, SourceAccount

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
WRONG_VALUES: tuple[object, ...] = ("text", "", 7, -1, 2.5, True, None, [], ["x", 1], {}, {"k": [1]})
Mapper = Callable[[dict[str, Any]], object]
ADDRESS = re.compile(r"[^\s@<>()]+@[^\s@<>()]+\.[a-z]{2,}")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if not key.startswith("_")}


def _variants(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The record with one field (top level or one level down) replaced by each wrong value, or removed."""
    for name, value in record.items():
        for wrong in WRONG_VALUES:
            if type(wrong) is type(value) and wrong == value:
                continue
            changed = copy.deepcopy(record)
            changed[name] = wrong
            yield f"{name}={wrong!r}", changed
        removed = copy.deepcopy(record)
        del removed[name]
        yield f"-{name}", removed
        if isinstance(value, dict):
            for inner in value:
                for wrong in WRONG_VALUES:
                    changed = copy.deepcopy(record)
                    changed[name][inner] = wrong
                    yield f"{name}.{inner}={wrong!r}", changed
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for inner in value[0]:
                for wrong in WRONG_VALUES:
                    changed = copy.deepcopy(record)
                    changed[name][0][inner] = wrong
                    yield f"{name}[0].{inner}={wrong!r}", changed


def _samples(records: list[dict[str, Any]], *, by: str | None, limit: int = 12) -> list[dict[str, Any]]:
    """A few records, one per value of `by` (a meeting kind) when given."""
    if by is None:
        return [_public(record) for record in records[:limit]]
    seen: dict[object, dict[str, Any]] = {}
    for record in records:
        seen.setdefault(record.get(by), record)
    return [_public(record) for record in seen.values()][:limit]


def _mappers(ministry: Path) -> dict[str, tuple[Mapper, list[dict[str, Any]]]]:
    host = HostRef("host-1", "host@culture.example.gouv.fr")
    graph_plans = {"6fd2c87f-b296-42f0-b197-1e91e994b900": frozenset({"57ff2da0-773e-42df-b2af-ffb7a2317929"})}
    webex_meetings = _lines(ministry / "webex" / "meetings.jsonl")
    teams_events = _lines(ministry / "teams" / "events.jsonl")
    return {
        "zoom user": (lambda record: zoom_user(record, listed_as="active"),
                      _samples(_lines(ministry / "zoom" / "users.jsonl"), by=None)),
        "zoom meeting": (lambda record: meeting_from_zoom(record, host=host, webinar=False, now=NOW,
                                                          internal_domains=frozenset({"culture.example.gouv.fr"})),
                         _samples(_lines(ministry / "zoom" / "meetings.jsonl"), by="_kind")),
        "graph user": (lambda record: graph_user(record, graph_plans),
                       _samples(_lines(ministry / "teams" / "users.jsonl"), by=None)),
        "graph event": (lambda record: map_event(record, host=host, now=NOW,
                                                 internal_domains=frozenset({"culture.example.gouv.fr"})),
                        _samples(teams_events, by="_kind")),
        "webex person": (lambda record: map_person(record, frozenset()),
                         _samples(_lines(ministry / "webex" / "people.jsonl"), by=None)),
        "webex meeting": (lambda record: map_meeting(record, host=host, invitees=[], now=NOW),
                          _samples(webex_meetings, by="_kind")),
    }


@pytest.mark.parametrize("mapper_name", ["zoom user", "zoom meeting", "graph user", "graph event", "webex person",
                                         "webex meeting"])
def test_a_field_of_any_unexpected_type_never_raises(mapper_name: str,
                                                     contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    mapper, samples = _mappers(contract_ministry[0])[mapper_name]
    assert samples
    outcomes: dict[str, int] = {}
    tried = 0
    for sample in samples:
        for label, variant in _variants(sample):
            tried += 1
            try:
                outcome = mapper(variant)
            except Exception as error:  # the point of the test: report which field broke which mapper
                raise AssertionError(f"{mapper_name}: {label} raised {type(error).__name__}: {error}") from error
            assert outcome is None or isinstance(outcome, Meeting | SourceAccount | Quarantined | Removed
                                                 | LicenceSku), (label, outcome)
            kind = type(outcome).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if isinstance(outcome, Quarantined):
                assert outcome.reason.value and not ADDRESS.search(outcome.detail), (label, outcome)
    assert tried > 100 and outcomes.get("Quarantined", 0) > 0, outcomes
