"""Where outputs may be: inside the project's reach, one maker per place, never over a
definition file or a source input (SPEC §1)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from kflow.errors import DefinitionError, Location
from kflow.graph.expand import Expander
from kflow.graph.targets import bind_groups, target_location
from kflow.model import (
    Instance,
    InstanceId,
    Project,
    TaskSpec,
    is_normal_path,
)
from kflow.paths import PatternIndex, Place, PlacePattern, Reach, place_of, segment_problem
from kflow.templates import (
    Placeholder,
    names_in,
    parse,
    pattern_regex,
)

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
            if other is not None:  # also one instance's output spelt twice
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
            "hold NUL or a glob character (* ? [ ]), start with '-' or be over 255 bytes",
        )


def _ancestors(key: tuple[str, str, str]) -> Iterable[tuple[str, str, str]]:
    scheme, host, path = key
    while len(path) > 1:
        path = path.rpartition("/")[0] or "/"
        yield scheme, host, path


def _check_nesting(owners: Mapping[tuple[str, str, str], tuple[InstanceId, str]]) -> None:
    """An output inside another (folder) output, of another instance or the same one: a
    failure would delete it, and two names for one file confuse what is up to date.

    Sorted with a trailing '/', everything under a folder directly follows it: one pass with
    a stack of the folders above the current place finds every nesting.
    """
    entries = sorted(
        ((scheme, host, path.rstrip("/") + "/"), owner)
        for (scheme, host, path), owner in owners.items()
    )
    stack: list[tuple[tuple[str, str, str], tuple[InstanceId, str]]] = []
    for key, owner in entries:
        while stack and not (stack[-1][0][:2] == key[:2] and key[2].startswith(stack[-1][0][2])):
            stack.pop()
        if stack:  # also within one instance: its folder output would hold its file output
            other = stack[-1][1]
            raise DefinitionError(
                f"output {owner[1]!r} of {owner[0]} lies inside output {other[1]!r} of {other[0]}",
                None,
                "an output folder holds no other declared output: move one of them",
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
    _check_globs_made_elsewhere(project, users, project_dir)
    for key, what in protected.items():
        for candidate in (key, *_ancestors(key)):
            owner = owners.get(candidate)
            if owner is not None:
                raise DefinitionError(
                    f"output {owner[1]!r} of {owner[0]} is or holds {what}",
                    _key(instances[owner[0]].task, "outputs"),
                    "kflow never overwrites or deletes definition files or source inputs",
                )
    _check_inside_sources(project, instances, owners, users, project_dir)
    _check_sources_made_elsewhere(expander, users)


def _check_globs_made_elsewhere(
    project: Project, users: Mapping[str, Instance], project_dir: str
) -> None:
    """A glob source input that another task's output (parameters as wildcards) could match,
    hold or lie inside: refused like a plain source input made by a task, whether or not
    that output exists yet."""
    globs = {s: u for s, u in users.items() if "*" in s or "?" in s}
    if not globs:
        return
    outputs = [
        (task.name, PlacePattern(place_of(_as_pattern(project, task, t), project_dir), t))
        for task in project.tasks.values()
        for _, t in task.outputs
    ]
    for source, user in globs.items():
        pattern = PlacePattern(place_of(source, project_dir), source)
        for task, output in outputs:
            if task != user.id.task and pattern.meets(output):
                raise _made_by(user, source, task)


def _as_pattern(project: Project, task: TaskSpec, template: str) -> str:
    """A path template as a glob: ``{root}`` and ``{task}`` filled, any other parameter ``*``."""
    fixed = {"root": project.root, "task": task.name}
    return "".join(
        part if isinstance(part, str) else fixed.get(part.name, "*")
        for part in parse(template, task.location)
    )


def source_patterns(project: Project, skip: Iterable[str] = ()) -> list[PlacePattern]:
    """Every task's source inputs as patterns (each parameter a one-segment wildcard, globs
    as globs): what no output may be, hold or lie inside, whichever instances are planned."""
    project_dir = str(project.directory)
    skipped = set(skip)
    found: dict[str, PlacePattern] = {}
    for task in project.tasks.values():
        if task.name in skipped:
            continue
        for template in task.inputs:
            text = _as_pattern(project, task, template)
            if text not in found:
                found[text] = PlacePattern(
                    place_of(text, project_dir), f"source input {template!r} of task {task.name!r}"
                )
    return list(found.values())


def definition_patterns(project: Project) -> list[PlacePattern]:
    """Definition files that may not exist yet: kflow.toml, kflow.py and what ``[project]
    include`` matches. A task writing one would change the project under kflow's feet."""
    project_dir = str(project.directory)
    found = [
        PlacePattern(place_of(name, project_dir), f"the definition file {name}")
        for name in ("kflow.toml", "kflow.py")
    ]
    found += [
        PlacePattern(place_of(text, project_dir), f"the [project] include pattern {text!r}")
        for text in project.includes
    ]
    return found


def _check_inside_sources(
    project: Project,
    instances: Mapping[InstanceId, Instance],
    owners: Mapping[tuple[str, str, str], tuple[InstanceId, str]],
    users: Mapping[str, Instance],
    project_dir: str,
) -> None:
    """No output is, holds or lies inside a source input (a folder or a glob) of any task:
    a failed attempt or ``kflow clean`` would delete the user's files, and a file written
    into an input folder changes that input on every run. Tasks with instances here are
    judged by their real inputs; the others by their input templates."""
    planned = {instance.id.task for instance in instances.values()}
    patterns = [
        PlacePattern(place_of(source, project_dir), f"source input {source!r} of {user.id}")
        for source, user in users.items()
    ]
    patterns += source_patterns(project, skip=planned)
    patterns += definition_patterns(project)
    index = PatternIndex(patterns)
    for (scheme, host, path), (owner, location) in owners.items():
        found = index.touching(Place(scheme, host, path))
        if found is not None:
            raise DefinitionError(
                f"output {location!r} of {owner} is, holds or lies inside {found.text}",
                _key(instances[owner].task, "outputs"),
                "kflow never writes or deletes source inputs or definition files: "
                "write outputs outside every input folder and glob and the include patterns",
            )


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
        # Sources are spelled as outputs already (relative, normalised): only others need
        # the file-system round trip.
        relative = is_normal_path(source) and not source.startswith("/")
        spelled = source if relative else target_location(project, source, project.directory)
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
                if bind_groups(expander, task, names, groups, match.groupdict()) is not None:
                    raise _made_by(user, source, task.name)


_Pattern = tuple[TaskSpec, re.Pattern[str], list[Placeholder]]


class _OutputPatterns:
    """Every task's output templates, indexed by the literal text before their first
    parameter, so that asking which tasks could make a path looks at those tasks only
    (a scan of every pattern per source input grows with tasks times sources)."""

    def __init__(self, project: Project):
        self._by_prefix: dict[str, list[tuple[int, str, TaskSpec]]] = {}
        self._lengths: list[int] = []  # the prefixes' distinct lengths: what to probe
        self._compiled: dict[tuple[int, str], _Pattern] = {}
        self._project = project
        for order, task in enumerate(project.tasks.values()):
            for _, template in task.outputs:
                if project.root == "." and template.startswith("{root}/"):
                    template = template[len("{root}/") :]
                prefix = _literal_prefix(template, self._fixed(task), task.location)
                self._by_prefix.setdefault(prefix, []).append((order, template, task))
        self._lengths = sorted({len(prefix) for prefix in self._by_prefix})

    def _fixed(self, task: TaskSpec) -> dict[str, str]:
        return {"root": self._project.root, "task": task.name}

    def could_make(self, path: str) -> list[_Pattern]:
        """The patterns whose literal start ``path`` has, in the order tasks are defined."""
        found = [
            entry
            for end in self._lengths
            if end <= len(path)
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
