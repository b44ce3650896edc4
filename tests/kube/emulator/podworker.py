"""One pod's life on the fake node (§6.3): schedule, sandbox, init containers, containers as
local processes, restarts with back-off, deadline, graceful termination, disruptions."""

from __future__ import annotations

import os
import signal
import threading
import traceback
from typing import TYPE_CHECKING, Any

from . import containers as ctr
from .clock import rfc3339
from .podspec import image_is_valid
from .podstatus import (
    UNKNOWN_MESSAGE,
    Conditions,
    ContainerState,
    log_tail,
    terminated,
    waiting,
)
from .resources import PODS

if TYPE_CHECKING:
    from .faultrules import PodDisruption
    from .kubelet import Kubelet

Obj = dict[str, Any]
POLL = 0.01
IDLE_POLL = 0.05  # process exits and deletions wake the worker earlier
TERMINATION_FILE_MAX = 4096


class _Removed(Exception):
    pass


class _Terminate(Exception):
    pass


class _Deadline(Exception):
    pass


class _Disrupt(Exception):
    def __init__(self, rule: PodDisruption) -> None:
        super().__init__(rule.kind)
        self.rule = rule


class PodWorker(threading.Thread):
    def __init__(self, kubelet: Kubelet, namespace: str, name: str, uid: str) -> None:
        super().__init__(name=f"kubelet-{name}", daemon=True)
        self.kubelet = kubelet
        self.cluster = kubelet.cluster
        self.clock = self.cluster.clock
        self.ns, self.name, self.uid = namespace, name, uid
        self.wake = threading.Event()
        self.removed = False
        self.terminate_grace: float | None = None
        self.force_deadline = False
        self.procs: dict[str, ctr.ContainerProcess] = {}
        self.logs: dict[str, list[ctr.ContainerLog]] = self.cluster.logs.setdefault(
            (namespace, name, uid), {})
        self.states: dict[str, ContainerState] = {}
        self.conditions = Conditions()
        self.pod: Obj = {}
        self.node = ""
        self.status_extra: Obj = {}
        self.phase = "Pending"
        self.start_time: float | None = None
        self.is_running_pod = False
        self.finished = threading.Event()
        self.state_dir = os.path.join(self.cluster.state_dir, f"{namespace}_{name}_{uid[:8]}")

    # --- plumbing ------------------------------------------------------------------------------

    def poke(self) -> None:
        self.wake.set()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds, self.wake)
        self.wake.clear()
        self.check()

    def reload(self) -> Obj:
        pod = self.cluster.store.get(PODS.key, self.ns, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            raise _Removed()
        self.pod = pod
        return pod

    def frozen(self) -> bool:
        return self.cluster.faults.node_lost(self.node) is not None or \
            self.cluster.faults.phase_unknown_for(self.pod)

    def check(self) -> None:
        if self.removed or self.cluster.stopping:
            raise _Removed()
        while self.node and self.cluster.faults.node_lost(self.node) is not None:
            loss = self.cluster.faults.node_lost(self.node)
            if loss is not None and loss.stop_processes:
                self.kill_all(signal.SIGKILL)
            self.clock.sleep(POLL * 2, self.wake)
            self.wake.clear()
            if self.removed or self.cluster.stopping:
                raise _Removed()
        pod = self.reload()
        if self.terminate_grace is not None:
            raise _Terminate()
        if self.force_deadline or self.cluster.faults.take_deadline(pod):
            raise _Deadline()
        ads = pod["spec"].get("activeDeadlineSeconds")
        if ads and self.start_time is not None and \
                self.clock.time() >= self.start_time + ads * self.cluster.deadline_scale:
            raise _Deadline()
        rule = self.cluster.faults.take_disruption(pod, self.is_running_pod)
        if rule is not None:
            raise _Disrupt(rule)

    def event(self, type_: str, reason: str, message: str, container: str | None = None) -> None:
        if self.pod:
            self.cluster.recorder.record(self.pod, type_, reason, message, container)

    def publish(self, final: bool = False) -> None:
        """Write the kubelet's view into the pod status (skipped while the node is lost)."""
        while self.frozen():
            if not final:
                return
            self.clock.sleep(POLL * 2, self.wake)
            self.wake.clear()
            if self.removed or self.cluster.stopping:
                raise _Removed()

        def _write(obj: Obj) -> Obj | None:
            if obj["metadata"]["uid"] != self.uid:
                return None
            old = obj.get("status") or {}
            status: Obj = {"phase": self.phase}
            status["conditions"] = self.conditions.render(old.get("conditions") or [])
            for key in ("message", "reason", "nominatedNodeName"):
                if key in self.status_extra:
                    status[key] = self.status_extra[key]
            if self.node:
                status["hostIP"] = self.kubelet.host_ip(self.node)
                status["hostIPs"] = [{"ip": status["hostIP"]}]
            if self.status_extra.get("podIP"):
                status["podIP"] = self.status_extra["podIP"]
                status["podIPs"] = [{"ip": status["podIP"]}]
            if self.start_time is not None:
                status["startTime"] = rfc3339(self.start_time)
            inits = [s.to_status() for s in self.states.values() if s.init]
            mains = [s.to_status() for s in self.states.values() if not s.init]
            if inits:
                status["initContainerStatuses"] = inits
            if mains:
                status["containerStatuses"] = mains
            status["qosClass"] = old.get("qosClass", "BestEffort")
            obj["status"] = status
            return obj

        if self.cluster.store.mutate(PODS.key, self.ns, self.name, _write) is None:
            raise _Removed()
        self.reload()

    def kill_all(self, sig: int) -> None:
        for proc in list(self.procs.values()):
            proc.signal(sig)

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            try:
                self.reload()
                self.lifecycle()
            except _Terminate:
                self.terminate()
            except _Deadline:
                self.deadline()
            except _Disrupt as d:
                self.disrupt(d.rule)
            if self.terminate_grace is not None:  # deleted while the pod was ending
                self.terminate()
        except _Removed:
            pass
        except Exception:  # a bug in the emulator: keep it visible to the test
            self.cluster.errors.append(traceback.format_exc())
        finally:
            self.kill_all(signal.SIGKILL)
            for proc in self.procs.values():
                proc.wait(5)
            self.kubelet.pod_stopped(self)
            self.finished.set()

    def lifecycle(self) -> None:
        self.node = self.kubelet.scheduler.schedule(self)
        pod = self.reload()
        self.start_time = self.clock.time()
        spec = pod["spec"]
        for c in spec.get("initContainers") or []:
            self.states[c["name"]] = ContainerState(c["name"], c["image"], init=True,
                                                    state=waiting("PodInitializing"))
        first_wait = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
        for c in spec["containers"]:
            self.states[c["name"]] = ContainerState(c["name"], c["image"],
                                                    state=waiting(first_wait))
        now = self.clock.time()
        inits = [s.name for s in self.states.values() if s.init]
        mains = [s.name for s in self.states.values() if not s.init]
        self.conditions.set("PodReadyToStartContainers", False, now)
        if inits:
            self.conditions.set("Initialized", False, now, "ContainersNotInitialized",
                                f"containers with incomplete status: [{' '.join(inits)}]")
        else:
            self.conditions.set("Initialized", True, now)
        self._not_ready(now, mains)
        self.conditions.set("PodScheduled", True, now)
        self.publish()
        self.sandbox()
        if inits:
            self.run_containers(inits, init=True)
            if self.phase == "Failed":
                return
            self.conditions.set("Initialized", True, self.clock.time())
            for name in mains:
                self.states[name].state = waiting("ContainerCreating")
            self.publish()
        self.run_containers(mains, init=False)

    def _not_ready(self, now: float, names: list[str]) -> None:
        msg = f"containers with unready status: [{' '.join(names)}]"
        self.conditions.set("Ready", False, now, "ContainersNotReady", msg)
        self.conditions.set("ContainersReady", False, now, "ContainersNotReady", msg)

    def sandbox(self) -> None:
        faults = self.cluster.faults
        next_event = 0.0
        while True:
            mounts = ctr.missing_volume_sources(self.cluster, self.pod)
            stuck = faults.stuck_pending_for(self.pod)
            if not mounts and not stuck:
                break
            if self.clock.time() >= next_event:
                for msg in mounts or [stuck or "MountVolume.SetUp failed"]:
                    self.event("Warning", "FailedMount", msg)
                next_event = self.clock.time() + self.clock.scaled(120)
            self.sleep(max(POLL, self.clock.scaled(1)))
        self.status_extra["podIP"] = self.kubelet.allocate_ip()
        self.conditions.set("PodReadyToStartContainers", True, self.clock.time())
        self.publish()

    # --- containers ----------------------------------------------------------------------------

    def spec_of(self, name: str) -> Obj:
        spec = self.pod["spec"]
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            if c["name"] == name:
                return dict(c)
        raise KeyError(name)

    def run_containers(self, names: list[str], init: bool) -> None:
        order = list(names)
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while True:
            changed = False
            active = order[:1] if init else order
            for name in active:
                st = self.states[name]
                now = self.clock.time()
                if st.phase in ("pending", "backoff") and now >= st.next_try:
                    changed |= self.kubelet.starter.try_start(self, st, self.spec_of(name))
                elif st.phase == "running":
                    proc = self.procs.get(name)
                    oom = self.cluster.faults.oom_for(self.pod, name)
                    if proc is not None and oom is not None and oom.should_kill(
                            self.uid + name, st.started_at or now, now):
                        proc.kill()
                        oom.killed.add(self.uid + name)
                    if proc is not None and proc.returncode() is not None:
                        self.kubelet.starter.on_exit(self, st, self.spec_of(name), policy)
                        changed = True
            if init and order and self.states[order[0]].phase == "done":
                st = self.states[order[0]]
                if st.exit_code == 0:
                    order.pop(0)
                    changed = True
                elif policy == "Never":
                    self.finish(failed=True)
                    return
            if not init and all(self.states[n].phase == "done" for n in order):
                failed = any(self.states[n].exit_code != 0 for n in order)
                self.finish(failed=failed)
                return
            if init and not order:
                return
            if changed:
                self.update_readiness(names, init)
                self.publish()
            now = self.clock.time()
            due = [self.states[n].next_try - now for n in active
                   if self.states[n].phase in ("pending", "backoff")]
            self.sleep(max(POLL, min([IDLE_POLL, *due])))

    def update_readiness(self, names: list[str], init: bool) -> None:
        now = self.clock.time()
        if init:
            return
        if any(self.states[n].phase != "pending" for n in names):  # started at least once
            self.phase = "Running"
        unready = [n for n in names if not self.states[n].is_running()]
        if unready:
            self._not_ready(now, unready)
        else:
            self.conditions.set("Ready", True, now)
            self.conditions.set("ContainersReady", True, now)

    def finish(self, failed: bool) -> None:
        now = self.clock.time()
        self.phase = "Failed" if failed else "Succeeded"
        reason = "PodFailed" if failed else "PodCompleted"
        self.conditions.set("PodReadyToStartContainers", False, now)
        self.conditions.set("Ready", False, now, reason)
        self.conditions.set("ContainersReady", False, now, reason)
        self.publish(final=True)

    def termination_message(self, spec: Obj, exit_code: int) -> str | None:
        path = self.host_termination_path(spec["name"])
        try:
            with open(path, "rb") as fh:
                data = fh.read(TERMINATION_FILE_MAX)
        except OSError:
            data = b""
        if data:
            return data.decode(errors="replace")
        if spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and exit_code != 0:
            logs = self.logs.get(spec["name"]) or []
            tail = log_tail(logs[-1].text()) if logs else ""
            return tail or None
        return None

    def host_termination_path(self, container: str) -> str:
        return os.path.join(self.state_dir, container, "termination-log")

    # --- endings -------------------------------------------------------------------------------

    def _stop_processes(self, grace: float, reason_event: bool = True) -> None:
        now = self.clock.time()
        for name, proc in list(self.procs.items()):
            if proc.returncode() is None and reason_event:
                self.event("Normal", "Killing", f"Stopping container {name}", name)
            proc.signal(signal.SIGTERM)
        deadline = now + grace
        while any(p.returncode() is None for p in self.procs.values()):
            if self.clock.time() >= deadline or self.removed or self.cluster.stopping:
                break
            self.clock.sleep(POLL)
        self.kill_all(signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait(5)

    def _record_kills(self, default_reason: str = "Error") -> None:
        now = self.clock.time()
        for name, st in self.states.items():
            proc = self.procs.get(name)
            if st.is_running() and proc is not None:
                code = proc.exit_code()
                st.state = terminated(code, "Completed" if code == 0 else default_reason,
                                      st.started_at, now, st.container_id)
                st.exit_code = code
            elif "terminated" not in st.state:
                st.state = terminated(137, "ContainerStatusUnknown", None, None, None,
                                      UNKNOWN_MESSAGE)
                st.exit_code = 137
            st.phase = "done"

    def _terminal(self, now: float, failed: bool = True) -> None:
        reason = "PodFailed" if failed else "PodCompleted"
        self.phase = "Failed" if failed else "Succeeded"
        self.conditions.set("PodReadyToStartContainers", False, now)
        self.conditions.set("Ready", False, now, reason)
        self.conditions.set("ContainersReady", False, now, reason)

    def terminate(self) -> None:
        """Graceful deletion: SIGTERM, grace, SIGKILL, final status, then remove the object."""
        grace = self.clock.scaled(self.terminate_grace or 0)
        self._stop_processes(grace)
        self._record_kills()
        failed = any(st.exit_code != 0 for st in self.states.values() if not st.init)
        if self.states:
            self._terminal(self.clock.time(), failed)
            self.publish(final=True)
        while self.cluster.faults.node_lost(self.node) is not None:
            self.clock.sleep(POLL * 2)
            if self.removed or self.cluster.stopping:
                return
        with self.cluster.store.lock:
            pod = self.cluster.store.get(PODS.key, self.ns, self.name)
            if pod is not None and pod["metadata"]["uid"] == self.uid:
                self.cluster.store.delete(PODS.key, self.ns, self.name)

    def deadline(self) -> None:
        self.kill_all(signal.SIGKILL)
        self._stop_processes(0, reason_event=False)
        self._record_kills()
        msg = "Pod was active on the node longer than the specified deadline"
        self.event("Normal", "DeadlineExceeded", msg)
        self._terminal(self.clock.time())
        self.status_extra.update(reason="DeadlineExceeded", message=msg)
        self.publish(final=True)

    def disrupt(self, rule: PodDisruption) -> None:
        now = self.clock.time()
        if rule.kind == "node-pressure":
            msg = rule.message or ("The node was low on resource: memory. Threshold quantity: "
                                   "100Mi, available: 40Mi.")
            self.event("Warning", "Evicted", msg)
            stale = {n: dict(st.state) for n, st in self.states.items()}
            self._stop_processes(0)
            self._record_kills()
            for name, st in self.states.items():
                if rule.stale_container_state and "running" in stale[name]:
                    st.state = stale[name]
                elif st.is_running() or "terminated" in st.state:
                    st.state = terminated(137, "ContainerStatusUnknown", None, None, None,
                                          UNKNOWN_MESSAGE)
            self._terminal(now)
            self.status_extra.update(reason="Evicted", message=msg)
            self.kubelet.add_disruption(self.ns, self.name, "TerminationByKubelet", msg)
            self.publish(final=True)
        elif rule.kind == "shutdown":
            msg = "Pod was terminated in response to imminent node shutdown."
            self.kubelet.add_disruption(self.ns, self.name, "TerminationByKubelet", msg)
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            self._stop_processes(self.clock.scaled(grace))
            self._record_kills()
            self._terminal(self.clock.time())
            self.status_extra.update(reason=rule.message or "Terminated", message=msg)
            self.publish(final=True)
        else:
            self._api_disruption(rule)

    def _api_disruption(self, rule: PodDisruption) -> None:
        """api/preempt/taint: DisruptionTarget, an event, then a graceful delete."""
        node = self.node or self.cluster.nodes[0]
        if rule.kind == "api":
            reason, msg = "EvictionByEvictionAPI", "Eviction API: evicting"
        elif rule.kind == "preempt":
            reason, msg = "PreemptionByScheduler", "default-scheduler: preempting to " \
                "accommodate a higher priority pod"
            self.cluster.recorder.record(self.pod, "Normal", "Preempted",
                                         f"Preempted by pod {rule.message or 'high-priority'} on "
                                         f"node {node}", component="default-scheduler")
        else:
            reason, msg = "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"
            self.cluster.recorder.record(self.pod, "Normal", "TaintManagerEviction",
                                         f"Marking for deletion Pod {self.ns}/{self.name}",
                                         component="taint-eviction-controller")
        self.kubelet.add_disruption(self.ns, self.name, reason, msg)
        self.cluster.delete_pod(self.ns, self.name, None)
        if self.removed:
            raise _Removed()
        self.terminate()


def argv_for(spec: Obj, env: dict[str, str], term_path: str,
             command_map: dict[str, str] | None = None) -> list[str]:
    command = [ctr.expand(str(x), env) for x in spec.get("command") or []]
    args = [ctr.expand(str(x), env) for x in spec.get("args") or []]
    argv = command + args
    if not argv:
        return ["true"]
    if command_map and argv[0] in command_map:
        argv[0] = command_map[argv[0]]
    default_path = spec.get("terminationMessagePath") or "/dev/termination-log"
    return [a.replace(default_path, term_path) for a in argv]


def image_error(image: str) -> str | None:
    if image_is_valid(image):
        return None
    return (f'Failed to apply default image tag "{image}": couldn\'t parse image name '
            f'"{image}": invalid reference format')


