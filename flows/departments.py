"""The ministry's department tree with head counts, from the person table (what `wave plan --department` selects).

No Prefect here: one grouped query, answered in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from core.departments import NO_DEPARTMENT, DepartmentNode, department_tree
from db.waves import WaveRepository
from flows.runtime import transaction


def departments(database_url: str, tenant_id: str) -> list[DepartmentNode]:
    """Every unit (direction, sous-direction, bureau…) with its persons, parents first."""
    with transaction(database_url) as session:
        return department_tree(WaveRepository(session, tenant_id).department_heads())


def departments_json(tenant_id: str, nodes: Sequence[DepartmentNode]) -> dict[str, Any]:
    return {"tenant": tenant_id, "persons": sum(node.persons for node in nodes if node.depth == 0),
            "excluded": sum(node.excluded for node in nodes if node.depth == 0),
            "departments": [asdict(node) for node in nodes]}


def render_departments(tenant_id: str, nodes: Sequence[DepartmentNode], *, depth: int) -> str:
    """The tree indented by level, down to `depth` levels (deeper units are counted on their parent's line)."""
    roots = [node for node in nodes if node.depth == 0]
    persons, excluded = sum(node.persons for node in roots), sum(node.excluded for node in roots)
    directions = sum(1 for node in roots if node.path != NO_DEPARTMENT)
    head = (f"tenant {tenant_id}: {persons:,} persons a wave can select in {directions:,} directions"
            + (f" ({excluded:,} directory entries no wave moves — rooms, shared mailboxes, administrators — are not "
               "counted)" if excluded else ""))
    if not nodes:
        return f"tenant {tenant_id}: no person yet (bascule directory load, then bascule identities map)"
    below: dict[str, int] = {}
    for node in nodes:
        if node.depth >= depth:
            parent = "/".join(node.path.split("/")[:depth])
            if node.path != parent:
                below[parent] = below.get(parent, 0) + 1
    width = max(len("DEPARTMENT"), *(len("  " * node.depth + node.name) for node in nodes if node.depth < depth))
    lines = [head, f"{'DEPARTMENT':<{width}}  {'PERSONS':>9}"]
    for node in nodes:
        if node.depth >= depth:
            continue
        hidden = below.get(node.path, 0)
        note = f"  (+{hidden:,} sub-units: --depth {depth + 1})" if hidden else ""
        lines.append(f"{'  ' * node.depth + node.name:<{width}}  {node.persons:>9,}{note}")
    lines.append("Select one with: bascule wave plan --department PATH (e.g. "
                 f"{next((n.path for n in nodes if n.depth == 1), roots[0].path)}); its sub-units come along")
    return "\n".join(lines)
