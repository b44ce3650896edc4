"""Statuses of runs, instances and attempts: enums from the scheduler to the records.

Each member is its text (a ``str``): records on storage keep the same JSON strings, older
records read back as before, and code comparing with ``"failed"`` keeps working. Text only
where it is shown: ``str()`` and f-strings give the value on every Python.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar


class _Text(str, Enum):
    def __str__(self) -> str:  # Python 3.11 would otherwise print "Class.MEMBER"
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RunStatus(_Text):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"  # interrupted by `kflow cancel`
    HELD = "held"  # an instance another run held, with --no-wait
    ERROR = "error"
    DIED = "died"  # kflow died while it ran (found later)


class InstanceStatus(_Text):
    QUEUED = "queued"
    PREPARING = "preparing"  # lease and state mark in flight
    WAITING = "waiting"  # for another run's lease
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REUSED = "reused"  # another run built it meanwhile
    HELD = "held"
    INTERRUPTED = "interrupted"
    DIED = "died"


class AttemptStatus(_Text):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # kflow died while it ran


NOT_STARTED = (
    InstanceStatus.QUEUED,
    InstanceStatus.WAITING,
    InstanceStatus.RETRYING,
    InstanceStatus.PREPARING,
)

S = TypeVar("S", bound=_Text)


def parse_status(kind: type[S], text: str) -> S | str:
    """``text`` as a member of ``kind``; a value this kflow does not know stays text."""
    try:
        return kind(text)
    except ValueError:
        return text
