"""Fault rule records and their matchers (the control API lives in ``faults.py``)."""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .selectors import labels_match, parse_label_selector

if TYPE_CHECKING:
    from .clock import Clock
    from .podstatus import ContainerState

Obj = dict[str, Any]


@dataclass
class Rule:
    """Base of every fault: ``remove()`` disarms it, ``hits`` counts how often it fired."""

    hits: int = 0
    removed: bool = False

    def remove(self) -> None:
        self.removed = True


@dataclass
class PodScope(Rule):
    pod_glob: str = "*"
    selector: str | None = None

    def matches(self, pod: Obj) -> bool:
        if self.removed:
            return False
        meta = pod.get("metadata") or {}
        if not fnmatch.fnmatchcase(meta.get("name", ""), self.pod_glob):
            return False
        return self.selector is None or labels_match(parse_label_selector(self.selector), pod)


@dataclass
class RequestFailure(Rule):
    method: str = "*"
    path_re: str = ".*"
    status: int = 500
    reason: str | None = None
    message: str | None = None
    times: int | None = 1
    retry_after: float | None = None
    body: Obj | None = None
    details: Obj | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.removed or (self.times is not None and self.hits >= self.times):
            return False
        return (self.method in ("*", method)) and re.search(self.path_re, path) is not None


@dataclass
class LoseResponse(Rule):
    method: str = "*"
    path_re: str = ".*"
    times: int | None = 1

    def matches(self, method: str, path: str) -> bool:
        if self.removed or (self.times is not None and self.hits >= self.times):
            return False
        return (self.method in ("*", method)) and re.search(self.path_re, path) is not None


@dataclass
class Latency(Rule):
    method: str = "*"
    path_re: str = ".*"
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return not self.removed and self.method in ("*", method) and \
            re.search(self.path_re, path) is not None


@dataclass
class Throttle(Rule):
    qps: float = 1.0
    burst: int = 1
    retry_after: int | None = 1
    method: str = "*"
    path_re: str = ".*"
    tokens: float = 0.0
    last: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str) -> bool:
        """True when the request must be rejected with 429."""
        if self.removed or self.method not in ("*", method) or not re.search(self.path_re, path):
            return False
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return False
            self.hits += 1
            return True


@dataclass
class PodQuota(Rule):
    """A ResourceQuota on the pod count of a namespace (None: every namespace)."""

    pods: int = 0
    name: str = "pod-count"
    namespace: str | None = None


@dataclass
class RejectCreate(PodScope):
    code: int = 422
    field_path: str = "metadata.name"
    message: str = "rejected by the emulator"
    webhook: str | None = None
    times: int | None = None

    def active(self) -> bool:
        return not self.removed and (self.times is None or self.hits < self.times)


@dataclass
class Unschedulable(PodScope):
    message: str = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are "
                    "available: 3 No preemption victims found for incoming pod.")
    until: float | None = None  # clock time


@dataclass
class ImageFault(Rule):
    image_glob: str = "*"
    kind: str = "ErrImagePull"
    recover_after: float | None = None  # clock seconds after the first failure
    message: str = ""

    def recovered(self, clock: Clock, st: ContainerState) -> bool:
        if self.removed:
            return True
        if self.recover_after is None or st.pull_failed_at is None:
            return False
        return clock.time() >= st.pull_failed_at + self.recover_after


@dataclass
class CreateError(PodScope):
    container: str = "*"
    reason: str = "CreateContainerConfigError"
    message: str = 'secret "missing" not found'


@dataclass
class StuckPending(PodScope):
    message: str = ('MountVolume.SetUp failed for volume "data" : rpc error: code = '
                    "DeadlineExceeded desc = context deadline exceeded")


@dataclass
class OomKill(PodScope):
    container: str = "*"
    after_seconds: float | None = None  # clock seconds after start
    after_output: str | None = None
    reason: str = "OOMKilled"
    mode: str = "kill"  # kill | report (exit code kept, reason OOMKilled)
    killed: set[str] = field(default_factory=set)
    triggered: set[str] = field(default_factory=set)

    def should_kill(self, key: str, started_at: float, now: float) -> bool:
        if self.mode != "kill" or self.removed or key in self.killed:
            return False
        if self.after_output is not None:
            return key in self.triggered
        if self.after_seconds is not None:
            return now >= started_at + self.after_seconds
        return True

    def watch_output(self, key: str) -> Callable[[bytes], None] | None:
        if self.after_output is None:
            return None
        pattern = re.compile(self.after_output.encode())

        def _on_line(line: bytes) -> None:
            if pattern.search(line):
                self.triggered.add(key)

        return _on_line


@dataclass
class PodDisruption(PodScope):
    kind: str = "node-pressure"  # node-pressure | api | preempt | taint | shutdown
    stale_container_state: bool = False
    when: str = "running"  # running | now
    message: str | None = None
    times: int | None = None  # pods to disrupt (None = every matching pod)
    done: set[str] = field(default_factory=set)


@dataclass
class NodeLoss(Rule):
    node: str = ""
    since: float = 0.0
    mark_not_ready_after: float | None = 0.0
    taint_delete_after: float | None = None
    stop_processes: bool = False
    marked: bool = False
    deleted: bool = False


@dataclass
class LogFault(PodScope):
    status: int | None = None  # logs_unavailable
    bytes_per_sec: float | None = None  # slow_logs
    large_mb: float = 0.0  # large_logs
