"""The fake scheduler and kubelet: one ``PodWorker`` thread per pod, node capacity, pod IPs,
process accounting for introspection."""

from __future__ import annotations

import itertools
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .clock import rfc3339
from .podspec import parse_quantity
from .podstatus import disruption_condition
from .podworker import POLL, PodWorker
from .resources import PODS
from .starter import Starter

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
PENDING_RETRY = 0.1  # real seconds between scheduling attempts; pod exits retry at once


def pod_requests(spec: Obj) -> dict[str, Decimal]:
    def req(c: Obj, r: str) -> Decimal:
        value = ((c.get("resources") or {}).get("requests") or {}).get(r)
        try:
            return parse_quantity(value) if value is not None else Decimal(0)
        except ValueError:
            return Decimal(0)

    out = {}
    for r in ("cpu", "memory"):
        main = sum((req(c, r) for c in spec.get("containers") or []), Decimal(0))
        init = max((req(c, r) for c in spec.get("initContainers") or []), default=Decimal(0))
        out[r] = max(main, init)
    return out


class Scheduler:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.lock = threading.Lock()
        self.waiting: set[PodWorker] = set()
        self._waiting_lock = threading.Lock()  # never held while taking another lock

    def poke(self) -> None:
        """Capacity may have freed up: retry pending pods now."""
        with self._waiting_lock:
            waiting = list(self.waiting)
        for w in waiting:
            w.poke()

    def _fit(self, pod: Obj) -> tuple[str | None, str]:
        cluster = self.cluster
        need = pod_requests(pod["spec"])
        selector = pod["spec"].get("nodeSelector") or {}
        usage: dict[str, list[Any]] = {n: [0, Decimal(0), Decimal(0)] for n in cluster.nodes}

        def _count(p: Obj) -> None:
            node = p["spec"].get("nodeName")
            if node in usage and (p.get("status") or {}).get("phase") not in TERMINAL:
                req = pod_requests(p["spec"])
                usage[node][0] += 1
                usage[node][1] += req["cpu"]
                usage[node][2] += req["memory"]

        cluster.store.view(PODS.key, _count)
        reasons: dict[str, int] = {}
        for node in cluster.nodes:
            info = cluster.node_info[node]
            if cluster.faults.node_lost(node) is not None or node in cluster.faults.shut_down:
                key = "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
                reasons[key] = reasons.get(key, 0) + 1
                continue
            labels = info["labels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                key = "node(s) didn't match Pod's node affinity/selector"
                reasons[key] = reasons.get(key, 0) + 1
                continue
            count, used_cpu, used_memory = usage[node]
            if count + 1 > int(info["pods"]):
                reasons["Too many pods"] = reasons.get("Too many pods", 0) + 1
                continue
            short = False
            for r, used in (("cpu", used_cpu), ("memory", used_memory)):
                if used + need[r] > parse_quantity(info[r]):
                    key = f"Insufficient {r}"
                    reasons[key] = reasons.get(key, 0) + 1
                    short = True
            if not short:
                return node, ""
        n = len(cluster.nodes)
        parts = ", ".join(f"{c} {k}" for k, c in sorted(reasons.items()))
        return None, (f"0/{n} nodes are available: {parts}. preemption: 0/{n} nodes are "
                      f"available: {n} No preemption victims found for incoming pod.")

    def schedule(self, w: PodWorker) -> str:
        """Block until the pod is bound; returns the node name."""
        clock = self.cluster.clock
        w.sleep(self.cluster.schedule_delay())
        last_msg = None
        next_retry = 0.0
        while True:
            pod = w.reload()
            message = self.cluster.faults.unschedulable_for(pod)
            node = None
            if message is None:
                with self.lock:
                    node, message = self._fit(pod)
                    if node is not None:
                        self._bind(w, pod, node)
                        return node
            if message != last_msg or clock.time() >= next_retry:
                now = clock.time()

                def _unsched(obj: Obj, msg: str = message, t: float = now) -> Obj:
                    old = [c for c in (obj.get("status") or {}).get("conditions") or []
                           if c.get("type") == "PodScheduled"]
                    trans = old[0]["lastTransitionTime"] if old and old[0]["status"] == "False" \
                        else rfc3339(t)
                    obj["status"]["conditions"] = [{
                        "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                        "lastTransitionTime": trans, "reason": "Unschedulable", "message": msg}]
                    return obj

                if self.cluster.store.mutate(PODS.key, w.ns, w.name, _unsched) is None:
                    w.reload()
                w.reload()
                w.cluster.recorder.record(w.pod, "Warning", "FailedScheduling", message,
                                          component="default-scheduler")
                last_msg = message
                next_retry = clock.time() + clock.scaled(10)
            with self._waiting_lock:
                self.waiting.add(w)
            try:
                w.sleep(max(POLL, min(PENDING_RETRY, clock.scaled(10))))
            finally:
                with self._waiting_lock:
                    self.waiting.discard(w)

    def _bind(self, w: PodWorker, pod: Obj, node: str) -> None:
        def _set(obj: Obj) -> Obj:
            obj["spec"]["nodeName"] = node
            return obj

        if self.cluster.store.mutate(PODS.key, w.ns, w.name, _set) is None:
            w.reload()
        w.reload()
        w.cluster.recorder.record(w.pod, "Normal", "Scheduled",
                                  f"Successfully assigned {w.ns}/{w.name} to {node}",
                                  component="default-scheduler")


class Kubelet:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.scheduler = Scheduler(cluster)
        self.starter = Starter(cluster)
        self.lock = threading.Lock()
        self.workers: dict[tuple[str, str], PodWorker] = {}
        self.all_workers: list[PodWorker] = []
        self._ips = itertools.count(2)
        self.running_pods = 0
        self.peak_running_pods = 0
        self.running_processes = 0
        self.peak_processes = 0
        self.total_processes = 0

    # --- hooks from the API --------------------------------------------------------------------

    def pod_created(self, namespace: str, name: str) -> None:
        pod = self.cluster.store.get(PODS.key, namespace, name)
        if pod is None:
            return
        worker = PodWorker(self, namespace, name, pod["metadata"]["uid"])
        with self.lock:
            self.workers[(namespace, name)] = worker
            self.all_workers.append(worker)
        worker.start()

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        with self.lock:
            return self.workers.get((namespace, name))

    def pod_deleting(self, namespace: str, name: str, grace: float) -> None:
        w = self.worker(namespace, name)
        if w is not None and not w.finished.is_set():
            if w.terminate_grace is None or grace < w.terminate_grace:
                w.terminate_grace = grace
            w.poke()
            return
        # no kubelet worker any more: nothing to stop, the object goes (unless the node is gone)
        pod = self.cluster.store.get(PODS.key, namespace, name)
        if pod is not None and self.cluster.faults.node_lost(pod["spec"].get("nodeName", "")) \
                is None:
            self.cluster.store.delete(PODS.key, namespace, name)

    def pod_removed(self, namespace: str, name: str, uid: str) -> None:
        w = self.worker(namespace, name)
        if w is not None and w.uid == uid:
            w.removed = True
            w.kill_all(9)
            w.poke()

    def add_disruption(self, namespace: str, name: str, reason: str, message: str) -> None:
        now = self.cluster.clock.time()

        def _add(obj: Obj) -> Obj:
            status = obj.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c["type"] != "DisruptionTarget"]
            conds.append(disruption_condition(reason, message, now))
            status["conditions"] = conds
            return obj

        self.cluster.store.mutate(PODS.key, namespace, name, _add)

    # --- accounting ----------------------------------------------------------------------------

    def pod_running(self, w: PodWorker) -> None:
        with self.lock:
            self.running_pods += 1
            self.peak_running_pods = max(self.peak_running_pods, self.running_pods)

    def pod_stopped(self, w: PodWorker) -> None:
        with self.lock:
            if w.is_running_pod:
                self.running_pods -= 1
            if self.workers.get((w.ns, w.name)) is w:
                del self.workers[(w.ns, w.name)]

    def process_started(self) -> None:
        with self.lock:
            self.running_processes += 1
            self.total_processes += 1
            self.peak_processes = max(self.peak_processes, self.running_processes)

    def process_stopped(self) -> None:
        with self.lock:
            self.running_processes -= 1

    def allocate_ip(self) -> str:
        n = next(self._ips)
        return f"10.244.{n // 250}.{n % 250 + 2}"

    def host_ip(self, node: str) -> str:
        return f"172.18.0.{self.cluster.nodes.index(node) + 2}"

    def live_processes(self) -> list[tuple[str, str, str, int]]:
        out = []
        with self.lock:
            workers = list(self.all_workers)
        for w in workers:
            for cname, proc in list(w.procs.items()):
                if proc.returncode() is None:
                    out.append((w.ns, w.name, cname, proc.pid))
        return out

    def wake_all(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            w.poke()

    def stop(self) -> None:
        with self.lock:
            workers = list(self.all_workers)
        for w in workers:
            w.removed = True
            w.kill_all(9)
            w.poke()
        deadline = time.monotonic() + 10  # for all of them: a run leaves thousands of workers
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
            for proc in w.procs.values():
                proc.kill()
                proc.wait(max(0.0, deadline - time.monotonic()))
