"""The Python API: ``from kflow import task`` and its siblings ``param``, ``project``, etc.

Each call adds an entry to the document being loaded, in exactly the shape a
TOML file would have, so Python and TOML definitions are validated by the same
code and give the same model. Outside of loading (for example when a decorated
function's file is imported to run it) the calls do nothing but return.
"""

from __future__ import annotations

import contextvars
import inspect
import runpy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

from kflow.errors import DefinitionError, Location
from kflow.load.document import Document, Source

F = TypeVar("F", bound=Callable[..., Any])

_collecting: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "kflow_collecting", default=None
)


class _Collector:
    def __init__(self, path: Path, display: str, project_dir: Path):
        self.path = path
        self.display = display
        self.project_dir = project_dir
        self.doc = Document({}, {"": Source(path, display, fixed_line=None)})

    def add(self, section: str, name: str, entry: Any) -> None:
        line = _caller_line(self.path)
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


def _caller_line(path: Path) -> int | None:
    for frame in inspect.stack()[2:]:
        if Path(frame.filename).resolve() == path:
            return frame.lineno
    return None


@contextmanager
def collecting(path: Path, display: str, project_dir: Path) -> Iterator[_Collector]:
    collector = _Collector(path.resolve(), display, project_dir)
    token = _collecting.set(collector)
    try:
        yield collector
    finally:
        _collecting.reset(token)


def read_python(path: Path, display: str, project_dir: Path) -> Document:
    """Run a definition file and return what it defined."""
    with collecting(path, display, project_dir) as collector:
        try:
            runpy.run_path(str(path), run_name="__kflow_definitions__")
        except DefinitionError:
            raise
        except SyntaxError as exc:
            raise DefinitionError(
                f"Python syntax error: {exc.msg}", Location(display, line=exc.lineno)
            ) from None
        except Exception as exc:
            line = _failing_line(exc, path)
            raise DefinitionError(
                f"error while loading: {type(exc).__name__}: {exc}", Location(display, line=line)
            ) from None
    return collector.doc


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
def task(name: None = None, /, **settings: Any) -> Callable[[F], F]: ...
def task(name: str | None = None, /, **settings: Any) -> Callable[[F], F] | None:
    """Define a task, with the same keys as a ``[tasks.NAME]`` table.

    Call form: ``task("clean", command=[...], outputs=[...], requires=["extract"])``.
    Decorator form: ``@task(outputs=[...])`` on a function makes a task named after
    the function whose command runs it with ``python -m kflow.pyfunc``; the
    function receives the instance's parameters and ``inputs``/``outputs`` as
    keyword arguments it declares. Its file becomes a source input, so editing
    the function reruns the task.
    """
    if name is not None:
        collector = _collecting.get()
        if collector is not None:
            collector.add("tasks", name, _clean(settings))
        return None

    def decorate(function: F) -> F:
        collector = _collecting.get()
        if collector is not None:
            collector.add("tasks", function.__name__, _function_task(collector, function, settings))
        return function

    return decorate


def _function_task(
    collector: _Collector, function: Callable[..., Any], settings: dict[str, Any]
) -> dict[str, Any]:
    if "command" in settings:
        raise DefinitionError(
            "a decorated function is the command: remove command=",
            Location(collector.display, f"tasks.{function.__name__}", _caller_line(collector.path)),
        )
    try:
        relative = collector.path.relative_to(collector.project_dir.resolve()).as_posix()
    except ValueError:
        relative = str(collector.path)
    entry = _clean(settings)
    entry["command"] = ["python", "-m", "kflow.pyfunc", relative, function.__name__]
    entry["inputs"] = [*entry.get("inputs", []), relative]
    wanted = inspect.signature(function).parameters
    extra = [p for p in wanted if p not in ("inputs", "outputs")]
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
    """Set ``[project]`` keys (only in a pure-Python project's ``kflow.py``)."""
    collector = _collecting.get()
    if collector is not None:
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
