"""Graph arithmetic for the page: task layers for the drawing, and the critical path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def task_layers(tasks: list[str], edges: Iterable[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Each task's (layer, row): layer = the longest chain of requirements before it, rows
    in first-seen order within a layer. Tasks on a cycle (impossible in a valid graph) stay
    in layer 0 rather than loop."""
    before: dict[str, set[str]] = {t: set() for t in tasks}
    for source, target in edges:
        if source in before and target in before and source != target:
            before[target].add(source)
    layer: dict[str, int] = {}
    for _ in range(len(tasks) + 1):  # relax until stable: tasks are few (hundreds at most)
        changed = False
        for task in tasks:
            depth = max((layer.get(s, 0) + 1 for s in before[task]), default=0)
            depth = min(depth, len(tasks))
            if layer.get(task) != depth:
                layer[task], changed = depth, True
        if not changed:
            break
    rows: dict[int, int] = {}
    out = {}
    for task in tasks:
        n = layer[task]
        out[task] = (n, rows.get(n, 0))
        rows[n] = rows.get(n, 0) + 1
    return out


def _ended(inst: dict[str, Any]) -> float | None:
    ends = [a["ended"] for a in inst["attempts"] if a["ended"] is not None]
    return max(ends) if ends else None


def critical_path(instances: list[dict[str, Any]]) -> list[str]:
    """The chain that decided when the run ended: from the instance that ended last, back
    through the requirement that ended last before it, to one with none. First to last."""
    ends = {i["id"]: e for i in instances if (e := _ended(i)) is not None}
    if not ends:
        return []
    requires = {i["id"]: i["requires"] for i in instances}
    current: str | None = max(ends, key=lambda name: ends[name])
    path: list[str] = []
    seen: set[str] = set()
    while current is not None and current not in seen:
        path.append(current)
        seen.add(current)
        timed = [r for r in requires.get(current, []) if r in ends]
        current = max(timed, key=lambda name: ends[name]) if timed else None
    return path[::-1]
