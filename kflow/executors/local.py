"""The local executor: each attempt a subprocess in the project folder, in its own process group.

No thread per process: ``wait`` watches every running process at once (a
pidfd per process in one epoll where Linux has them, a short poll elsewhere)
and also enforces timeouts and the SIGTERM → SIGKILL escalation of cancels.
The whole process group is signalled, so children a command started end too.
Should kflow itself be killed, a watchdog process (see ``watchdog``) ends the
groups still running, so a task never outlives the run that holds its lease; while
kflow is stopped (Ctrl-Z, SIGSTOP) the groups are frozen with it.

Resources apply locally as they would in a pod: ``cpu`` is counted against a budget
of CPUs (``-j``), as Snakemake's ``--cores`` counts threads, so an attempt whose CPUs
do not fit waits (like a Pending pod) until running ones end; the memory limit becomes
the process's RLIMIT_DATA, so a task over it fails here as it would be OOMKilled there.
``gpu`` and ``limits.cpu`` have no local effect.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kflow.errors import UsageError
from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate
from kflow.executors.spawn import CAN_SPAWN as _CAN_SPAWN
from kflow.executors.spawn import Process as _Process
from kflow.executors.spawn import spawn
from kflow.executors.watchdog import TAG, Watchdog
from kflow.model import Resources, TaskSpec

try:
    import resource
except ImportError:  # not on Windows: no memory limit there
    resource = None  # type: ignore[assignment]

# After a timeout, or once kflow has died, how long a command gets between SIGTERM and SIGKILL.
TIMEOUT_GRACE = 2.0
# Without pidfds, how often running processes are polled.
POLL_INTERVAL = 0.005
_HAS_PIDFD = hasattr(os, "pidfd_open")


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Attempt:
    def __init__(self, handle: AttemptHandle, proc: _Process, log_path: Path):
        self.handle = handle
        self.proc = proc
        self.log_path = log_path
        self.pidfd: int | None = None
        self.deadline: float | None = None  # monotonic time the timeout fires
        self.kill_at: float | None = None  # monotonic time SIGTERM becomes SIGKILL
        self.cancelled = False
        self.timed_out = False
        self.cpus = 0.0  # of the executor's CPU budget, given back when it ends


class LocalExecutor:
    """Runs attempts as local processes; needs nothing installed."""

    name = "local"

    def __init__(self, directory: Path | str, cpus: int | None = None):
        self.directory = Path(directory)
        self._directory = os.path.realpath(directory)  # compared with os.getcwd()
        self._cpu_budget = cpus  # None: attempts start as submitted (the runner counts jobs)
        self._cpu_used = 0.0
        # attempts whose CPUs do not fit yet: (handle, log number, CPUs), first come first
        self._cpu_waiting: list[tuple[AttemptHandle, int, float]] = []
        self._selector = selectors.DefaultSelector()
        # ``wake``: a byte in this pipe ends ``wait`` early (another thread has news for the
        # runner). The lock keeps a late wake from writing into a closed (reused) descriptor.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._wake_lock = threading.Lock()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._attempts: dict[str, _Attempt] = {}  # every attempt not yet released
        self._live: dict[int, _Attempt] = {}  # by pid, until reaped
        self._finished: list[AttemptUpdate] = []  # produced outside wait (could not start)
        self._logs = Path(tempfile.mkdtemp(prefix="kflow-logs-"))
        self._counter = 0
        # Up before any lease is taken: a lease names it, so that no run takes the lease
        # over while it is still ending the attempts of a kflow that died.
        self._watchdog: Watchdog | None = Watchdog(TIMEOUT_GRACE, str(self._logs))
        self._base_env = dict(os.environ)
        bindir = os.path.dirname(sys.executable)
        path = self._base_env.get("PATH", "")
        self._base_env["PATH"] = bindir + (os.pathsep + path if path else "")

    # -- starting ---------------------------------------------------------------

    def submit(self, spec: AttemptSpec) -> AttemptHandle:
        self._counter += 1
        cpus = self._cpus_of(spec.instance.task)
        if self._cpu_waiting or not self._cpus_fit(cpus):
            handle = AttemptHandle(f"cpu-wait:{self._counter}", spec)
            self._cpu_waiting.append((handle, self._counter, cpus))
            return handle
        return self._start(spec, self._counter, cpus)

    def _cpus_of(self, task: TaskSpec) -> float:
        if self._cpu_budget is None:
            return 0.0
        # As Snakemake's threads: 1 unless said, and never more than the whole budget.
        cpus = quantity(task.resources.cpu) if task.resources.cpu else 1.0
        return min(cpus, float(self._cpu_budget))

    def _cpus_fit(self, cpus: float) -> bool:
        budget = self._cpu_budget
        return budget is None or not self._live or self._cpu_used + cpus <= budget + 1e-9

    def _start_waiting(self) -> None:
        while self._cpu_waiting and self._cpus_fit(self._cpu_waiting[0][2]):
            handle, number, cpus = self._cpu_waiting.pop(0)
            self._start(handle.spec, number, cpus, handle)

    def _start(
        self, spec: AttemptSpec, number: int, cpus: float, handle: AttemptHandle | None = None
    ) -> AttemptHandle:
        watchdog = self._watchdog_for_attempts()  # up before the process: one write from it
        log_path = self._logs / f"{number}.log"
        env = {**self._base_env, **spec.env, TAG: watchdog.tag}
        limiter = _memory_limiter(spec.instance.task.resources)
        with open(log_path, "wb") as log:
            try:
                if limiter is None and self._spawn_here():
                    proc: _Process = spawn(spec.argv, env, log.fileno())
                else:
                    proc = subprocess.Popen(
                        list(spec.argv),
                        cwd=self.directory,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=limiter,
                    )
            except OSError as exc:
                # A command that cannot start fails like one that exits non-zero.
                reason = f"cannot start {spec.argv[0]!r}: {exc.strerror}"
                log.write(f"kflow: {reason}\n".encode())
                handle = handle or AttemptHandle(f"unstarted:{number}", spec)
                self._finished.append(AttemptUpdate(handle, AttemptState.FAILED, 127, reason))
                return handle
        watchdog.watch(proc.pid)  # its group id is its pid
        handle = handle or AttemptHandle(f"pid:{proc.pid}", spec)
        attempt = _Attempt(handle, proc, log_path)
        attempt.cpus = cpus
        self._cpu_used += cpus
        if spec.timeout is not None:
            attempt.deadline = time.monotonic() + spec.timeout
        if _HAS_PIDFD:
            try:
                attempt.pidfd = os.pidfd_open(proc.pid)
                self._selector.register(attempt.pidfd, selectors.EVENT_READ, attempt)
            except OSError:
                attempt.pidfd = None  # an old kernel: polled instead
        self._attempts[handle.key] = attempt
        self._live[proc.pid] = attempt
        return handle

    def _spawn_here(self) -> bool:
        """Whether ``spawn`` may start the command: it runs in kflow's own folder (posix_spawn
        cannot change folder), which is the project folder unless -C named another."""
        if not _CAN_SPAWN:
            return False
        try:
            return os.getcwd() == self._directory
        except OSError:  # kflow's folder was deleted
            return False

    def _watchdog_for_attempts(self) -> Watchdog:
        if self._watchdog is None:
            self._watchdog = Watchdog(TIMEOUT_GRACE, str(self._logs))
        return self._watchdog

    def adopt(self, spec: AttemptSpec) -> AttemptHandle | None:
        return None  # local processes die with their kflow (the watchdog): nothing to re-attach to

    # -- watching ---------------------------------------------------------------

    def wait(self, timeout: float) -> list[AttemptUpdate]:
        updates, self._finished = self._finished, []
        now = time.monotonic()
        timeout = 0.0 if updates else max(0.0, timeout)
        for attempt in self._live.values():
            for due in (attempt.deadline, attempt.kill_at):
                if due is not None:
                    timeout = min(timeout, max(0.0, due - now))
        if any(a.pidfd is None for a in self._live.values()):
            timeout = min(timeout, POLL_INTERVAL)
        ended: list[_Attempt] = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 4096)
            else:
                ended.append(key.data)
        ended += [a for a in self._live.values() if a.pidfd is None and a.proc.poll() is not None]
        for attempt in ended:
            updates.append(self._reap(attempt))
        self._start_waiting()
        self._enforce_deadlines()
        return updates

    def _reap(self, attempt: _Attempt) -> AttemptUpdate:
        proc = attempt.proc
        if attempt.pidfd is not None:
            self._selector.unregister(attempt.pidfd)
            os.close(attempt.pidfd)
            attempt.pidfd = None
            # The leader is a zombie until reaped, so its group id cannot have been reused:
            # this kill reaches only what the command left behind.
            _kill_group(proc.pid, signal.SIGKILL)
        self._watchdog_for_attempts().forget(proc.pid)  # while the id is still ours
        code = proc.wait()
        del self._live[proc.pid]
        self._cpu_used = max(0.0, self._cpu_used - attempt.cpus)
        return self._final_update(attempt, code)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for attempt in list(self._live.values()):
            if attempt.deadline is not None and now >= attempt.deadline:
                attempt.deadline = None
                if not attempt.cancelled:
                    attempt.timed_out = True
                    self._stop(attempt, TIMEOUT_GRACE)
            if attempt.kill_at is not None and now >= attempt.kill_at:
                attempt.kill_at = None
                _kill_group(attempt.proc.pid, signal.SIGKILL)

    def _stop(self, attempt: _Attempt, grace: float) -> None:
        """SIGTERM the group now and SIGKILL it after ``grace`` (at once when grace <= 0)."""
        if grace <= 0:
            attempt.kill_at = None
            _kill_group(attempt.proc.pid, signal.SIGKILL)
            return
        _kill_group(attempt.proc.pid, signal.SIGTERM)
        _kill_group(attempt.proc.pid, signal.SIGCONT)  # a frozen group acts on it once going
        attempt.kill_at = time.monotonic() + grace

    def _final_update(self, attempt: _Attempt, code: int) -> AttemptUpdate:
        handle = attempt.handle
        where = f"pid {attempt.proc.pid}"
        failed = AttemptState.FAILED
        if attempt.cancelled:
            return AttemptUpdate(handle, failed, code, "cancelled", where=where)
        if attempt.timed_out:
            timeout = handle.spec.timeout or 0
            return AttemptUpdate(handle, failed, code, f"timed out after {timeout:g}s", where=where)
        if code == 0:
            return AttemptUpdate(handle, AttemptState.SUCCEEDED, 0, where=where)
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return AttemptUpdate(handle, failed, code, f"killed by {name}", where=where)
        limit = handle.spec.instance.task.resources.memory_limit
        if limit and resource is not None and _out_of_memory(attempt.log_path):
            reason = f"out of memory: over its memory limit {limit} (exit code {code})"
            return AttemptUpdate(handle, failed, code, reason, where=where)
        return AttemptUpdate(handle, failed, code, f"exit code {code}", where=where)

    # -- the rest of the protocol ---------------------------------------------------

    def logs(self, handle: AttemptHandle) -> bytes:
        attempt = self._attempts.get(handle.key)
        path = attempt.log_path if attempt else self._logs / f"{handle.key.split(':')[-1]}.log"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_file(self, handle: AttemptHandle) -> str:
        """Where the attempt's output goes while it runs ("" if it did not start): should
        kflow die, its watchdog leaves the file, and ``kflow logs`` reads it from there."""
        attempt = self._attempts.get(handle.key)
        return str(attempt.log_path) if attempt else ""

    def wake(self) -> None:
        """End a ``wait`` in progress (or the next one) at once. Thread-safe."""
        with self._wake_lock:
            if self._wake_write >= 0:
                with contextlib.suppress(BlockingIOError):  # full: a wake is pending anyway
                    os.write(self._wake_write, b"w")

    def cancel(self, handle: AttemptHandle, grace: float) -> None:
        for n, (waiting, _, _) in enumerate(self._cpu_waiting):
            if waiting.key == handle.key:  # never started: nothing to stop
                del self._cpu_waiting[n]
                self._finished.append(AttemptUpdate(handle, AttemptState.FAILED, None, "cancelled"))
                return
        attempt = self._attempts.get(handle.key)
        if attempt is None or attempt.proc.pid not in self._live:
            return
        if attempt.cancelled and grace > 0:
            return  # already stopping; a later cancel may only shorten the grace
        attempt.cancelled = True
        self._stop(attempt, grace)

    def suspend(self) -> None:
        """Ctrl-Z: stop every attempt's process group, as a shell stops a job."""
        for pid in list(self._live):
            _kill_group(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Continue the frozen groups; through the watchdog when it runs, because it also
        freezes them (when kflow is stopped with SIGSTOP) and must not do so after this."""
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.let_go_on()
            return
        for pid in list(self._live):
            _kill_group(pid, signal.SIGCONT)

    def release(self, handle: AttemptHandle) -> None:
        attempt = self._attempts.pop(handle.key, None)
        path = attempt.log_path if attempt else self._logs / f"{handle.key.split(':')[-1]}.log"
        with contextlib.suppress(OSError):
            path.unlink()

    def close(self) -> None:
        """Kill whatever still runs (and reap it), drop the temporary logs."""
        self._cpu_waiting.clear()
        for attempt in list(self._live.values()):
            _kill_group(attempt.proc.pid, signal.SIGKILL)
            self._reap(attempt)
        self._selector.close()
        with self._wake_lock:
            if self._wake_write >= 0:
                os.close(self._wake_read)
                os.close(self._wake_write)
                self._wake_write = -1
        if self._watchdog is not None:
            self._watchdog.close()
        shutil.rmtree(self._logs, ignore_errors=True)


def make_local_executor(directory: Path | str, cpus: int | None = None) -> LocalExecutor:
    if not Path(directory).is_dir():
        raise UsageError(f"project folder {directory} does not exist")
    return LocalExecutor(directory, cpus)


_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)$")
_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def quantity(text: str) -> float:
    """A Kubernetes quantity (validated when loaded) as a number: ``250m`` → 0.25, ``1Gi``."""
    match = _QUANTITY.match(text.strip().lstrip("+"))
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def _memory_limiter(resources: Resources) -> Callable[[], None] | None:
    """What the child runs before the command: its memory limit, as RLIMIT_DATA (heap and
    private writable memory; address space reserved but unused does not count, unlike
    RLIMIT_AS). None without a limit, so the usual fast spawn is kept."""
    limit = resources.memory_limit
    if not limit or resource is None:
        return None
    size = int(quantity(limit))

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (size, size))

    return apply


# What a program says when an allocation fails under RLIMIT_DATA (Python, libc, C++, Go).
_OOM_WORDS = (b"MemoryError", b"Cannot allocate memory", b"out of memory", b"bad_alloc")


def _out_of_memory(log_path: Path) -> bool:
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            tail = log.read()
    except OSError:
        return False
    return any(word in tail for word in _OOM_WORDS)


def ignored_locally(tasks: Iterable[TaskSpec]) -> list[str]:
    """Task settings that have no effect on the local executor, one line each (for check)."""
    tasks = list(tasks)
    found = {
        "resources.gpu": [t.name for t in tasks if t.resources.gpu],
        "resources.limits.cpu": [t.name for t in tasks if t.resources.limits_cpu],
    }
    return [
        f"{what} has no effect on the local executor (tasks: {', '.join(names)})"
        for what, names in found.items()
        if names
    ]
