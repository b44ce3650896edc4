"""Finding and loading a project: ``kflow.toml`` or ``kflow.py``, walking up like git does."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from kflow.errors import DefinitionError, Location, UsageError
from kflow.load.build import build_project
from kflow.load.document import Document
from kflow.load.python import read_python
from kflow.load.toml import read_toml
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


def load_project(
    directory: Path | None = None, file: Path | None = None, profile: str | None = None
) -> Project:
    """Load and validate the project named by ``-C``/``-f`` (or found from the current folder)."""
    if file is not None:
        if not file.is_file():
            raise UsageError(f"no such file: {file}")
        path = file.resolve()
    else:
        start = directory or Path.cwd()
        if not start.is_dir():
            raise UsageError(f"no such directory: {start}")
        path = find_project_file(start)
    project_dir = path.parent
    doc = _read(path, project_dir)
    includes = doc.data.get("project", {}).get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise DefinitionError("expected a list of file patterns", doc.location("project.include"))
    for index, pattern in enumerate(includes):
        matches = sorted(glob.glob(str(project_dir / pattern), recursive=True))
        if not matches:
            raise DefinitionError(
                f"pattern {pattern!r} matches no file", doc.location(f"project.include[{index}]")
            )
        for match in matches:
            doc.merge(_read(Path(match), project_dir))
    return build_project(doc, project_dir, profile)


def _read(path: Path, project_dir: Path) -> Document:
    display = display_path(path)
    if path.suffix == ".py":
        return read_python(path, display, project_dir)
    if path.suffix == ".toml":
        return read_toml(path, display)
    raise DefinitionError("definition files must end in .toml or .py", Location(display))
