"""The local executor's fast start (posix_spawn), used when kflow runs in the project
folder: every test of the executor again, started from the project folder, and what
Popen did for us that spawn must do too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kflow.executors.base import AttemptState
from kflow.executors.local import LocalExecutor
from kflow.executors.spawn import Spawned
from tests.unit.test_local_executor import *  # noqa: F403  (each test again, spawned)
from tests.unit.test_local_executor import _final, _instance, _spec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="posix_spawn path: Linux")


@pytest.fixture(autouse=True)
def _in_the_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # as `kflow build` run there: the fast start applies


def _run(tmp_path: Path, argv: list[str]) -> tuple[AttemptState, bytes, LocalExecutor]:
    executor = LocalExecutor(tmp_path)
    handle = executor.submit(_spec(_instance(tmp_path), argv))
    update = _final(executor)
    return update.state, executor.logs(handle), executor


def test_started_by_spawn_in_the_project_folder(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    handle = executor.submit(_spec(_instance(tmp_path), ["sleep", "5"]))
    assert isinstance(executor._attempts[handle.key].proc, Spawned)
    executor.close()


def test_spawned_command_gets_dev_null_and_its_own_session(tmp_path: Path) -> None:
    code = (
        "import os, sys; "
        "print(sys.stdin.read() == '', os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())"
    )
    state, log, executor = _run(tmp_path, [sys.executable, "-c", code])
    assert state is AttemptState.SUCCEEDED, log
    assert log.split() == [b"True"] * 3
    executor.close()


def test_spawned_command_ignores_the_signals_popen_would_leave_it_ignoring(
    tmp_path: Path,
) -> None:
    # kflow (Python) ignores SIGPIPE; a task must not: `yes | head` must end.
    argv = ["grep", "SigIgn", "/proc/self/status"]
    state, log, executor = _run(tmp_path, argv)
    assert state is AttemptState.SUCCEEDED, log
    by_popen = subprocess.run(argv, capture_output=True, check=True).stdout
    # The standard signals (1-31); glibc's posix_spawn leaves its own internal two (32, 33,
    # below SIGRTMIN) ignored, which no program can use through glibc anyway.
    standard = (1 << 31) - 1
    assert int(log.split()[1], 16) & standard == int(by_popen.split()[1], 16) & standard
    assert not int(log.split()[1], 16) & (1 << (signal.SIGPIPE - 1))
    executor.close()


def test_spawned_command_inherits_no_descriptor_of_kflow(tmp_path: Path) -> None:
    # A pipe kflow was given (by a shell, a test) stays out of the task: otherwise whoever
    # waits for its end would wait as long as the task runs.
    read, write = os.pipe()
    os.set_inheritable(write, True)
    try:
        import kflow.executors.spawn as spawn_module

        spawn_module._closed_inherited = False  # as at kflow's start, with the pipe given
        code = f"import os; print(os.path.exists('/proc/self/fd/{write}'))"
        state, log, executor = _run(tmp_path, [sys.executable, "-c", code])
        assert state is AttemptState.SUCCEEDED, log
        assert log.split() == [b"False"]
        executor.close()
    finally:
        os.close(read)
        os.close(write)


def test_a_program_that_is_not_executable_fails_the_attempt(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    state, log, executor = _run(tmp_path, ["./script.sh"])
    assert state is AttemptState.FAILED
    assert b"cannot start './script.sh'" in log
    executor.close()


def test_a_killed_command_reports_its_signal(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    executor.submit(_spec(_instance(tmp_path), ["sh", "-c", "kill -TERM $$"]))
    update = _final(executor)
    assert update.state is AttemptState.FAILED and update.reason == "killed by SIGTERM"
    executor.close()


def test_spawned_exit_status_matches_popen(tmp_path: Path) -> None:
    for argv in (["true"], ["sh", "-c", "exit 3"], ["sh", "-c", "kill -KILL $$"]):
        executor = LocalExecutor(tmp_path)
        executor.submit(_spec(_instance(tmp_path), argv))
        update = _final(executor)
        expected = subprocess.run(argv).returncode
        assert update.exit_code == expected, argv
        executor.close()


def test_wake_from_another_thread_ends_a_wait_at_once(tmp_path: Path) -> None:
    # The runner's free slot starts as soon as a preparation is done, without polling.
    import threading

    executor = LocalExecutor(tmp_path)
    executor.submit(_spec(_instance(tmp_path), ["sleep", "30"]))
    waker = threading.Timer(0.2, executor.wake)
    waker.start()
    started = time.monotonic()
    assert executor.wait(60) == []
    assert time.monotonic() - started < 30  # woken, not the 60 s nor the task's end
    waker.join()
    executor.close()
    executor.wake()  # after close: a no-op, never a write into a reused descriptor
