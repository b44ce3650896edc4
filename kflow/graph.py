"""The instance graph: parameter and matrix expansion, requirements, targets, topological order."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from kflow.errors import DefinitionError, Location, UsageError, did_you_mean
from kflow.load.build import task_param_names
from kflow.model import (
    ComputedParam,
    InstanceId,
    ParamType,
    ParamValue,
    Project,
    TaskSpec,
    is_normal_path,
    parse_instance_id,
)
from kflow.params import (
    MAX_INSTANCES,
    ParamValueError,
    parse_value,
    parse_values,
    value_text,
    zone,
)
from kflow.paths import Reach, place_of, segment_problem
from kflow.templates import (
    Placeholder,
    Renderer,
    Scope,
    compile_command,
    compile_template,
    names_in,
    parse,
    pattern_regex,
    render,
)


@dataclass(slots=True)
class Instance:
    """A task with its parameter values bound and every template resolved.

    Treat as immutable. Not frozen only because a frozen dataclass costs five times as
    much to make, and a plan makes one per instance.
    """

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
    _dependents: dict[InstanceId, list[InstanceId]] | None = field(default=None, repr=False)

    def dependents(self, iid: InstanceId) -> list[InstanceId]:
        if self._dependents is None:  # built on first use: planning never needs it
            dependents: dict[InstanceId, list[InstanceId]] = {}
            for instance in self.instances.values():
                for req in instance.requires:
                    dependents.setdefault(req, []).append(instance.id)
            self._dependents = dependents
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
        for task in project.tasks.values():
            if any(req.computed for req in task.requires):
                self.param_names[task.name] = self._with_computed_names(task)
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
        self._parsed: dict[tuple[str, str], ParamValue] = {}  # (param, text) → value
        self._ids: dict[tuple[str, tuple[tuple[str, str], ...]], InstanceId] = {}
        self._steps: dict[str, list[tuple[TaskSpec, list[_Step], bool]]] = {}
        self._computed_ids: set[InstanceId] = set()  # reached through computed requirements

    def _with_computed_names(self, task: TaskSpec) -> tuple[str, ...]:
        """The task's parameters plus those its computed requirements read (they pick the
        required instance, so the task has one instance per value), each name checked."""
        names = set(self.param_names[task.name])
        for req in task.requires:
            theirs = task_param_names(self.project.tasks[req.task], self.project.params)
            for pname, computed in req.computed.items():
                if pname not in theirs and req.task in self.project.tasks:
                    raise DefinitionError(
                        f"task {req.task!r} has no parameter {pname!r}",
                        computed.location,
                        did_you_mean(pname, theirs),
                    )
                for name in computed.names:
                    if name not in self.project.params and name not in task.matrix:
                        known = [*task.matrix, *self.project.params]
                        raise DefinitionError(
                            f"{computed.text} (requirement {req.task}.{pname}) reads {name!r}, "
                            f"which is not a parameter of task {task.name!r}",
                            computed.location,
                            did_you_mean(name, known) or f"parameters: {', '.join(known)}",
                        )
                    names.add(name)
        return tuple(sorted(names))

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
        # The hot loop of expansion: runs once per instance, so steps are worked out per task
        # (_requirement_steps) and the common cases below avoid method calls and new ids.
        task = self.project.tasks[iid.task]
        values = self._bound[iid]
        texts = dict(iid.params)
        found: dict[InstanceId, None] = {}
        scope: dict[str, ParamValue] | None = None
        for theirs, steps, complete in self._requirement_steps(task):
            fixed: dict[str, tuple[ParamValue, str]] = {}
            spread: list[tuple[str, list[tuple[ParamValue, str]]]] = []
            for name, kind, arg, matrix in steps:
                value: ParamValue | None
                if kind is _COMPUTED:  # a function of the requirer's values: 0, 1 or more
                    assert isinstance(arg, ComputedParam)
                    spread.append((name, self._computed(theirs, name, arg, values, iid, matrix)))
                    continue
                assert isinstance(arg, str)
                if kind is _PASSED:  # the same parameter on both sides
                    text, value = texts[name], values[name]
                    if matrix is not None and matrix.get(text) != value:
                        self._member(theirs, name, value, iid, text)  # raises: not in the matrix
                else:
                    if kind is _MAPPED:  # {a} mapped to another parameter: no rendering
                        text = texts[arg]
                    else:
                        scope = scope or {"root": self.root, "task": task.name, **values}
                        text = render(arg, scope, task.location)
                    if matrix is not None:
                        value = matrix.get(text)
                    else:
                        value = self._parsed.get((name, text))
                    if value is None:  # parse it (and remember), or raise
                        value = self._typed(theirs, name, text, iid)
                fixed[name] = (value, text)
            if spread:
                ids = self._spread_ids(theirs.name, fixed, spread, task.location)
                found.update(dict.fromkeys(ids))
            elif complete:  # every parameter given: one id, most often made already
                params = tuple([(name, fixed[name][1]) for name, _, _, _ in steps])
                key = (theirs.name, params)
                rid = self._ids.get(key)
                if rid is None:
                    rid = self._ids[key] = InstanceId(theirs.name, params)
                    if rid not in self._bound:
                        self._bound[rid] = {name: fixed[name][0] for name in fixed}
                found[rid] = None
            else:
                for rid in self._ids_with_pairs(theirs.name, fixed):
                    found[rid] = None
        return tuple(found)

    def _spread_ids(
        self,
        task_name: str,
        fixed: Mapping[str, tuple[ParamValue, str]],
        spread: Sequence[tuple[str, Sequence[tuple[ParamValue, str]]]],
        where: Location,
    ) -> list[InstanceId]:
        """The instances a requirement with computed parameters names: one per combination."""
        names = [name for name, _ in spread]
        ids: list[InstanceId] = []
        for combo in itertools.product(*(choices for _, choices in spread)):
            pairs = {**fixed, **dict(zip(names, combo, strict=True))}
            ids.extend(self._ids_with_pairs(task_name, pairs))
        for rid in ids:
            if rid not in self._computed_ids:
                self._computed_ids.add(rid)
                if len(self._computed_ids) > MAX_COMPUTED:
                    self._endless(task_name, where)
        return ids

    def _endless(self, task_name: str, where: Location) -> None:
        raise DefinitionError(
            f"computed requirements reach more than {MAX_COMPUTED} instances "
            f"(the last of {task_name}): a chain of a task's own earlier instances needs an end",
            where,
            "in Python, return [] or None when the chain should stop "
            "(lambda date: date - timedelta(days=1) if date > START else None)",
        )

    def _computed(
        self,
        theirs: TaskSpec,
        name: str,
        computed: ComputedParam,
        values: Mapping[str, ParamValue],
        iid: InstanceId,
        matrix: Mapping[str, ParamValue] | None,
    ) -> list[tuple[ParamValue, str]]:
        """The values (with their texts) a computed requirement parameter takes for ``iid``."""
        what = f"{iid}: requirement {theirs.name}.{name} = {computed.text}"
        try:
            raw = computed.function(**{n: values[n] for n in computed.names})
            if raw is None:
                return []
            many = isinstance(raw, Iterable) and not isinstance(raw, (str, bytes))
            items: list[object] = list(raw) if isinstance(raw, Iterable) and many else [raw]
        except DefinitionError:
            raise
        except Exception as exc:  # the user's function: any error is theirs to fix
            raise DefinitionError(
                f"{what} raised {type(exc).__name__}: {exc}", computed.location
            ) from None
        found: list[tuple[ParamValue, str]] = []
        for item in items:
            pair = self._computed_value(theirs, name, item, matrix, computed, what)
            if pair is not None and computed.clip and theirs.name == iid.task and matrix is None:
                self._choices_of(theirs, name)  # a chain of its own instances: clipped to the
                if pair[1] not in self._by_text[(theirs.name, name)]:  # run's values
                    continue
            if pair is not None:
                found.append(pair)
        return found

    def _computed_value(
        self,
        theirs: TaskSpec,
        name: str,
        item: object,
        matrix: Mapping[str, ParamValue] | None,
        computed: ComputedParam,
        what: str,
    ) -> tuple[ParamValue, str] | None:
        """One returned value, checked against the required parameter's type or matrix."""
        if matrix is not None:
            text = item if isinstance(item, str) else value_text(item)  # type: ignore[arg-type]
            value = matrix.get(text)
            if value is not None and (isinstance(item, str) or value == item):
                return value, text
            if computed.clip:  # a window ends at the matrix's edge
                return None
            raise DefinitionError(
                f"{what} returned {item!r}, which is not in {theirs.name}'s matrix "
                f"({', '.join(matrix)})",
                computed.location,
            )
        ptype = self.project.params[name].type
        if isinstance(item, str):
            try:
                parsed = parse_value(ptype, item, self.tz)
            except ParamValueError as exc:
                raise DefinitionError(f"{what}: {exc}", computed.location) from None
            return parsed, value_text(parsed)
        if not _fits(ptype, item):
            raise DefinitionError(
                f"{what} returned {item!r} ({type(item).__name__}), "
                f"expected a {ptype.value} (or a list of them)",
                computed.location,
            )
        typed = cast(ParamValue, float(item) if ptype is ParamType.FLOAT else item)  # type: ignore[arg-type]
        return typed, value_text(typed)

    def _requirement_steps(self, task: TaskSpec) -> list[tuple[TaskSpec, list[_Step], bool]]:
        """Per requirement: where each of the required task's parameters comes from, and
        whether that is every one of them (then it names a single instance).

        Worked out once per task rather than once per instance.
        """
        steps = self._steps.get(task.name)
        if steps is None:
            mine = set(self.param_names[task.name])
            steps = []
            for req in task.requires:
                theirs = self.project.tasks[req.task]
                found: list[_Step] = []
                for name in self.param_names[req.task]:
                    matrix = None
                    if name in theirs.matrix:
                        self._choices_of(theirs, name)
                        matrix = self._by_text[(theirs.name, name)]
                    if name in req.computed:
                        found.append((name, _COMPUTED, req.computed[name], matrix))
                    elif name in req.params:
                        template = req.params[name]
                        source = _bare_name(template)
                        if source in mine:
                            found.append((name, _MAPPED, source, matrix))
                        else:
                            found.append((name, _RENDERED, template, matrix))
                    elif name in mine:
                        found.append((name, _PASSED, name, matrix))
                complete = len(found) == len(self.param_names[req.task])
                steps.append((theirs, found, complete))
            self._steps[task.name] = steps
        return steps

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
            params = tuple([(n, fixed[n][1]) for n in names])
            key = (task_name, params)
            rid = self._ids.get(key)  # most instances are required by several others
            if rid is None:
                rid = self._ids[key] = InstanceId(task_name, params)
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

    def _typed(
        self, task: TaskSpec, name: str, text: str, requirer: InstanceId | None
    ) -> ParamValue:
        """The value of a task's parameter from its text; ``requirer`` None: a target."""
        if name in task.matrix:
            self._choices_of(task, name)
            value = self._by_text[(task.name, name)].get(text)
            if value is None:
                if requirer is None:
                    raise UsageError(self._not_in_matrix(task, name, text))
                raise UsageError(
                    f"{requirer} requires {task.name}[{name}={text}], "
                    f"but {self._not_in_matrix(task, name, text)}"
                )
            return value
        parsed = self._parsed.get((name, text))
        if parsed is not None:
            return parsed
        try:
            parsed = parse_value(self.project.params[name].type, text, self.tz)
        except ParamValueError as exc:
            if requirer is None:
                raise UsageError(f"{name}={text}: {exc}") from None
            raise DefinitionError(
                f"{requirer}: requirement {task.name}.{name}: {exc}", task.location
            ) from None
        self._parsed[(name, text)] = parsed
        return parsed

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
                wanted = f"{task.name}[{name}={text}]"
                raise UsageError(
                    f"{requirer} requires {wanted}, but {self._not_in_matrix(task, name, text)}"
                    if requirer
                    else f"{wanted}: {self._not_in_matrix(task, name, text)}"
                )
        return value, text

    def _not_in_matrix(self, task: TaskSpec, name: str, text: str) -> str:
        values = ", ".join(t for _, t in self._choices_of(task, name))
        return f"{text!r} is not a value of {task.name}'s matrix {name} ({values})"

    def ordered(self) -> list[InstanceId]:
        """Topological order; ties broken by task definition order, then by parameter values
        as typed (``n=2`` before ``n=10``, dates by date), then id.

        Cycles are found here, on instances: a task may require its own earlier instances
        (``daily[date]`` → ``daily[date-1d]``), but never an instance itself.
        """
        rank = {name: i for i, name in enumerate(self.project.tasks)}
        requires = self._requires
        bound = self._bound
        # Without a cycle the stack holds at most a path's requirements: never more than
        # every edge. Past that it can only be going round a cycle (found, then, precisely).
        most = sum(map(len, requires.values())) + 1
        depth: dict[InstanceId, int] = {}
        for start in requires:
            if start in depth:
                continue
            stack = [start]  # iterative: long chains must not hit the recursion limit
            while stack:
                iid = stack[-1]
                deepest = -1
                for req in requires[iid]:
                    d = depth.get(req)
                    if d is None:
                        stack.append(req)
                    elif d > deepest:
                        deepest = d
                if stack[-1] is iid:  # every requirement has its depth
                    stack.pop()
                    depth[iid] = deepest + 1
                elif len(stack) > most:
                    self._cycle(self._find_cycle(start))
        # Text order is value order for strings, bools and ISO dates; tasks with numbers (or
        # datetimes) compare their values, which costs more, so only those do. An instance's
        # bound values are in its id's parameter order, the same for every instance of a task.
        typed = {name for name, task in self.project.tasks.items() if self._by_value(task)}
        try:
            return sorted(
                requires,
                key=lambda i: (
                    depth[i],
                    rank[i.task],
                    tuple(bound[i].values()) if i.task in typed else (),
                    i,
                ),
            )
        except TypeError:  # a matrix mixes kinds of values (1 and "a"): kinds first
            return sorted(
                requires,
                key=lambda i: (depth[i], rank[i.task], _typed_order(bound[i], i.params), i),
            )

    def _by_value(self, task: TaskSpec) -> bool:
        """Whether a task's instances sort by value rather than by the text of their ids."""
        for name in self.param_names[task.name]:
            if name in task.matrix:
                kinds = {type(value) for value in task.matrix[name]}
            elif (spec := self.project.params.get(name)) is not None:
                kinds = {_TYPE_KINDS[spec.type.value]}
            else:
                continue
            if kinds & {int, float, dt.datetime}:
                return True
        return False

    def _find_cycle(self, start: InstanceId) -> list[InstanceId]:
        """A cycle reachable from ``start``, as a path that ends where it began."""
        requires = self._requires
        done: set[InstanceId] = set()
        path = [start]
        on_path = {start}
        next_index = [0]
        while path:
            reqs = requires[path[-1]]
            index = next_index[-1]
            while index < len(reqs) and reqs[index] in done:
                index += 1
            if index == len(reqs):
                node = path.pop()
                done.add(node)
                on_path.discard(node)
                next_index.pop()
                continue
            next_index[-1] = index + 1
            req = reqs[index]
            if req in on_path:
                return [*path[path.index(req) :], req]
            path.append(req)
            on_path.add(req)
            next_index.append(0)
        raise AssertionError(f"no cycle from {start}")  # unreachable: the caller saw one

    def _cycle(self, cycle: Sequence[InstanceId]) -> None:
        task = self.project.tasks[cycle[0].task]
        where = task.location
        raise DefinitionError(
            f"requirement cycle: {' -> '.join(cycle)}",
            where,
            "an instance cannot require itself, directly or through others",
        )

    def resolve(self, order: Sequence[InstanceId]) -> dict[InstanceId, Instance]:
        instances: dict[InstanceId, Instance] = {}
        owner: dict[str, InstanceId] = {}
        compiled: dict[str, _TaskTemplates] = {}
        for iid in order:
            templates = compiled.get(iid.task)
            if templates is None:
                templates = compiled[iid.task] = _TaskTemplates.of(self.project.tasks[iid.task])
            instance = _resolve_one(
                templates, self.root, iid, self._bound[iid], self._requires[iid], instances
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


_TYPE_KINDS: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
}
# Kinds of parameter values that compare with each other, in the order kinds sort.
_KINDS: dict[type, int] = {bool: 0, int: 1, float: 1, dt.date: 2, dt.datetime: 3, str: 4}


def _typed_order(
    values: Mapping[str, ParamValue], params: tuple[tuple[str, str], ...]
) -> tuple[tuple[int, ParamValue], ...]:
    """An instance's values in its id's parameter order, comparable across instances."""
    order = []
    for name, _ in params:
        value = values[name]
        kind = _KINDS.get(type(value))
        order.append((5, str(value)) if kind is None else (kind, value))
    return tuple(order)


# Where a required task's parameter gets its value: (parameter, kind, argument, and
# the parameter's values by text when it is in the required task's matrix).
_Step = tuple[str, str, str | ComputedParam, Mapping[str, ParamValue] | None]
_MAPPED = "mapped"  # "{a}": the text of the requirer's parameter a
_RENDERED = "rendered"  # any other template: rendered over the requirer's values
_PASSED = "passed"  # not named: the requirer's own value of that parameter
_COMPUTED = "computed"  # a function of the requirer's values (Python, or a TOML offset/range)
# Distinct instances computed requirements may reach: a chain of a task's own earlier
# instances with no end (no base case) fails here instead of eating the machine.
MAX_COMPUTED = 100_000


def _fits(ptype: ParamType, value: object) -> bool:
    """Whether a value a function returned has the parameter's type (bool is not an int)."""
    if ptype is ParamType.BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if ptype is ParamType.INT:
        return isinstance(value, int)
    if ptype is ParamType.FLOAT:
        return isinstance(value, (int, float))
    if ptype is ParamType.DATETIME:
        return isinstance(value, dt.datetime)
    if ptype is ParamType.DATE:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    return False


@functools.lru_cache(maxsize=1024)
def _bare_name(template: str) -> str | None:
    """``"{name}"`` → ``name``; anything else (literals, specs, several parts) → None."""
    if template.startswith("{") and template.endswith("}") and template.count("{") == 1:
        name = template[1:-1]
        return name if name.isidentifier() else None
    return None


def normalize_location(location: str) -> str:
    """One spelling per location: URLs untouched, local paths normalised (``./a/../b`` → ``b``)."""
    if "://" in location or is_normal_path(location):  # the common case, per output
        return location
    return posixpath.normpath(location)


@dataclass(frozen=True)
class _TaskTemplates:
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
    def of(cls, task: TaskSpec) -> _TaskTemplates:
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


def _resolve_one(
    templates: _TaskTemplates,
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


def build_graph(
    project: Project,
    targets: Sequence[str] = (),
    overrides: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Graph:
    """Expand the targets (or the project's defaults) into a resolved, ordered instance graph."""
    expander = Expander(project, overrides)
    wanted = list(targets) or list(project.default_targets) or default_targets(project)
    check_instance_count(expander, wanted)
    target_ids: list[InstanceId] = []
    for target in wanted:
        for iid in resolve_target(expander, target, base_dir):
            if iid not in target_ids:
                target_ids.append(iid)
    order = expander.ordered()
    instances = expander.resolve(order)
    check_places(expander, instances)
    return Graph(project, instances, tuple(target_ids))


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
    location = _target_location(project, target, base_dir)
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
            bound = _bind_groups(expander, task, names, groups, match.groupdict())
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


# -- outputs within the project's reach (SPEC §1) ---------------------------------------


def check_places(expander: Expander, instances: Mapping[InstanceId, Instance]) -> None:
    """Exit 2 before anything runs when a location could reach what kflow must never touch.

    A parameter value substituted into an output or input path is one path segment; every
    output lies within the project folder or ``{root}`` (or is a URL of its own); no output
    is, or holds, a definition file or a source input; and each canonical location
    (``{root}/x``, ``file://./data/x`` and ``/abs/…/data/x`` are one) has one maker and
    lies inside no other instance's output.
    """
    project = expander.project
    project_dir = str(project.directory)
    reach = Reach(project_dir, project.root)
    path_params = {name: _path_params(task) for name, task in project.tasks.items()}
    checked: set[tuple[str, str]] = set()
    owners: dict[tuple[str, str, str], tuple[InstanceId, str]] = {}
    for instance in instances.values():
        names = path_params[instance.id.task]
        if names:
            for name, text in instance.id.params:
                if name in names and (name, text) not in checked:
                    _check_segment(instance, name, text)
                    checked.add((name, text))
        for location in instance.outputs.values():
            place = place_of(location, project_dir)
            problem = reach.problem(place)
            if problem is not None:
                raise DefinitionError(
                    f"output {location!r} of {instance.id} {problem}",
                    _key(instance.task, "outputs"),
                    "outputs go under the project folder or {root}, or to a URL of their own",
                )
            key = place.key()
            other = owners.get(key)
            if other is not None and other[0] != instance.id:
                raise DefinitionError(
                    f"output {location!r} of {instance.id} is also output {other[1]!r} "
                    f"of {other[0]}",
                    _key(instance.task, "outputs"),
                    "each output must be made by one instance",
                )
            owners[key] = (instance.id, location)
    _check_nesting(owners)
    _check_sources(expander, instances, owners, project_dir)


def _path_params(task: TaskSpec) -> frozenset[str]:
    templates = [t for _, t in task.outputs] + list(task.inputs)
    return frozenset(name for t in templates for name in names_in(t, task.location))


def _key(task: TaskSpec, section: str) -> Location:
    key = f"{task.location.key}.{section}" if task.location.key else section
    return dataclasses.replace(task.location, key=key)


def _check_segment(instance: Instance, name: str, text: str) -> None:
    problem = segment_problem(text)
    if problem is not None:
        raise DefinitionError(
            f"parameter {name!r} value {text!r} {problem}, but {instance.id.task}'s paths "
            "use it as one path segment",
            _key(instance.task, "outputs"),
            "a value in an output or input path must not contain '/', be '.' or '..', "
            "hold NUL or start with '-'",
        )


def _ancestors(key: tuple[str, str, str]) -> Iterable[tuple[str, str, str]]:
    scheme, host, path = key
    while len(path) > 1:
        path = path.rpartition("/")[0] or "/"
        yield scheme, host, path


def _check_nesting(owners: Mapping[tuple[str, str, str], tuple[InstanceId, str]]) -> None:
    """An output inside another instance's (folder) output: that instance's failure would
    delete it. Reported like a duplicate.

    Sorted with a trailing '/', everything under a folder directly follows it: one pass with
    a stack of the folders above the current place finds every nesting.
    """
    entries = sorted(
        ((scheme, host, path.rstrip("/") + "/"), owner)
        for (scheme, host, path), owner in owners.items()
    )
    stack: list[tuple[tuple[str, str, str], tuple[InstanceId, str]]] = []
    for key, owner in entries:
        while stack and not (
            stack[-1][0][:2] == key[:2] and key[2].startswith(stack[-1][0][2])
        ):
            stack.pop()
        if stack and stack[-1][1][0] != owner[0]:
            other = stack[-1][1]
            raise DefinitionError(
                f"output {owner[1]!r} of {owner[0]} lies inside output {other[1]!r} of {other[0]}",
                None,
                "an output folder belongs to one instance: move one of them",
            )
        stack.append((key, owner))


def _check_sources(
    expander: Expander,
    instances: Mapping[InstanceId, Instance],
    owners: Mapping[tuple[str, str, str], tuple[InstanceId, str]],
    project_dir: str,
) -> None:
    """No output is or holds a definition file or a source input; no source input is another
    task's output (we refuse rather than infer the edge: name the task in ``requires``)."""
    project = expander.project
    protected: dict[tuple[str, str, str], str] = {}
    for path in project.files:
        protected[place_of(str(path), project_dir).key()] = f"the definition file {path}"
    users: dict[str, Instance] = {}
    for instance in instances.values():
        for source in instance.source_inputs:
            users.setdefault(source, instance)
    for source, user in users.items():
        key = place_of(source, project_dir).key()
        for candidate in (key, *_ancestors(key)):
            maker = owners.get(candidate)
            if maker is not None and maker[0].task != user.id.task:
                raise _made_by(user, source, maker[0].task)
        protected.setdefault(key, f"source input {source!r} of {user.id}")
    for key, what in protected.items():
        for candidate in (key, *_ancestors(key)):
            owner = owners.get(candidate)
            if owner is not None:
                raise DefinitionError(
                    f"output {owner[1]!r} of {owner[0]} is or holds {what}",
                    _key(instances[owner[0]].task, "outputs"),
                    "kflow never overwrites or deletes definition files or source inputs",
                )
    _check_sources_made_elsewhere(expander, users)


def _made_by(user: Instance, source: str, maker: str) -> DefinitionError:
    return DefinitionError(
        f"source input {source!r} of {user.id} is made by task {maker!r}",
        _key(user.task, "inputs"),
        f"add {maker!r} to requires (and drop it from inputs) so that it runs first",
    )


def _check_sources_made_elsewhere(expander: Expander, users: Mapping[str, Instance]) -> None:
    """A source input that another task's output pattern makes (binding valid values), though
    that task's instance is not in this graph: nothing would order the two."""
    project = expander.project
    patterns = _OutputPatterns(project)
    seen: set[tuple[str, str]] = set()
    for source, user in users.items():
        spelled = _target_location(project, source, project.directory)
        candidates = [spelled]
        while "/" in spelled.strip("/"):
            spelled = spelled.rstrip("/").rpartition("/")[0]
            candidates.append(spelled)
        for candidate in candidates:
            if (candidate, user.id.task) in seen:
                continue
            seen.add((candidate, user.id.task))
            for task, regex, groups in patterns.could_make(candidate):
                if task.name == user.id.task:
                    continue
                match = regex.match(candidate)
                if match is None:
                    continue
                names = expander.param_names[task.name]
                if _bind_groups(expander, task, names, groups, match.groupdict()) is not None:
                    raise _made_by(user, source, task.name)


_Pattern = tuple[TaskSpec, re.Pattern[str], list[Placeholder]]


class _OutputPatterns:
    """Every task's output templates, indexed by the literal text before their first
    parameter, so that asking which tasks could make a path looks at those tasks only
    (a scan of every pattern per source input grows with tasks times sources)."""

    def __init__(self, project: Project):
        self._by_prefix: dict[str, list[tuple[int, str, TaskSpec]]] = {}
        self._compiled: dict[tuple[int, str], _Pattern] = {}
        self._project = project
        for order, task in enumerate(project.tasks.values()):
            for _, template in task.outputs:
                if project.root == "." and template.startswith("{root}/"):
                    template = template[len("{root}/") :]
                prefix = _literal_prefix(template, self._fixed(task), task.location)
                self._by_prefix.setdefault(prefix, []).append((order, template, task))

    def _fixed(self, task: TaskSpec) -> dict[str, str]:
        return {"root": self._project.root, "task": task.name}

    def could_make(self, path: str) -> list[_Pattern]:
        """The patterns whose literal start ``path`` has, in the order tasks are defined."""
        found = [
            entry
            for end in range(len(path) + 1)
            for entry in self._by_prefix.get(path[:end], ())
        ]
        found.sort(key=lambda entry: entry[0])
        return [self._pattern(order, template, task) for order, template, task in found]

    def _pattern(self, order: int, template: str, task: TaskSpec) -> _Pattern:
        key = (order, template)
        if key not in self._compiled:  # compiled when first needed: most never are
            regex, groups = pattern_regex(template, self._fixed(task), task.location)
            self._compiled[key] = (task, regex, groups)
        return self._compiled[key]


def _literal_prefix(template: str, fixed: Mapping[str, str], where: Location) -> str:
    """The text every path the template makes starts with: up to its first parameter."""
    text: list[str] = []
    for part in parse(template, where):
        if isinstance(part, str):
            text.append(part)
        elif part.name in fixed:
            text.append(fixed[part.name])
        else:
            break
    return "".join(text)


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
