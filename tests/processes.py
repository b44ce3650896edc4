"""Shared helpers for tests that run `kflow build` as a real process and watch processes
(signals, job control, tasks that must not outlive their run). Linux: they read /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEADLINE = 30.0  # s: generous, the machine is shared


def start_build(
    folder: Path,
    *args: str,
    env: dict[str, str] | None = None,
    merged: bool = False,
    new_session: bool = False,
) -> subprocess.Popen[str]:
    """`kflow build -C FOLDER ARGS` as a real process (signals reach it as from a shell);
    ``merged``: stderr goes into stdout; ``new_session``: kflow leads a session of its own
    (as under `setsid`), so its process group is orphaned."""
    return subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(folder), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=new_session,
    )


def wait_until(
    condition: Callable[[], object],
    what: str | Callable[[], str],
    proc: subprocess.Popen[str] | None = None,
    timeout: float = DEADLINE,
) -> None:
    """Poll ``condition`` until true; fail saying ``what`` (or what it returns then) after
    ``timeout`` s, or at once (with its output) if ``proc`` ends meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate() if proc else ""
        assert time.monotonic() < deadline, what if isinstance(what, str) else what()
        time.sleep(0.02)


def has_text(path: Path) -> Callable[[], bool]:
    """Whether a file a task writes (a pid, say) is there and complete (ends a line)."""
    return lambda: path.exists() and path.read_text().endswith("\n")


def _stat(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, pgrp…; [] once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def state(pid: int) -> str:
    """The process's state letter (R, S, D, T, Z…), or "gone"."""
    fields = _stat(pid)
    return fields[0] if fields else "gone"


def alive(pid: int) -> bool:
    return state(pid) not in ("gone", "Z")


def gone(pids: list[int], timeout: float = DEADLINE) -> bool:
    """Whether every one of ``pids`` has ended (or is a zombie) within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def group_members(pgid: int) -> dict[int, tuple[str, int]]:
    """Every process of the group: pid -> (state letter, parent pid)."""
    group: dict[int, tuple[str, int]] = {}
    for name in os.listdir("/proc"):
        fields = _stat(name) if name.isdigit() else []
        if len(fields) > 2 and int(fields[2]) == pgid:
            group[int(name)] = (fields[0], int(fields[1]))
    return group


def describe_group(pgid: int) -> str:
    """The group's processes as "pid(state, parent ppid)", for a failure message."""
    members = group_members(pgid)
    return ", ".join(f"{pid}({letter}, parent {ppid})" for pid, (letter, ppid) in members.items())


def group_frozen(pgid: int) -> bool:
    """Whether no process of the group can run: each is stopped (T), or blocked in vfork()
    on a child of the group that is stopped, or has ended (a zombie) — and one at least is
    stopped. A shell (dash) starts commands with vfork(); stopped between vfork and exec,
    the child shows T but its parent shows D, and stays so until the child goes on. And a
    command that ended just before its shell was stopped stays a zombie (Z) until the
    shell, going on, reaps it. Frozen all the same, though not every state is T."""
    group = group_members(pgid)
    stopped = {pid for pid, (letter, _) in group.items() if letter in "tT"}
    vforking = {group[pid][1] for pid in stopped}  # parents waiting for a stopped child
    return bool(stopped) and all(
        pid in stopped or letter == "Z" or (letter == "D" and pid in vforking)
        for pid, (letter, _) in group.items()
    )
