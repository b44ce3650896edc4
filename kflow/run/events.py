"""What the runner tells the outside world: typed events, one per thing that happened.

The runner never prints. The CLI turns these into a live view, plain lines or
JSON (``Event.to_dict``); tests read them directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` names it in JSON output."""

    kind = "event"
    at: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind = "run_started"
    run_id: str
    to_run: list[str]
    jobs: int
    executor: str


@dataclass(frozen=True)
class EnvNotPassed(Event):
    """Once per run: the executor cannot give these tasks some of their environment (the local
    executor has no Secrets or ConfigMaps), so they run without it. Task → what is missing."""

    kind = "env_not_passed"
    executor: str
    tasks: dict[str, list[str]]


@dataclass(frozen=True)
class AttemptStarted(Event):
    kind = "started"
    instance: str
    attempt: int
    reason: str
    where: str = ""


@dataclass(frozen=True)
class InstanceSucceeded(Event):
    kind = "succeeded"
    instance: str
    attempt: int
    duration: float


@dataclass(frozen=True)
class AttemptFailed(Event):
    """An attempt failed and another one will follow after ``retry_in`` seconds."""

    kind = "retrying"
    instance: str
    attempt: int
    reason: str
    retry_in: float


@dataclass(frozen=True)
class InstanceFailed(Event):
    """The instance failed for good (its last attempt failed, or it could not start)."""

    kind = "failed"
    instance: str
    attempt: int
    reason: str
    log_tail: str = ""
    log: str = ""  # where the whole log is stored


@dataclass(frozen=True)
class InstanceSkipped(Event):
    kind = "skipped"
    instance: str
    reason: str


@dataclass(frozen=True)
class WaitingForOtherRun(Event):
    """Another run holds this instance's lease; we wait for its result."""

    kind = "waiting"
    instance: str
    holder: str


@dataclass(frozen=True)
class InstanceReused(Event):
    """Another run built this instance while we waited; its result is ours now."""

    kind = "reused"
    instance: str
    holder: str


@dataclass(frozen=True)
class LeaseLost(Event):
    """We could not renew a running instance's lease in time and another run took it over:
    our attempt is stopped (its outputs left alone, they are the other run's now) and we wait."""

    kind = "lease_lost"
    instance: str


@dataclass(frozen=True)
class HeldByOtherRun(Event):
    """Another run holds the instance and ``--no-wait`` was given."""

    kind = "held"
    instance: str
    holder: str


@dataclass(frozen=True)
class Interrupting(Event):
    """A stop was asked for: no new starts, running attempts are being terminated."""

    kind = "interrupting"
    running: list[str]


@dataclass(frozen=True)
class RunFinished(Event):
    kind = "run_finished"
    run_id: str
    status: str  # succeeded | failed | interrupted | held
    exit_code: int
    succeeded: int
    failed: int
    skipped: int
    reused: int
    duration: float
    record: str


EventSink = Callable[[Event], None]
