"""Whether a process named in a lease or a run record is provably gone.

A pid alone proves nothing: pids are reused, and the same pid on another host,
in another container or after a reboot is another process. So a process is
named by where it runs — the host name, the kernel's boot id and the pid
namespace — plus its pid and its start time (``/proc/PID/stat``, in clock ticks
since boot). Only a process named from *this* place can be judged, and it is
gone when no process has that pid, or the one that has it started at another
time, or it is a zombie. Anything else (another host, no ``/proc``) is "can't
tell": the caller falls back on the lease TTL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Place:
    """Where processes run: pids compare only within one place."""

    host: str
    boot: str  # /proc/sys/kernel/random/boot_id: a reboot is another place
    pidns: str  # the pid namespace: another container is another place

    @property
    def known(self) -> bool:
        return bool(self.boot and self.pidns)


def _read(path: str) -> str:
    with contextlib.suppress(OSError), open(path) as f:
        return f.read().strip()
    return ""


@functools.cache
def this_place() -> Place:
    pidns = ""
    with contextlib.suppress(OSError):
        pidns = os.readlink("/proc/self/ns/pid")
    return Place(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), pidns)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process from /proc, None when there is no such process."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return fields[0], int(fields[19])


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 where /proc can't say)."""
    stat = _stat(pid)
    return stat[1] if stat else 0


@functools.cache
def _start_of(pid: int) -> int:
    return start_time(pid)


def my_start_time() -> int:
    """This process's start time (read once per pid: a fork is another process)."""
    return _start_of(os.getpid())


def is_gone(pid: int, start: int) -> bool:
    """Whether the process ``pid`` that started at ``start`` no longer runs *here*.

    The caller has checked that it was named from this place.
    """
    if not isinstance(pid, int) or not isinstance(start, int) or pid <= 0 or not start:
        return False  # nothing to go by (a record on storage may hold anything)
    stat = _stat(pid)
    if stat is None:
        return os.path.isdir("/proc/self")  # no /proc at all: can't tell
    state, started = stat
    return started != start or state in ("Z", "X")


def place_json(place: Place) -> dict[str, str]:
    return {"host": place.host, "boot": place.boot, "pidns": place.pidns}


def place_from(raw: Mapping[str, Any]) -> Place:
    return Place(str(raw.get("host", "")), str(raw.get("boot", "")), str(raw.get("pidns", "")))


def all_gone(place: Place, processes: list[tuple[int, int]]) -> bool:
    """Whether every (pid, start time) named from ``place`` is provably gone."""
    here = this_place()
    if not processes or not place.known or place != here:
        return False
    return all(is_gone(pid, start) for pid, start in processes)


def attempt_processes(run: str, instance: str, watchdogs: set[int]) -> dict[int, int]:
    """pid → process group of every process here whose environment says it is a local
    attempt of ``instance`` by run ``run`` (``KFLOW_RUN``/``KFLOW_TASK``, inherited by
    whatever the command starts), started under one of ``watchdogs`` (``KFLOW_WATCHDOG``:
    not a pod another executor runs here). A run id is never reused, unlike a pid."""
    wanted = {f"KFLOW_RUN={run}".encode(), f"KFLOW_TASK={instance}".encode()}
    dogs = {f"KFLOW_WATCHDOG={pid}".encode() for pid in watchdogs}
    found: dict[int, int] = {}
    me = os.getpid()
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = set(f.read().split(b"\0"))
                    if not wanted <= env or not dogs & env:
                        continue
            except OSError:
                continue  # gone meanwhile, or another user's
            text = _read(f"/proc/{name}/stat")
            if text:
                fields = text.rsplit(")", 1)[1].split()
                if fields[0] not in ("Z", "X"):
                    found[int(name)] = int(fields[2])
    return found
