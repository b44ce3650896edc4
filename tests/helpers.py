"""Shared test helpers: write a project into a folder and run the CLI on it."""

from __future__ import annotations

import json
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


# A project whose storage is the folder's `data` ({root}); `data_project` starts with it.
DATA_STORAGE = '[project]\nstorage = "file://./data"\n'


def data_project(folder: Path, tasks: str, **files: str) -> Path:
    """``write_project`` of a project storing in ``FOLDER/data`` with these tasks (TOML)."""
    return write_project(folder, DATA_STORAGE + textwrap.dedent(tasks), **files)


def kflow(*args: str | Path) -> Result:
    """Run the CLI in-process, as a user would from a terminal-less shell."""
    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def would_run(project: Path) -> dict[str, str]:
    """What `kflow plan --json` would run: instance → reason."""
    result = kflow("plan", "-C", project, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["instances"]
    return {row["instance"]: row["reason"] for row in rows if row["runs"]}


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(
    project: Path, *commands: str | tuple[str, ...], says: str | tuple[str, ...] = ""
) -> str:
    """Run each command (a word, or a tuple of words) on ``project`` (``-C``): each must
    exit 2 (bad input) saying every one of ``says`` on stderr. The last one's stderr."""
    words = (says,) if isinstance(says, str) else says
    stderr = ""
    for command in commands:
        argv = (command,) if isinstance(command, str) else command
        result = kflow(*argv, "-C", project)
        assert result.exit_code == 2, (argv, result.output)
        stderr = result.stderr
        for word in words:
            assert word in stderr, (argv, word, stderr)
    return stderr
