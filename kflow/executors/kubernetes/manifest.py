"""One attempt of one instance → the pod manifest that runs it (a plain dict, as the API wants).

Pure: no client, no network. Everything SPEC §4 asks of a pod is decided here:
its deterministic name, the labels the run's watch selects on, the annotations
that let a later run recognise and adopt it, and the container settings taken
from the task. ``pod_overrides`` is merged in last, so it can change anything.

Task settings whose TOML shape is defined here:

* ``env_from = ["name", ...]``: each name is a **Secret** whose keys all become
  variables (``envFrom[].secretRef``). A ConfigMap can be given as
  ``"configmap:NAME"`` (and a Secret as ``"secret:NAME"``, the same as a bare name).
* ``volumes = [{ name, mount_path, read_only?, sub_path?, <source> }]`` with
  exactly one source: ``persistent_volume_claim = "claim"``,
  ``config_map = "name"``, ``secret = "name"`` or ``empty_dir = true``
  (or ``{ size_limit = "1Gi", medium = "Memory" }``).
* ``tolerations = [{ key, operator?, value?, effect?, toleration_seconds? }]``
  (snake_case or the API's camelCase).
* ``pod_overrides = { ... }``: merged into the generated pod. Tables merge key by
  key; lists whose items are all tables with a ``name`` (containers, volumes,
  env) merge item by item on ``name``; any other value replaces the generated one.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from kflow.errors import DefinitionError, did_you_mean
from kflow.executors.base import AttemptSpec
from kflow.model import TaskSpec

CONTAINER = "main"
MANAGED_BY = "app.kubernetes.io/managed-by"
PROJECT_LABEL = "kflow.dev/project"
RUN_LABEL = "kflow.dev/run"
TASK_LABEL = "kflow.dev/task"
ATTEMPT_LABEL = "kflow.dev/attempt"
INSTANCE_HASH_LABEL = "kflow.dev/instance-hash"
INSTANCE_ANNOTATION = "kflow.dev/instance"
FINGERPRINT_ANNOTATION = "kflow.dev/fingerprint"
ADOPTED_FROM_ANNOTATION = "kflow.dev/adopted-from-run"
# On a pod kept after its run took its result: no later run may take that result as its own.
COLLECTED_LABEL = "kflow.dev/collected"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"

# An orphaned pod must not run forever: a task without ``timeout`` gets this deadline.
DEFAULT_DEADLINE_SECONDS = 7 * 24 * 3600
# Requests are always set (the scheduler places pods by them); no limit follows from these.
DEFAULT_CPU_REQUEST = "100m"
DEFAULT_MEMORY_REQUEST = "128Mi"

_NAME_MAX = 63
_HASH_LEN = 10
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")
_VOLUME_SOURCES = ("persistent_volume_claim", "config_map", "secret", "empty_dir")
_VOLUME_KEYS = ("name", "mount_path", "read_only", "sub_path", *_VOLUME_SOURCES)
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "toleration_seconds")
_OPERATORS = ("Exists", "Equal")
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _dns_part(text: str) -> str:
    return _NOT_DNS.sub("-", text.lower()).strip("-")


def pod_name(project: str, instance_id: str, task: str, attempt: int) -> str:
    """``PROJECT-TASK-HASH``: DNS-1123, at most 63 characters, the same for the same attempt."""
    digest = hashlib.sha256(f"{instance_id}\0{attempt}".encode()).hexdigest()[:_HASH_LEN]
    room = _NAME_MAX - _HASH_LEN - 1
    prefix = "-".join(p for p in (_dns_part(project), _dns_part(task)) if p)
    prefix = prefix[:room].strip("-") or "kflow"
    return f"{prefix}-{digest}"


def label_value(text: str) -> str:
    """``text`` made a valid label value: allowed characters, ≤ 63, alphanumeric at both ends."""
    cleaned = _NOT_LABEL.sub("-", text)[:_NAME_MAX]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def run_selector(run_id: str) -> str:
    return f"{MANAGED_BY}=kflow,{RUN_LABEL}={label_value(run_id)}"


def pod_manifest(spec: AttemptSpec, project: str, namespace: str | None = None) -> dict[str, Any]:
    """The pod for ``spec`` (SPEC §4). Raises DefinitionError for settings that cannot work."""
    instance = spec.instance
    task = instance.task
    if not task.image:
        raise DefinitionError(
            f"task {task.name!r} has no image; the kubernetes executor needs one",
            task.location,
            hint='set image = "..." on the task, in [defaults] or in the profile',
        )
    iid = str(instance.id)
    metadata: dict[str, Any] = {
        "name": pod_name(project, iid, task.name, spec.attempt),
        "labels": {
            MANAGED_BY: "kflow",
            PROJECT_LABEL: label_value(project),
            RUN_LABEL: label_value(spec.run_id),
            TASK_LABEL: label_value(task.name),
            ATTEMPT_LABEL: str(spec.attempt),
            INSTANCE_HASH_LABEL: spec.instance_key,
        },
        "annotations": {
            INSTANCE_ANNOTATION: iid,
            FINGERPRINT_ANNOTATION: spec.fingerprint,
            SAFE_TO_EVICT: "false",
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": _pod_spec(spec, task),
    }
    if task.pod_overrides:
        pod = deep_merge(pod, task.pod_overrides)
    return pod


def _pod_spec(spec: AttemptSpec, task: TaskSpec) -> dict[str, Any]:
    timeout = spec.timeout if spec.timeout is not None else task.timeout
    deadline = max(1, math.ceil(timeout)) if timeout else DEFAULT_DEADLINE_SECONDS
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": task.image,
        "command": [_escape(arg) for arg in spec.argv],
        "env": _env(spec, task),
        "resources": _resources(task),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if task.env_from:
        container["envFrom"] = [_env_from(name, task) for name in task.env_from]
    if task.image_pull_policy:
        container["imagePullPolicy"] = task.image_pull_policy
    volumes, mounts = _volumes(task)
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": deadline,
        "containers": [container],
        "automountServiceAccountToken": task.service_account is not None,
    }
    if task.service_account:
        pod_spec["serviceAccountName"] = task.service_account
    if task.node_selector:
        pod_spec["nodeSelector"] = {str(k): str(v) for k, v in task.node_selector.items()}
    if task.tolerations:
        pod_spec["tolerations"] = [_toleration(n, t, task) for n, t in enumerate(task.tolerations)]
    if task.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in task.image_pull_secrets]
    if volumes:
        pod_spec["volumes"] = volumes
    return pod_spec


def _escape(text: str) -> str:
    """Kubernetes expands ``$(VAR)`` in command and env values; ``$$`` is a literal ``$``."""
    return text.replace("$", "$$")


def _env(spec: AttemptSpec, task: TaskSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": name, "value": _escape(str(value))} for name, value in spec.env.items()
    ]
    for var in task.env:
        if var.secret is not None:
            ref = {"secretKeyRef": {"name": var.secret[0], "key": var.secret[1]}}
            env.append({"name": var.name, "valueFrom": ref})
        elif var.config_map is not None:
            ref = {"configMapKeyRef": {"name": var.config_map[0], "key": var.config_map[1]}}
            env.append({"name": var.name, "valueFrom": ref})
    return env


def _env_from(name: str, task: TaskSpec) -> dict[str, Any]:
    kind, sep, rest = name.partition(":")
    if sep and kind in ("configmap", "config_map", "configMap"):
        return {"configMapRef": {"name": rest}}
    if sep and kind == "secret":
        return {"secretRef": {"name": rest}}
    if sep:
        raise DefinitionError(
            f"env_from entry {name!r}: expected NAME, secret:NAME or configmap:NAME",
            task.location,
        )
    return {"secretRef": {"name": name}}


def _resources(task: TaskSpec) -> dict[str, Any]:
    res = task.resources
    requests = {
        "cpu": res.cpu or DEFAULT_CPU_REQUEST,
        "memory": res.memory or DEFAULT_MEMORY_REQUEST,
    }
    limits: dict[str, str] = {}
    if res.limits_cpu:
        limits["cpu"] = res.limits_cpu
    if res.memory_limit:
        limits["memory"] = res.memory_limit
    if res.gpu:
        limits[res.gpu_resource] = str(res.gpu)
        requests[res.gpu_resource] = str(res.gpu)
    out: dict[str, Any] = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out


def _volumes(task: TaskSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for n, entry in enumerate(task.volumes):
        where = f"volumes[{n}]"
        _known_keys(entry, _VOLUME_KEYS, where, task)
        name, path = entry.get("name"), entry.get("mount_path")
        if not isinstance(name, str) or not isinstance(path, str) or not name or not path:
            raise DefinitionError(f"{where}: needs a name and a mount_path", task.location)
        sources = [key for key in _VOLUME_SOURCES if key in entry]
        if len(sources) != 1:
            raise DefinitionError(
                f"{where} ({name}): give exactly one of {', '.join(_VOLUME_SOURCES)}",
                task.location,
            )
        volumes.append({"name": name, **_volume_source(sources[0], entry[sources[0]])})
        mount: dict[str, Any] = {"name": name, "mountPath": path}
        if entry.get("read_only"):
            mount["readOnly"] = True
        if entry.get("sub_path"):
            mount["subPath"] = str(entry["sub_path"])
        mounts.append(mount)
    return volumes, mounts


def _known_keys(
    table: Mapping[str, Any], known: tuple[str, ...], where: str, task: TaskSpec
) -> None:
    for key in table:
        if key not in known:
            raise DefinitionError(
                f"{where}: unknown key {key!r}",
                task.location,
                did_you_mean(key, known) or f"valid keys: {', '.join(known)}",
            )


def _toleration(n: int, entry: Mapping[str, Any], task: TaskSpec) -> dict[str, Any]:
    """A toleration as the API wants it; what the API server would refuse fails here first."""
    where = f"tolerations[{n}]"
    snake = {_snake(str(k)): v for k, v in entry.items()}
    _known_keys(snake, _TOLERATION_KEYS, where, task)
    operator = snake.get("operator", "Equal")
    if operator not in _OPERATORS:
        raise DefinitionError(
            f"{where}: unknown operator {operator!r}",
            task.location,
            did_you_mean(str(operator), _OPERATORS) or f"use {' or '.join(_OPERATORS)}",
        )
    effect = snake.get("effect")
    if effect not in (None, "", *_EFFECTS):
        raise DefinitionError(
            f"{where}: unknown effect {effect!r}",
            task.location,
            did_you_mean(str(effect), _EFFECTS) or f"use one of {', '.join(_EFFECTS)}",
        )
    if operator == "Exists" and snake.get("value"):
        raise DefinitionError(f"{where}: operator Exists takes no value", task.location)
    if operator == "Equal" and not snake.get("key"):
        raise DefinitionError(f"{where}: operator Equal needs a key", task.location)
    return _camel_keys(entry)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _volume_source(kind: str, value: Any) -> dict[str, Any]:
    if kind == "persistent_volume_claim":
        return {"persistentVolumeClaim": {"claimName": str(value)}}
    if kind == "config_map":
        return {"configMap": {"name": str(value)}}
    if kind == "secret":
        return {"secret": {"secretName": str(value)}}
    empty: dict[str, Any] = _camel_keys(value) if isinstance(value, Mapping) else {}
    return {"emptyDir": empty}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    return {_camel(str(k)): v for k, v in table.items()}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base`` (the rules in the module docstring)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        elif isinstance(current, list) and _named_list(current) and _named_list(value):
            merged[key] = _merge_named(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, Mapping) and "name" in v for v in value)
    )


def _merge_named(base: list[Any], override: list[Any]) -> list[Any]:
    out = [copy.deepcopy(item) for item in base]
    index = {item["name"]: n for n, item in enumerate(out)}
    for item in override:
        if item["name"] in index:
            n = index[item["name"]]
            out[n] = deep_merge(out[n], item)
        else:
            out.append(copy.deepcopy(item))
    return out
