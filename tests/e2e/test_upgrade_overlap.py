"""An upgrade with builds overlapping: an old kflow (per-task ``state/TASK/`` records) still
building while the new one moves its state to ``records/``. The new build waits for the old
one's lease and then must see the success record the old one wrote late into ``state/``,
not run the instance a second time."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kflow.executors.liveness import my_start_time, place_json, this_place
from kflow.run.ids import new_run_id
from tests.helpers import data_project, kflow
from tests.processes import start_build

TASKS = """
[tasks.w]
command = "sh -c 'echo run >> counter; echo w > {output}'"
outputs = ["{root}/w.txt"]
"""


def _old_run(data: Path, run_id: str, known: bool) -> None:
    """What an old kflow, building ``w`` in this process, has on storage: its run record
    (running; ``known``: else none is readable), its lease of ``w``."""
    here = {**place_json(this_place()), "pid": os.getpid()}
    if known:
        record = {"run_id": run_id, "started": time.time(), "status": "running", **here}
        record["pid_start"] = my_start_time()
        (data / ".kflow/runs").mkdir(parents=True, exist_ok=True)
        (data / f".kflow/runs/{run_id}.json").write_text(json.dumps(record))
    lease = {"holder": run_id, "instance": "w", "ttl": 60, "start": my_start_time(), **here}
    (data / ".kflow/leases").mkdir(parents=True, exist_ok=True)
    (data / ".kflow/leases/w.json").write_text(json.dumps(lease))


# known: the old run's record says it goes on, so its mark stays in state/; else the mark
# moves with the rest, and only the recheck's look into state/ finds the late success.
@pytest.mark.parametrize("known", [True, False], ids=["run-known", "run-unknown"])
def test_new_build_sees_the_success_an_old_build_writes_late_into_state(
    tmp_path: Path, known: bool
) -> None:
    data_project(tmp_path, TASKS)
    assert kflow("build", "-C", tmp_path, "w").exit_code == 0
    data = tmp_path / "data"
    (success,) = (data / ".kflow/records").glob("*.json")
    key, fp, digest, _ = success.name[: -len(".json")].split("~")
    body = success.read_text()
    # The old layout, as an old kflow left it: w's success record, then (its attempt in
    # progress) its incomplete mark, in state/w/.
    legacy = data / ".kflow/state/w"
    legacy.mkdir(parents=True)
    success.rename(legacy / success.name)
    old = new_run_id()
    mark = legacy / f"{key}~incomplete~-~{time.time_ns()}.json"
    mark.write_text(json.dumps({"instance": "w", "run": old}))
    _old_run(data, old, known)

    proc = start_build(tmp_path, "w", env={"KFLOW_LEASE_TTL": "60"}, merged=True)
    assert proc.stdout is not None
    seen = ""
    while "waiting w" not in seen:  # the new build has moved state/ and waits for the lease
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    # A live old build's mark stays where it wrote it.
    assert mark.exists() == known
    # The old build finishes: its success record in state/w/, its mark gone, its lease given up.
    legacy.mkdir(parents=True, exist_ok=True)  # as its atomic write does
    (legacy / f"{key}~{fp}~{digest}~{time.time_ns()}.json").write_text(body)
    mark.unlink(missing_ok=True)
    (data / ".kflow/leases/w.json").unlink()
    out, _ = proc.communicate(timeout=60)
    seen += out
    assert proc.returncode == 0, seen
    assert (tmp_path / "counter").read_text().split() == ["run"], seen  # not run twice
    assert "reused" in seen or "built by" in seen, seen
    result = kflow("plan", "-C", tmp_path)
    assert result.exit_code == 0 and "up to date" in result.stdout, result.output
