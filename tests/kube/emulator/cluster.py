"""The emulated control plane: store, clock, kubelet, faults, RBAC, request log - everything the
HTTP handlers reach through one object."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .clock import Clock
from .containers import HOST_ENV, ContainerLog
from .errors import ApiError
from .events import EventRecorder
from .faults import Faults
from .http import RequestRecord
from .kubelet import Kubelet
from .rbac import Rbac
from .resources import CONFIGMAPS, NAMESPACES, NODES, PODS, Request
from .store import StoreEvent
from .watch import StreamRegistry

Obj = dict[str, Any]
FAKE_CA = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"
DEFAULT_NODE = {"cpu": "8", "memory": "32Gi", "pods": "110"}


class Cluster:
    def __init__(
        self,
        *,
        namespaces: list[str],
        nodes: dict[str, dict[str, str]],
        time_scale: float,
        workdir: str,
        state_dir: str,
        ring_size: int,
        inherit_env: bool | tuple[str, ...] | None,
        extra_env: dict[str, str],
        tokens: dict[str, str],
        server_version: tuple[str, str],
        schedule_delay: float,
        default_watch_timeout: float,
        bookmark_interval: float | None,
        images_present: bool,
        command_map: dict[str, str],
        deadline_scale: float,
    ) -> None:
        from .store import Store

        self.clock = Clock(time_scale)
        self.store = Store(ring_size)
        self.streams = StreamRegistry()
        self.rbac = Rbac()
        for token, user in tokens.items():
            self.rbac.add_token(token, user)
        self.workdir = workdir
        self.state_dir = state_dir
        self.inherit_env: bool | tuple[str, ...] = (
            HOST_ENV if inherit_env is None else inherit_env
        )
        self.extra_env = dict(extra_env)
        self.server_version = server_version
        self._schedule_delay = schedule_delay
        self.default_watch_timeout = default_watch_timeout
        self.default_bookmark_interval = bookmark_interval
        self.images_present = images_present
        self.command_map = dict(command_map)
        self.deadline_scale = deadline_scale
        self.nodes = list(nodes)
        self.node_info: dict[str, Obj] = {}
        self.logs: dict[tuple[str, str, str], dict[str, list[ContainerLog]]] = {}
        self.errors: list[str] = []
        self.requests: list[RequestRecord] = []
        self._req_lock = threading.Lock()
        self.stopping = False
        self.port = 0
        self.address = "127.0.0.1:0"
        self.kubelet = Kubelet(self)
        self.faults = Faults(self)
        self.faults.bookmark_interval = bookmark_interval
        self.recorder = EventRecorder(self)
        self.store.listeners.append(self._on_change)
        for ns in namespaces:
            self.add_namespace(ns)
        for name, capacity in nodes.items():
            self._add_node(name, {**DEFAULT_NODE, **capacity})
        self._ticker = threading.Thread(target=self._tick, name="kube-emulator-ticker",
                                        daemon=True)
        self._tick_stop = threading.Event()

    # --- setup ---------------------------------------------------------------------------------

    def add_namespace(self, name: str) -> None:
        now = self.clock.now_iso()
        self.store.create(NAMESPACES.key, "", name, {
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now,
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        self.store.create(CONFIGMAPS.key, name, "kube-root-ca.crt", {
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "kube-root-ca.crt", "namespace": name,
                         "uid": str(uuid.uuid4()), "creationTimestamp": now},
            "data": {"ca.crt": FAKE_CA}})

    def _add_node(self, name: str, capacity: dict[str, str]) -> None:
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", **capacity.get("labels", {})}  # type: ignore
        cap = {k: capacity[k] for k in ("cpu", "memory", "pods")}
        self.node_info[name] = {**cap, "labels": labels}
        now = self.clock.now_iso()
        ip = f"172.18.0.{len(self.node_info) + 1}"
        self.store.create(NODES.key, "", name, {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now,
                         "labels": labels},
            "spec": {},
            "status": {"capacity": cap, "allocatable": cap,
                       "addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": now, "lastTransitionTime": now,
                                       "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status"}]}})

    def namespace_exists(self, name: str) -> bool:
        return self.store.get(NAMESPACES.key, "", name) is not None

    def _on_change(self, ev: StoreEvent) -> None:
        if ev.resource != PODS.key:
            return
        if ev.type == "DELETED":
            self.logs.pop((ev.namespace, ev.name, ev.obj["metadata"]["uid"]), None)
            self.kubelet.scheduler.poke()
        elif (ev.obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self.kubelet.scheduler.poke()

    # --- services for handlers and faults -------------------------------------------------------

    def schedule_delay(self) -> float:
        return self.clock.scaled(self._schedule_delay)

    def version_info(self) -> Obj:
        major, minor = self.server_version
        return {"major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
                "minCompatibilityMajor": major, "minCompatibilityMinor": str(int(minor) - 1),
                "gitVersion": f"v{major}.{minor}.0-fake", "gitCommit": "0" * 40,
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64"}

    def delete_pod(self, namespace: str, name: str, grace: int | None) -> None:
        from .pods import delete_pod

        opts: Obj = {} if grace is None else {"gracePeriodSeconds": grace}
        req = Request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", {}, {}, b"",
                      opts, "system:emulator", [], PODS, namespace, name, "", "delete")
        try:
            delete_pod(self, req, opts)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def mark_not_ready(self, pod: Obj) -> None:
        now = self.clock.now_iso()

        def _mark(obj: Obj) -> Obj:
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond["type"] in ("Ready", "ContainersReady") and cond["status"] != "False":
                    cond["status"], cond["lastTransitionTime"] = "False", now
            return obj

        meta = pod["metadata"]
        self.store.mutate(PODS.key, meta["namespace"], meta["name"], _mark)

    def record(self, rec: RequestRecord) -> None:
        with self._req_lock:
            self.requests.append(rec)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._ticker.start()

    def _tick(self) -> None:
        while not self._tick_stop.wait(0.02):
            try:
                self.faults.tick()
            except Exception:  # pragma: no cover - keep the ticker alive, surface the bug
                import traceback

                self.errors.append(traceback.format_exc())

    def stop(self) -> None:
        self.stopping = True
        self._tick_stop.set()
        self.store.notify()
        self.kubelet.stop()
        if self._ticker.is_alive():
            self._ticker.join(timeout=2)
