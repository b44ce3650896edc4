"""What the runner reads and writes around each attempt (issue 14: per-task overhead).
Safety stays as tested elsewhere (marks before start, leases, stamps at start); these
check that the cheaper path keeps what a user sees."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import data_project, would_run
from tests.processes import gone, has_text, wait_until

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


# Started from the project folder, as a user does: the executor's fast start (posix_spawn).
WAITER = """
[tasks.wait]
command = ["sh", "-c", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; echo ok > {output}"]
outputs = ["{root}/waited.txt"]
"""


def _build_here(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kflow", "build"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_task_started_from_the_project_folder_ends_with_its_build(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data_project(tmp_path, WAITER)
    proc = _build_here(tmp_path)
    try:
        wait_until(has_text(tmp_path / "pid"), "the task never started", proc)
        task = int((tmp_path / "pid").read_text())
        proc.send_signal(sig)
        proc.communicate(timeout=DEADLINE)
        assert proc.returncode == (130 if sig == signal.SIGINT else -9)
        assert gone([task]), "the task outlived its build"
        assert "wait" in would_run(tmp_path)
    finally:
        (tmp_path / "go").touch()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_build_from_the_project_folder_keeps_the_task_log(tmp_path: Path) -> None:
    data_project(
        tmp_path,
        """
        [tasks.say]
        command = ["sh", "-c", "echo to-out; echo to-err >&2; echo done > {output}"]
        outputs = ["{root}/said.txt"]
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "kflow", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stderr
    logs = subprocess.run(
        [sys.executable, "-m", "kflow", "logs", "say"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert logs.stdout.split() == ["to-out", "to-err"], logs
