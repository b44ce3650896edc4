"""The Python API: ``from kflow import task`` and its siblings ``param``, ``project``, etc.

Each call adds an entry to the document being loaded, in exactly the shape a
TOML file would have, so Python and TOML definitions are validated by the same
code and give the same model. Outside of loading (for example when a decorated
function's file is imported to run it) the calls do nothing but return.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar, overload

from kflow.errors import DefinitionError, Location
from kflow.load.document import Document, Source

# The environment variable that carries a decorated task's code hash into its fingerprint.
CODE_HASH_VARIABLE = "KFLOW_CODE_HASH"

F = TypeVar("F", bound=Callable[..., Any])

_collecting: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "kflow_collecting", default=None
)


class _Collector:
    def __init__(self, path: Path, display: str, project_dir: Path):
        self.path = path
        self.filename = str(path)  # what the file's frames carry as co_filename
        self.display = display
        self.project_dir = project_dir
        self.doc = Document({}, {"": Source(path, display, fixed_line=None)})
        self.project_line: int | None = None
        # Decorated tasks, fingerprinted once the whole file has run (see load.pycode).
        self.functions: list[tuple[dict[str, Any], Callable[..., Any]]] = []
        # task(...) calls without a name whose decorator was not applied yet: by line.
        self.pending: dict[object, int | None] = {}

    def line(self) -> int | None:
        """The line of this file that called into the API (the nearest such frame)."""
        frame: FrameType | None = sys._getframe(1)  # cheap, unlike inspect.stack()
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def error(
        self, message: str, key: str | None = None, line: int | None = None
    ) -> DefinitionError:
        return DefinitionError(message, Location(self.display, key, line or self.line()))

    def add(self, section: str, name: str, entry: Any) -> None:
        line = self.line()
        key = f"{section}.{name}" if name else section
        table = self.doc.data.setdefault(section, {})
        if name and name in table:
            first = self.doc.location(key)
            raise DefinitionError(
                f"'{key}' is defined twice (first at {first})", Location(self.display, key, line)
            )
        if name:
            table[name] = entry
        else:
            table.update(entry)
        self.doc.sources[key] = Source(self.path, self.display, fixed_line=line)


@contextmanager
def collecting(path: Path, display: str, project_dir: Path) -> Iterator[_Collector]:
    collector = _Collector(path.resolve(), display, project_dir)
    token = _collecting.set(collector)
    try:
        yield collector
    finally:
        _collecting.reset(token)


def read_python(path: Path, display: str, project_dir: Path) -> Document:
    """Run a definition file and return what it defined.

    What the file prints goes to stderr: kflow's own stdout (``--json``, ``-q``
    answers, plans) stays machine-readable.
    """
    import runpy  # here, not at the top: `from kflow import task` stays cheap to import

    with collecting(path, display, project_dir) as collector:
        try:
            with redirect_stdout(sys.stderr), _importable(collector.path.parent, project_dir):
                namespace = runpy.run_path(collector.filename, run_name="__kflow_definitions__")
        except DefinitionError:
            raise
        except SyntaxError as exc:
            raise DefinitionError(
                f"Python syntax error: {exc.msg}", Location(display, line=exc.lineno)
            ) from None
        except (Exception, SystemExit) as exc:
            what = (
                f"SystemExit({exc.code!r})"
                if isinstance(exc, SystemExit)
                else f"{type(exc).__name__}: {exc}"
            )
            raise DefinitionError(
                f"error while loading: {what}", Location(display, line=_failing_line(exc, path))
            ) from None
        _check_pending(collector)
        _check_runnable(collector, namespace)
        _fingerprint_functions(collector)
    return collector.doc


@contextmanager
def _importable(*folders: Path) -> Iterator[None]:
    """Let the file import its neighbours, as ``python FILE`` would (and as its task can)."""
    added = [str(f.resolve()) for f in folders]
    added = [f for f in dict.fromkeys(added) if f not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)


def _check_pending(collector: _Collector) -> None:
    for line in collector.pending.values():
        raise collector.error(
            "task() without a name defines nothing: give the name first "
            '(task("name", command=...)) or use it as a decorator (@task(...) on a function)',
            line=line,
        )


def _check_runnable(collector: _Collector, namespace: dict[str, Any]) -> None:
    """Each decorated function is what its name holds once the file has run: the attempt
    runs the file again and calls that name."""
    for _, function in collector.functions:
        if namespace.get(function.__name__) is not function:
            key = f"tasks.{function.__name__}"
            raise collector.error(
                f"{function.__name__!r} names something else once {collector.display} has "
                "run, so its task could not call it: give the function a name of its own",
                key,
                line=collector.doc.sources[key].fixed_line,
            )


def _fingerprint_functions(collector: _Collector) -> None:
    """Give each decorated task the hash of its own code (not of the whole file)."""
    if not collector.functions:
        return
    from kflow.load.pycode import ModuleCode

    code = ModuleCode(collector.path, (f.__name__ for _, f in collector.functions))
    for entry, function in collector.functions:
        env = entry.get("env", {})
        if isinstance(env, dict):  # anything else is reported by validation
            entry["env"] = {**env, CODE_HASH_VARIABLE: code.function_hash(function)}


def _failing_line(exc: BaseException, path: Path) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _clean(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items() if v is not None
    }


@overload
def task(name: str, /, **settings: Any) -> None: ...
@overload
def task(name: F, /) -> F: ...
@overload
def task(name: None = None, /, **settings: Any) -> Callable[[F], F]: ...
def task(name: str | F | None = None, /, **settings: Any) -> Callable[[F], F] | F | None:
    """Define a task, with the same keys as a ``[tasks.NAME]`` table.

    Call form: ``task("clean", command=[...], outputs=[...], requires=["extract"])``.
    Decorator form: ``@task(outputs=[...])`` (or a bare ``@task``) on a top-level
    function makes a task named after the function, whose command runs it (see
    ``kflow.pyfunc``); the function receives the instance's parameters and
    ``inputs``/``outputs`` as keyword arguments it declares. Its fingerprint covers
    its own code, the module's functions it uses and what the module runs at
    import, so editing another function beside it reruns nothing.
    """
    collector = _collecting.get()
    if callable(name):  # a bare @task
        if collector is not None:
            _add_function(collector, name, settings)
        return name
    if name is not None:
        if collector is not None:
            collector.add("tasks", name, _clean(settings))
        return None
    token = object()  # this call's entry in collector.pending until its decorator is applied
    if collector is not None:
        if "command" in settings:
            raise collector.error(
                'task() with a command needs a name first: task("name", command=...)'
            )
        collector.pending[token] = collector.line()

    def decorate(function: F) -> F:
        if collector is not None:
            collector.pending.pop(token, None)
            _add_function(collector, function, settings)
        return function

    return decorate


def _add_function(
    collector: _Collector, function: Callable[..., Any], settings: dict[str, Any]
) -> None:
    name = getattr(function, "__name__", "")
    key = f"tasks.{name}"
    if "command" in settings:
        raise collector.error("a decorated function is the command: remove command=", key)
    code = getattr(function, "__code__", None)
    if code is None or code.co_filename != collector.filename or "." in function.__qualname__:
        raise collector.error(
            f"@task needs a function defined at the top level of {collector.display} "
            f"({name or function!r} is not): the task runs it by name from this file",
            key,
        )
    entry = _function_task(collector, function, settings)
    collector.add("tasks", name, entry)
    collector.functions.append((entry, function))


def _function_task(
    collector: _Collector, function: Callable[..., Any], settings: dict[str, Any]
) -> dict[str, Any]:
    try:
        relative = collector.path.relative_to(collector.project_dir.resolve()).as_posix()
    except ValueError:
        relative = str(collector.path)
    import inspect

    from kflow.pyfunc import BOOTSTRAP

    entry = _clean(settings)
    # Not `python -m kflow.pyfunc`: a project's own kflow.py would shadow the package.
    entry["command"] = ["python", "-c", BOOTSTRAP, relative, function.__name__]
    wanted = inspect.signature(function).parameters
    extra = [
        name
        for name, p in wanted.items()
        if name not in ("inputs", "outputs") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    entry["params"] = sorted(
        (set(entry.get("params", [])) | set(extra)) - set(entry.get("matrix", {}))
    )
    return entry


def param(name: str, /, **settings: Any) -> None:
    """Define a project parameter, like ``[params] NAME = { type = ..., default = ... }``."""
    collector = _collecting.get()
    if collector is not None:
        collector.add("params", name, _clean(settings))


def project(**settings: Any) -> None:
    """Set ``[project]`` keys (only in a pure-Python project's ``kflow.py``), once."""
    collector = _collecting.get()
    if collector is not None:
        if collector.project_line is not None:
            raise collector.error(
                f"project() is called twice (first at line {collector.project_line}): "
                "give every key in one call",
                "project",
            )
        collector.project_line = collector.line() or 0
        collector.add("project", "", _clean(settings))


def defaults(**settings: Any) -> None:
    """Set ``[defaults]``: settings every task inherits."""
    collector = _collecting.get()
    if collector is not None:
        collector.add("defaults", "", _clean(settings))


def profile(name: str, /, **settings: Any) -> None:
    """Define ``[profiles.NAME]``."""
    collector = _collecting.get()
    if collector is not None:
        collector.add("profiles", name, _clean(settings))
