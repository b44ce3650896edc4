"""The local executor: real processes, real signals."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

from kflow.executors.base import AttemptSpec, AttemptState, AttemptUpdate
from kflow.executors.local import LocalExecutor
from kflow.graph import build_graph
from kflow.load import load_project
from kflow.model import Instance


def _instance(tmp_path: Path, command: str = '["true"]') -> Instance:
    (tmp_path / "kflow.toml").write_text(
        textwrap.dedent(
            f"""
            [project]
            name = "t"
            [tasks.job]
            command = {command}
            """
        )
    )
    graph = build_graph(load_project(tmp_path, None, None), ["job"])
    return next(iter(graph.instances.values()))


def _spec(instance: Instance, argv: list[str], **kw: object) -> AttemptSpec:
    return AttemptSpec(
        run_id="r1",
        instance=instance,
        attempt=1,
        argv=tuple(argv),
        env={"KFLOW_TASK": "job"},
        instance_key="job",
        fingerprint="f",
        **kw,
    )  # type: ignore[arg-type]


def _final(executor: LocalExecutor, limit: float = 60) -> AttemptUpdate:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for update in executor.wait(0.1):
            if update.state.finished:
                return update
    raise AssertionError("no final update")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def _gone_soon(pid: int, within: float = 30.0) -> bool:
    """The kernel finishes a killed process's exit asynchronously: allow it a moment."""
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_command_runs_in_the_project_folder_with_kflow_environment(tmp_path: Path) -> None:
    instance = _instance(tmp_path)
    executor = LocalExecutor(tmp_path)
    code = (
        "import os, json, sys; "
        "print(json.dumps([os.getcwd(), os.environ['KFLOW_TASK'], sys.executable]))"
    )
    handle = executor.submit(_spec(instance, ["python", "-c", code]))
    update = _final(executor)
    assert update.state is AttemptState.SUCCEEDED and update.exit_code == 0
    cwd, task, python = json.loads(executor.logs(handle))
    assert Path(cwd) == tmp_path and task == "job"
    assert Path(python).parent == Path(sys.executable).parent  # `python` is kflow's interpreter
    executor.close()


def test_stdout_and_stderr_both_go_to_the_log_and_exit_code_is_the_reason(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    handle = executor.submit(
        _spec(_instance(tmp_path), ["sh", "-c", "echo out; echo err >&2; exit 4"])
    )
    update = _final(executor)
    assert update.state is AttemptState.FAILED and update.exit_code == 4
    assert update.reason == "exit code 4"
    assert executor.logs(handle).split() == [b"out", b"err"]
    executor.close()


def test_missing_program_fails_the_attempt_instead_of_crashing(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    executor.submit(_spec(_instance(tmp_path), ["no-such-program-kflow"]))
    update = _final(executor)
    assert update.state is AttemptState.FAILED and "cannot start" in update.reason
    executor.close()


def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    pidfile = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    executor.submit(_spec(_instance(tmp_path), ["sh", "-c", script], timeout=0.5))
    started = time.monotonic()
    update = _final(executor)
    assert update.state is AttemptState.FAILED and update.reason == "timed out after 0.5s"
    assert time.monotonic() - started < 25  # the timeout, not the child's 30 s
    assert _gone_soon(int(pidfile.read_text()))
    executor.close()


def test_cancel_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    ready = tmp_path / "ready"
    script = f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done"
    handle = executor.submit(_spec(_instance(tmp_path), ["sh", "-c", script]))
    while not ready.exists():
        time.sleep(0.01)
    started = time.monotonic()
    executor.cancel(handle, 0.3)
    update = _final(executor)
    assert update.reason == "cancelled"
    assert 0.25 < time.monotonic() - started < 25  # the grace, then SIGKILL: not forever
    executor.close()
