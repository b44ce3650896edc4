"""The CronJob's schedule and time zone, checked as the Kubernetes controller reads them.

Five fields (minute hour day-of-month month day-of-week) or a macro such as
``@daily``; ``CRON_TZ=``/``TZ=`` prefixes are rejected (the API server refuses them
since 1.29: ``timeZone`` says it). The time zone must be an IANA name the zoneinfo
database knows and the API server accepts.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import zoneinfo
from dataclasses import dataclass

from kflow.errors import UsageError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# A schedule that fires on no day in this many years never fires (as "0 2 30 2 *", February
# 30); eight years hold two leap days but for 2097-2103.
NEVER_YEARS = 8
# (name, lowest, highest, names for lowest.. onwards)
FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


@dataclass(frozen=True)
class Schedule:
    expression: str  # as given (macros kept: the controller knows them)
    fields: tuple[frozenset[int], ...]  # minute, hour, day, month, weekday (0 = Sunday)
    any_day: bool  # day of month is "*"
    any_weekday: bool

    def fires(self, when: dt.datetime) -> bool:
        minute, hour, day, month, weekday = self.fields
        if when.minute not in minute or when.hour not in hour or when.month not in month:
            return False
        on_day = when.day in day
        on_weekday = (when.isoweekday() % 7) in weekday
        if self.any_day or self.any_weekday:  # cron: both restricted means either one
            return on_day and on_weekday
        return on_day or on_weekday

    def fires_on(self, day: dt.date) -> bool:
        """Whether the schedule fires at some time of ``day`` (its minute and hour fields
        always hold a value: only the day, month and weekday can rule a day out)."""
        if day.month not in self.fields[3]:
            return False
        on_day = day.day in self.fields[2]
        on_weekday = (day.isoweekday() % 7) in self.fields[4]
        if self.any_day or self.any_weekday:
            return on_day and on_weekday
        return on_day or on_weekday

    def next_day(self, start: dt.date, years: int = NEVER_YEARS) -> dt.date | None:
        """The first day from ``start`` on which it fires, within ``years``; None: never."""
        for days in range(years * 366):
            day = start + dt.timedelta(days=days)
            if self.fires_on(day):
                return day
        return None

    def shortest_interval(self) -> int:
        """Seconds between the two closest runs over a leap year (for deadlines)."""
        start = dt.datetime(2028, 1, 1)
        previous: dt.datetime | None = None
        shortest = 366 * 86400
        minutes, hours = sorted(self.fields[0]), sorted(self.fields[1])
        for days in range(366 + 31):
            day = start + dt.timedelta(days=days)
            if day.month not in self.fields[3]:
                continue
            for hour in hours:
                for minute in minutes:
                    when = day.replace(hour=hour, minute=minute)
                    if not self.fires(when):
                        continue
                    if previous is not None:
                        shortest = min(shortest, int((when - previous).total_seconds()))
                        if shortest <= 60:
                            return 60
                    previous = when
        return shortest

    def longest_interval(self) -> int:
        """Seconds of the longest gap between two runs over two years (for the Job's
        deadline: an irregular schedule, as ``0,1 2 * * *``, waits a day after its second
        tick, not a minute). A schedule firing at most once in that window: two years."""
        times = sorted(h * 3600 + m * 60 for h in self.fields[1] for m in self.fields[0])
        longest = max((b - a for a, b in itertools.pairwise(times)), default=0)
        start = dt.date(2028, 1, 1)
        window = 2 * 366 + 31
        previous: dt.date | None = None
        for days in range(window):  # the times of day are the same on every day it fires
            day = start + dt.timedelta(days=days)
            if not self.fires_on(day):
                continue
            if previous is not None:
                gap = (day - previous).days * 86400 + times[0] - times[-1]
                longest = max(longest, gap)
            previous = day
        if previous is None or longest == 0:
            return window * 86400
        return longest


def _bad(expression: str, why: str) -> UsageError:
    return UsageError(
        f"--schedule {expression!r}: {why}",
        hint="five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *', "
        "or @hourly, @daily, @weekly, @monthly, @yearly",
    )


def _value(text: str, field: tuple[str, int, int, list[str]], expression: str) -> int:
    name, low, high, names = field
    if text.lower() in names:
        return names.index(text.lower()) + (low if names is MONTHS else 0)
    if not text.isdigit():
        raise _bad(expression, f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise _bad(expression, f"{name}: {value} is out of range {low}-{high}")
    return value


def _field(text: str, field: tuple[str, int, int, list[str]], expression: str) -> set[int]:
    name, low, high, _ = field
    values: set[int] = set()
    for item in text.split(","):
        part, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _bad(expression, f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            a, _, b = part.partition("-")
            first, last = _value(a, field, expression), _value(b, field, expression)
            if first > last:
                raise _bad(expression, f"{name}: range {part!r} runs backwards")
        else:
            first = _value(part, field, expression)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


def parse_schedule(expression: str, today: dt.date | None = None) -> Schedule:
    """The schedule, or a UsageError (exit 2) saying which field is wrong, or that it never
    fires (within ``NEVER_YEARS`` of ``today``)."""
    text = " ".join(expression.split())
    if text.upper().startswith(("CRON_TZ=", "TZ=")):
        raise UsageError(
            f"--schedule {expression!r}: a time zone in the schedule is not supported "
            "by Kubernetes",
            hint="give it with --timezone",
        )
    five = MACROS.get(text.lower(), text)
    if five.startswith("@"):
        raise _bad(expression, f"unknown macro {text!r}")
    parts = five.split(" ")
    if len(parts) != 5:
        raise _bad(expression, f"{len(parts)} fields, expected 5")
    fields = [_field(part, spec, expression) for part, spec in zip(parts, FIELDS, strict=True)]
    weekday = frozenset(d % 7 for d in fields[4])  # 7 is Sunday too
    schedule = Schedule(
        expression=text,
        fields=(*(frozenset(f) for f in fields[:4]), weekday),
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
    # The controller would accept it and never start a Job: a silent no-op is worse.
    if schedule.next_day(today or dt.date.today()) is None:
        raise UsageError(
            f"--schedule {expression!r} never fires: no date in the next {NEVER_YEARS} "
            "years has its day of month in its months",
            hint="check the day-of-month and month fields (February has 28 or 29 days)",
        )
    return schedule


# Names of the zoneinfo folder that are files, not zones: the host's own zone and the
# POSIX default rules (links), and the trees of leap-second and POSIX variants. The API
# server refuses them ("Local" by name; the rest are not in Go's embedded database).
NOT_ZONES = frozenset({"local", "localtime", "posixrules"})
NOT_ZONE_TREES = frozenset({"right", "posix"})
# What the API server allows in each part of timeZone (pkg/apis/batch/validation).
_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


@functools.cache
def _iana_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: str) -> str:
    """An IANA time zone name the API server accepts (the CronJob's ``timeZone``), or a
    UsageError: not a file of the zoneinfo folder (``localtime``, ``right/UTC``), nor a
    path, nor a name it spells differently."""
    parts = name.split("/")
    if name.lower() in NOT_ZONES or parts[0].lower() in NOT_ZONE_TREES:
        raise UsageError(
            f"--timezone {name!r}: names the host's zone or a file of the zoneinfo folder, "
            "not an IANA time zone (the API server refuses it)",
            hint="name the zone itself, e.g. Etc/UTC, Europe/Berlin, America/New_York",
        )
    bad_part = any(
        p in (".", "..") or p.startswith("-") or not _ZONE_PART.fullmatch(p) for p in parts
    )
    if bad_part or name not in _iana_names():
        raise UsageError(
            f"--timezone {name!r}: not a time zone the IANA database knows",
            hint="e.g. Etc/UTC, Europe/Berlin, America/New_York",
        )
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--timezone {name!r}: not a time zone the IANA database knows",
            hint="e.g. Etc/UTC, Europe/Berlin, America/New_York",
        ) from None
    return name
