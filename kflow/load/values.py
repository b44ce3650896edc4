"""Typed reading of document values: each check names the key and says what would be valid."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kflow.errors import DefinitionError, did_you_mean
from kflow.load.document import Document

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NO_ZERO = "leave the key out for no limit"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Kubernetes quantity grammar: a number with an optional binary or decimal suffix.
_QUANTITY = re.compile(
    r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


class Reader:
    """Reads one table of a document, remembering its key path for error messages."""

    def __init__(self, doc: Document, table: Mapping[str, Any], path: str):
        self.doc = doc
        self.table = table
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str | None, message: str, hint: str | None = None) -> DefinitionError:
        key = self.key(name) if name else self.path
        return DefinitionError(message, self.doc.location(key), hint)

    def check_keys(self, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        for name in self.table:
            if name not in allowed:
                raise self.fail(
                    name,
                    "unknown key",
                    did_you_mean(name, allowed) or f"valid keys: {', '.join(sorted(allowed))}",
                )

    def has(self, name: str) -> bool:
        return name in self.table

    def get(self, name: str, kinds: tuple[type, ...], what: str, default: Any = None) -> Any:
        if name not in self.table:
            return default
        value = self.table[name]
        # bool is an int in Python; a TOML `true` must not pass as a number.
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(name, f"expected {what}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(name, f"expected {what}, got {_describe(value)}")
        return value

    def string(self, name: str, default: str | None = None) -> str | None:
        value: str | None = self.get(name, (str,), "a string", default)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value: bool = self.get(name, (bool,), "true or false", default)
        return value

    def integer(self, name: str, default: int | None, minimum: int = 0) -> int | None:
        value: int | None = self.get(name, (int,), "an integer", default)
        if value is not None and value < minimum:
            raise self.fail(name, f"must be at least {minimum}, got {value}")
        return value

    def string_list(self, name: str) -> tuple[str, ...]:
        value = self.get(name, (list, str), "a list of strings", [])
        if isinstance(value, str):
            value = [value]
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{name}[{index}]", f"expected a string, got {_describe(item)}")
        return tuple(value)

    def table_of(self, name: str) -> dict[str, Any]:
        value: dict[str, Any] = self.get(name, (dict,), "a table", {})
        return value

    def sub(self, name: str) -> Reader:
        return Reader(self.doc, self.table_of(name), self.key(name))

    def duration(self, name: str, default: float | None, positive: bool = False) -> float | None:
        """Seconds from ``90``, ``"30m"``, ``"1h30m"``, ``"500ms"``: finite, never negative,
        and above zero when ``positive`` (a timeout of 0s would fail every attempt)."""
        if name not in self.table:
            return default
        value = self.table[name]
        seconds: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            seconds = parse_duration(value)
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            if positive and seconds == 0:
                raise self.fail(name, f"must be more than 0s, got {value!r}", _NO_ZERO)
            return seconds
        raise self.fail(
            name, f"bad duration {value!r}", "use seconds or a text like '90s', '30m', '1h30m'"
        )

    def quantity(self, name: str) -> str | None:
        if name not in self.table:
            return None
        value = self.table[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and _QUANTITY.match(value.strip()):
            return value.strip()
        raise self.fail(
            name,
            f"bad resource quantity {value!r}",
            "use a Kubernetes quantity such as '250m', '0.5', '512Mi', '2Gi'",
        )

def parse_duration(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        try:
            return float(text) if pos == 0 else None
        except ValueError:
            return None
    return total


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__
