"""A definition document: the TOML-shaped dict both loaders produce, plus where each key came from.

TOML files and Python files both become one ``Document`` (``project``, ``params``,
``defaults``, ``profiles``, ``tasks``), so a single validator builds the model and
both forms behave the same by construction.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kflow.errors import DefinitionError, Location

SECTIONS = ("project", "params", "defaults", "profiles", "tasks")


@dataclass
class Source:
    """One definition file and how to find the line of a key path inside it."""

    path: Path
    display: str
    text: str | None = None  # TOML text, for key → line lookups
    fixed_line: int | None = None  # Python definitions: the line of the call

    def location(self, key: str | None) -> Location:
        line = self.fixed_line if self.text is None else toml_line_of(self.text, key or "")
        return Location(self.display, key, line)


@dataclass
class Document:
    data: dict[str, Any] = field(default_factory=dict)
    # key prefix ("tasks.clean") → the file that defined it; "" is the main file
    sources: dict[str, Source] = field(default_factory=dict)

    def location(self, key: str | None) -> Location:
        """Where ``key`` (a dotted path such as ``tasks.clean.command``) was written."""
        key = key or ""
        best = ""
        for prefix in self.sources:
            if (key == prefix or key.startswith(prefix + ".")) and len(prefix) >= len(best):
                best = prefix
        return self.sources[best].location(key or None)

    def merge(self, other: Document) -> None:
        """Add another file's definitions; a name defined twice is an error naming both places."""
        for section, entries in other.data.items():
            mine = self.data.setdefault(section, {})
            if section == "project":
                raise DefinitionError(
                    "a Python file included from kflow.toml cannot set [project]",
                    other.location("project"),
                )
            for name, value in entries.items():
                key = f"{section}.{name}"
                if name in mine:
                    raise DefinitionError(
                        f"'{key}' is defined twice (first at {self.location(key)})",
                        other.location(key),
                    )
                mine[name] = value
        for prefix, source in other.sources.items():
            if prefix:
                self.sources[prefix] = source


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", text)
    return [p.strip("\"'") for p in parts]


def toml_line_of(text: str, key: str) -> int | None:
    """Best-effort line number (1-based) of a dotted key path in TOML text.

    Finds the deepest table header that is a prefix of the key, then the key's
    assignment inside it; falls back to the header's own line.
    """
    want = [re.sub(r"\[\d+\]$", "", part) for part in key.split(".")] if key else []
    best_line: int | None = None
    best_depth = -1
    for number, full in _key_lines(text):
        # The deepest definition on the key's path wins (a key, else its table); a table
        # below the key (``[taks.x]`` for ``taks``) places a key that has no line of its own.
        depth = min(len(full), len(want))
        if full[:depth] == want[:depth] and depth > best_depth:
            best_line, best_depth = number, depth
    return best_line


@functools.lru_cache(maxsize=32)
def _key_lines(text: str) -> tuple[tuple[int, list[str]], ...]:
    """Each header and assignment line of TOML text with the full key path it defines.

    Every task and setting asks for its line when loaded: the text is scanned once.
    """
    found: list[tuple[int, list[str]]] = []
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _split_dotted(header.group(1))
            found.append((number, current))
            continue
        assigned = _KEY.match(line)
        if assigned:
            found.append((number, current + _split_dotted(assigned.group(1))))
    return tuple(found)
