"""Starting a command the cheap way: ``posix_spawn`` instead of ``subprocess.Popen``.

Popen costs about a millisecond more per process (its error pipe hand-shake, closing
every descriptor, Python work in between); with thousands of short tasks that is
most of a runner's own cost. What Popen does for kflow is done here too: stdin from
/dev/null, stdout and stderr into the log, a new session (its own process group),
SIGPIPE and SIGXFSZ back to their defaults, the executable found on the task's PATH,
and no descriptor of kflow's left open in the command (kflow's are close-on-exec:
Python makes every descriptor so, and ``close_inherited`` makes those it was given
so, once). One difference remains: glibc's posix_spawn leaves its two internal signals
(32 and 33, below SIGRTMIN) ignored in the command, which programs built on glibc reset
and cannot use anyway. Not used where posix_spawn cannot do what Popen would (another folder,
a memory limit set in the child): the local executor falls back to Popen there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Protocol

CAN_SPAWN = sys.platform == "linux" and hasattr(os, "posix_spawn")
_DEFAULT_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s
)
_closed_inherited = False


class Process(Protocol):
    """What the executor needs of a started process (``subprocess.Popen`` has it too)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


class Spawned:
    """A process started by ``spawn``: its exit code as Popen gives it (-N: signal N)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reaped(os.WNOHANG)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            self._reaped(0)
        return self.returncode

    def _reaped(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere: as Popen, an unknown status is 0
            self.returncode = 0
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


def close_inherited() -> None:
    """Make the descriptors kflow was started with (beyond 0-2) close-on-exec, once: Popen
    closes them in each child, posix_spawn would pass them on (a pipe a test or a
    shell holds open, say, would then stay open as long as a task runs)."""
    global _closed_inherited
    if _closed_inherited:
        return
    _closed_inherited = True
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                os.set_inheritable(fd, False)


def spawn(argv: Sequence[str], env: Mapping[str, str], log: int) -> Spawned:
    """Start ``argv`` in the current folder, in its own session, output into ``log``.
    OSError when it cannot start (not found, not executable), as Popen raises it."""
    close_inherited()
    path = argv[0]
    if os.sep not in path:
        found = shutil.which(path, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        path = found
    pid = os.posix_spawn(
        path,
        list(argv),
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2),
        ],
        setsid=True,
        setsigdef=_DEFAULT_SIGNALS,
    )
    return Spawned(pid)
