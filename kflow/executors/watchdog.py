"""A watchdog process that ends the local executor's process groups when kflow dies.

Each attempt runs in a session of its own, so nothing reaches it when kflow is
killed with SIGKILL (or crashes): the task would run on, kflow's lease would
expire, and the next run would start a second copy of it. ``PR_SET_PDEATHSIG``
does not cover this: it reaches only the direct child (not a shell's children),
it fires when the *thread* that forked exits, and it needs a ``preexec_fn``
(no posix_spawn fast path, unsafe next to threads).

So, as ``simpledog`` and node's ``foreground-child`` do: one small process per
executor, in a session of its own, reads ``+PGID`` / ``-PGID`` lines from a
pipe whose only writer is kflow. However kflow ends, the kernel closes that
pipe; the watchdog reads EOF, sends SIGTERM to every group still registered,
SIGKILL to what is left after a grace period, and exits, leaving the executor's
folder of temporary logs for ``kflow logs`` (kflow died before it could store
them). On an orderly close every group has been forgotten already, so EOF ends
nothing.

Job control: tasks in sessions of their own do not stop with kflow (Ctrl-Z,
SIGSTOP), so a stopped kflow, whose leases are no longer renewed, would let
another run start a second copy beside them. So the watchdog also watches
kflow's state and freezes (SIGSTOP) every registered group as soon as kflow is
stopped; it lets them go on (SIGCONT) only when kflow, running again, has
checked its leases and says ``C``. One process does both, in order, so a stale
look at kflow's state can never freeze groups after kflow let them go.

The child side runs as a script (``python -I -S watchdog.py GRACE FOLDER PARENT``)
and imports only the standard library: it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time

POLL = 0.05  # how often the watchdog looks whether signalled groups are gone
# Every attempt's environment names its watchdog: a group started an instant before kflow
# died, not registered yet, is still found (by its processes' environment) and ended.
TAG = "KFLOW_WATCHDOG"
LOOK = 0.1  # how often it looks whether kflow is stopped (well within a lease TTL / 3)

# The watchdogs this kflow process has running, as (pid, start time): a lease names them,
# so that another run takes it over only once they too are gone (their attempts ended).
_running: dict[int, int] = {}


def watchdogs() -> list[tuple[int, int]]:
    """(pid, start time) of every watchdog this process runs."""
    return list(_running.items())


class Watchdog:
    """kflow's end of the pipe: register each attempt's process group, forget it once reaped.

    Best effort by design: if the watchdog cannot start or has gone, attempts still
    run; only the guarantee for a kflow killed with SIGKILL is lost.
    """

    def __init__(self, grace: float, cleanup: str):
        self._write: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        read, write = os.pipe()  # not inheritable: no task ever holds the write end
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, repr(grace), cleanup, str(os.getpid())],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",  # holds no folder busy
                start_new_session=True,  # outlives a kill of kflow's whole process group
            )
        except OSError:
            os.close(write)
        else:
            self._write = write
            from kflow.executors.liveness import start_time  # here: the script side lacks it

            _running[self._proc.pid] = start_time(self._proc.pid)
        finally:
            os.close(read)

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        """Before the group's leader is reaped, while its id cannot be reused yet."""
        self._send(f"-{pgid}\n")

    @property
    def running(self) -> bool:
        return self._write is not None

    @property
    def tag(self) -> str:
        """The value of ``TAG`` in the attempts' environment ("" without a watchdog)."""
        return str(self._proc.pid) if self._proc is not None else ""

    def let_go_on(self) -> None:
        """kflow has checked its leases after a stop: continue the groups frozen meanwhile."""
        self._send("C\n")

    def _send(self, line: str) -> None:
        if self._write is None:
            return
        try:
            os.write(self._write, line.encode())  # < PIPE_BUF: one atomic write
        except OSError:  # the watchdog has gone: carry on without it
            os.close(self._write)
            self._write = None

    def close(self, timeout: float = 5.0) -> None:
        """Close the pipe and reap the watchdog (it exits at once when nothing is registered)."""
        if self._write is not None:
            self._send("Q\n")  # an orderly end: what the attempts left running is theirs
        if self._write is not None:
            os.close(self._write)
            self._write = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
            _running.pop(self._proc.pid, None)
            self._proc = None


# -- the watchdog process -----------------------------------------------------------


def _signal_groups(groups: set[int], sig: signal.Signals) -> None:
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_groups(groups: set[int], grace: float) -> None:
    """SIGTERM every group, SIGKILL those still there after ``grace`` seconds."""
    _signal_groups(groups, signal.SIGTERM)
    _signal_groups(groups, signal.SIGCONT)  # a frozen group acts on SIGTERM only once going
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        time.sleep(POLL)
        groups = {pgid for pgid in groups if _exists(pgid)}
    _signal_groups(groups, signal.SIGKILL)


def _stat_fields(pid: int | str) -> list[bytes]:
    """/proc/PID/stat after the command name: state, ppid, pgrp, session…; [] if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _stopped(pid: int) -> bool:
    """Whether the process is stopped by job control (SIGSTOP, SIGTSTP…)."""
    return _stat_fields(pid)[:1] == [b"T"]


def _child_groups(parent: int) -> set[int]:
    """Process groups led by children of ``parent``: its attempts, including one started
    an instant before it was stopped and not registered yet. Not this watchdog."""
    found = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            fields = _stat_fields(name)
            if len(fields) > 2 and fields[1] == str(parent).encode() and fields[2] == name.encode():
                found.add(int(name))
    return found


def _tagged_groups() -> set[int]:
    """Process groups of processes whose environment names this watchdog: attempts whose
    ``+PGID`` line kflow did not get to write before it died."""
    needle = f"{TAG}={os.getpid()}".encode()
    found = set()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle not in f.read().split(b"\0"):
                        continue
            except OSError:
                continue
            fields = _stat_fields(name)
            if len(fields) > 2 and int(fields[2]) > 1:
                found.add(int(fields[2]))
    return found


def _start_time(pid: int) -> bytes:
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else b""


def _gone(pid: int, started: bytes) -> bool:
    """Whether kflow has ended (gone, a zombie, or its pid now names another process): the
    pipe's EOF says so too, unless something else still holds its write end."""
    fields = _stat_fields(pid)
    return not fields or fields[0] == b"Z" or (len(fields) > 19 and fields[19] != started)


def main(argv: list[str]) -> None:
    grace, cleanup = float(argv[1]), argv[2]
    parent = int(argv[3]) if len(argv) > 3 else 0
    parent_started = _start_time(parent) if parent else b""
    groups: set[int] = set()
    frozen: set[int] = set()  # the groups frozen while kflow is stopped
    orderly = False  # kflow closed the pipe itself, after every attempt was reaped
    pending = b""
    while True:  # until EOF: kflow has gone, whichever way
        ready, _, _ = select.select([0], [], [], LOOK if parent else None)
        if ready:
            chunk = os.read(0, 4096)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line == b"Q":
                    orderly = True
                    continue
                if line == b"C":
                    _signal_groups(groups | frozen, signal.SIGCONT)
                    frozen = set()
                    continue
                with contextlib.suppress(ValueError):
                    pgid = int(line[1:])
                    if line.startswith(b"+"):
                        groups.add(pgid)
                    else:
                        groups.discard(pgid)
        if parent and not frozen and _stopped(parent):
            frozen = groups | _child_groups(parent)
            _signal_groups(frozen, signal.SIGSTOP)
        if parent and _gone(parent, parent_started):
            break
    # kflow has gone: what it registered, and what it started without getting to say so
    end_groups(groups if orderly else groups | _tagged_groups(), grace)
    if orderly:
        shutil.rmtree(cleanup, ignore_errors=True)
    # else kflow died before it stored its attempts' logs: they stay for `kflow logs`


if __name__ == "__main__":
    main(sys.argv)
