"""``kflow init``: the files of a small project that builds on the local executor."""

from __future__ import annotations

from pathlib import Path

from kflow.errors import UsageError

KFLOW_TOML = """\
# A kflow project. Build it with `kflow build`; see what would run with `kflow plan`.
[project]
name = "{name}"
storage = "file://./data"      # where outputs and kflow's records live: any fsspec URL
default = ["shout"]            # what a bare `kflow build` builds

[params]
who = {{ default = "world", description = "who to greet" }}

[tasks.greet]
description = "Write a greeting"
command = ["python", "steps.py", "greet", "{{who}}", "{{output}}"]
inputs = ["steps.py"]
outputs = ["{{root}}/greeting-{{who}}.txt"]

[tasks.shout]
description = "Shout the greeting"
requires = ["greet"]
command = ["python", "steps.py", "shout", "{{input}}", "{{output}}"]
outputs = ["{{root}}/shout-{{who}}.txt"]
"""

STEPS_PY = '''\
"""The steps of the example project: small programs that read and write files."""

import pathlib
import sys


def greet(who: str, out: str) -> None:
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"hello, {who}\\n")


def shout(src: str, out: str) -> None:
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pathlib.Path(src).read_text().upper())


if __name__ == "__main__":
    step, *args = sys.argv[1:]
    {"greet": greet, "shout": shout}[step](*args)
'''


def write_project(directory: Path, name: str | None = None) -> list[Path]:
    """Create the project files; refuses to overwrite anything that exists."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        directory / "kflow.toml": KFLOW_TOML.format(name=name or directory.resolve().name),
        directory / "steps.py": STEPS_PY,
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        raise UsageError(f"{', '.join(existing)} already {verb}; kflow init writes only new files")
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
