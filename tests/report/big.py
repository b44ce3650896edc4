"""A run of many instances written straight to storage, as a build would have recorded it:
for the scale test and the benchmark (a real 10,000-instance build takes minutes here)."""

from __future__ import annotations

from pathlib import Path

from kflow.run.records import (
    AttemptRecord,
    InstanceRecord,
    RunRecord,
    log_location,
    record_location,
)
from tests.helpers import write_project

PROJECT = """
[project]
name = "big"
storage = "file://./data"

[tasks.load]
command = "true"
"""


def write_big_run(folder: Path, n: int = 10_000) -> str:
    """``extract[i]`` → ``transform[i]`` for (n - 50) / 2 ids, then 50 ``load[j]`` fanning in
    100 each; every 97th transform fails once then succeeds (a retry). Returns the run id."""
    write_project(folder, PROJECT)
    half = (n - 50) // 2
    t0 = 1_800_000_000.0
    instances: dict[str, InstanceRecord] = {}
    logs: dict[str, str] = {}

    def attempt(name: str, number: int, start: float, took: float, ok: bool) -> AttemptRecord:
        log = log_location("data", "big-run", name, number)
        logs[log] = f"{name} attempt {number}\n" + ("done\n" if ok else "boom\n")
        return AttemptRecord(
            number,
            start,
            start + took,
            0 if ok else 1,
            "succeeded" if ok else "failed",
            "" if ok else "exit code 1",
            f"pid {number}",
            log,
        )

    for i in range(half):
        start = t0 + (i % 500) * 0.5
        name = f"extract[i={i}]"
        first = attempt(name, 1, start, 1.0, True)
        instances[name] = InstanceRecord("succeeded", "output missing: raw", "", [first], ready=t0)
    for i in range(half):
        name, start = f"transform[i={i}]", t0 + 300 + (i % 500) * 0.5
        tries = [attempt(name, 1, start, 0.5, False)] if i % 97 == 0 else []
        tries.append(attempt(name, len(tries) + 1, start + 1, 2.0, True))
        instances[name] = InstanceRecord(
            "succeeded",
            "upstream will run: extract",
            attempts=tries,
            requires=[f"extract[i={i}]"],
            ready=start - 0.2,
        )
    per = max(1, half // 50)
    for j in range(50):
        name = f"load[j={j}]"
        instances[name] = InstanceRecord(
            "succeeded",
            "output missing: table",
            attempts=[attempt(name, 1, t0 + 600 + j, 3.0, True)],
            requires=[f"transform[i={i}]" for i in range(j * per, min(half, (j + 1) * per))],
            ready=t0 + 590,
        )
    record = RunRecord(
        "big-run",
        "big",
        ["load"],
        {},
        "default",
        "local",
        8,
        started=t0,
        ended=t0 + 700,
        status="succeeded",
        exit_code=0,
        host="bench",
        instances=instances,
        revision=3,
    )
    root = folder / "data"
    for location, text in logs.items():
        path = folder / location
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    target = folder / record_location("data", "big-run")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(record.to_json())
    assert root.exists()
    return record.run_id
