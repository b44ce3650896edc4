"""An input edited while its task runs leaves the instance stale (SPEC §2: stamps at start).

The record keeps the input stamps taken as the attempt started, not those seen when it
ended: otherwise the record would say the outputs were made from the new content.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import kflow, write_project

# `use` waits for the test's go-ahead, then copies its inputs: it reads them late on purpose.
PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.make]
command = "sh -c 'echo made > {output}'"
outputs = ["{root}/made.txt"]

[tasks.use]
requires = ["make"]
inputs = ["src.txt"]
command = ["sh", "-c", "touch started; while [ ! -e go ]; do sleep 0.02; done; cat $0 $1 > $2",
           "{inputs.make}", "src.txt", "{output}"]
outputs = ["{root}/used.txt"]
"""


def _build_while(tmp_path: Path, edit: str) -> subprocess.CompletedProcess[str]:
    """Build, and while `use` runs, replace the input ``edit`` with other content."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "use"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.02)
    (tmp_path / edit).write_text("edited while the task ran, longer than before\n")
    (tmp_path / "go").touch()
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("src.txt", "source input src.txt changed"),
        ("data/made.txt", "input changed: data/made.txt changed"),
    ],
    ids=["source-input", "upstream-output"],
)
def test_input_edited_during_the_run_leaves_the_instance_stale(
    tmp_path: Path, edit: str, reason: str
) -> None:
    write_project(tmp_path, PROJECT, **{"src.txt": "first\n"})
    done = _build_while(tmp_path, edit)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = kflow("plan", "-C", tmp_path, "use")
    assert plan.exit_code == 0, plan.output
    lines = [line.split() for line in plan.stdout.splitlines()]
    assert [line[0] for line in lines if line and line[0] in ("make", "use")] == ["use"], (
        plan.stdout
    )
    assert reason in plan.stdout, plan.stdout
