"""A definition document: the TOML-shaped dict both loaders produce, plus where each key came from.

TOML files and Python files both become one ``Document`` (``project``, ``params``,
``defaults``, ``profiles``, ``tasks``), so a single validator builds the model and
both forms behave the same by construction.
"""

from __future__ import annotations

import copyreg
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
        if self.text is None:
            return Location(self.display, key, self.fixed_line)
        return TomlLocation(self.display, key, text=self.text)


class TomlLocation(Location):
    """A key's place in TOML text, its line found when first asked for (by an error message
    or a listing), not for every task and setting that is fine: finding it indexes the file."""

    def __init__(
        self, file: str, key: str | None = None, line: int | None = None, text: str | None = None
    ):
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "_line", line)
        object.__setattr__(self, "_text", None if line is not None else text)

    @property
    def line(self) -> int | None:
        text = self.__dict__["_text"]
        if text is not None:
            object.__setattr__(self, "_line", toml_line_of(text, self.key or ""))
            object.__setattr__(self, "_text", None)
        line: int | None = self.__dict__["_line"]
        return line

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Location):
            return NotImplemented
        return (self.file, self.key, self.line) == (other.file, other.key, other.line)

    def __hash__(self) -> int:
        return hash((self.file, self.key, self.line))

    def __reduce__(self) -> tuple[Any, ...]:
        # In the load cache: rebuilt by pickle's NEWOBJ and BUILD (no Python call per
        # location), one copy of the text (pickle writes a str object once), and the line
        # still found only when asked for.
        return (copyreg.__newobj__, (TomlLocation,), dict(self.__dict__))  # type: ignore[attr-defined]


@dataclass
class Document:
    data: dict[str, Any] = field(default_factory=dict)
    # key prefix ("tasks.clean") → the file that defined it; "" is the main file
    sources: dict[str, Source] = field(default_factory=dict)

    def location(self, key: str | None) -> Location:
        """Where ``key`` (a dotted path such as ``tasks.clean.command``) was written."""
        key = key or ""
        # The longest prefix that names a source, tried from the key itself upwards: a
        # lookup per dot, not a scan of every task's source (kflow.py files have one each).
        prefix = key
        while prefix and prefix not in self.sources:
            prefix = prefix.rpartition(".")[0]
        return self.sources[prefix].location(key or None)

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
                if key not in other.sources and "" in other.sources:
                    # a TOML file's keys: found in that file, not in the one including it
                    self.sources[key] = other.sources[""]
        for prefix, source in other.sources.items():
            if prefix:
                self.sources[prefix] = source


_INDEX = re.compile(r"\[\d+\]$")  # "requires[0]": the table "requires" holds the line
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", text)
    return [p.strip("\"'") for p in parts]


def toml_line_of(text: str, key: str) -> int | None:
    """Best-effort line number (1-based) of a dotted key path in TOML text.

    The deepest definition on the key's path wins: the first line defining the key or
    something below it (``[taks.x]`` places ``taks``, which has no line of its own), else
    the first line defining the nearest table above it. Lookups are by key path in an
    index built once per text, so asking for every task's line stays linear.
    """
    parts = key.split(".") if key else []
    want = tuple(_INDEX.sub("", part) if part.endswith("]") else part for part in parts)
    index = _key_index(text)
    if want in index.at_or_below:
        return index.at_or_below[want]
    for depth in range(len(want) - 1, 0, -1):
        line = index.exact.get(want[:depth])
        if line is not None:
            return line
    return None


@dataclass(frozen=True)
class _KeyIndex:
    exact: dict[tuple[str, ...], int]  # key path → first line that defines exactly it
    at_or_below: dict[tuple[str, ...], int]  # key path → first line defining it or below it


@functools.lru_cache(maxsize=32)
def _key_index(text: str) -> _KeyIndex:
    """Each header and assignment line of TOML text, indexed by the full key path it defines.

    Every task and setting may ask for its line when loaded: the text is scanned once.
    """
    exact: dict[tuple[str, ...], int] = {}
    below: dict[tuple[str, ...], int] = {}
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _split_dotted(header.group(1))
            full = tuple(current)
        else:
            assigned = _KEY.match(line)
            if not assigned:
                continue
            full = tuple(current + _split_dotted(assigned.group(1)))
        exact.setdefault(full, number)
        for depth in range(len(full) + 1):
            below.setdefault(full[:depth], number)
    return _KeyIndex(exact, below)
