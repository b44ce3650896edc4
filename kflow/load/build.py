"""Validate a definition document and build the Project model from it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kflow.errors import DefinitionError, Location, did_you_mean
from kflow.load.document import SECTIONS, Document
from kflow.load.tasks import SETTING_KEYS, merge_settings, read_settings, read_task
from kflow.load.values import Reader
from kflow.model import ParamSpec, ParamType, Profile, Project, TaskSpec
from kflow.params import ParamValueError, parse_value, zone
from kflow.templates import literal_brace_hint, names_in, task_param_names

PROJECT_KEYS = (
    "name",
    "description",
    "storage",
    "storage_options",
    "default",
    "include",
    "timezone",
)
PARAM_KEYS = ("type", "default", "description")
PROFILE_KEYS = (
    "executor",
    "context",
    "namespace",
    "kubeconfig",
    "storage",
    "storage_options",
    "jobs",
    *SETTING_KEYS,
)
EXECUTORS = ("local", "kubernetes")
BUILTIN_NAMES = ("root", "task")
# "s3:/bucket" or "s3:bucket": a scheme without "//" would silently become a local folder "s3:"
_HALF_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!//)")
ALLOW_MEMORY = "KFLOW_ALLOW_MEMORY_STORAGE"  # tests only: tasks run in other processes


def build_project(doc: Document, directory: Path, profile_name: str | None) -> Project:
    top = Reader(doc, doc.data, "")
    top.check_keys(SECTIONS)
    project = top.sub("project")
    project.check_keys(PROJECT_KEYS)
    timezone = project.string("timezone", "UTC") or "UTC"
    try:
        tz = zone(timezone)
    except ParamValueError as exc:
        raise project.fail("timezone", str(exc)) from None
    params = _read_params(top.sub("params"), tz)
    profile, profile_settings, profile_names = _read_profile(top.sub("profiles"), profile_name)
    defaults = top.sub("defaults")
    defaults.check_keys(SETTING_KEYS)
    read_settings(defaults)
    settings = merge_settings(defaults.table, profile_settings)

    tasks_table = top.table_of("tasks")
    inherited: dict[str, Any] = {}
    tasks = {name: read_task(doc, name, settings, inherited) for name in tasks_table}
    if not tasks:
        raise top.fail("tasks", "the project defines no tasks", "add a [tasks.NAME] table")
    param_names: dict[str, tuple[str, ...]] = {}  # by task, made once: each is required often
    for task in tasks.values():
        _check_task_references(doc, task, tasks, params, param_names)
    _check_cycles(doc, tasks)
    _check_duplicate_outputs(doc, tasks)
    for task in tasks.values():
        for _, template in task.outputs:
            if _HALF_URL.match(template):
                raise DefinitionError(
                    f"output {template!r}: a scheme must be followed by '//'",
                    doc.location(f"tasks.{task.name}.outputs"),
                    "write s3://bucket/key, or ./NAME for a local path",
                )

    default_targets = project.string_list("default")
    for index, target in enumerate(default_targets):
        name = target.partition("[")[0]
        if name not in tasks:
            raise project.fail(
                f"default[{index}]", f"unknown task {name!r}", did_you_mean(name, tasks)
            )
    storage = profile.storage or project.string("storage", "file://./.kflow-data") or ""
    storage_key = f"profiles.{profile.name}.storage" if profile.storage else "project.storage"
    problem = storage_problem(storage)
    if problem is not None:
        raise DefinitionError(
            f"storage {storage!r}: {problem[0]}", doc.location(storage_key), problem[1]
        )
    storage_options = dict(project.table_of("storage_options"))
    storage_options.update(profile.storage_options)
    return Project(
        name=project.string("name", directory.name) or directory.name,
        directory=directory,
        storage=storage,
        storage_options=storage_options,
        default_targets=default_targets,
        timezone=timezone,
        params=params,
        tasks=tasks,
        profile=profile,
        profile_names=profile_names,
        files=tuple(dict.fromkeys(s.path for s in doc.sources.values())),
        storage_where=doc.location(storage_key),
        includes=_includes(doc.data.get("project", {}).get("include", [])),
    )


def _includes(value: object) -> tuple[str, ...]:
    # checked when the project was discovered: a string or a list of strings
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _read_params(reader: Reader, tz: Any) -> dict[str, ParamSpec]:
    params: dict[str, ParamSpec] = {}
    for name, value in reader.table.items():
        if name in BUILTIN_NAMES or name.startswith(("input", "output")):
            raise reader.fail(name, f"{name!r} is a reserved template name")
        if not isinstance(value, dict):
            value = {"default": value}
        entry = Reader(reader.doc, value, reader.key(name))
        entry.check_keys(PARAM_KEYS)
        default = entry.table.get("default")
        type_name = entry.string("type") or _infer_type(default)
        try:
            ptype = ParamType(type_name)
        except ValueError:
            choices = [t.value for t in ParamType]
            raise entry.fail(
                "type",
                f"unknown type {type_name!r}",
                did_you_mean(type_name, choices) or f"valid types: {', '.join(choices)}",
            ) from None
        default_text = None if default is None else _default_text(default)
        if default_text is not None:
            try:
                parse_value(ptype, default_text, tz)
            except ParamValueError as exc:
                raise entry.fail("default", str(exc)) from None
        params[name] = ParamSpec(
            name,
            ptype,
            default_text,
            entry.string("description", "") or "",
            reader.doc.location(reader.key(name)),
        )
    return params


def _infer_type(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if default is not None and type(default).__name__ == "date":
        return "date"
    if default is not None and type(default).__name__ == "datetime":
        return "datetime"
    return "str"


def _default_text(default: Any) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if hasattr(default, "isoformat"):
        return str(default.isoformat())
    return str(default)


def _read_profile(
    reader: Reader, name: str | None
) -> tuple[Profile, dict[str, Any], tuple[str, ...]]:
    names = tuple(reader.table)
    for profile_name in names:
        entry = reader.sub(profile_name)
        entry.check_keys(PROFILE_KEYS)
        own = {k: v for k, v in entry.table.items() if k in SETTING_KEYS}
        read_settings(Reader(reader.doc, own, entry.path))
        own_storage = entry.string("storage")
        problem = storage_problem(own_storage) if own_storage else None
        if problem is not None:
            raise entry.fail("storage", f"storage {own_storage!r}: {problem[0]}", problem[1])
        executor = entry.string("executor", "local") or "local"
        if executor not in EXECUTORS:
            raise entry.fail(
                "executor",
                f"unknown executor {executor!r}",
                did_you_mean(executor, EXECUTORS) or f"use one of {', '.join(EXECUTORS)}",
            )
    if name is None or (name == "default" and name not in names):
        return Profile(), {}, names
    if name not in names:
        raise DefinitionError(
            f"unknown profile {name!r}",
            reader.doc.location("profiles"),
            did_you_mean(name, names)
            or (f"profiles: {', '.join(names)}" if names else "none defined"),
        )
    entry = reader.sub(name)
    profile = Profile(
        name=name,
        executor=entry.string("executor", "local") or "local",
        context=entry.string("context"),
        namespace=entry.string("namespace"),
        kubeconfig=entry.string("kubeconfig"),
        storage=entry.string("storage"),
        storage_options=entry.table_of("storage_options"),
        jobs=entry.integer("jobs", None, minimum=1),
    )
    settings = {k: v for k, v in entry.table.items() if k in SETTING_KEYS}
    return profile, settings, names


def _check_task_references(
    doc: Document,
    task: TaskSpec,
    tasks: Mapping[str, TaskSpec],
    params: Mapping[str, ParamSpec],
    param_names: dict[str, tuple[str, ...]],
) -> None:
    key = f"tasks.{task.name}"
    reader = Reader(doc, doc.data["tasks"][task.name], key)
    for name in task.params:
        if name not in params:
            raise reader.fail("params", f"unknown parameter {name!r}", did_you_mean(name, params))
    for name in task.matrix:
        if name in params or name in BUILTIN_NAMES:
            raise reader.fail(f"matrix.{name}", f"matrix key {name!r} shadows a parameter")
    required: set[str] = set()
    for index, req in enumerate(task.requires):
        if req.task not in tasks:
            raise reader.fail(
                f"requires[{index}]", f"unknown task {req.task!r}", did_you_mean(req.task, tasks)
            )
        required.add(req.task)
        theirs = param_names.get(req.task)
        if theirs is None:
            theirs = param_names[req.task] = task_param_names(tasks[req.task], params)
        for pname in req.params:
            if pname not in theirs:
                raise reader.fail(
                    f"requires[{index}].params.{pname}",
                    f"task {req.task!r} has no parameter {pname!r}",
                    did_you_mean(pname, theirs),
                )
    bound = set(task.matrix) | set(params) | set(BUILTIN_NAMES)
    path_names = bound
    command_names = (
        bound
        | {"input", "inputs", "output", "outputs"}
        | {f"inputs.{name}" for name in required}
        | {f"outputs.{name}" for name in task.output_names}
    )
    groups = [
        ("outputs", [t for _, t in task.outputs], path_names),
        ("inputs", list(task.inputs), path_names),
        (
            "command",
            [task.command] if isinstance(task.command, str) else list(task.command),
            command_names,
        ),
        ("env", [v.value for v in task.env if v.value is not None], command_names),
        ("requires", [v for r in task.requires for v in r.params.values()], bound),
    ]
    for section, templates, known in groups:
        for template in templates:
            for name in _names(template, doc, f"{key}.{section}"):
                if name not in known:
                    raise reader.fail(
                        section,
                        f"undefined template name '{{{name}}}' in {template!r}",
                        literal_brace_hint(template, name)
                        or did_you_mean(name, known)
                        or _hint_for(name, section),
                    )


def _names(template: str, doc: Document, key: str) -> list[str]:
    """``names_in``, placing a malformed template at ``key`` only when it is one: finding a
    key's line costs more than the check, and nearly every template is fine."""
    try:
        return names_in(template, _UNPLACED)
    except DefinitionError as exc:
        raise DefinitionError(exc.message, doc.location(key), exc.hint) from None


_UNPLACED = Location("")


def _hint_for(name: str, section: str) -> str:
    if section in ("outputs", "inputs") and name.startswith(("input", "output")):
        return f"{section} may use {{root}}, {{task}} and parameters only"
    if name.startswith("inputs."):
        return "{inputs.TASK} needs TASK in requires"
    return "define it under [params] or in the task's matrix"


def _check_cycles(doc: Document, tasks: Mapping[str, TaskSpec]) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for req in tasks[name].requires:
            if req.computed:  # a computed edge picks other instances: cycles are found on those
                continue
            if state.get(req.task) == 1:
                cycle = [*path[path.index(req.task) :], req.task]
                raise DefinitionError(
                    f"requirement cycle: {' -> '.join(cycle)}",
                    doc.location(f"tasks.{name}.requires"),
                    "a task cannot depend on itself, directly or through others",
                )
            if req.task not in state:
                visit(req.task)
        path.pop()
        state[name] = 2

    for name in tasks:
        if name not in state:
            visit(name)


def _check_duplicate_outputs(doc: Document, tasks: Mapping[str, TaskSpec]) -> None:
    seen: dict[str, str] = {}
    for task in tasks.values():
        for _, template in task.outputs:
            normalized = template.replace("{task}", task.name)
            if normalized in seen and seen[normalized] != task.name:
                raise DefinitionError(
                    f"output {template!r} is also an output of task {seen[normalized]!r}",
                    doc.location(f"tasks.{task.name}.outputs"),
                    "each output must be made by one task",
                )
            seen[normalized] = task.name


def storage_problem(url: str) -> tuple[str, str] | None:
    """What is wrong with a storage URL that no run could use, and the fix; None if fine.

    Only the spelling is judged here; whether a backend is installed is for the CLI to ask.
    """
    half = _HALF_URL.match(url)
    if half:
        scheme = half.group(1)
        rest = url[half.end() :].lstrip("/")
        return (
            f"'{scheme}:' is not followed by '//'",
            f"write {scheme}://{rest} (or ./{url} for a local folder of that name)",
        )
    if url.lower().startswith("memory://") and os.environ.get(ALLOW_MEMORY) != "1":
        return (
            "memory:// storage lives in one process, but tasks run in other processes "
            "and could never see it",
            "use a local folder (file://./data) or an object store (s3://bucket/prefix)",
        )
    return None
