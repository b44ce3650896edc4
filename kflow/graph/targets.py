"""Target resolution: task names, instance ids and output paths (Make pattern rules) on
the command line, to the instances they mean; and how many instances they may ask for."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kflow.errors import DefinitionError, UsageError, did_you_mean
from kflow.graph.expand import Expander
from kflow.graph.instances import normalize_location
from kflow.model import (
    InstanceId,
    ParamValue,
    Project,
    TaskSpec,
    parse_instance_id,
)
from kflow.params import (
    MAX_INSTANCES,
    ParamValueError,
    parse_value,
)
from kflow.templates import (
    pattern_regex,
    render,
)


def default_targets(project: Project) -> list[str]:
    """Without ``[project] default``: every task no other task requires (the end products)."""
    required = {
        req.task
        for task in project.tasks.values()
        for req in task.requires
        if req.task != task.name
    }
    return [name for name in project.tasks if name not in required]


def resolve_target(
    expander: Expander, target: str, base_dir: Path | None = None
) -> list[InstanceId]:
    """A task name, an instance id, or an output path → the instances it means."""
    project = expander.project
    if target in project.tasks:
        return expander.instance_ids(target, {})
    if "[" in target and target.endswith("]"):
        return _resolve_instance_id(expander, target)
    matched = _resolve_output_path(expander, target, base_dir or project.directory)
    if matched is not None:
        return matched
    raise UsageError(
        f"unknown target {target!r}: not a task, an instance id or an output path",
        hint=did_you_mean(target, project.tasks) or f"tasks: {', '.join(project.tasks)}",
    )


def _resolve_instance_id(expander: Expander, target: str) -> list[InstanceId]:
    project = expander.project
    try:
        parsed = parse_instance_id(target)
    except ValueError as exc:
        raise UsageError(f"bad instance id: {exc}") from None
    if parsed.task not in project.tasks:
        raise UsageError(
            f"unknown task {parsed.task!r} in {target!r}",
            hint=did_you_mean(parsed.task, project.tasks),
        )
    task = project.tasks[parsed.task]
    names = expander.param_names[parsed.task]
    fixed: dict[str, ParamValue] = {}
    for name, text in parsed.params:
        if name not in names:
            raise UsageError(
                f"task {parsed.task!r} has no parameter {name!r}",
                hint=did_you_mean(name, names) or f"its parameters: {', '.join(names) or 'none'}",
            )
        try:
            fixed[name] = expander._typed(task, name, text, None)
        except (UsageError, DefinitionError) as exc:
            raise UsageError(f"{target}: {exc.message}") from None
    return expander.instance_ids(parsed.task, fixed)


def _resolve_output_path(
    expander: Expander, target: str, base_dir: Path
) -> list[InstanceId] | None:
    """The instance whose output pattern matches the path. Where several match, the one
    with the shortest stem (the fewest characters matched by parameters) wins, as in GNU
    Make; two equally specific matches of different instances are ambiguous (exit 2)."""
    project = expander.project
    location = target_location(project, target, base_dir)
    found: list[tuple[int, InstanceId, str]] = []
    for task in project.tasks.values():
        names = expander.param_names[task.name]
        for _, template in task.outputs:
            fixed = {"root": project.root, "task": task.name}
            if project.root == "." and template.startswith("{root}/"):
                template = template[len("{root}/") :]  # outputs are normalised without "./"
            regex, groups = pattern_regex(template, fixed, task.location)
            match = regex.match(location)
            if match is None:
                continue
            bound = bind_groups(expander, task, names, groups, match.groupdict())
            if bound is not None:
                ids = expander._ids_with(task.name, bound)  # not expanded: it may lose
                if len(ids) == 1:
                    stem = sum(len(text) for text in match.groupdict().values())
                    found.append((stem, ids[0], template))
    if not found:
        return None
    found.sort(key=lambda entry: entry[0])
    best = [entry for entry in found if entry[0] == found[0][0]]
    if len({iid for _, iid, _ in best}) > 1:
        raise UsageError(
            f"target {target!r} is ambiguous: it matches the outputs of "
            + " and ".join(f"{iid} ({template})" for _, iid, template in best),
            hint="name the instance id instead",
        )
    return expander.instance_ids(best[0][1].task, expander._bound[best[0][1]])


def target_location(project: Project, target: str, base_dir: Path) -> str:
    """A target path as outputs are spelled: relative to the project folder where inside it."""
    if "://" in target:
        return target
    path = os.path.normpath(os.path.join(base_dir, target))
    inside = os.path.relpath(path, project.directory)
    return path if inside.startswith("..") else normalize_location(inside)


def bind_groups(
    expander: Expander,
    task: TaskSpec,
    names: Iterable[str],
    groups: Sequence[object],
    found: Mapping[str, str],
) -> dict[str, ParamValue] | None:
    bound: dict[str, ParamValue] = {}
    for index, placeholder in enumerate(groups):
        name = getattr(placeholder, "name", "")
        spec = getattr(placeholder, "spec", "")
        if name not in names:
            return None
        value = _value_from_text(expander, task, name, found[f"g{index}"], spec)
        if value is None or (name in bound and bound[name] != value):
            return None
        bound[name] = value
    return bound


def _value_from_text(
    expander: Expander, task: TaskSpec, name: str, text: str, spec: str
) -> ParamValue | None:
    if name in task.matrix:
        return next(
            (
                v
                for v in task.matrix[name]
                if render(f"{{v:{spec}}}" if spec else "{v}", {"v": v}, task.location) == text
            ),
            None,
        )
    ptype = expander.project.params[name].type
    try:
        if spec and ptype.value in ("date", "datetime"):
            parsed = dt.datetime.strptime(text, spec)
            return parsed.date() if ptype.value == "date" else parsed
        return parse_value(ptype, text, expander.tz)
    except (ValueError, ParamValueError):
        return None




# -- how many instances a build may ask for ---------------------------------------------


def check_instance_count(expander: Expander, targets: Sequence[str]) -> None:
    """Exit 2 at once when the targets' tasks could have more than MAX_INSTANCES instances,
    per task or together: ranges and matrices multiply, and expanding first would eat the
    machine. Worked out from the value counts (an upper bound), before anything expands."""
    project = expander.project
    tasks = {target.partition("[")[0] for target in targets} & set(project.tasks)
    if len(tasks) < len(targets):  # output paths: any task may be meant
        tasks = set(project.tasks)
    stack = list(tasks)
    while stack:
        for req in project.tasks[stack.pop()].requires:
            if req.task not in tasks:
                tasks.add(req.task)
                stack.append(req.task)
    total = 0
    for name in sorted(tasks):
        counts = {p: _value_count(expander, name, p) for p in expander.param_names[name]}
        product = math.prod(counts.values())
        total += product
        if product > MAX_INSTANCES or total > MAX_INSTANCES:
            factors = " x ".join(f"{count:,} {p}" for p, count in counts.items() if count > 1)
            what = (
                f"task {name!r} would have {factors} = {product:,} instances"
                if product > MAX_INSTANCES
                else f"the targets' tasks would have {total:,} instances in all"
            )
            raise UsageError(
                f"too many instances: {what}, more than the limit of {MAX_INSTANCES:,}",
                hint="narrow the --param ranges or the matrices, or build in parts",
            )


def _value_count(expander: Expander, task_name: str, param: str) -> int:
    task = expander.project.tasks[task_name]
    if param in task.matrix:
        return len(task.matrix[param])
    try:
        return len(expander.values_of(task, param))
    except UsageError:  # no default and not given: expansion reports it if it is needed
        return 1
