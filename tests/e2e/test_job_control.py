"""Leases that hold when their holder is stopped or its clock is wrong (SPEC §3).

A stopped `kflow build` (Ctrl-Z, SIGSTOP) no longer renews its leases, so another run
may take them over: the stopped run's attempts must be frozen with it and killed, not
let go on, once it is continued and finds a lease lost. And a lease is judged expired
by the observer's own clock, never by a time its holder wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kflow.run.leases import lease_location
from tests.helpers import write_project
from tests.processes import (
    describe_group,
    group_frozen,
    group_members,
    has_text,
    start_build,
    state,
    wait_until,
)

# The first attempt waits for `go`; an attempt that starts once `second` exists does not.
PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.x]
command = ["sh", "-c", '''echo $KFLOW_RUN >> starts;
  if [ ! -e second ]; then echo $$ > first-pid; while [ ! -e go ]; do sleep 0.02; done; fi;
  echo $KFLOW_RUN >> ends; echo x > "$0"''', "{output}"]
outputs = ["{root}/x.txt"]
"""


def _build(tmp_path: Path, ttl: str, *args: str, orphaned: bool = False) -> subprocess.Popen[str]:
    env = {"KFLOW_LEASE_TTL": ttl}
    return start_build(tmp_path, *args, env=env, merged=True, new_session=orphaned)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states")
@pytest.mark.parametrize(
    ("stop", "orphaned"),
    [(signal.SIGTSTP, False), (signal.SIGSTOP, False), (signal.SIGTSTP, True)],
    ids=["ctrl-z", "sigstop", "ctrl-z-orphaned-group"],
)
def test_stopped_build_freezes_its_attempt_and_never_overlaps_the_run_that_takes_over(
    tmp_path: Path, stop: signal.Signals, orphaned: bool
) -> None:
    """``orphaned``: kflow in a session of its own (a script's job under `setsid`, a
    service), where the kernel drops a SIGTSTP whose default action would stop it."""
    write_project(tmp_path, PROJECT)
    first = _build(tmp_path, "2", orphaned=orphaned)
    pid_file = tmp_path / "first-pid"
    wait_until(has_text(pid_file), "no start", first)
    task = int(pid_file.read_text())  # the attempt's shell: its process group's id
    first.send_signal(stop)  # once, as a user presses Ctrl-Z once

    def stopped() -> bool:  # frozen, not only "T": vfork (D), an unreaped command (Z)
        return state(first.pid) == "T" and group_frozen(task)

    def not_stopped() -> str:
        return f"not both stopped: kflow {state(first.pid)}, attempt {describe_group(task)}"

    wait_until(stopped, not_stopped, first)

    # The stopped run renews nothing: after the TTL another run takes the lease over.
    (tmp_path / "second").touch()
    second = _build(tmp_path, "2")
    out2, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out2
    assert group_frozen(task), "the stopped run's attempt went on beside the second run's"

    (tmp_path / "go").touch()  # were the first attempt let go on, it would finish now
    first.send_signal(signal.SIGCONT)
    out1, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out1
    assert "lease lost x" in out1 and "reused x" in out1, out1
    ends = (tmp_path / "ends").read_text().split()
    assert len(ends) == 1, "both runs finished the instance"
    assert state(task) == "gone"


# A process whose child has ended but is not reaped yet (a zombie), then stopped: as a
# shell stopped by Ctrl-Z just after its `sleep` ended, before it went on to reap it.
ZOMBIE_THEN_STOP = """
import os, signal, sys
child = os.fork()
if child == 0:
    os._exit(0)
os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)  # ended, left unreaped
print("ended", flush=True)
sys.stdin.readline()
os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states")
def test_a_stopped_attempt_whose_command_just_ended_counts_as_stopped() -> None:
    """The Ctrl-Z test's judge: a stopped shell's unreaped command (Z) runs nothing.
    Measured: 4 in 300 stops of a `while …; do sleep 0.02; done` shell under load left a
    zombie beside it, and the Ctrl-Z test then waited for a "T" that never came."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE_THEN_STOP],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as each attempt has
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ended\n"
        letters = sorted(letter for letter, _ in group_members(proc.pid).values())
        assert letters[-1] == "Z", describe_group(proc.pid)
        assert not group_frozen(proc.pid), "its shell still runs"
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        wait_until(lambda: state(proc.pid) == "T", lambda: describe_group(proc.pid), proc)
        assert group_frozen(proc.pid), describe_group(proc.pid)
    finally:
        proc.kill()
        proc.communicate()


def test_a_renewed_lease_is_not_taken_whatever_time_its_holder_writes(tmp_path: Path) -> None:
    """A holder on another host whose clock is 40 s behind (its expiry times are in the
    past for us) but which renews its lease: the lease is live, so we wait for it."""
    write_project(tmp_path, PROJECT)
    (tmp_path / "second").touch()
    lease = tmp_path / lease_location("data", "x")
    lease.parent.mkdir(parents=True)
    waiting = threading.Event()
    done = threading.Event()

    def holder() -> None:
        beat = after = 0
        while not done.is_set():
            beat += 1
            after += waiting.is_set()
            skewed = time.time() - 40
            data = {"holder": "elsewhere-run", "instance": "x", "host": "elsewhere",
                    "pid": 1, "ttl": 1.0, "expires": skewed + 1.0, "beat": beat}  # fmt: skip
            tmp = lease.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, lease)
            # renewed every 0.2 s: the 1 s TTL never passes without a change; the other
            # run waits through 3 TTLs of it before the holder finishes and lets go
            if after > 15:
                (tmp_path / "data/x.txt").write_text("built elsewhere\n")
                lease.unlink()
                return
            time.sleep(0.2)

    renewing = threading.Thread(target=holder, daemon=True)
    renewing.start()
    try:
        build = _build(tmp_path, "1")
        assert build.stdout is not None
        seen = ""
        while "waiting x" not in seen:
            line = build.stdout.readline()
            assert line, seen + build.communicate()[0]
            seen += line
        waiting.set()
        out = seen + build.communicate(timeout=60)[0]
    finally:
        done.set()
        renewing.join(timeout=10)
    assert build.returncode == 0, out
    assert "reused x" in out, out
    assert not (tmp_path / "starts").exists(), "took a live lease and ran a duplicate"
