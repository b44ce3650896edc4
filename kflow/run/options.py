"""How a run is asked for, and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kflow.run.records import RunRecord


@dataclass(frozen=True)
class RunOptions:
    jobs: int = 1
    keep_going: bool = False
    wait_for_others: bool = True  # False: --no-wait, a lease held elsewhere ends the run (exit 3)
    kill_grace: float = 5.0  # seconds between SIGTERM and SIGKILL on interrupt
    max_retry_delay: float = 300.0
    lease_poll: float = 0.5  # how often a waiting instance looks at the other run's lease


@dataclass(frozen=True)
class RunMeta:
    """What the run record says about how the run was asked for."""

    targets: Sequence[str] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    profile: str = "default"


@dataclass
class RunResult:
    record: RunRecord
    exit_code: int
    record_location: str
