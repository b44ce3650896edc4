"""The scheduler: runs a planned set of instances in dependency order on an executor.

One thread decides everything: it starts instances whose requirements have
succeeded (up to ``jobs`` at once), reacts to the executor's state changes,
retries with exponential backoff, checks outputs, and keeps the run record.
Library code: it emits events and never prints. Its helpers, one job each:
``agenda`` (what may start next, in plan order), ``bookkeeping`` (storage work
around attempts, on a thread pool so that its latency overlaps running tasks),
``outputs`` (missing after success, removed after failure), ``abort`` (the
record of a run ended by a second Ctrl-C), ``leases`` (other runs), ``outcome``
(the run's status and exit code).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass

from kflow.errors import KflowError
from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate, Executor
from kflow.executors.liveness import my_start_time, this_place
from kflow.graph import Graph
from kflow.model import Instance, InstanceId
from kflow.plan import Decision
from kflow.run import events as ev
from kflow.run.abort import ABORT_TIMEOUT, briefly, mark_aborted
from kflow.run.agenda import Agenda
from kflow.run.attempts import backoff, log_tail, task_environment
from kflow.run.bookkeeping import Bookkeeper, Prepared
from kflow.run.cancel import CancelWatch
from kflow.run.hooks import Replanner, StateHooks
from kflow.run.ids import new_run_id
from kflow.run.leases import LeaseInfo, Leases
from kflow.run.options import RunMeta, RunOptions, RunResult
from kflow.run.outcome import outcome
from kflow.run.outputs import (
    Protected,
    missing_outputs,
    outputs_replanner,
    remove_outputs,
)
from kflow.run.records import (
    AttemptRecord,
    InstanceRecord,
    RunRecord,
    heartbeat_every,
    log_location,
    record_location,
    save_record,
)
from kflow.run.statuses import NOT_STARTED, AttemptStatus, InstanceStatus, RunStatus
from kflow.state import fingerprint, fingerprint_parts, instance_key
from kflow.storage import Storage

MAX_FREE_RETRIES = 5  # attempts lost to the infrastructure (eviction) that do not count
RECORD_EVERY = 2.0  # s between rewrites of the run record while it changes (kflow ui reads it)
# A record of thousands of instances takes a while to encode, on the scheduler's thread:
# the next rewrite waits this many times as long, so that it never costs more than ~5%.
RECORD_COST_FACTOR = 20.0


@dataclass
class _Running:
    iid: InstanceId
    handle: AttemptHandle
    record: AttemptRecord
    lease_lost: bool = False


class Runner:
    """One run: ``run()`` returns when every instance has succeeded, failed or been skipped."""

    def __init__(
        self,
        graph: Graph,
        to_run: Sequence[InstanceId],
        decisions: Mapping[InstanceId, Decision],
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
        self.agenda = Agenda(graph, to_run)
        self.order = self.agenda.order
        self.decisions = dict(decisions)  # why each runs: text only in records and events
        self.executor = executor
        self.storage = storage
        self.hooks = hooks
        self.sink = sink
        self.options = options or RunOptions()
        self.root = graph.project.root
        self.protected = Protected(graph)  # never deleted, whatever the outputs
        self.run_id = run_id or new_run_id()
        self.replan = replan or outputs_replanner(storage, self.decisions)
        self.leases = Leases(storage, self.root, self.run_id) if leases else None
        meta = meta or RunMeta()
        place = this_place()
        self.record = RunRecord(
            run_id=self.run_id,
            project=graph.project.name,
            targets=list(meta.targets) or [str(t) for t in graph.targets],
            params=dict(meta.params),
            profile=meta.profile,
            executor=executor.name,
            jobs=self.options.jobs,
            host=place.host,
            boot=place.boot,
            pidns=place.pidns,
            pid=os.getpid(),
            pid_start=my_start_time(),
            beat_every=heartbeat_every(),
            instances={
                str(i): InstanceRecord(
                    reason=self._why(i),
                    requires=[str(r) for r in graph.instances[i].requires],
                    outputs=list(graph.instances[i].outputs.values()),
                )
                for i in self.order
            },
            up_to_date=[str(i) for i in graph.instances if i not in self.agenda],
        )
        for iid in self.order:  # ready from the start: no requirement inside this run
            if not any(r in self.agenda for r in graph.instances[iid].requires):
                self._instance(iid).ready = self.record.started
        self._changes = 0  # events since the start; the record is rewritten when it grows
        self._saved_changes = 0
        self._last_save = time.monotonic()
        self._save_every = RECORD_EVERY
        self._first_start = "none"  # none → unsaved (an attempt started) → saved
        self._saving: Future[None] | None = None
        # lease, a second look and state marking in flight (see Prepared)
        self.preparing: dict[InstanceId, Future[Prepared]] = {}
        self.running: dict[str, _Running] = {}
        self.waiting: dict[InstanceId, tuple[LeaseInfo, float]] = {}  # lease holder, next look
        self.held_by: dict[InstanceId, LeaseInfo] = {}  # the other run we waited for
        self.attempts: dict[InstanceId, int] = {}
        self.free_retries: dict[InstanceId, int] = {}
        self.stopping = False  # no new starts (a failure without -k, or an interrupt)
        self.stop_reason = ""  # why, for what is left not started
        self.interrupting = False
        self._stop_requested = threading.Event()
        self._continued = threading.Event()
        self._suspend_requested = threading.Event()
        self.stop_cause = "interrupted"  # or "cancelled": `kflow cancel` asked (run.cancel)
        self._cancel_watch = CancelWatch(
            storage, self.root, self.run_id, lambda: self.request_stop("cancelled")
        )
        # Preparing (storage latency) overlaps what runs, one per free -j slot; the pool
        # also writes logs, records and releases in the background.
        workers = max(8, 4 * self.options.jobs) + 4
        self.books = Bookkeeper(graph, storage, hooks, self.leases, workers, self.replan)
        # Thread-safe: ends the executor's ``wait`` early (optional: else a 1 ms poll).
        self._wake: Callable[[], None] | None = getattr(executor, "wake", None)
        self._started = time.monotonic()

    # -- control from outside (signal handlers) --------------------------------

    def request_stop(self, cause: str = "interrupted") -> None:
        """First Ctrl-C/SIGTERM (or a cancel request): no new starts, terminate what runs.
        Safe in a signal handler."""
        if not self._stop_requested.is_set():
            self.stop_cause = cause
        self._stop_requested.set()

    def request_suspend(self) -> None:
        """Ctrl-Z (SIGTSTP): at the loop's next turn, freeze every running attempt, so none
        goes on while this run, stopped, renews no lease, then stop. Safe in a signal
        handler (the loop acts, never between a process start and its registration)."""
        self._suspend_requested.set()

    def continued(self) -> None:
        """SIGCONT: kflow goes on after a stop. Safe in a signal handler: the loop then
        checks the leases before letting the frozen attempts go on (``_after_stop``)."""
        self._continued.set()

    def abort(self, timeout: float = ABORT_TIMEOUT) -> None:
        """Second Ctrl-C: kill every running attempt at once, then record the run as
        interrupted and remove the killed attempts' outputs, giving storage at most
        ``timeout`` s. The caller exits right after. Safe in a signal handler: it emits
        no event, and storage is written from another thread that is not waited for long.
        """
        killed = list(self.running.values())
        for running in killed:
            self.executor.cancel(running.handle, 0)
        mark_aborted(self.record, [str(running.iid) for running in killed])
        data, location = self.record.to_json(), self._record_location()
        outputs = [  # a lost lease: another run owns the outputs now
            output
            for running in killed
            if not running.lease_lost
            for output in self.graph.instances[running.iid].outputs.values()
        ]

        def write() -> None:
            self.storage.write_atomic(location, data)
            remove_outputs(self.storage, self.root, outputs, self.protected)
            if self.leases is not None:  # else the next run waits for them to expire
                self.leases.stop(wait=False)
                self.leases.release_all()

        briefly(write, timeout)

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
        self._cancel_watch.start()
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as exc:
            error = exc
            self._cancel_running()
            raise
        finally:
            self._cancel_watch.stop()
            self._finish(error)
        return RunResult(self.record, self.record.exit_code or 0, self._record_location())

    def _loop(self) -> None:
        while True:
            if self._suspend_requested.is_set():
                self._suspend_requested.clear()
                self.executor.suspend()  # as a shell does: the job's processes, then us
                os.kill(os.getpid(), signal.SIGSTOP)
            if self._continued.is_set():
                self._continued.clear()
                self._after_stop()
            if self._stop_requested.is_set() and not self.interrupting:
                self._begin_interrupt()
            self._promote_due_retries()
            self._notice_lost_leases()
            self._look_at_waiting()
            self._collect_prepared()
            self._start_prepared()
            self._prepare_ahead()
            self._save_if_changed()
            agenda = self.agenda
            busy = self.running or agenda.has_delayed or self.waiting or self.preparing
            if not busy and (self.stopping or not (agenda.has_ready or agenda.prepared_count)):
                return
            if not self.running and self.preparing:
                # Only preparations can change anything: wake as soon as one is done.
                futures.wait(
                    self.preparing.values(),
                    timeout=self._wait_timeout(),
                    return_when=futures.FIRST_COMPLETED,
                )
                continue
            for update in self.executor.wait(self._wait_timeout()):
                self._on_update(update)

    def _save_if_changed(self) -> None:
        """Rewrite the record at most every RECORD_EVERY s (longer for a record slow to
        encode) while it changes, one write at a time (so an older revision never lands after
        a newer one)."""
        # and at least every beat_every s: its heartbeat, for `kflow runs` on other hosts
        beat = time.monotonic() - self._last_save >= self.record.beat_every
        if (self._changes == self._saved_changes and not beat) or (
            self._saving is not None and not self._saving.done()
        ):
            return
        # The first start is saved at once: should kflow be killed soon after, its record
        # still shows which instances had started (not "queued").
        first_start = self._first_start == "unsaved"
        if not (first_start or beat) and time.monotonic() - self._last_save < self._save_every:
            return
        if first_start:
            self._first_start = "saved"
        began = time.monotonic()
        self.record.revision += 1
        self.record.beat = time.time()
        data = self.record.to_json()
        self._saved_changes, self._last_save = self._changes, time.monotonic()
        self._save_every = max(RECORD_EVERY, RECORD_COST_FACTOR * (self._last_save - began))
        self._saving = self.books.write(self._record_location(), data)

    def _wait_timeout(self) -> float:
        now = time.monotonic()
        timeout = 0.2  # signal handlers only set a flag: look at it this often
        if self.preparing and len(self.running) < self.options.jobs and self._wake is None:
            timeout = 0.001  # a free slot waits for a preparation that is about to finish
        due = self.agenda.next_due()
        if due is not None:
            timeout = min(timeout, due - now)
        for _, next_look in self.waiting.values():
            timeout = min(timeout, next_look - now)
        return max(0.0, timeout)

    def _promote_due_retries(self) -> None:
        now = time.monotonic()
        while (iid := self.agenda.pop_due(now)) is not None:
            self.hooks.before_attempt(self.graph.instances[iid])
            self._submit(iid)

    # -- starting ---------------------------------------------------------------

    def _free_slots(self) -> int:
        """-j slots neither running nor promised to an instance being (or done) preparing."""
        taken = len(self.running) + len(self.preparing) + self.agenda.prepared_count
        return self.options.jobs - taken

    def _prepare_ahead(self) -> None:
        """Take leases and mark state for the next ready instances, as many as free slots:
        one prepared further ahead would be marked incomplete (and its lease held) while it
        cannot start, so that a kill -9 would leave it "did not finish" without a start."""
        while self.agenda.has_ready and not self.stopping and self._free_slots() > 0:
            iid = self.agenda.pop_ready()
            self._instance(iid).status = InstanceStatus.PREPARING
            future = self.books.prepare(iid, self.decisions[iid])
            self.preparing[iid] = self._woken_when_done(future)

    def _woken_when_done(self, future: Future[Prepared]) -> Future[Prepared]:
        """An executor that can be woken (local) returns from ``wait`` as soon as the
        preparation is done: the free slot starts at once, without polling."""
        if self._wake is not None:
            wake = self._wake
            future.add_done_callback(lambda _: wake())
        return future

    def _collect_prepared(self) -> None:
        for iid, future in list(self.preparing.items()):
            if not future.done():
                continue
            del self.preparing[iid]
            prepared = future.result()  # a storage error ends the run (exit 4)
            if prepared.holder is None and prepared.reason is None:
                self._reused(iid)
            elif self.stopping:
                self._drop_prepared(iid)
            elif prepared.holder is not None:
                self._held_elsewhere(iid, prepared.holder)
            else:
                decision = prepared.reason
                if decision is not None and decision != self.decisions[iid]:
                    self.decisions[iid] = decision
                    self._instance(iid).reason = decision.line()
                self.agenda.add_prepared(iid)

    def _start_prepared(self) -> None:
        while not self.stopping and len(self.running) < self.options.jobs:
            # in plan order, as make -j1 would: an earlier one nearly prepared goes first
            iid = self.agenda.next_prepared(self.preparing)
            if iid is None:
                return
            self._submit(iid)

    def _drop_prepared(self, iid: InstanceId) -> None:
        """A prepared instance that will not start (the run stops): as if never prepared."""
        self._instance(iid).status = InstanceStatus.QUEUED
        self.books.unprepare(iid)

    def _held_elsewhere(self, iid: InstanceId, other: LeaseInfo) -> None:
        if self.options.wait_for_others:
            self.waiting[iid] = (other, time.monotonic() + self.options.lease_poll)
            if self.held_by.get(iid) != other:  # said once per holder, not at every look
                self._instance(iid).status = InstanceStatus.WAITING
                self._emit(ev.WaitingForOtherRun(instance=str(iid), holder=str(other)))
            self.held_by[iid] = other
            return
        entry = self._instance(iid)
        entry.status, entry.detail = InstanceStatus.HELD, f"held by {other}"
        self._emit(ev.HeldByOtherRun(instance=str(iid), holder=str(other)))
        self._give_up_on(
            iid,
            f"requires {iid}, which another run holds",
            f"another run holds {iid} (--no-wait)",
        )

    def _look_at_waiting(self) -> None:
        """Try again for the leases of instances another run held, as slots allow."""
        if not self.waiting:
            return
        now = time.monotonic()
        for iid, (_, next_look) in list(self.waiting.items()):
            if next_look > now or self._free_slots() <= 0:
                continue
            del self.waiting[iid]
            if not self.stopping:
                future = self.books.prepare(iid, self.decisions[iid], waited=True)
                self.preparing[iid] = self._woken_when_done(future)

    def _reused(self, iid: InstanceId) -> None:
        """Another run has built the instance since our plan: its result is ours."""
        holder = self.held_by.pop(iid, None)
        built_by = str(holder) if holder is not None else "another run"
        entry = self._instance(iid)
        entry.status, entry.detail = InstanceStatus.REUSED, f"built by {built_by}"
        self._emit(ev.InstanceReused(instance=str(iid), holder=built_by))
        self._unblock_dependents(iid)

    def _notice_lost_leases(self, grace: float | None = None) -> None:
        lost = self.leases.take_lost() if self.leases is not None else set()
        if not lost:
            return
        grace = self.options.kill_grace if grace is None else grace
        for running in self.running.values():
            if str(running.iid) in lost and not running.lease_lost:
                running.lease_lost = True
                self._emit(ev.LeaseLost(instance=str(running.iid)))
                self.executor.cancel(running.handle, grace)

    def _after_stop(self) -> None:
        """kflow was stopped and goes on: its attempts are frozen (by the Ctrl-Z handler or
        the watchdog). Another run may have taken leases over meanwhile: renew them now, kill
        the attempts whose lease was lost before they run another instant beside the new
        holder's, and only then let the others go on."""
        if self.leases is not None:
            self.leases.renew()
            self._notice_lost_leases(grace=0)
        self.executor.resume()

    def _submit(self, iid: InstanceId) -> None:
        instance = self.graph.instances[iid]
        number = self.attempts.get(iid, 0) + 1
        self.attempts[iid] = number
        spec = AttemptSpec(
            run_id=self.run_id,
            instance=instance,
            attempt=number,
            argv=instance.argv,
            env=task_environment(instance, self.run_id),
            instance_key=instance_key(iid),
            fingerprint=fingerprint(fingerprint_parts(instance)),
            timeout=instance.task.timeout,
            labels={"run": self.run_id, "task": instance.task.name},
        )
        handle = self.executor.adopt(spec) if number == 1 else None
        if handle is None:
            handle = self.executor.submit(spec)
        attempt = AttemptRecord(number=number, started=time.time())
        log_file = getattr(self.executor, "log_file", None)  # local: readable should kflow die
        if log_file is not None:
            attempt.log_here = log_file(handle)
        if self._first_start == "none":
            self._first_start = "unsaved"
        entry = self._instance(iid)
        entry.status = InstanceStatus.RUNNING
        entry.attempts.append(attempt)
        self.running[handle.key] = _Running(iid, handle, attempt)
        self._emit(
            ev.AttemptStarted(instance=str(iid), attempt=number, reason=self._why(iid))
        )

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
        if running.lease_lost and not self.interrupting:
            # Another run owns the instance now: leave its outputs alone and wait for its result.
            attempt.status, attempt.reason = AttemptStatus.FAILED, "lease lost to another run"
            self._store_log(running)
            self._held_elsewhere(running.iid, LeaseInfo("", str(running.iid), 0.0))
            return
        if update.state is AttemptState.SUCCEEDED:
            if not any(d in self.agenda for d in self.graph.dependents(running.iid)):
                # The freed slot's next preparation overlaps this one's bookkeeping; only
                # when no dependent can become ready, so plan order stays as it was.
                self._prepare_ahead()
            missing = missing_outputs(self.storage, instance)
            if not missing:
                self._succeeded(running, instance)
                return
            reason = f"did not write {', '.join(missing)}"
        self._attempt_failed(running, instance, reason, update.counts_as_attempt)

    def _succeeded(self, running: _Running, instance: Instance) -> None:
        iid = running.iid
        running.record.status = AttemptStatus.SUCCEEDED
        self._instance(iid).status = InstanceStatus.SUCCEEDED
        # One background job: the log, the success record, then the lease.
        self.books.record_success(instance, self._take_log(running))
        self._emit(
            ev.InstanceSucceeded(
                instance=str(iid),
                attempt=running.record.number,
                duration=(running.record.duration or 0.0),
            )
        )
        self._unblock_dependents(iid)

    def _unblock_dependents(self, iid: InstanceId) -> None:
        for dependent in self.agenda.unblock(iid, self.graph.dependents(iid)):
            if self._instance(dependent).status == InstanceStatus.QUEUED:
                self._instance(dependent).ready = time.time()
                self.agenda.make_ready(dependent)

    def _attempt_failed(
        self, running: _Running, instance: Instance, reason: str, counts: bool
    ) -> None:
        iid = running.iid
        # Nothing partial may ever count as done: outputs go before the failure is reported.
        if instance.outputs:
            remove_outputs(self.storage, self.root, instance.outputs.values(), self.protected)
        attempt = running.record
        attempt.status, attempt.reason = AttemptStatus.FAILED, reason
        data = self._store_log(running)
        if self.interrupting:
            entry = self._instance(iid)
            entry.status, entry.detail = InstanceStatus.INTERRUPTED, reason
            self._release_lease(iid)
            return
        if not counts and self.free_retries.get(iid, 0) < MAX_FREE_RETRIES:
            # A new attempt number all the same: each attempt keeps its own log and record.
            self.free_retries[iid] = self.free_retries.get(iid, 0) + 1
            attempt.free = True
            self._retry_in(iid, 0.0, reason)
            return
        failed_attempts = self.attempts[iid] - self.free_retries.get(iid, 0)
        if failed_attempts <= instance.task.retries:
            cap = self.options.max_retry_delay
            self._retry_in(iid, backoff(instance.task.retry_delay, failed_attempts, cap), reason)
            return
        entry = self._instance(iid)
        entry.status, entry.detail = InstanceStatus.FAILED, reason
        self._release_lease(iid)
        self._emit(
            ev.InstanceFailed(
                instance=str(iid),
                attempt=attempt.number,
                reason=reason,
                log_tail=log_tail(data, self.run_id, str(iid)),
                log=attempt.log,
            )
        )
        self._give_up_on(iid, f"requires {iid}, which failed", "the run stopped after a failure")

    def _retry_in(self, iid: InstanceId, delay: float, reason: str) -> None:
        self._instance(iid).status = InstanceStatus.RETRYING
        self.agenda.delay(iid, time.monotonic() + delay)
        self._emit(
            ev.AttemptFailed(
                instance=str(iid), attempt=self.attempts[iid], reason=reason, retry_in=delay
            )
        )

    def _give_up_on(self, iid: InstanceId, why: str, stop_reason: str) -> None:
        """Skip everything in this run that depends on ``iid``; stop starting work unless -k
        (what is left then is "not started" for ``stop_reason``)."""
        stack = list(self.graph.dependents(iid))
        while stack:
            dependent = stack.pop()
            if dependent not in self.agenda:
                continue
            entry = self._instance(dependent)
            if entry.status != InstanceStatus.QUEUED:
                continue
            entry.status, entry.detail = InstanceStatus.SKIPPED, why
            self._emit(ev.InstanceSkipped(instance=str(dependent), reason=why))
            stack.extend(self.graph.dependents(dependent))
        if not self.options.keep_going:
            self.stopping = True
            self.stop_reason = self.stop_reason or stop_reason
            for prepared in self.agenda.take_prepared():
                self._drop_prepared(prepared)

    # -- interrupt and the end ---------------------------------------------------

    def _begin_interrupt(self) -> None:
        self.interrupting = self.stopping = True
        self._emit(ev.Interrupting(running=[str(r.iid) for r in self.running.values()]))
        for iid in self.agenda.take_delayed() + list(self.waiting):
            entry = self._instance(iid)
            entry.status = InstanceStatus.INTERRUPTED
            entry.detail = "interrupted before it could run again"
            self._release_lease(iid)
        for prepared in self.agenda.take_prepared():
            self._drop_prepared(prepared)
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
        for iid, future in list(self.preparing.items()):
            if future.exception() is None and future.result().reason is not None:
                self._drop_prepared(iid)
        self.preparing.clear()
        reason = "interrupted" if self.interrupting else self.stop_reason or "the run stopped"
        for iid in self.order:
            entry = self._instance(iid)
            if entry.status in NOT_STARTED:
                entry.status, entry.detail = InstanceStatus.SKIPPED, f"not started: {reason}"
                if error is None and not self.interrupting:
                    self._emit(ev.InstanceSkipped(instance=str(iid), reason=entry.detail))
        background_error = self.books.finish()
        statuses = [e.status for e in self.record.instances.values()]
        status, code = outcome(statuses, error, background_error, self._stop_requested.is_set())
        if status is RunStatus.INTERRUPTED and self.stop_cause == "cancelled":
            status = RunStatus.CANCELLED
        self.record.status, self.record.exit_code = status, code
        self.record.ended = time.time()
        self.record.revision += 1
        save_record(self.storage, self.root, self.record)
        counts = {s: statuses.count(s) for s in set(statuses)}
        self._emit(
            ev.RunFinished(
                run_id=self.run_id,
                status=status,
                exit_code=code,
                succeeded=counts.get(InstanceStatus.SUCCEEDED, 0),
                failed=counts.get(InstanceStatus.FAILED, 0),
                skipped=counts.get(InstanceStatus.SKIPPED, 0),
                reused=counts.get(InstanceStatus.REUSED, 0),
                duration=time.monotonic() - self._started,
                record=self._record_location(),
            )
        )

    # -- helpers ------------------------------------------------------------------

    def _release_lease(self, iid: InstanceId) -> None:
        self.books.release(iid)

    def _store_log(self, running: _Running) -> bytes:
        """Keep the attempt's log on storage (in the background); returns its bytes."""
        location, data = self._take_log(running)
        self.books.write(location, data)
        return data

    def _take_log(self, running: _Running) -> tuple[str, bytes]:
        """The attempt's log from the executor (which forgets the attempt) and where it is
        to be stored, as the record names it."""
        data = self.executor.logs(running.handle)
        self.executor.release(running.handle)
        location = log_location(self.root, self.run_id, str(running.iid), running.record.number)
        running.record.log = location
        return location, data

    def _why(self, iid: InstanceId) -> str:
        """Why the instance runs, as records and events show it."""
        decision = self.decisions.get(iid)
        return decision.line() if decision is not None else ""

    def _instance(self, iid: InstanceId) -> InstanceRecord:
        return self.record.instances[str(iid)]

    def _record_location(self) -> str:
        return record_location(self.root, self.run_id)

    def _emit(self, event: ev.Event) -> None:
        self._changes += 1
        self.sink(event)
