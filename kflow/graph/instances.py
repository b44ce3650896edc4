"""Resolution: an instance's templates rendered into its argv, env, outputs and inputs."""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kflow.model import (
    Instance,
    InstanceId,
    ParamValue,
    TaskSpec,
    is_normal_path,
)
from kflow.templates import (
    Renderer,
    Scope,
    compile_command,
    compile_template,
)


def normalize_location(location: str) -> str:
    """One spelling per location: URLs untouched, local paths normalised (``./a/../b`` → ``b``)."""
    if "://" in location or is_normal_path(location):  # the common case, per output
        return location
    return posixpath.normpath(location)


@dataclass(frozen=True)
class TaskTemplates:
    """A task's templates, parsed once and rendered for each of its instances."""

    task: TaskSpec
    outputs: tuple[tuple[str, Renderer], ...]
    sources: tuple[Renderer, ...]
    command: Callable[[Scope], list[str]]
    env: tuple[tuple[str, Renderer], ...]
    # "inputs.TASK" by required TASK and "outputs.NAME" by output NAME: scope keys, made once
    input_keys: Mapping[str, str]
    output_keys: Mapping[str, str]

    @classmethod
    def of(cls, task: TaskSpec) -> TaskTemplates:
        where = task.location
        return cls(
            task,
            tuple((name, compile_template(t, where)) for name, t in task.outputs),
            tuple(compile_template(t, where) for t in task.inputs),
            compile_command(task.command, task.shell, where),
            tuple(
                (v.name, compile_template(v.value, where)) for v in task.env if v.value is not None
            ),
            {req.task: f"inputs.{req.task}" for req in task.requires},
            {name: f"outputs.{name}" for name, _ in task.outputs},
        )


def resolve_one(
    templates: TaskTemplates,
    root: str,
    iid: InstanceId,
    values: Mapping[str, ParamValue],
    requires: tuple[InstanceId, ...],
    done: Mapping[InstanceId, Instance],
) -> Instance:
    task = templates.task
    scope: dict[str, object] = {"root": root, "task": task.name, **values}
    base: Scope = scope  # type: ignore[assignment]  # outputs and sources see only these
    outputs = {name: normalize_location(out(base)) for name, out in templates.outputs}
    sources = tuple([normalize_location(source(base)) for source in templates.sources])
    by_task: dict[str, list[str]] = {}
    for rid in requires:
        made = done[rid].outputs.values()
        paths = by_task.get(rid.task)
        if paths is None:
            by_task[rid.task] = list(made)
        else:
            paths.extend(made)
    # Upstream outputs are distinct (one maker each): only source inputs can repeat one.
    inputs = list(itertools.chain.from_iterable(by_task.values())) if by_task else []
    if sources:
        inputs = list(dict.fromkeys([*inputs, *sources]))
    output_paths = list(outputs.values())
    scope["inputs"] = inputs
    scope["outputs"] = output_paths
    if inputs:
        scope["input"] = inputs[0]
    if outputs:
        scope["output"] = output_paths[0]
    for name, paths in by_task.items():
        scope[templates.input_keys[name]] = paths
    for name, path in outputs.items():
        scope[templates.output_keys[name]] = path
    typed_scope: Scope = scope  # type: ignore[assignment]
    argv = templates.command(typed_scope)
    env = {name: value(typed_scope) for name, value in templates.env} if templates.env else {}
    # values is this instance's own dict (the expander's), never shared or changed
    return Instance(iid, task, values, tuple(argv), outputs, sources, requires, tuple(inputs), env)
