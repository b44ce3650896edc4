"""Reading ``[tasks.*]`` (and the task settings ``[defaults]`` and profiles may carry)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kflow.errors import DefinitionError, Location
from kflow.load.document import Document
from kflow.load.values import Reader
from kflow.model import (
    ComputedParam,
    EnvVar,
    ParamValue,
    PodCleanup,
    Requirement,
    Resources,
    TaskSpec,
)
from kflow.params import value_text
from kflow.templates import compile_requirement_value

# Settings a task inherits from [defaults] and from the selected profile.
SETTING_KEYS = (
    "image",
    "env",
    "env_from",
    "resources",
    "retries",
    "retry_delay",
    "timeout",
    "pending_timeout",
    "node_selector",
    "tolerations",
    "service_account",
    "image_pull_policy",
    "image_pull_secrets",
    "volumes",
    "pod_overrides",
    "pod_cleanup",
    "shell",
)
DEFINITION_KEYS = (
    "command",
    "description",
    "inputs",
    "outputs",
    "requires",
    "matrix",
    "params",
)
TASK_KEYS = DEFINITION_KEYS + SETTING_KEYS
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCE_KEYS = ("cpu", "memory", "gpu", "gpu_resource", "limits")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def merge_settings(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; ``env`` merges by name and ``env_from`` accumulates."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "env" and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            elif (
                key == "env_from" and isinstance(value, list) and isinstance(merged.get(key), list)
            ):
                merged[key] = merged[key] + [v for v in value if v not in merged[key]]
            else:
                merged[key] = value
    return merged


def read_task(
    doc: Document,
    name: str,
    settings: Mapping[str, Any],
    inherited: dict[str, Any] | None = None,
) -> TaskSpec:
    """Build one TaskSpec from its table, with inherited settings already merged in.

    ``inherited`` (empty at first) keeps the settings read for a task that sets none of its
    own: every such task has the same, read once instead of once per task."""
    path = f"tasks.{name}"
    own = doc.data["tasks"][name]
    reader = Reader(doc, own, path)
    if not TASK_NAME.match(name):
        raise reader.fail(None, f"bad task name {name!r}", "use letters, digits, '_' and '-'")
    if not isinstance(own, dict):
        raise reader.fail(None, "a task must be a table")
    reader.check_keys(TASK_KEYS)
    if "command" not in own:
        raise reader.fail(None, "missing key 'command'", "every task needs a command to run")
    # Inherited settings are read from the merged table but reported at the task's own key
    # when the task set them.
    # [defaults] and the profile were validated where they are written; what fails here is
    # the task's own value, reported at the task's key.
    own_settings = {k: own[k] for k in SETTING_KEYS if k in own}
    if own_settings or inherited is None:
        values = read_settings(Reader(doc, merge_settings(settings, own_settings), path))
    else:
        if not inherited:
            inherited.update(read_settings(Reader(doc, merge_settings(settings), path)))
        values = inherited
    return TaskSpec(
        name=name,
        command=_command(reader),
        location=doc.location(path),
        description=reader.string("description", "") or "",
        inputs=reader.string_list("inputs"),
        outputs=_outputs(reader),
        requires=_requires(reader),
        matrix=_matrix(reader),
        params=reader.string_list("params"),
        **values,
    )


def read_settings(merged: Reader) -> dict[str, Any]:
    """The inheritable task settings of a table, validated, as TaskSpec keyword arguments."""
    return {
        "shell": merged.boolean("shell", False),
        "image": merged.string("image"),
        "env": _env(merged),
        "env_from": merged.string_list("env_from"),
        "resources": _resources(merged.sub("resources")),
        "retries": merged.integer("retries", 0) or 0,
        "retry_delay": merged.duration("retry_delay", 5.0) or 0.0,
        "timeout": merged.duration("timeout", None, positive=True),
        "pending_timeout": merged.duration("pending_timeout", 600.0) or 0.0,
        "node_selector": _string_table(merged, "node_selector"),
        "tolerations": _tables(merged, "tolerations"),
        "service_account": merged.string("service_account"),
        "image_pull_policy": _choice(merged, "image_pull_policy", _PULL_POLICIES),
        "image_pull_secrets": merged.string_list("image_pull_secrets"),
        "volumes": _tables(merged, "volumes"),
        "pod_overrides": merged.table_of("pod_overrides"),
        "pod_cleanup": PodCleanup(
            _choice(merged, "pod_cleanup", tuple(p.value for p in PodCleanup))
            or PodCleanup.ON_SUCCESS.value
        ),
    }


def _command(reader: Reader) -> tuple[str, ...] | str:
    value = reader.table["command"]
    if isinstance(value, str):
        if not value.strip():
            raise reader.fail("command", "the command is empty")
        return value
    items = reader.string_list("command")
    if not items:
        raise reader.fail("command", "the command is empty")
    return items


def _outputs(reader: Reader) -> tuple[tuple[str, str], ...]:
    value = reader.get("outputs", (list, dict, str), "a list or table of paths", [])
    if isinstance(value, dict):
        outputs = []
        for name, path in value.items():
            if not isinstance(path, str):
                raise reader.fail(f"outputs.{name}", "expected a path string")
            outputs.append((name, path))
        return tuple(outputs)
    return tuple((str(i), path) for i, path in enumerate(reader.string_list("outputs")))


def _requires(reader: Reader) -> tuple[Requirement, ...]:
    value = reader.get("requires", (list, str), "a list of task names", [])
    items = [value] if isinstance(value, str) else value
    requirements = []
    for index, item in enumerate(items):
        key = f"requires[{index}]"
        if isinstance(item, str):
            requirements.append(Requirement(item))
            continue
        if not isinstance(item, dict):
            raise reader.fail(key, "expected a task name or { task = ..., params = { ... } }")
        entry = Reader(reader.doc, item, reader.key(key))
        entry.check_keys(("task", "params"))
        task = entry.string("task")
        if not task:
            raise entry.fail(None, "missing key 'task'")
        params: dict[str, str] = {}
        computed: dict[str, ComputedParam] = {}
        for pname, pvalue in entry.table_of("params").items():
            where = reader.doc.location(entry.key(f"params.{pname}"))
            if callable(pvalue):
                computed[pname] = _function_param(pvalue, where)
                continue
            if isinstance(pvalue, bool) or not isinstance(pvalue, (str, int, float)):
                raise entry.fail(
                    f"params.{pname}", "expected a value, a template string or a function"
                )
            arithmetic = compile_requirement_value(str(pvalue), where)
            if arithmetic is None:
                params[pname] = str(pvalue)
            else:
                names, function = arithmetic
                computed[pname] = ComputedParam(function, names, str(pvalue), where, clip=True)
        location = reader.doc.location(entry.path)
        requirements.append(Requirement(task, params, computed, location))
    return tuple(requirements)


def _function_param(function: Callable[..., object], where: Location) -> ComputedParam:
    """A Python function of the requirer's parameters, named by its own arguments."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise DefinitionError(f"cannot read the arguments of {function!r}", where) from None
    names = []
    for arg in signature.parameters.values():
        if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
            raise DefinitionError(
                f"{_describe_function(function)}: name the parameters it reads "
                f"(lambda date: ...), not *{arg.name}",
                where,
            )
        names.append(arg.name)
    code = getattr(function, "__code__", None)
    if code is not None and Path(code.co_filename).name == Path(where.file).name:
        where = Location(where.file, where.key, code.co_firstlineno)  # the function's own line
    return ComputedParam(function, tuple(names), _describe_function(function), where)


def _describe_function(function: Callable[..., object]) -> str:
    name = getattr(function, "__name__", type(function).__name__)
    return "a lambda" if name == "<lambda>" else f"function {name}()"


def _matrix(reader: Reader) -> dict[str, tuple[ParamValue, ...]]:
    matrix: dict[str, tuple[ParamValue, ...]] = {}
    for name, values in reader.table_of("matrix").items():
        key = f"matrix.{name}"
        if not isinstance(values, list) or not values:
            raise reader.fail(key, "expected a non-empty list of values")
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise reader.fail(key, "matrix values must be strings, numbers or booleans")
        # Values are told apart by their text (instance ids, the environment): 1 and "1",
        # or true and "true", would be one instance, so they repeat as 1 and 1 do.
        seen: dict[str, ParamValue] = {}
        for value in values:
            text = value_text(value)
            if text in seen:
                same = "" if repr(seen[text]) == repr(value) else f" ({seen[text]!r} and {value!r})"
                raise reader.fail(key, f"matrix values repeat: {text}{same}")
            seen[text] = value
        matrix[name] = tuple(values)
    return matrix


def _env(reader: Reader) -> tuple[EnvVar, ...]:
    env = []
    for name, value in reader.table_of("env").items():
        key = f"env.{name}"
        if not _ENV_NAME.match(name):
            raise reader.fail(key, f"bad environment variable name {name!r}")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            env.append(EnvVar(name, value=str(value)))
            continue
        if isinstance(value, bool):
            env.append(EnvVar(name, value="true" if value else "false"))
            continue
        ref = Reader(reader.doc, value if isinstance(value, dict) else {}, reader.key(key))
        if not isinstance(value, dict):
            raise reader.fail(key, "expected a string or { secret = NAME, key = KEY }")
        ref.check_keys(("secret", "config_map", "key"))
        secret, config_map, ref_key = (
            ref.string("secret"),
            ref.string("config_map"),
            ref.string("key"),
        )
        if not ref_key or bool(secret) == bool(config_map):
            raise ref.fail(
                None, "expected { secret = NAME, key = KEY } or { config_map = NAME, key = KEY }"
            )
        env.append(
            EnvVar(
                name,
                secret=(secret, ref_key) if secret else None,
                config_map=(config_map, ref_key) if config_map else None,
            )
        )
    return tuple(env)


def _resources(reader: Reader) -> Resources:
    reader.check_keys(_RESOURCE_KEYS)
    limits = reader.sub("limits")
    limits.check_keys(("cpu", "memory"))
    resources = Resources(
        cpu=reader.quantity("cpu"),
        memory=reader.quantity("memory"),
        gpu=reader.integer("gpu", 0) or 0,
        gpu_resource=reader.string("gpu_resource", "nvidia.com/gpu") or "nvidia.com/gpu",
        limits_cpu=limits.quantity("cpu"),
        limits_memory=limits.quantity("memory"),
    )
    return _NO_RESOURCES if resources == _NO_RESOURCES else resources


_NO_RESOURCES = Resources()  # one object for the tasks that ask for none (most of them)


def _string_table(reader: Reader, name: str) -> dict[str, str]:
    table = reader.table_of(name)
    for key, value in table.items():
        if not isinstance(value, str):
            raise reader.fail(f"{name}.{key}", "expected a string")
    return table


def _tables(reader: Reader, name: str) -> tuple[dict[str, Any], ...]:
    value = reader.get(name, (list,), "a list of tables", [])
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise reader.fail(f"{name}[{index}]", "expected a table")
    return tuple(value)


def _choice(reader: Reader, name: str, choices: tuple[str, ...]) -> str | None:
    value = reader.string(name)
    if value is not None and value not in choices:
        raise reader.fail(name, f"{value!r} is not one of {', '.join(choices)}")
    return value
