"""What the report makes of records other than a finished run's: a run whose kflow was
killed (counted as `kflow runs` counts it), and records of an older or hand-written shape
(shown with "—" where a field is missing, not left out)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import kflow
from tests.report.live import record_now, start_build, wait_for
from tests.report.project import built_project
from tests.report.ui import get, running_ui

OLD_ID = "20200101T000000Z-old001"
# fields missing (project, targets, params, jobs…), a time that is not a number, an
# attempt without a start time and with a key this kflow does not know
OLD_RECORD: dict[str, Any] = {
    "run_id": OLD_ID,
    "status": "succeeded",
    "started": "yesterday",
    "instances": {
        "fetch[region=eu]": {
            "status": "succeeded",
            "attempts": [{"number": 1, "ended": 1577836801.0, "exit_code": 0, "pod": "f-1"}],
        },
        "summary": "done",
    },
}


def _counts(line: str) -> str:
    """``1 died, 1 queued, 1 succeeded`` from a `kflow runs` line or the report's."""
    found = re.search(r"  (\d+ \w+(?:, \d+ \w+)*)  \[", line)
    assert found, line
    return found.group(1)


def test_a_died_run_counts_the_same_in_runs_and_every_report(tmp_path: Path) -> None:
    build = start_build(tmp_path)
    try:

        def holding() -> Any:
            record = record_now(tmp_path)
            return record and record["instances"]["hold"]["status"] == "running"

        wait_for(holding, what="`hold` running")
        build.kill()  # SIGKILL: the record still says "running"
        build.wait(timeout=60)
        runs = subprocess.run(
            [sys.executable, "-m", "kflow", "runs", "-C", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert " died " in runs.stdout, runs.stdout
        counts = _counts(runs.stdout.strip())
        assert "1 died" in counts and "running" not in counts, counts
        md = kflow("report", "-C", tmp_path, "--format", "md").stdout
        assert f"- counts: {counts}\n" in md and "run" in md.split("\n")[0]
        assert ": died (exit" in md.split("\n")[0]
        model = json.loads(kflow("report", "-C", tmp_path, "--format", "json").stdout)
        assert model["run"]["status"] == "died"
        assert ", ".join(f"{n} {s}" for s, n in sorted(model["counts"].items())) == counts
        by_id = {i["id"]: i for i in model["instances"]}
        assert by_id["hold"]["status"] == "died"
        assert by_id["hold"]["attempts"][-1]["status"] == "unknown"
        with running_ui(tmp_path) as (url, _):
            (run,) = json.loads(get(url + "api/runs")[2])["runs"]
            assert run["status"] == "died" and run["counts"] == model["counts"]
            page = json.loads(get(f"{url}api/run/{run['run_id']}")[2])
            assert page["counts"] == model["counts"]
    finally:
        (tmp_path / "go").touch()
        if build.poll() is None:
            build.kill()
            build.wait(timeout=60)


def test_a_record_of_an_older_shape_renders_with_dashes(tmp_path: Path) -> None:
    built_project(tmp_path)
    runs = tmp_path / "data/.kflow/runs"
    (runs / f"{OLD_ID}.json").write_text(json.dumps(OLD_RECORD))
    result = kflow("report", OLD_ID, "-C", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)
    assert model["run"]["started"] is None and model["run"]["duration"] is None
    assert model["run"]["project"] is None and model["run"]["targets"] == []
    by_id = {i["id"]: i for i in model["instances"]}
    (attempt,) = by_id["fetch[region=eu]"]["attempts"]
    assert attempt["started"] is None and attempt["ended"] == 1577836801.0
    assert by_id["summary"]["status"] is None  # not an object: known by name only
    md = kflow("report", OLD_ID, "-C", tmp_path, "--format", "md")
    assert md.exit_code == 0, md.output
    assert f"# kflow run {OLD_ID}: succeeded (exit —)" in md.stdout
    assert "- started —, took —" in md.stdout and "- targets: —" in md.stdout
    assert kflow("report", OLD_ID, "-C", tmp_path, "-o", tmp_path / "old.html").exit_code == 0
    for fmt in ("trace", "md"):
        assert kflow("report", OLD_ID, "-C", tmp_path, "--format", fmt).exit_code == 0
    with running_ui(tmp_path) as (url, _):
        listed = json.loads(get(url + "api/runs")[2])["runs"]
        old = [r for r in listed if r["run_id"] == OLD_ID]
        assert old and old[0]["started"] is None and old[0]["status"] == "succeeded"
        assert get(f"{url}run/{OLD_ID}")[0] == 200


def test_a_record_that_is_not_an_object_stays_unreadable(tmp_path: Path) -> None:
    built_project(tmp_path)
    runs = tmp_path / "data/.kflow/runs"
    (runs / "20200101T000000Z-arr001.json").write_text(json.dumps([OLD_RECORD]))
    (runs / "20200101T000000Z-noid01.json").write_text(json.dumps({"status": "succeeded"}))
    for run in ("20200101T000000Z-arr001", "20200101T000000Z-noid01"):
        result = kflow("report", run, "-C", tmp_path, "--format", "md")
        assert result.exit_code == 2 and "unreadable" in result.output, result.output


def test_latest_is_the_run_that_started_last_when_two_started_in_one_second(
    tmp_path: Path,
) -> None:
    """Run ids sort by their start second; within one second the record's start time decides."""
    built_project(tmp_path)
    runs = tmp_path / "data/.kflow/runs"
    (built,) = runs.iterdir()
    record = json.loads(built.read_text())
    for run_id, started in (("20990101T000000Z-ffffff", 100.0), ("20990101T000000Z-000000", 200.0)):
        (runs / f"{run_id}.json").write_text(
            json.dumps({**record, "run_id": run_id, "started": started, "ended": started + 1})
        )
    result = kflow("report", "-C", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["run"]["run_id"] == "20990101T000000Z-000000"
    listed = [line.split()[0] for line in kflow("runs", "-C", tmp_path).stdout.splitlines()]
    assert listed[:2] == ["20990101T000000Z-000000", "20990101T000000Z-ffffff"]  # the same order
