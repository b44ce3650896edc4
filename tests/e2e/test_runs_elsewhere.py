"""`kflow runs` tells a run that still goes from one whose kflow died on another host (a
node lost with its pod): a running build rewrites its record at least every heartbeat
(``KFLOW_HEARTBEAT``), and a run from elsewhere silent for STALE_BEATS heartbeats is shown
``died?``. On this host the process itself (pid and start time) still decides."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kflow.run.records import STALE_BEATS
from tests.helpers import kflow
from tests.storage.s3server import S3Server

HEARTBEAT = 2.0  # s: stale after STALE_BEATS of them

PROJECT = """
[project]
name = "t"
storage = "STORAGE"

[tasks.a]
command = ["sh", "-c", "touch started-a; while [ -e hold ]; do sleep 0.05; done"]
outputs = ["{root}/a.txt"]

[tasks.b]
command = ["sh", "-c", "touch started-b; while [ -e hold ]; do sleep 0.05; done"]
outputs = ["{root}/b.txt"]
"""

# kflow as on another host: the host name it records (and compares) is not this one's
ELSEWHERE = (
    "import runpy, socket, sys; socket.gethostname = lambda: 'elsewhere'; "
    "sys.argv = ['kflow', *sys.argv[1:]]; runpy.run_module('kflow', run_name='__main__')"
)


def _build_elsewhere(
    folder: Path, target: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    """`kflow build TARGET --json` on "another host"; the process and its run id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ELSEWHERE, "build", "-C", str(folder), target, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "KFLOW_HEARTBEAT": str(HEARTBEAT)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the first events: run_started comes before any start
        event = json.loads(line)
        if event["event"] == "run_started":
            return proc, str(event["run_id"])
    raise AssertionError(proc.communicate())


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _statuses(folder: Path, *args: str) -> dict[str, str]:
    """Run id → status, as `kflow runs` prints them."""
    result = kflow("runs", "-C", folder, *args)
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if "  " in line}


@pytest.fixture(params=["local", "s3"])
def storage(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, dict[str, str]]:
    """The project's storage URL and the environment a build needs to reach it."""
    if request.param == "local":
        return "file://./data", {}
    s3: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)  # for `kflow runs` in here
    return f"s3://{bucket}/t", s3.env()


def test_a_run_whose_kflow_died_on_another_host_is_shown_died_and_a_live_one_running(
    tmp_path: Path, storage: tuple[str, dict[str, str]]
) -> None:
    url, env = storage
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(PROJECT.replace("STORAGE", url)))
    (tmp_path / "hold").touch()
    killed, killed_id = _build_elsewhere(tmp_path, "a", env)
    live, live_id = _build_elsewhere(tmp_path, "b", env)
    try:
        _wait_for(lambda: (tmp_path / "started-a").exists(), "a to start")
        _wait_for(lambda: (tmp_path / "started-b").exists(), "b to start")
        _wait_for(lambda: _statuses(tmp_path).get(killed_id) == "running", "a's record")
        killed.send_signal(signal.SIGKILL)  # its host is lost: nothing ends its record
        killed.communicate(timeout=30)
        # not at once: a silence shorter than STALE_BEATS heartbeats is not taken for death
        assert _statuses(tmp_path).get(killed_id) == "running"
        _wait_for(lambda: _statuses(tmp_path).get(killed_id) == "died?", "died?")
        statuses = _statuses(tmp_path)
        assert statuses[live_id] == "running", statuses  # its heartbeat goes on
        going = _statuses(tmp_path, "--running")
        assert live_id in going and killed_id not in going, going

        shown = kflow("runs", "show", killed_id, "-C", tmp_path)
        assert shown.stdout.startswith(f"run {killed_id}: died?"), shown.output
        assert "no heartbeat for" in shown.stdout and "from kflow on elsewhere" in shown.stdout
        assert "died?       a" in shown.stdout, shown.stdout  # what it was running
        asked = kflow("cancel", killed_id, "-C", tmp_path)  # in case it comes back
        assert asked.exit_code == 0 and "(died?)" in asked.stdout, asked.output
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    code = live.wait(timeout=60)
    assert code == 130, live.communicate()


def test_a_run_on_this_host_is_judged_by_its_process_not_its_heartbeat(tmp_path: Path) -> None:
    """A stopped kflow here (Ctrl-Z) writes no heartbeat, yet it is provably alive."""
    (tmp_path / "kflow.toml").write_text(
        textwrap.dedent(PROJECT.replace("STORAGE", "file://./data"))
    )
    (tmp_path / "hold").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "a", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KFLOW_HEARTBEAT": str(HEARTBEAT)},
    )
    try:
        _wait_for(lambda: (tmp_path / "started-a").exists(), "a to start")
        (run_id,) = [p.stem for p in (tmp_path / "data/.kflow/runs").glob("*.json")]
        proc.send_signal(signal.SIGSTOP)
        record = tmp_path / f"data/.kflow/runs/{run_id}.json"

        def silence() -> float:
            saved = json.loads(record.read_text())
            return time.time() - max(saved["beat"], saved["started"])

        _wait_for(lambda: silence() > (STALE_BEATS + 1) * HEARTBEAT, "the heartbeat to go stale")
        assert _statuses(tmp_path)[run_id] == "running"
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        _wait_for(lambda: _statuses(tmp_path)[run_id] == "died", "died")  # provably gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
