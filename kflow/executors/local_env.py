"""What the local executor cannot give a task: Secret and ConfigMap values.

A local process gets the task's literal variables only. References to a Secret or a
ConfigMap (``env = { K = { secret = "name", key = "k" } }``) and ``env_from`` exist on a
cluster, not here, so locally those variables are simply missing: the run says which.
"""

from __future__ import annotations

from collections.abc import Iterable

from kflow.model import TaskSpec


def unpassed_env(tasks: Iterable[TaskSpec]) -> dict[str, list[str]]:
    """Per task (that has any), the variables and ``env_from`` sources it runs without."""
    missing: dict[str, list[str]] = {}
    for task in tasks:
        lost = [
            text for var in task.env if (text := _reference(var.name, var.secret, var.config_map))
        ]
        lost += [f"env_from {_source(name)}" for name in task.env_from]
        if lost:
            missing[task.name] = lost
    return missing


def _reference(
    name: str, secret: tuple[str, str] | None, config_map: tuple[str, str] | None
) -> str | None:
    if secret:
        return f"{name} (secret {secret[0]}, key {secret[1]})"
    if config_map:
        return f"{name} (config map {config_map[0]}, key {config_map[1]})"
    return None


def _source(name: str) -> str:
    kind, sep, rest = name.partition(":")
    if sep and kind in ("configmap", "config_map", "configMap"):
        return f"config map {rest}"
    return f"secret {rest if sep else name}"
