"""The local executor: each attempt a subprocess in the project folder, in its own process group.

A waiter thread per running attempt turns the process's end into an update on
one queue (so ``wait`` is a single blocking get), enforces the attempt's
timeout and escalates a cancel from SIGTERM to SIGKILL after the grace period.
The whole process group is signalled, so children a command started end too.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from kflow.errors import UsageError
from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# After a timeout, how long a command gets between SIGTERM and SIGKILL.
TIMEOUT_GRACE = 2.0


class _Attempt:
    def __init__(
        self, handle: AttemptHandle, proc: subprocess.Popen[bytes] | None, log_path: Path
    ):
        self.handle = handle
        self.proc = proc
        self.log_path = log_path
        self.cancelled = False
        self.timed_out = False
        self.timers: list[threading.Timer] = []


class LocalExecutor:
    """Runs attempts as local processes; needs nothing installed."""

    name = "local"

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._updates: queue.Queue[AttemptUpdate] = queue.Queue()
        self._attempts: dict[str, _Attempt] = {}
        self._lock = threading.Lock()
        self._logs = Path(tempfile.mkdtemp(prefix="kflow-logs-"))
        self._counter = 0
        self._base_env = dict(os.environ)
        bindir = os.path.dirname(sys.executable)
        path = self._base_env.get("PATH", "")
        self._base_env["PATH"] = bindir + (os.pathsep + path if path else "")

    def submit(self, spec: AttemptSpec) -> AttemptHandle:
        self._counter += 1
        log_path = self._logs / f"{self._counter}.log"
        env = {**self._base_env, **spec.env}
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(
                    list(spec.argv),
                    cwd=self.directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                # A command that cannot start fails like one that exits non-zero.
                log.write(f"kflow: cannot start {spec.argv[0]!r}: {exc.strerror}\n".encode())
                handle = AttemptHandle(f"unstarted:{self._counter}", spec)
                with self._lock:
                    self._attempts[handle.key] = _Attempt(handle, None, log_path)
                reason = f"cannot start {spec.argv[0]!r}: {exc.strerror}"
                self._updates.put(AttemptUpdate(handle, AttemptState.FAILED, 127, reason))
                return handle
        handle = AttemptHandle(f"pid:{proc.pid}", spec)
        attempt = _Attempt(handle, proc, log_path)
        with self._lock:
            self._attempts[handle.key] = attempt
        if spec.timeout is not None:
            timer = threading.Timer(spec.timeout, self._time_out, args=(attempt,))
            timer.daemon = True
            attempt.timers.append(timer)
            timer.start()
        threading.Thread(target=self._watch, args=(attempt,), daemon=True).start()
        return handle

    def _time_out(self, attempt: _Attempt) -> None:
        with self._lock:
            if attempt.proc is not None and attempt.proc.returncode is None:
                attempt.timed_out = True
                self._stop(attempt, TIMEOUT_GRACE)

    def _stop(self, attempt: _Attempt, grace: float) -> None:
        """SIGTERM the group now, SIGKILL it after ``grace`` unless the command has ended.

        Called with the lock held and the leader not yet reaped (its pid is still ours).
        """
        assert attempt.proc is not None
        pid = attempt.proc.pid
        if grace <= 0:
            _kill_group(pid, signal.SIGKILL)
            return
        _kill_group(pid, signal.SIGTERM)
        timer = threading.Timer(grace, self._kill_if_alive, args=(attempt,))
        timer.daemon = True
        attempt.timers.append(timer)
        timer.start()

    def _kill_if_alive(self, attempt: _Attempt) -> None:
        with self._lock:
            alive = attempt.proc is not None and attempt.proc.returncode is None
            if alive and attempt.proc is not None:
                _kill_group(attempt.proc.pid, signal.SIGKILL)

    def _watch(self, attempt: _Attempt) -> None:
        proc = attempt.proc
        assert proc is not None
        # Wait without reaping: while the leader is a zombie its pid, and so the
        # group id, cannot be reused, so the group kill below hits only our processes.
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            # Children left in the group by the command must not outlive it.
            _kill_group(proc.pid, signal.SIGKILL)
            code = proc.wait()
        for timer in attempt.timers:
            timer.cancel()
        self._updates.put(self._final_update(attempt, code))

    def _final_update(self, attempt: _Attempt, code: int) -> AttemptUpdate:
        handle = attempt.handle
        where = f"pid {attempt.proc.pid}" if attempt.proc is not None else ""
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
        return AttemptUpdate(handle, failed, code, f"exit code {code}", where=where)

    def adopt(self, spec: AttemptSpec) -> AttemptHandle | None:
        return None  # local processes die with their kflow; there is nothing to re-attach to

    def wait(self, timeout: float) -> list[AttemptUpdate]:
        try:
            first = self._updates.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return []
        updates = [first]
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    def logs(self, handle: AttemptHandle) -> bytes:
        attempt = self._attempts.get(handle.key)
        if attempt is None:
            return b""
        try:
            return attempt.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def cancel(self, handle: AttemptHandle, grace: float) -> None:
        attempt = self._attempts.get(handle.key)
        if attempt is None or attempt.proc is None:
            return
        with self._lock:
            if attempt.proc.returncode is not None:
                return
            if attempt.cancelled and grace > 0:
                return  # already stopping; a later cancel may only shorten the grace
            attempt.cancelled = True
            self._stop(attempt, grace)

    def kill_now(self) -> None:
        """SIGKILL every running attempt's process group (a second Ctrl-C)."""
        with self._lock:
            for attempt in self._attempts.values():
                if attempt.proc is not None and attempt.proc.returncode is None:
                    _kill_group(attempt.proc.pid, signal.SIGKILL)

    def release(self, handle: AttemptHandle) -> None:
        with self._lock:
            attempt = self._attempts.pop(handle.key, None)
        if attempt is not None:
            with contextlib.suppress(OSError):
                attempt.log_path.unlink()

    def close(self) -> None:
        self.kill_now()
        shutil.rmtree(self._logs, ignore_errors=True)


def make_local_executor(directory: Path | str) -> LocalExecutor:
    if not Path(directory).is_dir():
        raise UsageError(f"project folder {directory} does not exist")
    return LocalExecutor(directory)
