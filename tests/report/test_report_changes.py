"""Why an instance ran, old → new in full, kept in the run's record and shown by the
report: after the run `kflow plan --why` sees the new state and cannot say any more."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import kflow, write_project

PROJECT = """
[project]
name = "changes"
storage = "file://./data"

[tasks.a]
command = "sh -c 'echo WORD > {output}'"
outputs = ["{root}/a.txt"]

[tasks.b]
requires = ["a"]
command = "sh -c 'cat {input} > {output}'"
outputs = ["{root}/b.txt"]
"""


def _rebuilt(folder: Path, old: str, new: str) -> dict[str, Any]:
    """Built with ``old`` as the word, then again with ``new``: the second run's model."""
    write_project(folder, PROJECT.replace("WORD", old))
    assert kflow("build", "-C", folder).exit_code == 0
    write_project(folder, PROJECT.replace("WORD", new))
    result = kflow("build", "-C", folder)
    assert result.exit_code == 0, result.output
    run = result.stdout.split()[2].rstrip(":")  # "… run ID: 2 to run" (two runs a second apart)
    model = json.loads(kflow("report", run, "-C", folder, "--format", "json").stdout)
    return {i["id"]: i for i in model["instances"]}


def test_the_change_that_made_an_instance_run_is_kept_old_and_new(tmp_path: Path) -> None:
    by_id = _rebuilt(tmp_path, "one", "two")
    assert by_id["a"]["changes"] == [
        "fingerprint: changed: command",
        "  command:",
        '    - "echo one > data/a.txt"',
        '    + "echo two > data/a.txt"',
    ]
    assert by_id["b"]["changes"] is None  # "upstream will run": nothing changed in it
    why = kflow("plan", "-C", tmp_path, "--why", "a").stdout
    assert "up to date" in why and "one" not in why  # what only the record still knows


def test_a_long_change_is_kept_up_to_4_kb_and_says_how_much_more(tmp_path: Path) -> None:
    by_id = _rebuilt(tmp_path, "o" * 10_000, "n" * 10_000)
    changes = by_id["a"]["changes"]
    assert sum(len(line.encode()) + 1 for line in changes[:-1]) <= 4096
    assert changes[2].startswith('    - "echo oooo')
    assert changes[-1].endswith("kB more, not kept") and changes[-1].startswith("\u2026 16.")
