"""Starting a container (image pull, config resolution, process start) and handling its exit
(termination message, restart with CrashLoopBackOff)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import containers as ctr
from .podstatus import ContainerState, running, terminated, waiting

if TYPE_CHECKING:
    from .cluster import Cluster
    from .podworker import PodWorker

Obj = dict[str, Any]
MAX_BACKOFF = 300.0


class Starter:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.pulled: set[tuple[str, str]] = set()

    def _pod_ref(self, w: PodWorker) -> str:
        return f"{w.name}_{w.ns}({w.uid})"

    # --- start ---------------------------------------------------------------------------------

    def try_start(self, w: PodWorker, st: ContainerState, spec: Obj) -> bool:
        """One attempt to start; returns True when the visible status changed."""
        from .podworker import argv_for, image_error

        clock = self.cluster.clock
        now = clock.time()
        image = spec["image"]
        if st.phase == "pending" and not st.started_at and st.restart_count == 0:
            bad = image_error(image)
            if bad:
                return self._wait(w, st, "InvalidImageName", bad, clock.scaled(10),
                                  [("Warning", "InspectFailed", bad),
                                   ("Warning", "Failed", "Error: InvalidImageName")])
            rule = self.cluster.faults.image_fault(w.pod, image)
            if rule is not None and rule.kind == "InvalidImageName":
                return self._wait(w, st, "InvalidImageName", image_error("Bad:" + image) or "",
                                  clock.scaled(10), [("Warning", "Failed",
                                                      "Error: InvalidImageName")])
            if rule is not None and not rule.recovered(clock, st):
                return self._pull_failure(w, st, image, rule.message)
            if not self._pull(w, st, spec):
                return True
        fault = self.cluster.faults.create_error_for(w.pod, st.name)
        if fault is not None:
            reason, message = fault
            return self._wait(w, st, reason, message, clock.scaled(10),
                              [("Warning", "Failed", f"Error: {message}")])
        try:
            env = ctr.resolve_env(self.cluster, w.pod, spec)
        except ctr.ConfigError as exc:
            return self._wait(w, st, "CreateContainerConfigError", str(exc), clock.scaled(5),
                              [("Warning", "Failed", f"Error: {exc}")])
        term_path = w.host_termination_path(st.name)
        os.makedirs(os.path.dirname(term_path), exist_ok=True)
        open(term_path, "wb").close()
        full_env = ctr.host_env(self.cluster.inherit_env)
        full_env.update({"HOSTNAME": w.name, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                         "KUBERNETES_SERVICE_PORT": str(self.cluster.port)})
        full_env.update(self.cluster.extra_env)
        full_env.update(env)
        argv = argv_for(spec, env, term_path, self.cluster.command_map)
        log = ctr.ContainerLog()
        for extra in self.cluster.faults.large_log_lines(w.pod):
            log.append(clock.time(), extra)
        oom = self.cluster.faults.oom_for(w.pod, st.name)
        on_line = oom.watch_output(w.uid + st.name) if oom is not None else None
        w.event("Normal", "Created", f"Created container: {st.name}", st.name)
        self.cluster.kubelet.process_started()
        try:
            proc = ctr.ContainerProcess(argv, full_env, self.cluster.workdir, log, clock.time,
                                        on_line, lambda: self._exited(w))
        except OSError as exc:
            self.cluster.kubelet.process_stopped()
            msg = ("failed to create containerd task: failed to create shim task: OCI runtime "
                   "create failed: runc create failed: unable to start container process: "
                   f'exec: "{argv[0]}": {_os_reason(exc)}: unknown')
            w.event("Warning", "Failed", f"Error: {msg}", st.name)
            st.state = terminated(128, "StartError", None, now, None, msg)
            st.exit_code = 128
            self._after_exit(w, st, spec)
            return True
        w.procs[st.name] = proc
        w.logs.setdefault(st.name, []).append(log)
        st.container_id = proc.container_id
        st.image_id = ctr.image_id(image)
        st.started_at = clock.time()
        st.state = running(st.started_at)
        st.phase = "running"
        if not st.init and not w.is_running_pod:
            w.is_running_pod = True
            self.cluster.kubelet.pod_running(w)
        w.event("Normal", "Started", f"Started container {st.name}", st.name)
        return True

    def _exited(self, w: PodWorker) -> None:
        self.cluster.kubelet.process_stopped()
        w.poke()

    def _wait(self, w: PodWorker, st: ContainerState, reason: str, message: str, retry: float,
              events: list[tuple[str, str, str]]) -> bool:
        for type_, ev_reason, ev_msg in events:
            w.event(type_, ev_reason, ev_msg, st.name)
        st.state = waiting(reason, message)
        st.next_try = self.cluster.clock.time() + max(retry, 0.005)
        return True

    def _pull(self, w: PodWorker, st: ContainerState, spec: Obj) -> bool:
        image, policy = spec["image"], spec.get("imagePullPolicy", "IfNotPresent")
        key = (w.node, image)
        if policy == "Never" and key not in self.pulled and not self.cluster.images_present:
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self._wait(w, st, "ErrImageNeverPull", msg, self.cluster.clock.scaled(10),
                       [("Warning", "ErrImageNeverPull", msg)])
            return False
        if policy == "Always" or key not in self.pulled:
            w.event("Normal", "Pulling", f'Pulling image "{image}"', st.name)
            w.event("Normal", "Pulled", f'Successfully pulled image "{image}" in 12ms (12ms '
                    "including waiting). Image size: 2158080 bytes.", st.name)
            self.pulled.add(key)
        else:
            w.event("Normal", "Pulled", f'Container image "{image}" already present on machine',
                    st.name)
        return True

    def _pull_failure(self, w: PodWorker, st: ContainerState, image: str, message: str) -> bool:
        clock = self.cluster.clock
        if st.pull_failed_at is None:
            st.pull_failed_at = clock.time()
        current = (st.state.get("waiting") or {}).get("reason")
        if current != "ErrImagePull":
            st.pull_failures += 1
            rpc = message or (f'rpc error: code = NotFound desc = failed to pull and unpack image '
                              f'"{image}": failed to resolve reference "{image}": {image}: not '
                              "found")
            w.event("Normal", "Pulling", f'Pulling image "{image}"', st.name)
            return self._wait(w, st, "ErrImagePull", rpc, clock.scaled(5), [
                ("Warning", "Failed", f'Failed to pull image "{image}": {rpc}'),
                ("Warning", "Failed", "Error: ErrImagePull")])
        delay = min(MAX_BACKOFF, 10.0 * 2 ** (st.pull_failures - 1))
        msg = f'Back-off pulling image "{image}"'
        return self._wait(w, st, "ImagePullBackOff", msg, clock.scaled(delay), [
            ("Normal", "BackOff", msg), ("Warning", "Failed", "Error: ImagePullBackOff")])

    # --- exit ----------------------------------------------------------------------------------

    def on_exit(self, w: PodWorker, st: ContainerState, spec: Obj, policy: str) -> None:
        proc = w.procs[st.name]
        proc.wait(5)
        code = proc.exit_code()
        now = self.cluster.clock.time()
        oom = self.cluster.faults.oom_for(w.pod, st.name)
        reason = "Completed" if code == 0 else "Error"
        if oom is not None and (oom.mode == "report" or (w.uid + st.name) in oom.killed):
            reason = oom.reason
        message = w.termination_message(spec, code)
        st.state = terminated(code, reason, st.started_at, now, st.container_id, message)
        st.exit_code = code
        self._after_exit(w, st, spec, policy)

    def _after_exit(self, w: PodWorker, st: ContainerState, spec: Obj,
                    policy: str | None = None) -> None:
        policy = policy or w.pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and st.exit_code != 0)
        if st.init and policy == "Always":
            restart = st.exit_code != 0
        if not restart:
            st.phase = "done"
            return
        clock = self.cluster.clock
        delay = st.backoff
        st.backoff = min(MAX_BACKOFF, st.backoff * 2)
        st.last_state = st.state
        st.restart_count += 1
        msg = (f"back-off {int(delay)}s restarting failed container={st.name} "
               f"pod={self._pod_ref(w)}")
        st.state = waiting("CrashLoopBackOff", msg)
        st.phase = "backoff"
        st.next_try = clock.time() + max(clock.scaled(delay), 0.005)
        w.event("Warning", "BackOff", f"Back-off restarting failed container {st.name} in pod "
                f"{self._pod_ref(w)}", st.name)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "executable file not found in $PATH"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc)

