"""`kflow cancel RUN` from another process: the build notices within seconds and stops as
on SIGTERM (attempts ended, partial outputs removed, recorded cancelled, exit 130)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers import kflow

PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.long]
command = ["sh", "-c", "echo partial > {output}; sleep 60 & echo $! > pids; wait"]
outputs = ["{root}/long.txt"]

[tasks.after]
requires = ["long"]
command = "sh -c 'echo done > {output}'"
outputs = ["{root}/after.txt"]
"""


class JsonBuild:
    """`kflow build --json` as a real process, its events read as they come."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kflow", "build", "-C", str(folder), "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "KFLOW_CANCEL_POLL": "0.2", **(env or {})},
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def wait_for(self, kind: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no {kind!r} event; saw {self.seen}") from None
            self.seen.append(event)
            if event["event"] == kind:
                return event

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_cancel_stops_a_running_build_from_another_process(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT))
    build = JsonBuild(tmp_path, "after")
    run_id = build.wait_for("run_started")["run_id"]
    build.wait_for("started")
    deadline = time.monotonic() + 60
    while not (tmp_path / "pids").exists() or not (tmp_path / "pids").read_text().strip():
        assert time.monotonic() < deadline, "the task never wrote its pid"
        time.sleep(0.05)
    (pid,) = [int(p) for p in (tmp_path / "pids").read_text().split()]

    running = kflow("runs", "--running", "-C", tmp_path)
    assert run_id in running.stdout and "running" in running.stdout

    asked = kflow("cancel", run_id, "-C", tmp_path)
    assert asked.exit_code == 0, asked.output
    assert "stops within" in asked.stdout
    finished = build.wait_for("run_finished")
    code, err = build.finish()
    assert code == 130, err
    assert "cancelled" in err
    assert finished["status"] == "cancelled" and finished["exit_code"] == 130
    assert not _alive(pid)
    assert not (tmp_path / "data/long.txt").exists()
    record = json.loads((tmp_path / f"data/.kflow/runs/{run_id}.json").read_text())
    assert record["status"] == "cancelled" and record["exit_code"] == 130
    assert record["instances"]["after"]["status"] == "skipped"
    assert not (tmp_path / "data/.kflow/cancel").exists() or not list(
        (tmp_path / "data/.kflow/cancel").iterdir()
    )
    assert run_id not in kflow("runs", "--running", "-C", tmp_path).stdout

    again = kflow("cancel", run_id, "-C", tmp_path)
    assert again.exit_code == 2
    assert "not running" in again.output and "cancelled" in again.output


def test_cancel_of_an_unknown_run_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT))
    result = kflow("cancel", "20990101T000000Z-abcdef", "-C", tmp_path)
    assert result.exit_code == 2
    assert "no run" in result.output
    assert not (tmp_path / "data/.kflow/cancel").exists()
