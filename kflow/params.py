"""Parameter values: parsing typed values, ``today``/``yesterday``, and backfill ranges."""

from __future__ import annotations

import contextvars
import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kflow.model import ParamSpec, ParamType, ParamValue

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
MAX_RANGE = 100_000  # a typo like 1..10000000 should fail, not eat the machine
# Ranges and matrices multiply: two ranges under MAX_RANGE can still ask for billions of
# instances. Checked from the value counts before anything is expanded.
MAX_INSTANCES = 1_000_000


# What a load read from the clock ("date" for today/yesterday, "time" for now), for the
# load cache (kflow.load.cache): a graph that named today is stale tomorrow.
_clock_reads: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "kflow_clock_reads", default=None
)


@contextmanager
def watching_clock() -> Iterator[set[str]]:
    """Collect, into the set it yields, what parsing values read from the clock meanwhile."""
    reads: set[str] = set()
    token = _clock_reads.set(reads)
    try:
        yield reads
    finally:
        _clock_reads.reset(token)


def _read_clock(what: str) -> None:
    reads = _clock_reads.get()
    if reads is not None:
        reads.add(what)


class ParamValueError(ValueError):
    """A value that does not fit its parameter's type; the message says what would."""


def zone(name: str) -> dt.tzinfo:
    """The time zone ``today``/``yesterday`` are computed in; raises ParamValueError if unknown."""
    if name.upper() == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ParamValueError(
            f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')"
        ) from None


def parse_value(
    ptype: ParamType, text: str, tz: dt.tzinfo, now: dt.datetime | None = None
) -> ParamValue:
    """One typed value from its text form."""
    text = text.strip()
    now = now or dt.datetime.now(tz)
    try:
        if ptype is ParamType.STR:
            return text
        if ptype is ParamType.INT:
            return int(text)
        if ptype is ParamType.FLOAT:
            number = float(text)
            if not math.isfinite(number):  # nan never equals itself; inf is no parameter
                raise ValueError
            return number
        if ptype is ParamType.BOOL:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError
        if ptype is ParamType.DATE:
            return _parse_date(text, now)
        return _parse_datetime(text, now)
    except ValueError:
        raise ParamValueError(
            f"{text!r} is not a valid {ptype.value} ({_EXAMPLES[ptype]})"
        ) from None


_EXAMPLES = {
    ParamType.STR: "any text",
    ParamType.INT: "e.g. 42",
    ParamType.FLOAT: "a finite number, e.g. 0.5",
    ParamType.BOOL: "true or false",
    ParamType.DATE: "YYYY-MM-DD, today or yesterday",
    ParamType.DATETIME: "YYYY-MM-DDTHH:MM[:SS], or now",
}


def _parse_date(text: str, now: dt.datetime) -> dt.date:
    lowered = text.lower()
    if lowered == "today":
        _read_clock("date")
        return now.date()
    if lowered == "yesterday":
        _read_clock("date")
        return now.date() - dt.timedelta(days=1)
    return dt.date.fromisoformat(text)


def _parse_datetime(text: str, now: dt.datetime) -> dt.datetime:
    if text.lower() == "now":
        _read_clock("time")
        return now.replace(microsecond=0, tzinfo=None)
    return dt.datetime.fromisoformat(text)


def parse_values(spec: ParamSpec, text: str, tz: dt.tzinfo) -> list[ParamValue]:
    """Values from a command-line text: one value, or every value of ``a..b`` for dates and ints."""
    if ".." in text and spec.type in (ParamType.DATE, ParamType.INT):
        first_text, _, last_text = text.partition("..")
        first = parse_value(spec.type, first_text, tz)
        last = parse_value(spec.type, last_text, tz)
        return _expand_range(first, last, text)
    return [parse_value(spec.type, text, tz)]


def _expand_range(first: ParamValue, last: ParamValue, text: str) -> list[ParamValue]:
    values: list[ParamValue] = []
    if isinstance(first, dt.date) and isinstance(last, dt.date):
        count = (last - first).days + 1
        if count < 1:
            raise ParamValueError(f"empty range {text!r}: the end comes before the start")
        if count > MAX_RANGE:
            raise ParamValueError(f"range {text!r} has {count} values, more than {MAX_RANGE}")
        values.extend(first + dt.timedelta(days=i) for i in range(count))
    elif isinstance(first, int) and isinstance(last, int):
        if last < first:
            raise ParamValueError(f"empty range {text!r}: the end comes before the start")
        if last - first + 1 > MAX_RANGE:
            raise ParamValueError(f"range {text!r} has more than {MAX_RANGE} values")
        values.extend(range(first, last + 1))
    return values


def value_text(value: ParamValue) -> str:
    """The canonical text of a value, as it appears in instance ids and the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
