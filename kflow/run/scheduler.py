"""The scheduler: runs a planned set of instances in dependency order on an executor.

One thread drives everything: it starts instances whose requirements have
succeeded (up to ``jobs`` at once), reacts to the executor's state changes,
retries with exponential backoff, checks outputs, and keeps the run record.
Library code: it emits events and never prints.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from kflow.errors import EXIT_HELD, EXIT_INTERRUPTED, EXIT_OK, EXIT_TASK_FAILED, KflowError
from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate, Executor
from kflow.graph import Graph, Instance
from kflow.model import InstanceId
from kflow.run import events as ev
from kflow.run.hooks import Replanner, StateHooks
from kflow.run.ids import new_run_id
from kflow.run.leases import LeaseInfo, Leases
from kflow.run.records import (
    AttemptRecord,
    InstanceRecord,
    RunRecord,
    log_location,
    record_location,
    save_record,
)
from kflow.storage import Storage

MAX_FREE_RETRIES = 5  # attempts lost to the infrastructure (eviction) that do not count
LOG_TAIL_LINES = 20


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


@dataclass
class _Running:
    iid: InstanceId
    handle: AttemptHandle
    record: AttemptRecord


def default_kill_grace() -> float:
    """``KFLOW_KILL_GRACE`` seconds if set, else 5: SIGTERM to SIGKILL on interrupt."""
    try:
        return float(os.environ.get("KFLOW_KILL_GRACE", "5"))
    except ValueError:
        return 5.0


def backoff(retry_delay: float, failed_attempts: int, cap: float) -> float:
    """``retry_delay`` doubled after each failed attempt, capped."""
    return float(min(cap, retry_delay * (2 ** max(0, failed_attempts - 1))))


def _tail(data: bytes, lines: int = LOG_TAIL_LINES) -> str:
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _default_replan(storage: Storage) -> Replanner:
    def replan(instance: Instance) -> str | None:
        stamps = storage.stat_many(instance.outputs.values())
        missing = [loc for loc, stamp in stamps.items() if stamp is None]
        return f"output missing: {missing[0]}" if missing else None

    return replan


class Runner:
    """One run: ``run()`` returns when every instance has succeeded, failed or been skipped."""

    def __init__(
        self,
        graph: Graph,
        to_run: Sequence[InstanceId],
        reasons: Mapping[InstanceId, str],
        *,
        executor: Executor,
        storage: Storage,
        hooks: StateHooks,
        sink: ev.EventSink,
        options: RunOptions | None = None,
        meta: RunMeta | None = None,
        leases: bool = True,
        replan: Replanner | None = None,
        run_id: str | None = None,
    ):
        self.graph = graph
        self.order = list(to_run)
        self.index = {iid: n for n, iid in enumerate(self.order)}
        self.reasons = reasons
        self.executor = executor
        self.storage = storage
        self.hooks = hooks
        self.sink = sink
        self.options = options or RunOptions()
        self.root = graph.project.root
        self.run_id = run_id or new_run_id()
        self.replan = replan or _default_replan(storage)
        self.leases = Leases(storage, self.root, self.run_id) if leases else None
        meta = meta or RunMeta()
        self.record = RunRecord(
            run_id=self.run_id,
            project=graph.project.name,
            targets=list(meta.targets) or [str(t) for t in graph.targets],
            params=dict(meta.params),
            profile=meta.profile,
            executor=executor.name,
            jobs=self.options.jobs,
            host=socket.gethostname(),
            pid=os.getpid(),
            instances={str(i): InstanceRecord(reason=reasons.get(i, "")) for i in self.order},
        )
        # requirements inside this run that have not succeeded yet
        self.blocked: dict[InstanceId, set[InstanceId]] = {
            iid: {r for r in graph.instances[iid].requires if r in self.index}
            for iid in self.order
        }
        self.ready: list[int] = [self.index[i] for i in self.order if not self.blocked[i]]
        heapq.heapify(self.ready)
        self.running: dict[str, _Running] = {}
        self.delayed: list[tuple[float, int]] = []  # (monotonic due time, index) of retries
        self.waiting: dict[InstanceId, tuple[LeaseInfo, float]] = {}  # lease holder, next look
        self.attempts: dict[InstanceId, int] = {}
        self.free_retries: dict[InstanceId, int] = {}
        self.stopping = False  # no new starts (a failure without -k, or an interrupt)
        self.interrupting = False
        self._stop_requested = threading.Event()
        self._uploads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kflow-logs")
        self._pending_uploads: list[Future[None]] = []
        self._started = time.monotonic()

    # -- control from outside (signal handlers) --------------------------------

    def request_stop(self) -> None:
        """First Ctrl-C/SIGTERM: no new starts, terminate what runs. Safe in a signal handler."""
        self._stop_requested.set()

    def abort(self) -> None:
        """Second Ctrl-C: kill every running attempt at once (the caller exits right after)."""
        for running in list(self.running.values()):
            self.executor.cancel(running.handle, 0)

    # -- the loop --------------------------------------------------------------

    def run(self) -> RunResult:
        self._emit(
            ev.RunStarted(
                run_id=self.run_id,
                to_run=[str(i) for i in self.order],
                jobs=self.options.jobs,
                executor=self.executor.name,
            )
        )
        save_record(self.storage, self.root, self.record)
        if self.leases is not None:
            self.leases.start()
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:
            error = exc
            self._cancel_running()
            raise
        finally:
            self._finish(error)
        return RunResult(self.record, self.record.exit_code or 0, self._record_location())

    def _loop(self) -> None:
        while True:
            if self._stop_requested.is_set() and not self.interrupting:
                self._begin_interrupt()
            self._promote_due_retries()
            self._look_at_waiting()
            self._start_ready()
            idle = not (self.running or self.delayed or self.waiting)
            if idle and (self.stopping or not self.ready):
                return
            for update in self.executor.wait(self._wait_timeout()):
                self._on_update(update)

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        timeout = 0.2  # signal handlers only set a flag: look at it this often
        if self.delayed:
            timeout = min(timeout, self.delayed[0][0] - now)
        for _, next_look in self.waiting.values():
            timeout = min(timeout, next_look - now)
        return max(0.0, timeout)

    def _promote_due_retries(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            _, index = heapq.heappop(self.delayed)
            self._submit(self.order[index])

    def _start_ready(self) -> None:
        while self.ready and not self.stopping and len(self.running) < self.options.jobs:
            iid = self.order[heapq.heappop(self.ready)]
            self._first_attempt(iid)

    # -- starting ---------------------------------------------------------------

    def _first_attempt(self, iid: InstanceId) -> None:
        if self.leases is not None:
            other = self.leases.try_acquire(str(iid))
            if other is not None:
                self._held_elsewhere(iid, other)
                return
        self._submit(iid)

    def _held_elsewhere(self, iid: InstanceId, other: LeaseInfo) -> None:
        if self.options.wait_for_others:
            self.waiting[iid] = (other, time.monotonic() + self.options.lease_poll)
            self._instance(iid).status = "waiting"
            self._emit(ev.WaitingForOtherRun(instance=str(iid), holder=str(other)))
            return
        entry = self._instance(iid)
        entry.status, entry.detail = "held", f"held by {other}"
        self._emit(ev.HeldByOtherRun(instance=str(iid), holder=str(other)))
        self._give_up_on(iid, f"requires {iid}, which another run holds")

    def _look_at_waiting(self) -> None:
        if not self.waiting or self.leases is None:
            return
        now = time.monotonic()
        for iid, (holder, next_look) in list(self.waiting.items()):
            if next_look > now or len(self.running) >= self.options.jobs:
                continue
            if self.stopping:
                del self.waiting[iid]
                continue
            other = self.leases.try_acquire(str(iid))
            if other is not None:
                self.waiting[iid] = (other, now + self.options.lease_poll)
                continue
            del self.waiting[iid]
            instance = self.graph.instances[iid]
            reason = self.replan(instance)
            if reason is None:
                self.leases.release(str(iid))
                entry = self._instance(iid)
                entry.status, entry.detail = "reused", f"built by {holder}"
                self._emit(ev.InstanceReused(instance=str(iid), holder=str(holder)))
                self._unblock_dependents(iid)
            else:
                self._instance(iid).reason = reason
                self.reasons = {**self.reasons, iid: reason}
                self._submit(iid)

    def _submit(self, iid: InstanceId) -> None:
        instance = self.graph.instances[iid]
        number = self.attempts.get(iid, 0) + 1
        self.attempts[iid] = number
        spec = AttemptSpec(
            run_id=self.run_id,
            instance=instance,
            attempt=number,
            argv=instance.argv,
            env=self._env(instance),
            timeout=instance.task.timeout,
            labels={"run": self.run_id, "task": instance.task.name},
        )
        self.hooks.before_attempt(instance)
        handle = self.executor.adopt(spec) if number == 1 else None
        if handle is None:
            handle = self.executor.submit(spec)
        attempt = AttemptRecord(number=number, started=time.time())
        entry = self._instance(iid)
        entry.status = "running"
        entry.attempts.append(attempt)
        self.running[handle.key] = _Running(iid, handle, attempt)
        self._emit(
            ev.AttemptStarted(instance=str(iid), attempt=number, reason=self.reasons.get(iid, ""))
        )

    def _env(self, instance: Instance) -> dict[str, str]:
        params = instance.id.param_dict
        env = dict(instance.env)
        env.update(
            {
                "KFLOW_RUN": self.run_id,
                "KFLOW_TASK": str(instance.id),
                "KFLOW_PARAMS": json.dumps(params, sort_keys=True),
                "KFLOW_INPUTS": json.dumps(list(instance.inputs)),
                "KFLOW_OUTPUTS": json.dumps(dict(instance.outputs)),
            }
        )
        for name, value in params.items():
            env[f"KFLOW_PARAM_{name.upper()}"] = value
        return env

    # -- reacting ---------------------------------------------------------------

    def _on_update(self, update: AttemptUpdate) -> None:
        running = self.running.get(update.handle.key)
        if running is None:
            return
        if update.where:
            running.record.where = update.where
        if not update.state.finished:
            return
        del self.running[update.handle.key]
        attempt = running.record
        attempt.ended = time.time()
        attempt.exit_code = update.exit_code
        instance = self.graph.instances[running.iid]
        reason = update.reason or "failed"
        if update.state is AttemptState.SUCCEEDED:
            missing = self._missing_outputs(instance)
            if not missing:
                self._succeeded(running, instance)
                return
            reason = f"did not write {', '.join(missing)}"
        self._attempt_failed(running, instance, reason, update.counts_as_attempt)

    def _missing_outputs(self, instance: Instance) -> list[str]:
        if not instance.outputs:
            return []
        stamps = self.storage.stat_many(instance.outputs.values())
        return [location for location, stamp in stamps.items() if stamp is None]

    def _succeeded(self, running: _Running, instance: Instance) -> None:
        iid = running.iid
        self.hooks.after_success(instance)
        running.record.status = "succeeded"
        self._store_log(running)
        entry = self._instance(iid)
        entry.status = "succeeded"
        if self.leases is not None:
            self.leases.release(str(iid))
        self._emit(
            ev.InstanceSucceeded(
                instance=str(iid),
                attempt=running.record.number,
                duration=(running.record.duration or 0.0),
            )
        )
        self._unblock_dependents(iid)

    def _unblock_dependents(self, iid: InstanceId) -> None:
        for dependent in self.graph.dependents(iid):
            waiting_on = self.blocked.get(dependent)
            if waiting_on is None or iid not in waiting_on:
                continue
            waiting_on.discard(iid)
            if not waiting_on and self._instance(dependent).status == "queued":
                heapq.heappush(self.ready, self.index[dependent])

    def _attempt_failed(
        self, running: _Running, instance: Instance, reason: str, counts: bool
    ) -> None:
        iid = running.iid
        # Nothing partial may ever count as done: outputs go before the failure is reported.
        if instance.outputs:
            self.storage.delete_many(instance.outputs.values())
        attempt = running.record
        attempt.status, attempt.reason = "failed", reason
        data = self._store_log(running)
        if self.interrupting:
            entry = self._instance(iid)
            entry.status, entry.detail = "interrupted", reason
            self._release_lease(iid)
            return
        if not counts and self.free_retries.get(iid, 0) < MAX_FREE_RETRIES:
            self.free_retries[iid] = self.free_retries.get(iid, 0) + 1
            self.attempts[iid] -= 1
            self._retry_in(iid, 0.0, reason)
            return
        failed_attempts = self.attempts[iid] - self.free_retries.get(iid, 0)
        if failed_attempts <= instance.task.retries and not self.interrupting:
            cap = self.options.max_retry_delay
            delay = backoff(instance.task.retry_delay, failed_attempts, cap)
            self._retry_in(iid, delay, reason)
            return
        entry = self._instance(iid)
        entry.status, entry.detail = "failed", reason
        self._release_lease(iid)
        self._emit(
            ev.InstanceFailed(
                instance=str(iid),
                attempt=attempt.number,
                reason=reason,
                log_tail=_tail(data),
                log=attempt.log,
            )
        )
        self._give_up_on(iid, f"requires {iid}, which failed")

    def _retry_in(self, iid: InstanceId, delay: float, reason: str) -> None:
        self._instance(iid).status = "retrying"
        heapq.heappush(self.delayed, (time.monotonic() + delay, self.index[iid]))
        self._emit(
            ev.AttemptFailed(
                instance=str(iid), attempt=self.attempts[iid], reason=reason, retry_in=delay
            )
        )

    def _give_up_on(self, iid: InstanceId, why: str) -> None:
        """Skip everything in this run that depends on ``iid``; stop starting work unless -k."""
        stack = list(self.graph.dependents(iid))
        while stack:
            dependent = stack.pop()
            if dependent not in self.index:
                continue
            entry = self._instance(dependent)
            if entry.status != "queued":
                continue
            entry.status, entry.detail = "skipped", why
            self._emit(ev.InstanceSkipped(instance=str(dependent), reason=why))
            stack.extend(self.graph.dependents(dependent))
        if not self.options.keep_going:
            self.stopping = True

    # -- interrupt and the end ---------------------------------------------------

    def _begin_interrupt(self) -> None:
        self.interrupting = self.stopping = True
        self._emit(ev.Interrupting(running=[str(r.iid) for r in self.running.values()]))
        for iid in [self.order[i] for _, i in self.delayed] + list(self.waiting):
            entry = self._instance(iid)
            entry.status, entry.detail = "interrupted", "interrupted before it could run again"
            self._release_lease(iid)
        self.delayed.clear()
        self.waiting.clear()
        for running in list(self.running.values()):
            self.executor.cancel(running.handle, self.options.kill_grace)

    def _cancel_running(self) -> None:
        """After an unexpected error: stop what runs and wait for it, so nothing is orphaned."""
        if not self.running:
            return
        self.interrupting = self.stopping = True
        for running in list(self.running.values()):
            self.executor.cancel(running.handle, self.options.kill_grace)
        deadline = time.monotonic() + self.options.kill_grace + 5
        while self.running and time.monotonic() < deadline:
            for update in self.executor.wait(0.2):
                try:
                    self._on_update(update)
                except KflowError:
                    self.running.pop(update.handle.key, None)

    def _finish(self, error: BaseException | None) -> None:
        if self.leases is not None:
            self.leases.stop()
        reason = "interrupted" if self.interrupting else "the run stopped after a failure"
        for iid in self.order:
            entry = self._instance(iid)
            if entry.status in ("queued", "waiting", "retrying"):
                entry.status, entry.detail = "skipped", f"not started: {reason}"
                if error is None and not self.interrupting:
                    self._emit(ev.InstanceSkipped(instance=str(iid), reason=entry.detail))
        if self.leases is not None:
            self.leases.release_all()
        for future in self._pending_uploads:
            # a log that could not be stored must not hide the run's own outcome
            with contextlib.suppress(KflowError, TimeoutError):
                future.result(timeout=30)
        self._uploads.shutdown(wait=False)
        statuses = [e.status for e in self.record.instances.values()]
        if error is not None:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            code = getattr(error, "exit_code", EXIT_INTERRUPTED)
        elif self.interrupting:
            status, code = "interrupted", EXIT_INTERRUPTED
        elif "failed" in statuses:
            status, code = "failed", EXIT_TASK_FAILED
        elif "held" in statuses:
            status, code = "held", EXIT_HELD
        else:
            status, code = "succeeded", EXIT_OK
        self.record.status, self.record.exit_code = status, code
        self.record.ended = time.time()
        save_record(self.storage, self.root, self.record)
        counts = {s: statuses.count(s) for s in set(statuses)}
        self._emit(
            ev.RunFinished(
                run_id=self.run_id,
                status=status,
                exit_code=code,
                succeeded=counts.get("succeeded", 0),
                failed=counts.get("failed", 0),
                skipped=counts.get("skipped", 0),
                reused=counts.get("reused", 0),
                duration=time.monotonic() - self._started,
                record=self._record_location(),
            )
        )

    # -- helpers ------------------------------------------------------------------

    def _release_lease(self, iid: InstanceId) -> None:
        if self.leases is not None:
            self.leases.release(str(iid))

    def _store_log(self, running: _Running) -> bytes:
        """Keep the attempt's log on storage (in the background); returns its bytes."""
        data = self.executor.logs(running.handle)
        self.executor.release(running.handle)
        location = log_location(self.root, self.run_id, str(running.iid), running.record.number)
        running.record.log = location
        self._pending_uploads.append(
            self._uploads.submit(self.storage.write_atomic, location, data)
        )
        return data

    def _instance(self, iid: InstanceId) -> InstanceRecord:
        return self.record.instances[str(iid)]

    def _record_location(self) -> str:
        return record_location(self.root, self.run_id)

    def _emit(self, event: ev.Event) -> None:
        self.sink(event)
