"""The department tree of a ministry (direction / sous-direction / bureau, written `DGCA/SDSPEC/B4`) and the nearest
known names of a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NO_DEPARTMENT", "DepartmentNode", "department_tree", "known_departments", "nearest_names"]

NO_DEPARTMENT = "(no department)"


@dataclass(frozen=True, slots=True)
class DepartmentNode:
    """One unit of the tree: its path, depth (0 for a direction), the persons a wave can select in it and below
    (`persons`) or directly in it (`own`), and the directory entries no wave moves (rooms, administrators)."""

    path: str
    name: str
    depth: int
    persons: int
    own: int
    excluded: int


def _units(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def department_tree(counts: Iterable[tuple[str | None, int, int]]) -> list[DepartmentNode]:
    """(department, selectable persons, excluded entries) rows → every unit and its parents, parents first, sorted
    by path; persons without a department last, under NO_DEPARTMENT."""
    persons: dict[str, int] = {}
    own: dict[str, int] = {}
    excluded: dict[str, int] = {}
    for department, selectable, left_out in counts:
        units = _units(department or "")
        if not units:
            units = [NO_DEPARTMENT]
        path = "/".join(units)
        own[path] = own.get(path, 0) + selectable
        for depth in range(1, len(units) + 1):
            prefix = "/".join(units[:depth])
            persons[prefix] = persons.get(prefix, 0) + selectable
            excluded[prefix] = excluded.get(prefix, 0) + left_out
    order = sorted(persons, key=lambda path: (path == NO_DEPARTMENT, _units(path)))
    return [DepartmentNode(path, _units(path)[-1], len(_units(path)) - 1, persons[path], own.get(path, 0),
                           excluded[path]) for path in order]


def known_departments(departments: Iterable[str | None]) -> set[str]:
    """Every name a wave may select: each department and each of its parents."""
    known: set[str] = set()
    for department in departments:
        units = _units(department or "")
        known.update("/".join(units[:depth]) for depth in range(1, len(units) + 1))
    return known


def nearest_names(name: str, known: Iterable[str], *, count: int = 3) -> list[str]:
    """The known names closest to `name` (case aside), closest first (difflib's ratio of at least 0.6)."""
    by_folded: dict[str, str] = {}
    for candidate in sorted(known):
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = name.strip().casefold()
    return [by_folded[item] for item in difflib.get_close_matches(folded, list(by_folded), n=count, cutoff=0.6)]
