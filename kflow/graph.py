"""The instance graph: parameter and matrix expansion, requirements, targets, topological order."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kflow.errors import DefinitionError, UsageError, did_you_mean
from kflow.load.build import task_param_names
from kflow.model import InstanceId, ParamValue, Project, TaskSpec, parse_instance_id
from kflow.params import ParamValueError, parse_value, parse_values, value_text, zone
from kflow.templates import Scope, pattern_regex, render, resolve_command


@dataclass(frozen=True)
class Instance:
    """A task with its parameter values bound and every template resolved."""

    id: InstanceId
    task: TaskSpec
    values: Mapping[str, ParamValue]
    argv: tuple[str, ...]
    outputs: Mapping[str, str]  # output name → location (project-relative path or URL)
    source_inputs: tuple[str, ...]
    requires: tuple[InstanceId, ...]
    inputs: tuple[str, ...]  # upstream outputs in requirement order, then source inputs
    env: Mapping[str, str]  # literal variables; Secret/ConfigMap references stay on task.env


@dataclass
class Graph:
    """Instances in a deterministic topological order (requirements first), and the targets."""

    project: Project
    instances: dict[InstanceId, Instance]
    targets: tuple[InstanceId, ...]
    _dependents: dict[InstanceId, list[InstanceId]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for instance in self.instances.values():
            for req in instance.requires:
                self._dependents.setdefault(req, []).append(instance.id)

    def dependents(self, iid: InstanceId) -> list[InstanceId]:
        return self._dependents.get(iid, [])

    def producer_of(self) -> dict[str, InstanceId]:
        """Which instance makes each output location."""
        return {loc: i.id for i in self.instances.values() for loc in i.outputs.values()}


class Expander:
    """Turns tasks into instances: one per combination of parameter and matrix values."""

    def __init__(self, project: Project, overrides: Mapping[str, str] | None = None):
        self.project = project
        self.tz = zone(project.timezone)
        self.param_names = {
            name: task_param_names(task, project.params) for name, task in project.tasks.items()
        }
        self._values: dict[str, list[ParamValue]] = {}
        self._overrides = dict(overrides or {})
        for name, text in self._overrides.items():
            if name not in project.params:
                raise UsageError(
                    f"unknown parameter {name!r} in --param",
                    hint=did_you_mean(name, project.params)
                    or f"parameters: {', '.join(project.params) or 'none defined'}",
                )
            try:
                self._values[name] = parse_values(project.params[name], text, self.tz)
            except ParamValueError as exc:
                raise UsageError(f"--param {name}={text}: {exc}") from None
        self._requires: dict[InstanceId, tuple[InstanceId, ...]] = {}
        self._bound: dict[InstanceId, dict[str, ParamValue]] = {}
        self.root = project.root
        # (task, param) → [(value, text)] and text → value: ids are built from texts, and
        # thousands of instances share a handful of values, so each is formatted once.
        self._choices: dict[tuple[str, str], list[tuple[ParamValue, str]]] = {}
        self._by_text: dict[tuple[str, str], dict[str, ParamValue]] = {}

    def values_of(self, task: TaskSpec, name: str) -> list[ParamValue]:
        """Every value a task's parameter takes: its matrix, else the project parameter's values."""
        return [value for value, _ in self._choices_of(task, name)]

    def _choices_of(self, task: TaskSpec, name: str) -> list[tuple[ParamValue, str]]:
        key = (task.name, name)
        if key not in self._choices:
            if name in task.matrix:
                values = list(task.matrix[name])
            else:
                values = self._project_values(task, name)
            self._choices[key] = [(value, value_text(value)) for value in values]
            self._by_text[key] = {text: value for value, text in self._choices[key]}
        return self._choices[key]

    def _project_values(self, task: TaskSpec, name: str) -> list[ParamValue]:
        if name not in self._values:
            spec = self.project.params[name]
            if spec.default is None:
                raise UsageError(
                    f"parameter {name!r} (needed by task {task.name!r}) has no default",
                    hint=f"pass --param {name}=VALUE",
                )
            self._values[name] = [parse_value(spec.type, spec.default, self.tz)]
        return self._values[name]

    def instance_ids(self, task_name: str, fixed: Mapping[str, ParamValue]) -> list[InstanceId]:
        """Every instance of a task that agrees with ``fixed``, added with its requirements."""
        ids = self._ids_with(task_name, fixed)
        for iid in ids:
            self._expand(iid)
        return ids

    def _expand(self, start: InstanceId) -> None:
        queued = {start}
        stack = [start]
        while stack:  # iterative: long chains must not hit the recursion limit
            current = stack.pop()
            if current in self._requires:
                continue
            required = self._requirements(current)
            self._requires[current] = required
            for req in required:
                if req not in self._requires and req not in queued:
                    queued.add(req)
                    stack.append(req)

    def _requirements(self, iid: InstanceId) -> tuple[InstanceId, ...]:
        task = self.project.tasks[iid.task]
        values = self._bound[iid]
        texts = dict(iid.params)
        found: dict[InstanceId, None] = {}
        scope: dict[str, ParamValue] | None = None
        for req in task.requires:
            theirs = self.project.tasks[req.task]
            fixed: dict[str, tuple[ParamValue, str]] = {}
            for name in self.param_names[req.task]:
                if name in req.params:
                    template = req.params[name]
                    source = _bare_name(template)
                    if source in texts:  # {a} mapped to another parameter: no rendering
                        text = texts[source]
                    else:
                        scope = scope or {"root": self.root, "task": task.name, **values}
                        text = render(template, scope, task.location)
                    fixed[name] = (self._typed(theirs, name, text, iid), text)
                elif name in values:
                    fixed[name] = self._member(theirs, name, values[name], iid, texts[name])
            for rid in self._ids_with_pairs(req.task, fixed):
                found[rid] = None
        return tuple(found)

    def _ids_with(self, task_name: str, fixed: Mapping[str, ParamValue]) -> list[InstanceId]:
        task = self.project.tasks[task_name]
        pairs = {name: self._member(task, name, value, None) for name, value in fixed.items()}
        return self._ids_with_pairs(task_name, pairs)

    def _ids_with_pairs(
        self, task_name: str, fixed: Mapping[str, tuple[ParamValue, str]]
    ) -> list[InstanceId]:
        task = self.project.tasks[task_name]
        names = self.param_names[task_name]  # sorted: the id's parameter order
        if len(fixed) == len(names):  # the common case: every parameter given
            rid = InstanceId(task_name, tuple((n, fixed[n][1]) for n in names))
            if rid not in self._bound:
                self._bound[rid] = {n: fixed[n][0] for n in names}
            return [rid]
        choices = [[fixed[n]] if n in fixed else self._choices_of(task, n) for n in names]
        ids = []
        for combo in itertools.product(*choices):
            rid = InstanceId(task_name, tuple(zip(names, (t for _, t in combo), strict=True)))
            if rid not in self._bound:
                self._bound[rid] = dict(zip(names, (v for v, _ in combo), strict=True))
            ids.append(rid)
        return ids

    def _typed(self, task: TaskSpec, name: str, text: str, requirer: InstanceId) -> ParamValue:
        if name in task.matrix:
            self._choices_of(task, name)
            value = self._by_text[(task.name, name)].get(text)
            if value is None:
                raise UsageError(
                    f"{requirer} requires {task.name}[{name}={text}], "
                    f"but {text!r} is not in {task.name}'s matrix"
                )
            return value
        try:
            return parse_value(self.project.params[name].type, text, self.tz)
        except ParamValueError as exc:
            raise DefinitionError(
                f"{requirer}: requirement {task.name}.{name}: {exc}", task.location
            ) from None

    def _member(
        self,
        task: TaskSpec,
        name: str,
        value: ParamValue,
        requirer: InstanceId | None,
        text: str | None = None,
    ) -> tuple[ParamValue, str]:
        """The value with its text, checked against the task's matrix when it has one."""
        text = value_text(value) if text is None else text
        if name in task.matrix:
            self._choices_of(task, name)
            if self._by_text[(task.name, name)].get(text) != value:
                raise UsageError(
                    f"{requirer or task.name} needs {task.name}[{name}={text}], "
                    f"but that value is not in {task.name}'s matrix"
                )
        return value, text

    def ordered(self) -> list[InstanceId]:
        """Topological order; ties broken by task definition order, then id."""
        rank = {name: i for i, name in enumerate(self.project.tasks)}
        depth: dict[InstanceId, int] = {}
        for iid in self._requires:
            self._depth(iid, depth)
        return sorted(self._requires, key=lambda i: (depth[i], rank[i.task], i.text))

    def _depth(self, start: InstanceId, depth: dict[InstanceId, int]) -> None:
        stack = [start]
        while stack:
            iid = stack[-1]
            if iid in depth:
                stack.pop()
                continue
            pending = [r for r in self._requires[iid] if r not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[iid] = 1 + max((depth[r] for r in self._requires[iid]), default=-1)

    def resolve(self, order: Sequence[InstanceId]) -> dict[InstanceId, Instance]:
        instances: dict[InstanceId, Instance] = {}
        owner: dict[str, InstanceId] = {}
        for iid in order:
            instance = _resolve_one(
                self.project, self.root, iid, self._bound[iid], self._requires[iid], instances
            )
            for location in instance.outputs.values():
                if location in owner:
                    raise DefinitionError(
                        f"output {location!r} is made by both {owner[location]} and {iid}",
                        instance.task.location,
                        "each output must be made by one instance",
                    )
                owner[location] = iid
            instances[iid] = instance
        return instances


@functools.lru_cache(maxsize=1024)
def _bare_name(template: str) -> str | None:
    """``"{name}"`` → ``name``; anything else (literals, specs, several parts) → None."""
    if template.startswith("{") and template.endswith("}") and template.count("{") == 1:
        name = template[1:-1]
        return name if name.isidentifier() else None
    return None


def normalize_location(location: str) -> str:
    """One spelling per location: URLs untouched, local paths normalised (``./a/../b`` → ``b``)."""
    if "://" in location:
        return location
    return posixpath.normpath(location)


def _resolve_one(
    project: Project,
    root: str,
    iid: InstanceId,
    values: Mapping[str, ParamValue],
    requires: tuple[InstanceId, ...],
    done: Mapping[InstanceId, Instance],
) -> Instance:
    task = project.tasks[iid.task]
    base = {"root": root, "task": task.name, **values}
    where = task.location
    outputs = {name: normalize_location(render(t, base, where)) for name, t in task.outputs}
    sources = tuple(normalize_location(render(t, base, where)) for t in task.inputs)
    by_task: dict[str, list[str]] = {}
    for rid in requires:
        by_task.setdefault(rid.task, []).extend(done[rid].outputs.values())
    inputs = list(dict.fromkeys([*itertools.chain.from_iterable(by_task.values()), *sources]))
    scope: dict[str, object] = base  # type: ignore[assignment]
    scope["inputs"] = inputs
    scope["outputs"] = list(outputs.values())
    if inputs:
        scope["input"] = inputs[0]
    if outputs:
        scope["output"] = next(iter(outputs.values()))
    scope.update({f"inputs.{name}": paths for name, paths in by_task.items()})
    scope.update({f"outputs.{name}": path for name, path in outputs.items()})
    typed_scope: Scope = scope  # type: ignore[assignment]
    argv = resolve_command(task.command, task.shell, typed_scope, where)
    env = {v.name: render(v.value, typed_scope, where) for v in task.env if v.value is not None}
    return Instance(
        iid, task, dict(values), tuple(argv), outputs, sources, requires, tuple(inputs), env
    )


def build_graph(
    project: Project,
    targets: Sequence[str] = (),
    overrides: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Graph:
    """Expand the targets (or the project's defaults) into a resolved, ordered instance graph."""
    expander = Expander(project, overrides)
    wanted = list(targets) or list(project.default_targets) or default_targets(project)
    target_ids: list[InstanceId] = []
    for target in wanted:
        for iid in resolve_target(expander, target, base_dir):
            if iid not in target_ids:
                target_ids.append(iid)
    order = expander.ordered()
    return Graph(project, expander.resolve(order), tuple(target_ids))


def default_targets(project: Project) -> list[str]:
    """Without ``[project] default``: every task no other task requires (the end products)."""
    required = {req.task for task in project.tasks.values() for req in task.requires}
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
            fixed[name] = expander._typed(task, name, text, parsed)
        except (UsageError, DefinitionError) as exc:
            raise UsageError(f"{target}: {exc.message}") from None
    return expander.instance_ids(parsed.task, fixed)


def _resolve_output_path(
    expander: Expander, target: str, base_dir: Path
) -> list[InstanceId] | None:
    project = expander.project
    location = _target_location(project, target, base_dir)
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
            bound = _bind_groups(expander, task, names, groups, match.groupdict())
            if bound is not None:
                ids = expander.instance_ids(task.name, bound)
                if len(ids) == 1:
                    return ids
    return None


def _target_location(project: Project, target: str, base_dir: Path) -> str:
    """A target path as outputs are spelled: relative to the project folder where inside it."""
    if "://" in target:
        return target
    path = os.path.normpath(os.path.join(base_dir, target))
    inside = os.path.relpath(path, project.directory)
    return path if inside.startswith("..") else normalize_location(inside)


def _bind_groups(
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
