"""Options every command shares, and the one place errors become messages and exit codes."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from kflow.errors import EXIT_INTERRUPTED, EXIT_USAGE, KflowError, UsageError
from kflow.load import load_project, locate_project_file
from kflow.model import Project

F = TypeVar("F", bound=Callable[..., Any])

DirectoryOption = Annotated[
    Path | None,
    typer.Option(
        "-C",
        "--directory",
        help="Run as if kflow was started in DIR (like make -C).",
        metavar="DIR",
        show_default=False,
    ),
]
FileOption = Annotated[
    Path | None,
    typer.Option(
        "-f", "--file", help="Use this definition file.", metavar="FILE", show_default=False
    ),
]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", help="Select [profiles.NAME].", metavar="NAME", show_default=False),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="Set a parameter: NAME=VALUE, or a date or int range: date=2026-11-01..2026-11-07.",
        metavar="NAME=VALUE",
        show_default=False,
    ),
]
TargetsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Task names, instance ids (clean[region=eu]) or output paths.", show_default=False
    ),
]


def error_console_print(message: str) -> None:
    sys.stderr.write(message + "\n")


def reports_errors(command: F) -> F:
    """Turn KflowError into one line on stderr and its exit code; Ctrl-C into 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ended_well = False
        try:
            result = command(*args, **kwargs)
            ended_well = True
            return result
        except KflowError as exc:
            error_console_print(f"kflow: error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            error_console_print("kflow: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except typer.Exit as exc:
            ended_well = exc.exit_code not in (EXIT_USAGE, EXIT_INTERRUPTED)
            raise
        finally:
            _finish_load_cache(ended_well)

    return wrapper  # type: ignore[return-value]


def _finish_load_cache(ended_well: bool) -> None:
    """Write the load cache's entries once the command has ended without bad input."""
    cache = sys.modules.get("kflow.load.cache")  # not imported: nothing was kept
    if cache is not None:
        cache.finish(ended_well)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run without the cyclic garbage collector (reference counting still frees everything).

    Loading and planning allocate hundreds of thousands of objects that live until the
    command ends and form no cycles: each collection would rescan them for nothing
    (about a tenth of a 10,000-instance plan).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class SharedOptions:
    """``-C``, ``-f``, ``--profile`` and ``--param``, wherever on the command line they were."""

    directory: Path | None = None
    file: Path | None = None
    profile: str | None = None
    params: tuple[str, ...] = ()


# What was given before the command (``kflow -C DIR build``): set by the ``kflow`` callback
# for the one command it runs, and reset when that command ends.
_BEFORE_COMMAND: contextvars.ContextVar[SharedOptions | None] = contextvars.ContextVar(
    "kflow_options_before_command", default=None
)


def set_options_before_command(options: SharedOptions) -> Callable[[], None]:
    """Record the options given before the command; returns the call that forgets them."""
    token = _BEFORE_COMMAND.set(options)
    return lambda: _BEFORE_COMMAND.reset(token)


def shared_options(
    directory: Path | None = None,
    file: Path | None = None,
    profile: str | None = None,
    params: list[str] | None = None,
) -> SharedOptions:
    """The command's own shared options merged with those before the command: a value given
    after the command wins; ``--param`` items join, those before the command first (so for
    the same name the later one wins here too)."""
    before = _BEFORE_COMMAND.get() or SharedOptions()
    return SharedOptions(
        directory if directory is not None else before.directory,
        file if file is not None else before.file,
        profile if profile is not None else before.profile,
        (*before.params, *(params or [])),
    )


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``--param k=v`` items as a dict. Those before the command are read first and those
    after it override them (as every other shared option); a name given twice on the same
    side is an error, and a malformed item is a usage error."""
    before = _BEFORE_COMMAND.get() or SharedOptions()
    return {**_params_of(before.params), **_params_of(items or [])}


def _params_of(items: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        if name.strip() in params:  # silently keeping the last would build the wrong dates
            raise UsageError(
                f"--param {name.strip()} given twice",
                hint="give one value, or a range for a date or int: date=2026-11-01..2026-11-07",
            )
        params[name.strip()] = value
    return params


def open_project(directory: Path | None, file: Path | None, profile: str | None) -> Project:
    """Load the project named by ``-C``/``-f`` (before or after the command), or found from
    the current folder."""
    options = shared_options(directory, file, profile)
    return load_project(options.directory, project_file(options), options.profile)


def project_file(options: SharedOptions) -> Path:
    """The definition file that ``-C``/``-f`` name, or that is found from the current folder."""
    if options.directory is not None and not options.directory.is_dir():
        raise UsageError(f"-C {options.directory}: no such directory")
    return locate_project_file(options.directory, options.file)


def base_directory(directory: Path | None) -> Path:
    """What relative target paths are relative to: DIR with ``-C DIR`` (as make -C), else here."""
    return (shared_options(directory).directory or Path.cwd()).resolve()


__all__ = [
    "EXIT_USAGE",
    "DirectoryOption",
    "FileOption",
    "ParamOption",
    "ProfileOption",
    "SharedOptions",
    "TargetsArgument",
    "open_project",
    "parse_params",
    "paused_gc",
    "project_file",
    "reports_errors",
    "set_options_before_command",
    "shared_options",
]
