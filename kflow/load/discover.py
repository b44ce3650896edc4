"""Finding and loading a project: ``kflow.toml`` or ``kflow.py``, walking up like git does."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kflow.errors import DefinitionError, Location, UsageError
from kflow.load.document import Document

if TYPE_CHECKING:
    from kflow.model import Project

PROJECT_FILES = ("kflow.toml", "kflow.py")


def find_project_file(start: Path) -> Path:
    """The nearest ``kflow.toml`` (else ``kflow.py``) in ``start`` or a folder above it."""
    here = start.resolve()
    for folder in (here, *here.parents):
        for name in PROJECT_FILES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    raise UsageError(
        f"no kflow.toml or kflow.py in {start} or any folder above it",
        hint="run 'kflow init' to create a project, or pass -C DIR / -f FILE",
    )


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the current folder when below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


@dataclass(frozen=True)
class Definitions:
    """What the definition files say, before validation, and which files and globs it read."""

    doc: Document
    directory: Path
    # [project] include patterns (absolute) and the files each matched, in order
    globs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    files: tuple[Path, ...] = ()  # every definition file read, the project file first


def locate_project_file(directory: Path | None = None, file: Path | None = None) -> Path:
    """The definition file named by ``-f``, or found from ``-C`` (or the current folder)."""
    if file is not None:
        if not file.is_file():
            raise UsageError(f"no such file: {file}")
        return file.resolve()
    start = directory or Path.cwd()
    if not start.is_dir():
        raise UsageError(f"no such directory: {start}")
    return find_project_file(start)


def load_project(
    directory: Path | None = None, file: Path | None = None, profile: str | None = None
) -> Project:
    """Load and validate the project named by ``-C``/``-f`` (or found from the current folder)."""
    from kflow.load.build import build_project

    path = locate_project_file(directory, file)
    definitions = read_definitions(path)
    return build_project(definitions.doc, definitions.directory, profile)


def read_definitions(path: Path) -> Definitions:
    """Read (TOML) or run (Python) the project file and the files it includes."""
    project_dir = path.parent
    doc = _read(path, project_dir)
    includes = doc.data.get("project", {}).get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise DefinitionError("expected a list of file patterns", doc.location("project.include"))
    globs = []
    files = [path]
    for index, pattern in enumerate(includes):
        absolute = str(project_dir / pattern)
        matches = sorted(glob.glob(absolute, recursive=True))
        if not matches:
            raise DefinitionError(
                f"pattern {pattern!r} matches no file", doc.location(f"project.include[{index}]")
            )
        globs.append((absolute, tuple(matches)))
        for match in matches:
            files.append(Path(match))
            doc.merge(_read(Path(match), project_dir))
    return Definitions(doc, project_dir, tuple(globs), tuple(files))


def _read(path: Path, project_dir: Path) -> Document:
    # Each reader imported when a file needs it: a run that takes its project from the load
    # cache reads no TOML and imports no validation code.
    display = display_path(path)
    if path.suffix == ".py":
        from kflow.load.python import read_python

        return read_python(path, display, project_dir)
    if path.suffix == ".toml":
        from kflow.load.toml import read_toml

        return read_toml(path, display)
    raise DefinitionError("definition files must end in .toml or .py", Location(display))
