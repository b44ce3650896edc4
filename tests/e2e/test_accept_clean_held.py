"""`kflow accept` and `kflow clean` leave alone what a running build holds (exit 3, naming
the run), and `kflow clean` without targets means every instance, as `make clean` does."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.helpers import data_project, kflow, would_run, write_project
from tests.processes import start_build, wait_until

# The task writes a partial output, says so, and finishes it only once the test says "go".
SLOW = """
[tasks.t]
command = ["sh", "-c", '''echo partial > {output}; touch started;
           while [ ! -e go ]; do sleep 0.02; done; echo full > {output}''']
outputs = ["{root}/t.txt"]
"""


def _building(tmp_path: Path) -> subprocess.Popen[str]:
    data_project(tmp_path, SLOW)
    proc = start_build(tmp_path, "t")
    wait_until(lambda: (tmp_path / "started").exists(), "the task never started", proc)
    return proc


def test_accept_refuses_an_instance_a_running_build_holds(tmp_path: Path) -> None:
    proc = _building(tmp_path)
    try:
        result = kflow("accept", "-C", tmp_path, "t")
        assert result.exit_code == 3, result.output
        assert "cannot accept t: run " in result.stderr and "holds it" in result.stderr
    finally:
        proc.send_signal(signal.SIGKILL)  # kflow dies: its half-written output stays
        proc.communicate(timeout=30)
        (tmp_path / "go").touch()
    assert (tmp_path / "data/t.txt").exists()
    # Nothing vouches for the partial output: the next build runs it again.
    assert "t" in would_run(tmp_path)


def test_accept_after_the_build_ended_records_its_outputs(tmp_path: Path) -> None:
    proc = _building(tmp_path)
    (tmp_path / "go").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = kflow("accept", "-C", tmp_path, "t")
    assert result.exit_code == 0, result.output
    assert "accepted 1 instance" in result.stdout
    # its lease is given back: a build right after finds nothing to wait for
    assert not list((tmp_path / "data/.kflow/leases").glob("*.json"))


def test_clean_refuses_an_instance_a_running_build_holds(tmp_path: Path) -> None:
    proc = _building(tmp_path)
    try:
        result = kflow("clean", "-C", tmp_path, "--yes", "t")
        assert result.exit_code == 3, result.output
        assert "cannot clean t: run " in result.stderr
        assert (tmp_path / "data/t.txt").exists()
    finally:
        (tmp_path / "go").touch()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (tmp_path / "data/t.txt").read_text() == "full\n"
    result = kflow("clean", "-C", tmp_path, "--yes", "t")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data/t.txt").exists()


def test_clean_without_targets_cleans_every_instance_not_only_the_default(
    tmp_path: Path,
) -> None:
    write_project(
        tmp_path,
        """
        [project]
        storage = "file://./data"
        default = ["a"]

        [tasks.a]
        command = "sh -c 'echo a > {output}'"
        outputs = ["{root}/a.txt"]

        [tasks.b]
        command = "sh -c 'echo b > {output}'"
        outputs = ["{root}/b.txt"]
        """,
    )
    assert kflow("build", "-C", tmp_path, "a", "b").exit_code == 0
    result = kflow("clean", "-C", tmp_path, "-n")
    assert result.exit_code == 0, result.output
    assert "would delete data/a.txt" in result.stdout
    assert "would delete data/b.txt" in result.stdout
    result = kflow("clean", "-C", tmp_path, "--yes")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data/a.txt").exists() and not (tmp_path / "data/b.txt").exists()
    # a named target still narrows it
    assert kflow("build", "-C", tmp_path, "a", "b").exit_code == 0
    result = kflow("clean", "-C", tmp_path, "--yes", "a")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "data/a.txt").exists() and (tmp_path / "data/b.txt").exists()
