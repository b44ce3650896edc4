"""A build that stays running until the test lets it go: for the live record and ui tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import write_project

# `hold` runs until the file `go` exists (or 120 s pass); `after` then runs.
PROJECT = """
[project]
name = "live"
storage = "file://./data"
default = ["after"]

[tasks.first]
command = "sh -c 'echo first > {output}'"
outputs = ["{root}/first.txt"]

[tasks.hold]
requires = ["first"]
command = '''sh -c 'n=0; while [ ! -e GO_FILE ] && [ $n -lt 2400 ]; do
  sleep 0.05; n=$((n+1)); done; echo held > {output}' '''
outputs = ["{root}/hold.txt"]

[tasks.after]
requires = ["hold"]
command = "sh -c 'echo after > {output}'"
outputs = ["{root}/after.txt"]
"""


def start_build(folder: Path) -> subprocess.Popen[bytes]:
    write_project(folder, PROJECT.replace("GO_FILE", str(folder / "go")))
    return subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(folder)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what or check}")


def record_now(folder: Path) -> dict[str, Any] | None:
    runs = folder / "data/.kflow/runs"
    found = sorted(runs.glob("*.json")) if runs.exists() else []
    if not found:
        return None
    try:
        return dict(json.loads(found[-1].read_text()))
    except ValueError:
        return None
