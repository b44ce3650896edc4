"""`kflow report` end to end: a real run, read back in each format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import files_under, kflow
from tests.report.project import MARKUP, built_project


def test_records_carry_edges_ready_times_reasons_and_a_revision(tmp_path: Path) -> None:
    built_project(tmp_path)
    (record_file,) = (tmp_path / "data/.kflow/runs").iterdir()
    record = json.loads(record_file.read_text())
    flaky = record["instances"]["flaky[region=us]"]
    assert flaky["requires"] == ["fetch[region=us]"]
    assert flaky["ready"] >= record["instances"]["fetch[region=us]"]["attempts"][0]["ended"]
    assert flaky["why"]["kind"] == "output missing" and "clean-us.txt" in flaky["why"]["detail"]
    assert record["revision"] >= 1 and record["up_to_date"] == []


def test_report_formats(tmp_path: Path) -> None:
    built_project(tmp_path)
    out = tmp_path / "r.html"
    result = kflow("report", "-C", tmp_path, "-o", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert MARKUP not in page  # only ever inside the escaped JSON
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    model = json.loads(kflow("report", "-C", tmp_path, "--format", "json").stdout)
    assert [t["name"] for t in model["tasks"]] == ["fetch", "flaky", "summary"]
    assert model["first_failure"]["id"] == "flaky[region=us]"
    assert "boom-us-tail" in model["first_failure"]["log_tail"]
    by_id = {i["id"]: i for i in model["instances"]}
    (output,) = by_id["fetch[region=eu]"]["outputs"]
    assert output["location"].endswith("raw-eu.txt") and output["size"] == 3  # "eu\n"
    assert output["mtime"] is not None
    (gone,) = by_id["flaky[region=us]"]["outputs"]  # removed after the failure
    assert gone["size"] is None
    trace = json.loads(kflow("report", "-C", tmp_path, "--format", "trace").stdout)
    assert len([e for e in trace["traceEvents"] if e["ph"] == "X"]) == 3 + 2 + 2  # retry too
    md = kflow("report", "latest", "-C", tmp_path, "--format", "md").stdout
    assert "First failure: flaky\\[region=us\\]" in md and "boom-us-tail" in md


def test_report_against_another_run(tmp_path: Path) -> None:
    built_project(tmp_path)
    kflow("build", "-C", tmp_path, "-k", "-B")
    first = sorted(p.stem for p in (tmp_path / "data/.kflow/runs").iterdir())[0]
    result = kflow("report", "-C", tmp_path, "--format", "md", "--against", first)
    assert result.exit_code == 0 and f"Compared with run {first}" in result.stdout
    result = kflow("report", "-C", tmp_path, "--format", "json", "--against", first)
    diff = json.loads(result.stdout)
    assert diff["against"]["new_failures"] == [] and diff["against"]["only_here"] == []


def test_bad_run_or_format_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    built_project(tmp_path)
    before = files_under(tmp_path)
    result = kflow("report", "nope", "-C", tmp_path, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and "no run 'nope'" in result.output
    assert kflow("report", "-C", tmp_path, "--format", "pdf").exit_code == 2
    assert files_under(tmp_path) == before
