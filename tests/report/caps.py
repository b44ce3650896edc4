"""A project whose failing tasks print what a careless task prints: one 6 MB line of
three-byte characters, a hundred lines, and escape sequences and NULs; and a parameter
value with an escape sequence in it (so in an instance's name)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import Result, kflow, write_project

# a terminal title change and a bell: shown as text, never acted on
NOTE = "\x1b]0;pwned\x07"

PROJECT = """
[project]
name = "caps"
storage = "file://./data"

[params]
note = { default = "plain" }

[tasks.huge]
command = ["PYTHON", "-c", "import sys; sys.stdout.write('\\u20ac' * 2_000_000 + '\\\\n'); exit(3)"]

[tasks.noisy]
command = ["sh", "-c", "seq 1 100; printf 'esc \\\\033[2J nul \\\\000 end\\\\n'; exit 4"]

[tasks.named]
command = ["sh", "-c", "echo {note}; exit 5"]
"""


def built_caps(folder: Path, *more: str | Path) -> Result:
    """Built once, all three failing (-k); ``more``: extra build options (``--junit F``)."""
    write_project(folder, PROJECT.replace("PYTHON", sys.executable))
    result = kflow("build", "-C", folder, "-k", "-B", "-p", f"note={NOTE}", *more)
    assert result.exit_code == 1, result.output
    return result


def run_id(folder: Path) -> str:
    (record,) = (folder / "data/.kflow/runs").iterdir()
    return record.stem
