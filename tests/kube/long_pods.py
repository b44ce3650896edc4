"""Set-up shared by the tests that interrupt or cancel a build running pods (no tests here):
a project of pods that run long, and waiting until every one of them has started."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.processes import wait_until


def long_project(n: int, command: str) -> str:
    """Task ``slow``: ``n`` pods (``n`` = 1…N) running ``command`` in the project folder
    (``started-{n}`` there says a pod runs), each to write ``slow-{n}.txt``."""
    return f"""
[project]
name = "long"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.slow]
matrix = {{ n = {[str(i) for i in range(1, n + 1)]} }}
command = ["sh", "-c", "{command}"]
outputs = ["{{root}}/slow-{{n}}.txt"]
"""


def wait_for_pods(folder: Path, n: int, proc: subprocess.Popen[str]) -> None:
    """Until each of the ``n`` pods has written ``started-{n}`` (fails if kflow ends first)."""
    names = [folder / f"started-{i}" for i in range(1, n + 1)]
    wait_until(lambda: all(p.exists() for p in names), "the pods never started", proc, 60)
