"""What the runner reads and writes around each attempt (issue 14: per-task overhead).
Safety stays as tested elsewhere (marks before start, leases, stamps at start); these
check that the cheaper path keeps what a user sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import data_project, would_run

DEADLINE = 60.0


def test_a_build_never_reads_its_outputs_back(tmp_path: Path) -> None:
    # A named pipe as the output: reading it back (to hash it) would block for ever, as
    # reading a multi-GB output would cost a full read per task.
    data_project(
        tmp_path,
        """
        [tasks.pipe]
        command = ["mkfifo", "{output}"]
        outputs = ["{root}/pipe"]
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    assert would_run(tmp_path) == {}
