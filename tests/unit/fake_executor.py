"""An in-process Executor for scheduler tests (ninja's ``FakeCommandRunner``): no processes.

A task's command says what its attempts do, the first word being the verb:

- ``ok``: succeed, writing the instance's outputs (real files, so the runner's output
  check and its records see them);
- ``fail [CODE]``: exit CODE (default 1) without writing anything;
- ``flaky N``: fail the first N attempts, then succeed as ``ok``;
- ``silent``: exit 0 without writing the outputs.

Attempts finish one per ``wait`` call, the oldest first; ``hold(name)`` keeps an
instance's attempts running until ``let_go(name)`` (from any thread). The scheduler is
real: only what runs an attempt is faked. ``started``, ``finished`` and ``max_running``
say what it saw.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate


class FakeExecutor:
    name = "fake"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[str] = []  # instance ids, in start order (one per attempt)
        self.finished: list[str] = []  # instance ids, in the order their attempts ended
        self.cancelled: list[str] = []
        self.max_running = 0
        self._running: list[AttemptHandle] = []
        self._held: set[str] = set()
        self._changed = threading.Condition()
        self._count = 0

    # -- driving it from a test ---------------------------------------------------

    def hold(self, instance: str) -> None:
        with self._changed:
            self._held.add(instance)

    def let_go(self, instance: str) -> None:
        with self._changed:
            self._held.discard(instance)
            self._changed.notify_all()

    def hold_all(self, instances: list[str]) -> None:
        with self._changed:
            self._held.update(instances)

    def running(self) -> list[str]:
        with self._changed:
            return [str(h.spec.instance.id) for h in self._running]

    def wait_started(self, instance: str, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``count`` attempts of ``instance`` have started (from another thread)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.started.count(instance) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{instance} never started: {self.started}")
                self._changed.wait(left)

    def wait_count(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` attempts in all have started."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.started) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{count} never started: {self.started}")
                self._changed.wait(left)

    # -- the Executor protocol -----------------------------------------------------

    def submit(self, spec: AttemptSpec) -> AttemptHandle:
        with self._changed:
            self._count += 1
            handle = AttemptHandle(f"fake:{self._count}", spec)
            self._running.append(handle)
            self.started.append(str(spec.instance.id))
            self.max_running = max(self.max_running, len(self._running))
            self._changed.notify_all()
        return handle

    def adopt(self, spec: AttemptSpec) -> AttemptHandle | None:
        return None

    def wait(self, timeout: float) -> list[AttemptUpdate]:
        with self._changed:
            handle = self._next_done()
            if handle is None:
                self._changed.wait(timeout)
                handle = self._next_done()
            if handle is None:
                return []
            self._running.remove(handle)
            self.finished.append(str(handle.spec.instance.id))
        return [self._outcome(handle)]

    def _next_done(self) -> AttemptHandle | None:
        for handle in self._running:
            if str(handle.spec.instance.id) not in self._held:
                return handle
        return None

    def _outcome(self, handle: AttemptHandle) -> AttemptUpdate:
        spec = handle.spec
        verb, *args = spec.argv
        if str(handle.spec.instance.id) in self.cancelled:
            return AttemptUpdate(handle, AttemptState.FAILED, -15, "cancelled")
        if verb == "flaky" and spec.attempt <= int(args[0]):
            verb, args = "fail", ["1"]
        if verb == "fail":
            code = int(args[0]) if args else 1
            return AttemptUpdate(handle, AttemptState.FAILED, code, f"exit code {code}")
        if verb != "silent":
            for location in spec.instance.outputs.values():
                path = self.directory / location
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{spec.instance.id} attempt {spec.attempt}\n")
        return AttemptUpdate(handle, AttemptState.SUCCEEDED, 0)

    def logs(self, handle: AttemptHandle) -> bytes:
        return f"{' '.join(handle.spec.argv)}\n".encode()

    def cancel(self, handle: AttemptHandle, grace: float) -> None:
        with self._changed:
            self.cancelled.append(str(handle.spec.instance.id))
            self._held.discard(str(handle.spec.instance.id))
            self._changed.notify_all()

    def release(self, handle: AttemptHandle) -> None:
        pass

    def suspend(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self) -> None:
        pass
