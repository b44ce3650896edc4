"""Shared test helpers: write a project into a folder and run the CLI on it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from kflow.cli.app import app


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def write_project(folder: Path, toml: str | None = None, **files: str) -> Path:
    """Write ``kflow.toml`` (dedented) and any other files (name → text; ``__`` means ``/``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if toml is not None:
        (folder / "kflow.toml").write_text(textwrap.dedent(toml))
    for name, text in files.items():
        path = folder / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def kflow(*args: str | Path) -> Result:
    """Run the CLI in-process, as a user would from a terminal-less shell."""
    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
