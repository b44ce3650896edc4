"""The one interface between the runner and whatever runs an attempt (a process, a pod…).

The runner never asks which executor it holds. It submits attempts, then asks
for state changes (one call that blocks briefly and returns every change since
the last call: a queue of process exits locally, one shared watch on a cluster),
fetches an attempt's log once it has finished, cancels attempts on interrupt,
and may adopt an attempt a previous kflow process left running (a pod; a local
process dies with its parent's session, so the local executor never adopts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from kflow.model import Instance


class AttemptState(str, Enum):
    PENDING = "pending"  # accepted, not running yet (a pod being scheduled)
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the command exited 0 (outputs are the runner's business)
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (AttemptState.SUCCEEDED, AttemptState.FAILED)


@dataclass(frozen=True)
class AttemptSpec:
    """Everything an executor needs to start one attempt of one instance.

    ``env`` is complete for the task's side (the instance's literal variables
    plus the ``KFLOW_*`` ones); an executor adds what its environment needs
    (the local executor starts from ``os.environ``). ``instance_key`` and
    ``fingerprint`` are the state layer's names for the instance and for what runs,
    computed by the caller: an executor that labels its work (pods) copies them.
    """

    run_id: str
    instance: Instance
    attempt: int  # 1-based
    argv: tuple[str, ...]
    env: Mapping[str, str]
    instance_key: str
    fingerprint: str
    timeout: float | None = None  # seconds; the executor ends the attempt when it elapses
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptHandle:
    """An executor's name for a submitted attempt (a pid, a pod name), stable across calls."""

    key: str  # unique within the executor, e.g. "pid:1234" or a pod name
    spec: AttemptSpec


@dataclass(frozen=True)
class AttemptUpdate:
    """A change of an attempt's state.

    ``reason`` says in one line why a FAILED attempt failed ("exit code 3",
    "timed out after 30s", "OOMKilled (limit 256Mi)", "cancelled").
    ``counts_as_attempt`` is False for failures that are not the task's fault
    (an evicted pod, a lost node): the runner retries them for free.
    """

    handle: AttemptHandle
    state: AttemptState
    exit_code: int | None = None
    reason: str = ""
    counts_as_attempt: bool = True
    where: str = ""  # where it runs (pod name, "pid 1234"), for records


class Executor(Protocol):
    """Runs attempts somewhere. Implementations: local processes, Kubernetes pods."""

    name: str

    def submit(self, spec: AttemptSpec) -> AttemptHandle:
        """Start an attempt; returns at once. Raises KflowError when it cannot even be started."""
        ...

    def adopt(self, spec: AttemptSpec) -> AttemptHandle | None:
        """An attempt of this instance already running (left by an earlier kflow), or None."""
        ...

    def wait(self, timeout: float) -> list[AttemptUpdate]:
        """State changes since the last call, blocking up to ``timeout`` s for the first one."""
        ...

    def logs(self, handle: AttemptHandle) -> bytes:
        """The attempt's combined stdout and stderr so far (all of it once finished)."""
        ...

    def cancel(self, handle: AttemptHandle, grace: float) -> None:
        """Ask the attempt to stop (SIGTERM, pod delete); force it after ``grace`` s.

        Returns at once; ``grace=0`` kills at once. A cancelled attempt still
        reports a final FAILED update through ``wait``.
        """
        ...

    def release(self, handle: AttemptHandle) -> None:
        """Forget a finished attempt (free its log, delete a succeeded pod per cleanup policy)."""
        ...

    def suspend(self) -> None:
        """Job control, kflow is being stopped (Ctrl-Z): freeze every running attempt, as a
        shell stops a job's processes. Safe in a signal handler; returns at once."""
        ...

    def resume(self) -> None:
        """kflow was continued and its leases checked: let every frozen attempt go on
        (an attempt whose lease was lost has been cancelled with grace 0 before)."""
        ...

    def close(self) -> None:
        """Release everything the executor holds (threads, temp files, API clients)."""
        ...
