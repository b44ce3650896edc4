"""Storage work around attempts, off the scheduler's thread.

Taking a lease and marking the state record incomplete before an attempt;
recording success, releasing the lease and storing the log after it: all of it
storage latency, done on a small thread pool so that it overlaps running tasks
instead of adding to each one. The scheduler decides; this only does.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

from kflow.errors import KflowError
from kflow.graph import Graph
from kflow.model import Instance, InstanceId
from kflow.plan import Decision
from kflow.run.hooks import Replanner, StateHooks
from kflow.run.leases import LeaseInfo, Leases
from kflow.run.outcome import drain
from kflow.storage import Storage


class Prepared(NamedTuple):
    """How preparing an instance ended: ``holder`` set, another run holds it; else
    ``reason`` set, it may start (lease ours, state marked); else another run has built
    it since the plan and its result is up to date (nothing held)."""

    holder: LeaseInfo | None = None
    reason: Decision | None = None


class Bookkeeper:
    def __init__(
        self,
        graph: Graph,
        storage: Storage,
        hooks: StateHooks,
        leases: Leases | None,
        workers: int,
        replan: Replanner,
    ):
        self.graph = graph
        self.storage = storage
        self.hooks = hooks
        self.leases = leases
        self.replan = replan
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kflow-run")
        self._background: list[Future[None]] = []

    def prepare(
        self, iid: InstanceId, decision: Decision, waited: bool = False
    ) -> Future[Prepared]:
        """The lease, a look at the instance again, then the state mark (see ``Prepared``).

        ``waited``: another run held the lease before (so it may have built the instance).
        """
        return self._pool.submit(self._prepare, iid, decision, waited)

    def _prepare(self, iid: InstanceId, decision: Decision, waited: bool) -> Prepared:
        instance = self.graph.instances[iid]
        if self.leases is not None:
            other = self.leases.try_acquire(str(iid))
            if other is not None:
                return Prepared(holder=other)
            # However the lease came (free, or after waiting), another run may have built
            # the instance since our plan: ask again, now that no run can be building it.
            now = self.replan(instance, waited)
            if now is None:
                self.leases.release(str(iid))
                return Prepared()
            decision = now
        self.hooks.before_attempt(instance)
        return Prepared(reason=decision)

    def record_success(self, instance: Instance, log: tuple[str, bytes] | None = None) -> None:
        """The attempt's log (location, bytes), the success record, then the lease (a run
        waiting for it finds the result up to date): one job, one thread hand-off."""
        self._in_background(self._record_success, instance, log)

    def _record_success(self, instance: Instance, log: tuple[str, bytes] | None) -> None:
        if log is not None:
            self.storage.write_atomic(log[0], log[1], False)
        self.hooks.after_success(instance)
        if self.leases is not None:
            self.leases.release(str(instance.id))

    def release(self, iid: InstanceId) -> None:
        if self.leases is not None:
            self._in_background(self.leases.release, str(iid))

    def unprepare(self, iid: InstanceId) -> None:
        """Undo ``prepare`` for an instance that will not start: its state mark (so that its
        previous record counts again), then its lease."""
        self._in_background(self._unprepare, iid)

    def _unprepare(self, iid: InstanceId) -> None:
        self.hooks.not_started(self.graph.instances[iid])
        if self.leases is not None:
            self.leases.release(str(iid))

    def write(self, location: str, data: bytes) -> Future[None]:
        """A log or a revision of the run record: not durable (no fsync; the run's last
        record is written durably at its end)."""
        return self._in_background(self.storage.write_atomic, location, data, False)

    def finish(self) -> KflowError | None:
        """Wait for what is in flight, give up every lease; the first storage error met."""
        error = drain(self._background)
        if self.leases is not None:
            self.leases.stop()
            self.leases.release_all()
        self._pool.shutdown(wait=False)
        return error

    def _in_background(self, work: Callable[..., None], *args: object) -> Future[None]:
        future = self._pool.submit(work, *args)
        self._background.append(future)
        return future
