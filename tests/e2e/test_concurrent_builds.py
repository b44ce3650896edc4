"""Two `kflow build` processes on overlapping graphs never run the same instance twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.shared]
command = ["sh", "-c", '''echo $KFLOW_RUN >> counter-shared; echo $$ > taskpid; touch started;
           while [ ! -e go ]; do sleep 0.02; done; sleep {pause}; echo x > {output}''']
outputs = ["{root}/shared.txt"]

[tasks.one]
requires = ["shared"]
command = "sh -c 'echo $KFLOW_RUN >> counter-one; cp {input} {output}'"
outputs = ["{root}/one.txt"]

[tasks.two]
requires = ["shared"]
command = "sh -c 'echo $KFLOW_RUN >> counter-two; cp {input} {output}'"
outputs = ["{root}/two.txt"]

# independent of `shared`: `slow` runs until the test says, then `after_slow` could start
[tasks.slow]
command = "sh -c 'while [ ! -e go-slow ]; do sleep 0.02; done; echo s > {output}'"
outputs = ["{root}/slow.txt"]

[tasks.after_slow]
requires = ["slow"]
command = "sh -c 'echo a > {output}'"
outputs = ["{root}/after_slow.txt"]
"""


def _project(tmp_path: Path, pause: str = "0") -> None:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT.replace("{pause}", pause)))


def _build(tmp_path: Path, *args: str, ttl: str = "2") -> subprocess.Popen[str]:
    env = {**os.environ, "KFLOW_LEASE_TTL": ttl}
    return subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_second_build_waits_for_the_first_and_reuses_its_result(tmp_path: Path) -> None:
    _project(tmp_path)
    first = _build(tmp_path, "one")
    _wait_for(tmp_path / "started", first)
    second = _build(tmp_path, "two")
    assert second.stdout is not None
    seen = ""
    while "waiting shared" not in seen:  # the task goes on only once the second run waits
        line = second.stdout.readline()
        assert line, second.communicate()
        seen += line
    (tmp_path / "go").touch()
    _, err1 = first.communicate(timeout=30)
    out2, err2 = second.communicate(timeout=30)
    out2 = seen + out2
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert len(_lines(tmp_path / "counter-shared")) == 1
    assert len(_lines(tmp_path / "counter-one")) == 1
    assert len(_lines(tmp_path / "counter-two")) == 1
    assert "waiting shared" in out2 and "reused shared" in out2


def test_no_wait_exits_3_when_another_run_holds_what_we_need(tmp_path: Path) -> None:
    _project(tmp_path)
    first = _build(tmp_path, "one")
    _wait_for(tmp_path / "started", first)
    second = _build(tmp_path, "two", "--no-wait")
    out2, _ = second.communicate(timeout=30)
    (tmp_path / "go").touch()
    first.communicate(timeout=30)
    assert second.returncode == 3, out2
    assert first.returncode == 0
    assert len(_lines(tmp_path / "counter-shared")) == 1
    assert not (tmp_path / "counter-two").exists()


def test_no_wait_names_the_held_instance_as_the_reason_nothing_else_started(
    tmp_path: Path,
) -> None:
    _project(tmp_path)
    first = _build(tmp_path, "one")
    _wait_for(tmp_path / "started", first)
    second = _build(tmp_path, "two", "after_slow", "--no-wait")
    assert second.stdout is not None
    seen = ""
    while "held shared" not in seen:  # `slow` goes on only once the held lease was seen
        line = second.stdout.readline()
        assert line, second.communicate()
        seen += line
    (tmp_path / "go-slow").touch()
    out, err = second.communicate(timeout=30)
    out = seen + out
    (tmp_path / "go").touch()
    first.communicate(timeout=30)
    assert second.returncode == 3, out + err
    assert "after a failure" not in out, out
    assert "skipped after_slow: not started: another run holds shared (--no-wait)" in out, out


def test_unknown_executor_is_bad_usage_even_when_nothing_is_stale(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(
        '[project]\nname = "t"\n[tasks.a]\ncommand = "true"\noutputs = ["a.txt"]\n'
    )
    (tmp_path / "a.txt").write_text("made\n")
    done = subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "--executor", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--executor" in done.stderr and "'nope'" in done.stderr, done.stderr
    assert not (tmp_path / ".kflow").exists()  # nothing written


def test_build_takes_over_the_lease_of_a_killed_build_at_once(tmp_path: Path) -> None:
    _project(tmp_path, pause="30")
    (tmp_path / "go").touch()
    first = _build(tmp_path, "one", ttl="60")
    _wait_for(tmp_path / "started", first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    (tmp_path / "kflow.toml").write_text((tmp_path / "kflow.toml").read_text().replace("30", "0"))
    # The killed run's holder is provably gone (this host, no such process): its lease is
    # taken over once its watchdog has ended the task, long before the 60 s TTL.
    second = _build(tmp_path, "two", ttl="60")
    out, err = second.communicate(timeout=45)
    assert second.returncode == 0, out + err
    assert len(_lines(tmp_path / "counter-shared")) == 2  # the killed attempt, then ours
    assert (tmp_path / "data/two.txt").read_text() == "x\n"
