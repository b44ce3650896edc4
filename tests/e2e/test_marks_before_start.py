"""Only instances that start are marked "incomplete": a build stopped while others wait for
a -j slot leaves their previous records counting (README: the mark is written "before the
command starts")."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import data_project, kflow, would_run
from tests.processes import start_build, wait_until

# Four instances; each says it started, then waits for the test's "go".
WORK = """
[tasks.work]
matrix = {{ i = ["1", "2", "3", "4"] }}
command = ["sh", "-c", '''echo {{i}} >> started; while [ ! -e go ]; do sleep 0.02; done;
           echo {{i}}{tag} > {{output}}''']
outputs = ["{{root}}/w{{i}}.txt"]
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_build_marks_only_the_instance_that_started(
    tmp_path: Path, sig: signal.Signals
) -> None:
    data_project(tmp_path, WORK.format(tag=""))
    (tmp_path / "go").touch()
    result = kflow("build", "-C", tmp_path, "work")
    assert result.exit_code == 0, result.output
    assert would_run(tmp_path) == {}
    # The command changes: all four are to run again, one at a time.
    data_project(tmp_path, WORK.format(tag="x"))
    (tmp_path / "go").unlink()
    (tmp_path / "started").unlink()
    proc = start_build(tmp_path, "-j", "1", "work", env={"KFLOW_KILL_GRACE": "0.5"})
    try:
        wait_until(lambda: _lines(tmp_path / "started"), "no instance started", proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == (130 if sig == signal.SIGTERM else -9), err
        started = _lines(tmp_path / "started")
        assert started == ["1"], started
        # Back to the command that built them: the three that never started are up to
        # date (their records count again); only the one that started may run again.
        data_project(tmp_path, WORK.format(tag=""))
        assert set(would_run(tmp_path)) <= {"work[i=1]"}
    finally:
        (tmp_path / "go").touch()  # an attempt a kill -9 left behind ends
