"""Container processes: environment resolution (values, secretKeyRef, configMapKeyRef, fieldRef,
envFrom, ``$(VAR)`` expansion), the subprocess in its own process group, and its captured log."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .resources import CONFIGMAPS, SECRETS

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")


class ConfigError(Exception):
    """A missing secret/configmap/key: the container waits in CreateContainerConfigError."""


def expand(text: str, env: dict[str, str]) -> str:
    def _sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(_sub, text)


def _field_ref(pod: Obj, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs") or []),
    }
    return str(values.get(path) or "")


def _lookup(cluster: Cluster, kind: str, ns: str, name: str) -> Obj | None:
    rt = SECRETS if kind == "Secret" else CONFIGMAPS
    return cluster.store.get(rt.key, ns, name)


def _data(obj: Obj, kind: str) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()}
    out = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v).decode(errors="replace")
    return out


def _key_ref(cluster: Cluster, ns: str, ref: Obj, kind: str) -> str | None:
    obj = _lookup(cluster, kind, ns, ref.get("name", ""))
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
    data = _data(obj, kind)
    if ref.get("key") not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name')}")
    return data[ref["key"]]


def resolve_env(cluster: Cluster, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's environment (without host variables). Raises ConfigError."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            obj = _lookup(cluster, kind, ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for k, v in _data(obj, kind).items():
                env[source.get("prefix", "") + k] = v
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        vf = item["valueFrom"]
        value: str | None
        if "secretKeyRef" in vf:
            value = _key_ref(cluster, ns, vf["secretKeyRef"], "Secret")
        elif "configMapKeyRef" in vf:
            value = _key_ref(cluster, ns, vf["configMapKeyRef"], "ConfigMap")
        elif "fieldRef" in vf:
            value = _field_ref(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in vf:
            value = _resource_field(container, vf["resourceFieldRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env


def _resource_field(container: Obj, ref: Obj) -> str:
    kind, _, res = str(ref.get("resource", "")).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(res)
    if value is None:
        return "0"
    from .podspec import parse_quantity

    try:
        amount = parse_quantity(value)
        divisor = parse_quantity(ref.get("divisor") or "1")
        result = amount / divisor
        return str(int(result) if result == int(result) else int(result) + 1)
    except ValueError:
        return str(value)


def missing_volume_sources(cluster: Cluster, pod: Obj) -> list[str]:
    """FailedMount messages for secret/configMap volumes that do not exist."""
    ns = pod["metadata"]["namespace"]
    out = []
    for vol in pod["spec"].get("volumes") or []:
        for kind, field, key in (("Secret", "secret", "secretName"),
                                 ("ConfigMap", "configMap", "name")):
            src = vol.get(field)
            if src and not src.get("optional") and _lookup(cluster, kind, ns, src.get(key, "")) \
                    is None:
                out.append(f'MountVolume.SetUp failed for volume "{vol.get("name")}" : '
                           f'{kind.lower()} "{src.get(key)}" not found')
    return out


def image_id(image: str) -> str:
    repo = image.split("@")[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: repo.rfind(":")]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif "." not in repo.split("/")[0] and ":" not in repo.split("/")[0]:
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


class ContainerLog:
    """Timestamped lines of one container instance; followers wait on ``cond``."""

    MAX_SIZE = 10 * 1024 * 1024  # kubelet containerLogMaxSize: only the current file is served

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.lines: list[tuple[float, bytes]] = []
        self.done = False
        self.size = 0
        self.rotated = 0  # lines dropped by rotation (follow streams use it to keep their place)

    def append(self, t: float, data: bytes) -> None:
        with self.cond:
            self.lines.append((t, data))
            self.size += len(data)
            if self.size > self.MAX_SIZE:
                self._rotate_locked(0)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def rotate(self, keep_bytes: int) -> None:
        with self.cond:
            self._rotate_locked(keep_bytes)

    def _rotate_locked(self, keep_bytes: int) -> None:
        total, keep = 0, 0
        for _, data in reversed(self.lines):
            if total + len(data) > keep_bytes:
                break
            total += len(data)
            keep += 1
        self.rotated += len(self.lines) - keep
        self.lines = self.lines[len(self.lines) - keep:]
        self.size = total

    def text(self) -> bytes:
        with self.cond:
            return b"".join(d for _, d in self.lines)


class ContainerProcess:
    """One run of a container's command: a subprocess in its own process group."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log: ContainerLog,
        now: Callable[[], float],
        on_line: Callable[[bytes], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self._on_exit = on_exit
        self.container_id = "containerd://" + secrets.token_hex(32)
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.exited = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(now, on_line), daemon=True)
        self._reader.start()

    def _read(self, now: Callable[[], float], on_line: Callable[[bytes], None] | None) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.log.append(now(), line)
            if on_line is not None:
                on_line(line)
        self.proc.stdout.close()
        self.proc.wait()
        self.log.close()
        self.exited.set()
        if self._on_exit is not None:
            self._on_exit()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def returncode(self) -> int | None:
        return self.proc.returncode if self.exited.is_set() else None

    def exit_code(self) -> int:
        rc = self.proc.returncode
        return 128 - rc if rc is not None and rc < 0 else int(rc or 0)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        return self.exited.wait(timeout)


def host_env(inherit: bool | tuple[str, ...]) -> dict[str, str]:
    """Host variables passed to container processes: all (True) or the named ones."""
    if inherit is True:
        return dict(os.environ)
    if inherit is False:
        return {}
    return {k: os.environ[k] for k in inherit if k in os.environ}
