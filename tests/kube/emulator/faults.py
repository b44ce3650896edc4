"""The fault-injection handle (§6.4): ``emulator.faults.<method>(...)``.

Every method returns the armed rule (call ``rule.remove()`` to disarm it; ``rule.hits`` counts
how often it fired) or, for one-shot actions, the number of objects affected. Durations given to
faults (``until``, ``recover_after``, ``after_seconds``, ...) are clock seconds, *not* scaled by
``time_scale``. ``clear()`` disarms everything.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ApiError, FieldError, invalid
from .faultrules import (
    CreateError,
    ImageFault,
    Latency,
    LogFault,
    LoseResponse,
    NodeLoss,
    OomKill,
    PodDisruption,
    PodQuota,
    PodScope,
    RejectCreate,
    RequestFailure,
    Rule,
    StuckPending,
    Throttle,
    Unschedulable,
)
from .resources import PODS

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
R = TypeVar("R", bound=Rule)


class Faults:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.nodes_lost: dict[str, NodeLoss] = {}
        self.shut_down: set[str] = set()
        self.watch_http_410 = False
        self.bookmark_interval: float | None = None
        self.duplicate_events = False
        self._deadline: list[PodScope] = []
        self._phase_unknown: list[PodScope] = []

    def _arm(self, rule: R) -> R:
        with self._lock:
            self.rules.append(rule)
        self.cluster.kubelet.wake_all()
        return rule

    def _of(self, cls: type[R]) -> list[R]:
        with self._lock:
            return [r for r in self.rules if isinstance(r, cls) and not r.removed]

    def clear(self) -> None:
        """Disarm every fault and restore lost nodes."""
        with self._lock:
            for r in self.rules:
                r.removed = True
            self.rules.clear()
        self.restore_node()
        self.shut_down.clear()
        self._deadline.clear()
        self._phase_unknown.clear()
        self.watch_http_410 = self.duplicate_events = False
        self.bookmark_interval = self.cluster.default_bookmark_interval
        self.cluster.streams.stall_new_watches_for = 0.0

    # --- API level -----------------------------------------------------------------------------

    def fail_requests(self, method: str = "*", path_re: str = ".*", status: int = 500,
                      reason: str | None = None, message: str | None = None, times: int | None = 1,
                      retry_after: float | None = None, body: Obj | None = None,
                      details: Obj | None = None) -> RequestFailure:
        """Answer the next ``times`` matching requests (None = forever) with ``status``."""
        return self._arm(RequestFailure(method=method, path_re=path_re, status=status,
                                        reason=reason, message=message, times=times,
                                        retry_after=retry_after, body=body, details=details))

    def lose_response(self, method: str = "POST", path_re: str = ".*",
                      times: int | None = 1) -> LoseResponse:
        """Perform the request, then drop the connection instead of answering."""
        return self._arm(LoseResponse(method=method, path_re=path_re, times=times))

    def throttle(self, qps: float, burst: int = 1, retry_after: int | None = 1,
                 method: str = "*", path_re: str = ".*") -> Throttle:
        """APF-like: requests above ``qps`` (token bucket of ``burst``) get 429."""
        return self._arm(Throttle(qps=qps, burst=burst, retry_after=retry_after, method=method,
                                  path_re=path_re, tokens=float(burst)))

    def latency(self, path_re: str, seconds: float, method: str = "*") -> Latency:
        return self._arm(Latency(method=method, path_re=path_re, seconds=seconds))

    def reject_create(self, pod_glob: str = "*", message: str = "rejected by the emulator",
                      field: str = "metadata.name", selector: str | None = None,
                      times: int | None = None) -> RejectCreate:
        """Server-side 422 Invalid for matching pod creates."""
        return self._arm(RejectCreate(pod_glob=pod_glob, selector=selector, message=message,
                                      field_path=field, times=times))

    def admission_deny(self, message: str, pod_glob: str = "*", code: int = 400,
                       webhook: str = "validate.kflow.test", selector: str | None = None,
                       times: int | None = None) -> RejectCreate:
        """A validating webhook denying matching pod creates."""
        return self._arm(RejectCreate(pod_glob=pod_glob, selector=selector, message=message,
                                      code=code, webhook=webhook, times=times))

    def pod_quota(self, pods: int, name: str = "pod-count",
                  namespace: str | None = None) -> PodQuota:
        """A ResourceQuota ``pods: N``: a create that would make more than ``pods`` non-terminal
        pods in the namespace gets the real 403 "exceeded quota" (quota admission and the write
        are one step; it frees up as pods end or go; dry runs are checked too)."""
        return self._arm(PodQuota(pods=pods, name=name, namespace=namespace))

    def check_quota(self, pod: Obj, namespace: str) -> None:
        """(Store lock held by the caller for a real create.) Quota admission for a pod."""
        for rule in self._of(PodQuota):
            if rule.namespace not in (None, namespace):
                continue
            used = 0

            def _count(p: Obj) -> None:
                nonlocal used
                phase = (p.get("status") or {}).get("phase")
                if p["metadata"].get("namespace") == namespace and \
                        phase not in ("Succeeded", "Failed"):
                    used += 1

            self.cluster.store.view(PODS.key, _count)
            if used + 1 > rule.pods:
                rule.hits += 1
                name = pod["metadata"].get("name", "")
                raise ApiError(403, f'pods "{name}" is forbidden: exceeded quota: {rule.name}, '
                               f"requested: pods=1, used: pods={used}, limited: pods={rule.pods}",
                               "Forbidden", {"name": name, "kind": "pods"})

    def request_failure(self, method: str, path: str) -> RequestFailure | Throttle | None:
        for rule in self._of(RequestFailure):
            if rule.matches(method, path):
                rule.hits += 1
                return rule
        for throttle in self._of(Throttle):
            if throttle.take(method, path):
                return throttle
        return None

    def take_lose_response(self, method: str, path: str) -> bool:
        for rule in self._of(LoseResponse):
            if rule.matches(method, path):
                rule.hits += 1
                return True
        return False

    def latency_for(self, method: str, path: str) -> float:
        return float(sum(r.seconds for r in self._of(Latency) if r.matches(method, path)))

    def check_create(self, pod: Obj) -> None:
        for rule in self._of(RejectCreate):
            if rule.active() and rule.matches(pod):
                rule.hits += 1
                name = pod["metadata"].get("name", "")
                if rule.webhook:
                    raise ApiError(rule.code, f'admission webhook "{rule.webhook}" denied the '
                                   f"request: {rule.message}", None)
                raise invalid("Pod", name, [FieldError("Invalid", rule.field_path, name,
                                                       rule.message)])

    # --- watch level ---------------------------------------------------------------------------

    def drop_watches(self, mode: str = "clean") -> int:
        """End every open watch: ``clean`` (terminating chunk), ``reset`` (TCP RST) or
        ``truncate`` (half a JSON line, then close). Returns the number of watches hit."""
        assert mode in ("clean", "reset", "truncate")
        return self.cluster.streams.abort_all("watch", mode)

    def stall_watches(self, seconds: float, new_too: bool = False) -> int:
        """Open watches send nothing for ``seconds`` (half-open connection)."""
        until = time.monotonic() + seconds
        streams = self.cluster.streams.live("watch")
        for s in streams:
            s.stall_until = until
        if new_too:
            self.cluster.streams.stall_new_watches_for = seconds
        return len(streams)

    def expire_history(self, below_rv: int | None = None, http_410: bool = False) -> int:
        """Compact the event ring: watches from an older RV get 410 Expired (as an ERROR event,
        or as the HTTP status with ``http_410=True``). Returns the new floor."""
        self.watch_http_410 = http_410
        return self.cluster.store.compact(below_rv)

    def compact(self) -> int:
        return self.expire_history()

    def bookmarks(self, interval: float) -> None:
        self.bookmark_interval = interval

    def no_bookmarks(self) -> None:
        self.bookmark_interval = None

    def duplicate_watch_events(self, enabled: bool = True) -> None:
        """Send every watch event twice (as happens around reconnects)."""
        self.duplicate_events = enabled

    # --- pod level -----------------------------------------------------------------------------

    def unschedulable(self, pod_glob: str = "*", message: str | None = None,
                      until: float | None = None, selector: str | None = None) -> Unschedulable:
        rule = Unschedulable(pod_glob=pod_glob, selector=selector)
        if message:
            rule.message = message
        if until is not None:
            rule.until = self.cluster.clock.time() + until
        return self._arm(rule)

    def unschedulable_for(self, pod: Obj) -> str | None:
        for rule in self._of(Unschedulable):
            if rule.matches(pod) and (rule.until is None or self.cluster.clock.time() < rule.until):
                rule.hits += 1
                return rule.message
        return None

    def image_pull_error(self, image_glob: str = "*", kind: str = "ErrImagePull",
                         recover_after: float | None = None, message: str = "") -> ImageFault:
        assert kind in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
        return self._arm(ImageFault(image_glob=image_glob, kind=kind,
                                    recover_after=recover_after, message=message))

    def image_fault(self, pod: Obj, image: str) -> ImageFault | None:
        for rule in self._of(ImageFault):
            if fnmatch.fnmatchcase(image, rule.image_glob):
                rule.hits += 1
                return rule
        return None

    def create_container_error(self, pod_glob: str = "*",
                               reason: str = "CreateContainerConfigError",
                               message: str = 'secret "missing" not found', container: str = "*",
                               selector: str | None = None) -> CreateError:
        return self._arm(CreateError(pod_glob=pod_glob, selector=selector, reason=reason,
                                     message=message, container=container))

    def create_error_for(self, pod: Obj, container: str) -> tuple[str, str] | None:
        for rule in self._of(CreateError):
            if rule.matches(pod) and fnmatch.fnmatchcase(container, rule.container):
                rule.hits += 1
                return rule.reason, rule.message
        return None

    def stuck_pending(self, pod_glob: str = "*", message: str | None = None,
                      selector: str | None = None) -> StuckPending:
        rule = StuckPending(pod_glob=pod_glob, selector=selector)
        if message:
            rule.message = message
        return self._arm(rule)

    def stuck_pending_for(self, pod: Obj) -> str | None:
        for rule in self._of(StuckPending):
            if rule.matches(pod):
                rule.hits += 1
                return rule.message
        return None

    def oom_kill(self, pod_glob: str = "*", after_seconds: float | None = None,
                 after_output: str | None = None, reason: str = "OOMKilled",
                 mode: str = "kill", container: str = "*",
                 selector: str | None = None) -> OomKill:
        """``mode="kill"``: SIGKILL the process (exit 137, ``reason``); ``mode="report"``: let it
        finish and report ``reason`` with its real exit code (the "OOM but Succeeded" case)."""
        assert mode in ("kill", "report")
        return self._arm(OomKill(pod_glob=pod_glob, selector=selector, container=container,
                                 after_seconds=after_seconds, after_output=after_output,
                                 reason=reason, mode=mode))

    def oom_for(self, pod: Obj, container: str) -> OomKill | None:
        for rule in self._of(OomKill):
            if rule.matches(pod) and fnmatch.fnmatchcase(container, rule.container):
                return rule
        return None

    def evict(self, pod_glob: str = "*", kind: str = "node-pressure",
              stale_container_state: bool = False, when: str = "running",
              message: str | None = None, selector: str | None = None,
              times: int | None = None) -> PodDisruption:
        """Evict matching pods (now, or once they run): ``node-pressure`` (Failed/Evicted, pod
        stays), ``api``/``preempt``/``taint`` (DisruptionTarget, then graceful delete).
        ``times=1``: only the first matching pod (a retry is not evicted again)."""
        assert kind in ("node-pressure", "api", "preempt", "taint")
        return self._arm(PodDisruption(pod_glob=pod_glob, selector=selector, kind=kind,
                                       stale_container_state=stale_container_state, when=when,
                                       message=message, times=times))

    def node_shutdown(self, node: str | None = None, reason: str = "Terminated") -> int:
        """Graceful node shutdown: pods on the node end Failed with ``reason``."""
        node = node or self.cluster.nodes[0]
        self.shut_down.add(node)
        self._arm(PodDisruption(kind="shutdown", when="now", message=reason,
                                pod_glob="*", selector=None))
        return len(self._pods_on(node))

    def take_disruption(self, pod: Obj, running: bool) -> PodDisruption | None:
        uid = pod["metadata"]["uid"]
        for rule in self._of(PodDisruption):
            if rule.kind == "shutdown":
                if pod["spec"].get("nodeName") not in self.shut_down or uid in rule.done:
                    continue
            elif not rule.matches(pod) or uid in rule.done or (rule.when == "running"
                                                                and not running):
                continue
            if rule.times is not None and rule.hits >= rule.times:
                continue
            rule.done.add(uid)
            rule.hits += 1
            return rule
        return None

    def lose_node(self, node: str | None = None, mark_not_ready_after: float | None = 0.0,
                  taint_delete_after: float | None = None,
                  stop_processes: bool = False) -> NodeLoss:
        """The node stops reporting: pod statuses freeze, logs answer 500, pods get Ready=False
        after ``mark_not_ready_after`` and a taint-manager deletion (stuck Terminating) after
        ``taint_delete_after`` seconds. ``restore_node()`` resumes."""
        node = node or self.cluster.nodes[0]
        loss = NodeLoss(node=node, since=self.cluster.clock.time(),
                        mark_not_ready_after=mark_not_ready_after,
                        taint_delete_after=taint_delete_after, stop_processes=stop_processes)
        self.nodes_lost[node] = loss
        self.cluster.kubelet.wake_all()
        return loss

    def restore_node(self, node: str | None = None) -> None:
        for name in [node] if node else list(self.nodes_lost):
            self.nodes_lost.pop(name, None)
        self.cluster.kubelet.wake_all()

    def node_lost(self, node: str) -> NodeLoss | None:
        return self.nodes_lost.get(node) if node else None

    def delete_externally(self, pod_glob: str = "*", grace: int = 0,
                          selector: str | None = None) -> int:
        """Someone else deletes matching pods now (DELETED, then 404)."""
        scope = PodScope(pod_glob=pod_glob, selector=selector)
        pods = [p for p in self.cluster.store.list(PODS.key)[0] if scope.matches(p)]
        for p in pods:
            self.cluster.delete_pod(p["metadata"]["namespace"], p["metadata"]["name"], grace)
        return len(pods)

    def deadline_exceeded(self, pod_glob: str = "*", selector: str | None = None) -> PodScope:
        """Force the DeadlineExceeded path for matching pods (once each)."""
        rule = PodScope(pod_glob=pod_glob, selector=selector)
        self._deadline.append(rule)
        self.cluster.kubelet.wake_all()
        return rule

    def take_deadline(self, pod: Obj) -> bool:
        return any(r.matches(pod) for r in self._deadline)

    def phase_unknown(self, pod_glob: str = "*", selector: str | None = None) -> int:
        """Matching pods report ``phase: Unknown`` and their status freezes."""
        scope = PodScope(pod_glob=pod_glob, selector=selector)
        self._phase_unknown.append(scope)
        count = 0
        for p in self.cluster.store.list(PODS.key)[0]:
            if scope.matches(p):
                count += 1

                def _unknown(obj: Obj) -> Obj:
                    obj.setdefault("status", {})["phase"] = "Unknown"
                    return obj

                self.cluster.store.mutate(PODS.key, p["metadata"]["namespace"],
                                          p["metadata"]["name"], _unknown)
        return count

    def phase_unknown_for(self, pod: Obj) -> bool:
        return bool(pod) and any(r.matches(pod) for r in self._phase_unknown)

    def _pods_on(self, node: str) -> list[Obj]:
        return [p for p in self.cluster.store.list(PODS.key)[0]
                if p["spec"].get("nodeName") == node]

    # --- log level -----------------------------------------------------------------------------

    def slow_logs(self, pod_glob: str = "*", bytes_per_sec: float = 1000.0) -> LogFault:
        return self._arm(LogFault(pod_glob=pod_glob, bytes_per_sec=bytes_per_sec))

    def stall_log_stream(self, pod_glob: str = "*", after_bytes: int = 0) -> int:
        """Open follow streams of matching pods stop delivering after ``after_bytes``."""
        streams = [s for s in self.cluster.streams.live("log")
                   if fnmatch.fnmatchcase(s.pod, pod_glob)]
        for s in streams:
            s.stall_after_bytes = after_bytes
        return len(streams)

    def drop_log_stream(self, mode: str = "clean", pod_glob: str = "*") -> int:
        return self.cluster.streams.abort_all(
            "log", mode, lambda pod: fnmatch.fnmatchcase(pod, pod_glob))

    def rotate_logs(self, pod_glob: str = "*", keep_bytes: int = 0) -> int:
        """Earlier lines vanish from reads, as after a kubelet log rotation."""
        count = 0
        for (_, name, _), containers in list(self.cluster.logs.items()):
            if fnmatch.fnmatchcase(name, pod_glob):
                for instances in containers.values():
                    for log in instances[-1:]:
                        log.rotate(keep_bytes)
                        count += 1
        return count

    def logs_unavailable(self, pod_glob: str = "*", status: int = 404) -> LogFault:
        return self._arm(LogFault(pod_glob=pod_glob, status=status))

    def large_logs(self, n_mb: float, pod_glob: str = "*") -> LogFault:
        """Containers of matching pods start with ``n_mb`` MiB of log lines already written."""
        return self._arm(LogFault(pod_glob=pod_glob, large_mb=n_mb))

    def logs_unavailable_for(self, pod: Obj) -> int | None:
        for rule in self._of(LogFault):
            if rule.status and rule.matches(pod):
                return int(rule.status)
        return None

    def log_rate_for(self, pod: Obj) -> float | None:
        for rule in self._of(LogFault):
            if rule.bytes_per_sec and rule.matches(pod):
                return float(rule.bytes_per_sec)
        return None

    def large_log_lines(self, pod: Obj) -> list[bytes]:
        total = sum(r.large_mb for r in self._of(LogFault) if r.large_mb and r.matches(pod))
        if not total:
            return []
        line = b"x" * 99 + b"\n"
        return [line] * -(-int(total * 1024 * 1024) // len(line))

    # --- node controller (called periodically by the cluster) ---------------------------------

    def tick(self) -> None:
        now = self.cluster.clock.time()
        for loss in list(self.nodes_lost.values()):
            if not loss.marked and loss.mark_not_ready_after is not None and \
                    now >= loss.since + loss.mark_not_ready_after:
                loss.marked = True
                for p in self._pods_on(loss.node):
                    self.cluster.mark_not_ready(p)
            if not loss.deleted and loss.taint_delete_after is not None and \
                    now >= loss.since + loss.taint_delete_after:
                loss.deleted = True
                for p in self._pods_on(loss.node):
                    meta = p["metadata"]
                    self.cluster.kubelet.add_disruption(
                        meta["namespace"], meta["name"], "DeletionByTaintManager",
                        "Taint manager: deleting due to NoExecute taint")
                    self.cluster.delete_pod(meta["namespace"], meta["name"], 30)
