"""Ctrl-C and SIGTERM on a real `kflow build` process: stop, clean up, exit 130."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.processes import alive as _alive
from tests.processes import gone as _gone
from tests.processes import has_text, start_build, wait_until

# The task writes partial output, records its pid and its child's, then runs for a long time.
PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.long]
command = ["sh", "-c", "{trap} echo partial > {output}; sleep 60 & echo $$ $! > pids; wait"]
outputs = ["{root}/long.txt"]

[tasks.after]
requires = ["long"]
command = "sh -c 'echo done > {output}'"
outputs = ["{root}/after.txt"]
"""


def _start(
    tmp_path: Path, trap: str = "", grace: str = "0.5", lease_ttl: str = "30"
) -> subprocess.Popen[str]:
    text = PROJECT.replace("{trap}", trap)
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(text))
    env = {"KFLOW_KILL_GRACE": grace, "KFLOW_LEASE_TTL": lease_ttl}
    proc = start_build(tmp_path, "after", env=env)
    wait_until(has_text(tmp_path / "pids"), "the task never started", proc)
    return proc


def _pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def _record(tmp_path: Path) -> dict[str, object]:
    (record,) = (tmp_path / "data/.kflow/runs").glob("*.json")
    data: dict[str, object] = json.loads(record.read_text())
    return data


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_task_removes_partial_output_and_exits_130(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = _start(tmp_path)
    pids = _pids(tmp_path)
    started = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5
    assert "interrupted" in err
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "data/long.txt").exists()
    record = _record(tmp_path)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    instances = record["instances"]
    assert isinstance(instances, dict)
    assert instances["long"]["status"] == "interrupted"
    assert instances["after"]["status"] == "skipped"


def test_task_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    proc = _start(tmp_path, trap="trap '' TERM;", grace="0.5")
    pids = _pids(tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert not any(_alive(pid) for pid in pids)
    assert not (tmp_path / "data/long.txt").exists()


def test_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    proc = _start(tmp_path, trap="trap '' TERM;", grace="30")
    pids = _pids(tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert time.monotonic() - started < 2
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    """Read kflow's output until a line holds ``text`` (it is printed once acted upon)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    while text not in lines.get(timeout=20):
        pass


def test_second_ctrl_c_still_records_the_run_as_interrupted(tmp_path: Path) -> None:
    proc = _start(tmp_path, trap="trap '' TERM;", grace="30")
    pids = _pids(tmp_path)
    proc.send_signal(signal.SIGINT)
    _wait_for_line(proc, "interrupted: stopping 1 running")  # the first one was seen
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)
    assert proc.returncode == 130
    assert _gone(pids), "the task outlived kflow"
    assert not (tmp_path / "data/long.txt").exists()
    listed = _runs(tmp_path)
    assert " interrupted " in listed and "running" not in listed, listed
    record = _record(tmp_path)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    instances = record["instances"]
    assert isinstance(instances, dict)
    assert instances["long"]["status"] == "interrupted"
    assert instances["long"]["attempts"][0]["status"] == "failed"
    assert instances["after"]["status"] == "skipped"
    assert not list((tmp_path / "data/.kflow/leases").glob("*")), "leases left behind"


def _runs(tmp_path: Path) -> str:
    """`kflow runs` from another process (it judges whether a run's kflow is still there)."""
    runs = subprocess.run(
        [sys.executable, "-m", "kflow", "runs", "-C", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert runs.returncode == 0, runs.stderr
    return runs.stdout


def _rerun_quickly(
    tmp_path: Path, env: dict[str, str] | None = None, timeout: float = 30, *args: str
) -> subprocess.CompletedProcess[str]:
    """Make the long task quick, then build the project's target again."""
    (tmp_path / "kflow.toml").write_text(
        (tmp_path / "kflow.toml").read_text().replace("sleep 60", "sleep 0")
    )
    return subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "after", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_build_after_an_interrupt_reruns_exactly_the_interrupted_task(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    done = _rerun_quickly(tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data/after.txt").read_text() == "done\n"


@pytest.mark.parametrize("trap", ["", "trap '' TERM;"], ids=["plain", "ignoring-sigterm"])
def test_tasks_die_with_a_killed_kflow_and_a_rerun_completes(tmp_path: Path, trap: str) -> None:
    proc = _start(tmp_path, trap=trap, lease_ttl="1")
    pids = _pids(tmp_path)  # the task's shell and the sleep it started
    proc.kill()  # SIGKILL: no handler runs, kflow cannot clean up after itself
    proc.communicate(timeout=10)
    assert _gone(pids), "the task outlived kflow: a rerun would run it twice at once"
    done = _rerun_quickly(tmp_path, {"KFLOW_LEASE_TTL": "1"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "started long" in done.stdout  # the killed run's attempt is not trusted
    assert (tmp_path / "data/after.txt").read_text() == "done\n"


def _leases(tmp_path: Path) -> list[dict[str, object]]:
    folder = tmp_path / "data/.kflow/leases"
    return [json.loads(path.read_text()) for path in folder.glob("*.json")]


def test_killed_build_shows_as_died_and_a_rerun_takes_its_leases_at_once(tmp_path: Path) -> None:
    proc = _start(tmp_path, lease_ttl="60")
    (lease,) = _leases(tmp_path)
    watchdogs = lease["watchdogs"]
    assert isinstance(watchdogs, list) and watchdogs
    proc.kill()  # SIGKILL: its leases stay behind, renewed by no one
    proc.communicate(timeout=10)
    # its watchdog ends the task, then goes: from then on, nothing of that run is left
    left = _pids(tmp_path) + [pid for pid, _ in watchdogs]
    assert _gone(left), [Path(f"/proc/{p}/stat").read_text() for p in left if _alive(p)]
    listed = _runs(tmp_path)
    assert " died " in listed and "running" not in listed, listed
    # well within the TTL (60 s): the dead run's lease is taken over without waiting for it
    done = _rerun_quickly(tmp_path, {"KFLOW_LEASE_TTL": "60"}, 45, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [e for e in events if e["event"] == "waiting"], done.stdout
    assert {"event": "started", "instance": "long"}.items() <= next(
        e for e in events if e["event"] == "started"
    ).items()
    assert (tmp_path / "data/after.txt").read_text() == "done\n"


def test_a_late_second_ctrl_c_in_a_terminal_still_exits_130(tmp_path: Path) -> None:
    """In a real terminal (pty): the second Ctrl-C lands after the orderly stop, while kflow
    closes up and exits; it must not end kflow by SIGINT (status -2) instead of 130."""
    import pty
    import select

    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT.replace("{trap}", "")))
    pid, fd = pty.fork()
    if pid == 0:  # the child: kflow, with the pty as its controlling terminal
        os.execv(sys.executable, [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path)])
    seen = b""
    deadline = time.monotonic() + 60

    def read_until(token: bytes) -> None:
        nonlocal seen
        while token not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child has gone
                    chunk = b""
                assert chunk, seen
                seen += chunk

    status = None
    try:
        read_until(b"running")
        while not (tmp_path / "pids").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.write(fd, b"\x03")  # Ctrl-C: an orderly stop
        read_until(b"kflow: interrupted")
        # and again, as impatient users do, until kflow has gone
        while status is None:
            assert time.monotonic() < deadline
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(code)
                break
            with contextlib.suppress(OSError):
                os.write(fd, b"\x03")
                if select.select([fd], [], [], 0.005)[0]:
                    os.read(fd, 4096)
    finally:
        os.close(fd)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert status == 130, seen
