"""The in-memory model of a project: what the loaders produce and everything else reads.

TOML and Python definitions both end up as these frozen values, so the rest of
kflow never knows which form a task came from. Values are plain data: mapping
fields hold dicts that nobody mutates after loading.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from kflow.errors import Location

ParamValue = str | int | float | bool | dt.date | dt.datetime


class ParamType(str, Enum):
    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"


class PodCleanup(str, Enum):
    ALWAYS = "always"
    ON_SUCCESS = "on-success"
    NEVER = "never"


@dataclass(frozen=True)
class ParamSpec:
    """A project parameter: its type and its default as written (``today`` resolves later)."""

    name: str
    type: ParamType = ParamType.STR
    default: str | None = None
    description: str = ""
    location: Location | None = None


@dataclass(frozen=True)
class Requirement:
    """One entry of ``requires``: a task, plus parameter bindings that override pass-through.

    ``params`` values are templates over the requirer's parameters (``"{date}"``) or
    literals; parameters not named here pass through when both tasks have them.
    """

    task: str
    params: Mapping[str, str] = field(default_factory=dict)
    # Parameters whose value is computed from the requirer's values (a Python function,
    # or a TOML offset/range such as "{date-1d}" or "{date-6d}..{date}").
    computed: Mapping[str, ComputedParam] = field(default_factory=dict)
    location: Location | None = None


@dataclass(frozen=True)
class ComputedParam:
    """A required parameter as a function of the requirer's typed values.

    ``function`` is called with the requirer's values named in ``names`` as keyword
    arguments; it returns one value, a list of values (a fan-in over them), or None / an
    empty list (no requirement: how a chain of a task's own earlier instances ends).
    """

    function: Callable[..., object]
    names: tuple[str, ...]
    text: str  # as written, for messages: "{date-1d}" or the function's name
    location: Location | None = None
    # TOML offsets and ranges have no `if`, so their values are clipped: one outside the
    # required task's matrix is dropped (a window ends at the matrix's edge), and so is one
    # outside the run's own values when a task requires its own instances (a chain ends
    # where the --param range does). A Python function decides for itself: no clipping.
    clip: bool = False


@dataclass(frozen=True)
class EnvVar:
    """An environment variable: a literal (template) value, or a reference to a Secret/ConfigMap.

    Secret values never enter kflow: only the reference is kept, and only the
    reference is fingerprinted.
    """

    name: str
    value: str | None = None
    secret: tuple[str, str] | None = None  # (secret name, key)
    config_map: tuple[str, str] | None = None  # (config map name, key)


@dataclass(frozen=True)
class Resources:
    """Requests and limits as Kubernetes quantities; ``gpu`` is a count of ``gpu_resource``."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    limits_cpu: str | None = None
    limits_memory: str | None = None

    @property
    def memory_limit(self) -> str | None:
        """The pod's memory limit: explicit, else the request (so OOM kills are predictable)."""
        return self.limits_memory or self.memory


@dataclass(frozen=True)
class TaskSpec:
    """A task as defined: templates not yet substituted, defaults already merged in."""

    name: str
    command: tuple[str, ...] | str
    location: Location
    description: str = ""
    shell: bool = False
    inputs: tuple[str, ...] = ()
    # (name, template); list-form outputs are named by their position "0", "1", ...
    outputs: tuple[tuple[str, str], ...] = ()
    requires: tuple[Requirement, ...] = ()
    matrix: Mapping[str, tuple[ParamValue, ...]] = field(default_factory=dict)
    params: tuple[str, ...] = ()  # project parameters bound even if no template names them
    image: str | None = None
    env: tuple[EnvVar, ...] = ()
    env_from: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    retries: int = 0
    retry_delay: float = 5.0
    timeout: float | None = None
    pending_timeout: float = 600.0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    service_account: str | None = None
    image_pull_policy: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    pod_overrides: Mapping[str, Any] = field(default_factory=dict)
    pod_cleanup: PodCleanup = PodCleanup.ON_SUCCESS

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.outputs)


@dataclass(frozen=True)
class Profile:
    """Where and how to run: the selected ``[profiles.NAME]`` (or the built-in default)."""

    name: str = "default"
    executor: str = "local"
    context: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    storage: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    jobs: int | None = None


@dataclass(frozen=True)
class Project:
    """Everything a project defines, with the selected profile applied."""

    name: str
    directory: Path
    storage: str  # the {root} URL or path as configured (profile applied)
    storage_options: Mapping[str, Any]
    default_targets: tuple[str, ...]
    timezone: str
    params: Mapping[str, ParamSpec]
    tasks: Mapping[str, TaskSpec]
    profile: Profile
    profile_names: tuple[str, ...]
    files: tuple[Path, ...]
    # Where the storage URL was written (the profile's key when the profile sets it): a
    # backend that is missing is found later, by the CLI, and still names the file and key.
    storage_where: Location | None = None
    includes: tuple[str, ...] = ()  # [project] include patterns: outputs never match them

    @property
    def root(self) -> str:
        """``{root}`` as templates see it: a project-relative path for local storage, else a URL."""
        return storage_root_for_templates(self.storage)


def storage_root_for_templates(storage: str) -> str:
    """Turn the configured storage into what ``{root}`` expands to.

    ``file://./data`` and ``./data`` become ``data`` (commands run in the project
    folder, so a relative path is what a local program can open); ``file:///abs``
    becomes ``/abs``; remote URLs stay URLs.
    """
    text = storage.rstrip("/") or storage
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        return text
    while text.startswith("./"):
        text = text[2:]
    return text or "."


def is_normal_path(path: str) -> bool:
    """True when ``posixpath.normpath`` would surely leave ``path`` unchanged.

    Cheap on purpose (planning handles 10,000s of paths): any component starting with
    '.' (even '.kflow') answers False, and the caller takes the slow, exact route.
    """
    return bool(path) and not (
        path.startswith(".") or "/." in path or "//" in path or path.endswith("/")
    )


_ID_SPECIAL = set(',=[]"\\') | {" "}


@functools.lru_cache(maxsize=65536)
def _quote_id_value(text: str) -> str:
    if text and not (set(text) & _ID_SPECIAL):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class InstanceId(str):
    """A task plus its parameter values as text, e.g. ``clean[date=2026-11-24,region=eu]``.

    Parameters are sorted by name so the id is stable whatever order they were given in.
    The id *is* its text (a ``str``): ids are dict and set keys by the ten thousand, and a
    str hashes and compares in C, caching its hash. ``task`` and ``params`` keep the parts.
    """

    task: str
    params: tuple[tuple[str, str], ...]

    def __new__(cls, task: str, params: tuple[tuple[str, str], ...] = ()) -> InstanceId:
        if params:
            inner = ",".join([f"{k}={_quote_id_value(v)}" for k, v in params])
            self = super().__new__(cls, f"{task}[{inner}]")
        else:
            self = super().__new__(cls, task)
        self.task = task
        self.params = params
        return self

    @classmethod
    def of(cls, task: str, params: Mapping[str, str]) -> InstanceId:
        return cls(task, tuple(sorted(params.items())))

    @property
    def text(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"InstanceId({str.__repr__(self)})"

    def __reduce__(self) -> tuple[type[InstanceId], tuple[str, tuple[tuple[str, str], ...]]]:
        return (InstanceId, (self.task, self.params))

    @property
    def param_dict(self) -> dict[str, str]:
        return dict(self.params)


def parse_instance_id(text: str) -> InstanceId:
    """Parse ``task[k=v,...]`` (values may be double-quoted); raises ValueError when malformed."""
    text = text.strip()
    if "[" not in text:
        if not text or "]" in text:
            raise ValueError(f"not an instance id: {text!r}")
        return InstanceId(text)
    task, _, rest = text.partition("[")
    if not task or not rest.endswith("]"):
        raise ValueError(f"not an instance id: {text!r}")
    body = rest[:-1]
    params: dict[str, str] = {}
    i = 0
    while i < len(body):
        eq = body.find("=", i)
        if eq < 0:
            raise ValueError(f"expected key=value in {text!r}")
        key = body[i:eq].strip()
        i = eq + 1
        if i < len(body) and body[i] == '"':
            value, i = _read_quoted(body, i + 1, text)
        else:
            end = body.find(",", i)
            end = len(body) if end < 0 else end
            value, i = body[i:end], end
        if not key or key in params:
            raise ValueError(f"empty or repeated parameter {key!r} in {text!r}")
        params[key] = value
        if i < len(body):
            if body[i] != ",":
                raise ValueError(f"expected ',' after {key}=... in {text!r}")
            i += 1
    return InstanceId.of(task, params)


def _read_quoted(body: str, i: int, text: str) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            chars.append(body[i + 1])
            i += 2
        elif ch == '"':
            return "".join(chars), i + 1
        else:
            chars.append(ch)
            i += 1
    raise ValueError(f"unterminated quote in {text!r}")


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
