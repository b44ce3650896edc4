"""``KubeEmulator``: start/stop, kubeconfig, and the introspection helpers tests assert with."""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .clock import Clock
from .cluster import Cluster
from .faults import Faults
from .http import EmulatorServer, RequestRecord
from .rbac import Rbac
from .resources import CONFIGMAPS, EVENTS, LEASES, PODS, SECRETS
from .selectors import labels_match, parse_label_selector

Obj = dict[str, Any]
_LIVE: weakref.WeakSet[KubeEmulator] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort (interrupted test runs): no container process outlives the interpreter."""
    for emulator in list(_LIVE):
        emulator.cluster.kubelet.stop()


DEFAULT_TOKEN = "test-token"
DEFAULT_USER = "system:serviceaccount:kflow-test:kflow"


class KubeEmulator:
    """An emulated Kubernetes API server + scheduler + kubelet on 127.0.0.1 (random port).

    Parameters: ``namespaces`` that exist; ``nodes`` as ``{name: {"cpu": "8", "memory": "32Gi",
    "pods": "110", "labels": {...}}}``; ``time_scale`` multiplies every built-in delay, grace
    period, back-off and ``activeDeadlineSeconds`` (0.01 makes 30 s last 0.3 s); ``workdir`` is
    the working directory of every container process (default: a fresh temp dir); ``tokens`` maps
    bearer tokens to user names; ``inherit_env`` picks host variables for container processes
    (None: PATH/HOME/LANG/..., True: all, False: none, or a tuple of names); ``extra_env`` adds
    variables to every container; ``command_map`` replaces a command's first word (default:
    ``python``/``python3`` run the interpreter running the tests, whatever the image);
    ``deadline_scale`` scales ``activeDeadlineSeconds`` on its own (default: ``time_scale``; 1.0
    makes deadlines real seconds).
    """

    def __init__(
        self,
        namespaces: Iterable[str] = ("default", "kflow-test"),
        nodes: dict[str, dict[str, Any]] | None = None,
        time_scale: float = 1.0,
        workdir: str | os.PathLike[str] | None = None,
        tokens: dict[str, str] | None = None,
        ring_size: int = 1000,
        inherit_env: bool | tuple[str, ...] | None = None,
        extra_env: dict[str, str] | None = None,
        server_version: tuple[str, str] = ("1", "33"),
        schedule_delay: float = 0.5,
        default_watch_timeout: float = 1800.0,
        bookmark_interval: float | None = None,
        images_present: bool = False,
        command_map: dict[str, str] | None = None,
        deadline_scale: float | None = None,
    ) -> None:
        self._state_dir = tempfile.mkdtemp(prefix="kube-emulator-")
        work = os.fspath(workdir) if workdir is not None else os.path.join(self._state_dir, "work")
        os.makedirs(work, exist_ok=True)
        self.cluster = Cluster(
            namespaces=list(namespaces),
            nodes=nodes or {"node-1": {}},
            time_scale=time_scale,
            workdir=work,
            state_dir=os.path.join(self._state_dir, "pods"),
            ring_size=ring_size,
            inherit_env=inherit_env,
            extra_env=extra_env or {},
            tokens=tokens or {DEFAULT_TOKEN: DEFAULT_USER},
            server_version=server_version,
            schedule_delay=schedule_delay,
            default_watch_timeout=default_watch_timeout,
            bookmark_interval=bookmark_interval if bookmark_interval is not None
            else 60.0 * time_scale,
            images_present=images_present,
            command_map=command_map if command_map is not None else {
                "python": sys.executable, "python3": sys.executable},
            deadline_scale=time_scale if deadline_scale is None else deadline_scale,
        )
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        self._server = EmulatorServer(self.cluster)
        host, port = self._server.server_address[:2]
        self.cluster.port = int(port)
        self.cluster.address = f"{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="kube-emulator-http")
        self._thread.start()
        self.cluster.start()
        _LIVE.add(self)
        return self

    def stop(self) -> None:
        """Kill every container process, close every connection, remove the temp dirs."""
        _LIVE.discard(self)
        self.cluster.stop()
        if self._server is not None:
            self._server.shutdown()
            stuck = self._server.close_all()
            if stuck:
                self.cluster.errors.append(f"connection threads still running after stop(): "
                                           f"{', '.join(stuck)}")
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._state_dir, ignore_errors=True)

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- configuration -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.cluster.address}"

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def workdir(self) -> str:
        """Working directory of container processes started from now on (settable)."""
        return self.cluster.workdir

    @workdir.setter
    def workdir(self, path: str | os.PathLike[str]) -> None:
        self.cluster.workdir = os.fspath(path)

    @property
    def faults(self) -> Faults:
        return self.cluster.faults

    @property
    def rbac(self) -> Rbac:
        return self.cluster.rbac

    @property
    def clock(self) -> Clock:
        return self.cluster.clock

    @property
    def errors(self) -> list[str]:
        """Tracebacks of emulator bugs (handlers answer 500 and record them here)."""
        return self.cluster.errors

    def write_kubeconfig(self, path: str | os.PathLike[str], token: str = DEFAULT_TOKEN,
                         context: str = "kube-emulator", namespace: str | None = "kflow-test",
                         user: str = "tester", cluster: str = "kube-emulator",
                         token_file: str | os.PathLike[str] | None = None,
                         exec_command: list[str] | None = None) -> str:
        """Write a kubeconfig for this server; returns its path. Credentials: ``token``, or
        ``tokenFile: token_file`` (read by the client when it loads the kubeconfig), or an exec
        plugin ``exec_command`` (``[command, *args]``; it prints an ExecCredential)."""
        ctx = f"{{cluster: {cluster}, user: {user}" + (
            f", namespace: {namespace}}}" if namespace else "}")
        if exec_command:
            auth = json.dumps({"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": exec_command[0], "args": exec_command[1:],
                                        "interactiveMode": "Never"}})
        elif token_file is not None:
            auth = json.dumps({"tokenFile": os.fspath(token_file)})
        else:
            auth = f"{{token: \"{token}\"}}"
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {cluster}\n  cluster: {{server: \"{self.url}\"}}\n"
            f"users:\n- name: {user}\n  user: {auth}\n"
            f"contexts:\n- name: {context}\n  context: {ctx}\n"
            f"current-context: {context}\n"
        )
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return os.fspath(path)

    def add_namespace(self, name: str) -> None:
        self.cluster.add_namespace(name)

    def create_secret(self, name: str, data: dict[str, str], namespace: str = "kflow-test") -> Obj:
        import base64

        enc = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return self._create(SECRETS.key, namespace, name, {"kind": "Secret", "apiVersion": "v1",
                                                           "type": "Opaque", "data": enc})

    def create_configmap(self, name: str, data: dict[str, str],
                         namespace: str = "kflow-test") -> Obj:
        return self._create(CONFIGMAPS.key, namespace, name,
                            {"kind": "ConfigMap", "apiVersion": "v1", "data": dict(data)})

    def _create(self, key: str, ns: str, name: str, obj: Obj) -> Obj:
        import uuid

        obj["metadata"] = {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                           "creationTimestamp": self.clock.now_iso()}
        stored = self.cluster.store.create(key, ns, name, obj)
        assert stored is not None, f"{key} {ns}/{name} exists"
        self.cluster.kubelet.wake_all()
        return stored

    # --- introspection -------------------------------------------------------------------------

    def pods(self, namespace: str | None = None, selector: str | None = None) -> list[Obj]:
        items, _ = self.cluster.store.list(PODS.key, namespace)
        reqs = parse_label_selector(selector)
        return [p for p in items if labels_match(reqs, p)]

    def pod(self, name: str, namespace: str = "kflow-test") -> Obj | None:
        return self.cluster.store.get(PODS.key, namespace, name)

    def events(self, pod: str | None = None, namespace: str | None = None) -> list[Obj]:
        items, _ = self.cluster.store.list(EVENTS.key, namespace)
        return [e for e in items if pod is None or e["involvedObject"]["name"] == pod]

    def leases(self, namespace: str | None = None) -> list[Obj]:
        return self.cluster.store.list(LEASES.key, namespace)[0]

    def logs(self, pod: str, container: str | None = None, namespace: str = "kflow-test") -> str:
        """The current log of a container, read directly (no HTTP)."""
        obj = self.pod(pod, namespace)
        if obj is None:
            return ""
        containers = self.cluster.logs.get((namespace, pod, obj["metadata"]["uid"]), {})
        name = container or obj["spec"]["containers"][0]["name"]
        instances = containers.get(name) or []
        return instances[-1].text().decode(errors="replace") if instances else ""

    def requests(self, method: str | None = None, path_re: str | None = None,
                 verb: str | None = None, status: int | None = None) -> list[RequestRecord]:
        with self.cluster._req_lock:
            recs = list(self.cluster.requests)
        return [r for r in recs
                if (method is None or r.method == method)
                and (path_re is None or re.search(path_re, r.path))
                and (verb is None or r.verb == verb)
                and (status is None or r.status == status)]

    def count(self, method: str | None = None, path_re: str | None = None,
              verb: str | None = None, status: int | None = None) -> int:
        return len(self.requests(method, path_re, verb, status))

    def request_counts(self) -> collections.Counter[tuple[str, str]]:
        """Requests per (method, path)."""
        return collections.Counter((r.method, r.path) for r in self.requests())

    def verb_counts(self) -> collections.Counter[str]:
        """Requests per Kubernetes verb (get, list, watch, create, ...)."""
        return collections.Counter(r.verb or r.method.lower() for r in self.requests())

    def reset_requests(self) -> None:
        with self.cluster._req_lock:
            self.cluster.requests.clear()

    def running_processes(self) -> list[tuple[str, str, str, int]]:
        """(namespace, pod, container, pid) of every live container process."""
        return self.cluster.kubelet.live_processes()

    def orphans(self, run_id: str, label: str = "kflow.dev/run",
                namespace: str | None = None) -> list[str]:
        """Names of the pods of a run that still exist."""
        return [p["metadata"]["name"] for p in self.pods(namespace, f"{label}={run_id}")]

    def max_concurrent(self, kind: str = "pods") -> int:
        """Peak of: ``pods`` (pods with a running container), ``processes``, ``watches``,
        ``logs`` (open follow streams)."""
        kubelet = self.cluster.kubelet
        if kind == "pods":
            return kubelet.peak_running_pods
        if kind == "processes":
            return kubelet.peak_processes
        if kind in ("watches", "watch"):
            return self.cluster.streams.peak("watch")
        if kind in ("logs", "log"):
            return self.cluster.streams.peak("log")
        raise ValueError(kind)

    def open_streams(self, kind: str | None = None) -> int:
        return len(self.cluster.streams.live(kind))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0,
                 interval: float = 0.01) -> Any:
        """Poll ``predicate`` until truthy; returns its value or raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(interval)

    def wait_for_pod(self, name: str, predicate: Callable[[Obj], Any],
                     namespace: str = "kflow-test", timeout: float = 60.0) -> Obj:
        def _check() -> Obj | None:
            pod = self.pod(name, namespace)
            return pod if pod is not None and predicate(pod) else None

        return self.wait_for(_check, timeout)  # type: ignore[no-any-return]

    def wait_for_phase(self, name: str, *phases: str, namespace: str = "kflow-test",
                       timeout: float = 60.0) -> Obj:
        return self.wait_for_pod(name, lambda p: p["status"].get("phase") in phases,
                                 namespace, timeout)

    def wait_gone(self, name: str, namespace: str = "kflow-test", timeout: float = 60.0) -> None:
        self.wait_for(lambda: self.pod(name, namespace) is None, timeout)
