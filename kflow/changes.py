"""What changed between a record's fingerprint parts and today's: one line, or a full diff.

The one line (``kflow plan``) abbreviates each changed part around its first difference,
so that before and after never read the same; the diff (``kflow plan --why``) lists every
argv item removed and added, every variable or parameter changed, in full.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

# How much of a changed part the one-line plan shows, and how much of it before the change.
_WIDTH = 72
_LEAD = 24


def changed_names(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The parts that differ, in the order ``now`` lists them (then parts only ``before`` has)."""
    names = [name for name in now if now.get(name) != before.get(name)]
    return names + [name for name in before if name not in now and before[name] is not None]


def change_line(before: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """``command: …2026-11-01.csv … → …2026-11-02.csv …; image: a → b``: every changed part,
    each shortened around its first difference when long."""
    parts = []
    for name in changed_names(before, now):
        old, new = _abbreviated(_text(before.get(name)), _text(now.get(name)))
        parts.append(f"{name}: {old} → {new}")
    return "; ".join(parts) or "the fingerprint changed"


def change_diff(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Every change in full: per part a ``NAME:`` line, then ``- old`` / ``+ new`` lines."""
    lines: list[str] = []
    for name in changed_names(before, now):
        lines.append(f"{name}:")
        lines.extend(f"  {line}" for line in value_diff(before.get(name), now.get(name)))
    return lines


def value_diff(old: Any, new: Any) -> list[str]:
    """``-``/``+`` lines: list items removed and added, mapping entries changed, or the value."""
    if _is_list(new) and (old is None or _is_list(old)):
        return _list_diff(old or [], new)
    if isinstance(new, Mapping) and isinstance(old, Mapping | None):
        return _mapping_diff(old or {}, new)
    return [f"- {_text(old)}", f"+ {_text(new)}"]


def _list_diff(old: Sequence[Any], new: Sequence[Any]) -> list[str]:
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=list(old), b=list(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        lines.extend(f"- {_item(item)}" for item in old[i1:i2])
        lines.extend(f"+ {_item(item)}" for item in new[j1:j2])
    return lines


def _mapping_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) == new.get(key):
            continue
        if key in old:
            lines.append(f"- {key}={_item(old[key])}")
        if key in new:
            lines.append(f"+ {key}={_item(new[key])}")
    return lines


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def _item(value: Any) -> str:
    """One argv item or value as a user would type it: quoted only where it could mislead."""
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else json.dumps(value)
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if _is_list(value):
        return " ".join(_item(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_item(v)}" for k, v in value.items()) or "(none)"
    return str(value)


def _abbreviated(old: str, new: str) -> tuple[str, str]:
    """Both texts whole when short; else each cut to the same window around the first
    difference, so that the two never print the same."""
    if old == new:  # equal as text, different as values (1 and "1"): show the types
        return repr(old), repr(new)
    if len(old) <= _WIDTH and len(new) <= _WIDTH:
        return old, new
    first = next(
        (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
        min(len(old), len(new)),
    )
    start = max(0, first - _LEAD)
    space = old.find(" ", start, first)  # begin at an item's start where one is near
    if space != -1:
        start = space + 1
    return _window(old, start), _window(new, start)


def _window(text: str, start: int) -> str:
    end = start + _WIDTH
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
