"""kflow killed with SIGKILL together with its watchdog (as `pkill -9 -f kflow` does): a
rerun ends the attempts the dead run left behind before it starts them again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# The task notes its start, runs until the test creates `go`, then notes its end.
PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.long]
command = ["sh", "-c", '''echo start $$ >> events; while [ ! -e go ]; do sleep 0.05; done;
           echo end $$ >> events; echo done > {output}''']
outputs = ["{root}/long.txt"]
"""

DEADLINE = 60.0


def _build(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "long"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KFLOW_LEASE_TTL": "60"},
    )


def _events(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "events"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _wait(what: str, condition: object, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: kflow ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_rerun_ends_the_attempt_of_a_run_killed_with_its_watchdog(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT))
    first = _build(tmp_path)
    leases = tmp_path / "data/.kflow/leases"
    _wait("the first attempt", lambda: len(_events(tmp_path)) == 1, first)
    (lease,) = [json.loads(p.read_text()) for p in leases.glob("*.json")]
    first_task = int(_events(tmp_path)[0][1])
    # SIGKILL the watchdogs first, so none sees kflow go and ends the attempt itself
    for pid, _ in lease["watchdogs"]:
        os.kill(pid, signal.SIGKILL)
    os.kill(lease["pid"], signal.SIGKILL)
    first.communicate(timeout=DEADLINE)
    second = _build(tmp_path)
    try:
        _wait("the rerun's attempt", lambda: len(_events(tmp_path)) >= 2, second)
        # the dead run's attempt was ended before the rerun started its own
        assert not _alive(first_task), "two copies of the attempt ran at once"
        (tmp_path / "go").touch()
        out, err = second.communicate(timeout=DEADLINE)
        assert second.returncode == 0, out + err
    finally:
        (tmp_path / "go").touch()  # lets whatever still runs end (on the old code)
        if second.poll() is None:
            second.kill()
            second.communicate()
    events = _events(tmp_path)
    assert events[0] == ["start", str(first_task)]
    assert ["end", str(first_task)] not in events, events
    assert [e[0] for e in events] == ["start", "start", "end"], events
    assert (tmp_path / "data/long.txt").read_text() == "done\n"


MATRIX = """
[project]
name = "t"
storage = "file://./data"

[tasks.a]
matrix = { i = [1, 2, 3] }
command = ["sh", "-c", "echo hello {i}; echo partial > {output}; touch started-{i}; sleep 60"]
outputs = ["{root}/a-{i}.txt"]
"""


def _kflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kflow", *args, "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


def test_a_killed_runs_record_shows_its_started_attempts_as_died(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(MATRIX))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "-j", "3", "a"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = [tmp_path / f"started-{i}" for i in (1, 2, 3)]
    _wait("every attempt", lambda: all(p.exists() for p in started), proc)  # type: ignore[arg-type]
    record = tmp_path / "data/.kflow/runs"

    def all_started() -> bool:  # in the record on storage (the first start is saved at once)
        found = [json.loads(p.read_text()) for p in record.glob("*.json")]
        return bool(found) and all(e["attempts"] for e in found[0]["instances"].values())

    _wait("the record", all_started, proc)
    proc.kill()
    proc.communicate(timeout=DEADLINE)
    runs = _kflow(tmp_path, "runs")
    assert runs.returncode == 0, runs.stderr
    assert " died " in runs.stdout and "queued" not in runs.stdout, runs.stdout
    show = _kflow(tmp_path, "runs", "show", "latest")
    assert show.returncode == 0, show.stderr
    assert "queued" not in show.stdout and "running" not in show.stdout, show.stdout
    assert "died        a[i=1]" in show.stdout, show.stdout
    # what the attempt printed survives kflow's death (its watchdog left the log file)
    logs = _kflow(tmp_path, "logs", "latest", "a[i=1]")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello 1\n"
    (saved,) = record.glob("*.json")
    for entry in json.loads(saved.read_text())["instances"].values():
        for attempt in entry["attempts"]:
            shutil.rmtree(Path(attempt["log_here"]).parent, ignore_errors=True)
