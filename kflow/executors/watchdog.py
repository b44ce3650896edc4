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
SIGKILL to what is left after a grace period, removes the executor's folder
of temporary logs, and exits. On an orderly close every group has been
forgotten already, so EOF ends nothing.

The child side runs as a script (``python -I -S watchdog.py GRACE FOLDER``) and
imports only the standard library: it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

POLL = 0.05  # how often the watchdog looks whether signalled groups are gone

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
                [sys.executable, "-I", "-S", __file__, repr(grace), cleanup],
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
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        time.sleep(POLL)
        groups = {pgid for pgid in groups if _exists(pgid)}
    _signal_groups(groups, signal.SIGKILL)


def main(argv: list[str]) -> None:
    grace, cleanup = float(argv[1]), argv[2]
    groups: set[int] = set()
    for line in sys.stdin.buffer:  # until EOF: kflow has gone, whichever way
        with contextlib.suppress(ValueError):
            pgid = int(line[1:])
            if line.startswith(b"+"):
                groups.add(pgid)
            else:
                groups.discard(pgid)
    end_groups(groups, grace)
    shutil.rmtree(cleanup, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
