"""A pod manifest checked without a cluster: unknown keys (a ``pod_overrides`` typo) against
the official client's models, and the OpenAPI schema where ``kubernetes-validate`` is
installed (a test extra). What the manifest builder itself refuses (no image, a volume
with no source, a toleration with an unknown operator) fails before this.

Both libraries are optional and heavy: imported here, only when a check asks, and skipped
(said so by the returned notes) when absent.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from kflow.errors import DefinitionError, did_you_mean
from kflow.model import TaskSpec

_PRIMITIVES = ("str", "int", "float", "bool", "object", "datetime", "date")


def check_pod(pod: Mapping[str, Any], task: TaskSpec) -> list[str]:
    """Raise DefinitionError naming the key the API server would refuse; return notes on
    what could not be checked (a library not installed)."""
    notes = []
    models = _optional("kubernetes.client.models")
    if models is None:
        notes.append("unknown pod keys not checked: the kubernetes client is not installed")
    else:
        _check_keys(models, pod, "V1Pod", "", task)
    validate = _optional("kubernetes_validate")
    if validate is None:
        notes.append("pod schema not checked: kubernetes-validate is not installed")
    else:
        _check_schema(validate, pod, task)
    return notes


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _check_keys(models: Any, value: Any, type_name: str, path: str, task: TaskSpec) -> None:
    """Walk the manifest along the client's typed models; an unknown key is a definition error."""
    if type_name.startswith("list[") and isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(models, item, type_name[5:-1], f"{path}[{index}]", task)
        return
    if type_name.startswith("dict(") and isinstance(value, Mapping):
        inner = type_name[5:-1].partition(", ")[2]
        for key, item in value.items():
            _check_keys(models, item, inner, f"{path}.{key}", task)
        return
    model = None if type_name in _PRIMITIVES else getattr(models, type_name, None)
    if model is None or not isinstance(value, Mapping):
        return
    fields = {json_name: name for name, json_name in model.attribute_map.items()}
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise DefinitionError(
                f"pod manifest: unknown key {where!r} (from pod_overrides?)",
                task.location,
                did_you_mean(str(key), fields) or f"valid keys there: {', '.join(sorted(fields))}",
            )
        _check_keys(models, item, model.openapi_types[fields[key]], where, task)


def _check_schema(validate: Any, pod: Mapping[str, Any], task: TaskSpec) -> None:
    try:
        validate.validate(dict(pod), validate.latest_version(), strict=True)
    except validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path) or "(the pod)"
        raise DefinitionError(
            f"pod manifest: {where}: {exc.message}", task.location, "see pod_overrides"
        ) from None
