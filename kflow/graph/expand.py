"""Expansion: tasks into instances, one per combination of parameter and matrix values,
with the instances each requires, in a deterministic topological order."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from kflow.errors import DefinitionError, Location, UsageError, did_you_mean
from kflow.graph.instances import TaskTemplates, resolve_one
from kflow.model import (
    ComputedParam,
    Instance,
    InstanceId,
    ParamType,
    ParamValue,
    Project,
    TaskSpec,
)
from kflow.params import (
    ParamValueError,
    parse_value,
    parse_values,
    value_text,
    zone,
)
from kflow.templates import (
    render,
    task_param_names,
)


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
                height = len(stack)
                deepest = -1
                for req in requires[iid]:
                    d = depth.get(req)
                    if d is None:
                        stack.append(req)
                    elif d > deepest:
                        deepest = d
                # Not ``stack[-1] is iid``: an instance that requires itself pushes itself.
                if len(stack) == height:  # every requirement has its depth
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
        compiled: dict[str, TaskTemplates] = {}
        for iid in order:
            templates = compiled.get(iid.task)
            if templates is None:
                templates = compiled[iid.task] = TaskTemplates.of(self.project.tasks[iid.task])
            instance = resolve_one(
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
