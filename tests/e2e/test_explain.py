"""`kflow plan --why` explains in full; the one-line plan never prints before and after alike.

Outputs are written as a build would and recorded with `kflow accept`, so each test
isolates what the planner says.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import files_under, kflow, write_project

BACKFILL = """
[project]
name = "backfill"
storage = "file://./data"
default = ["report"]

[params]
date = { type = "date", default = "2026-11-01" }

[tasks.report]
command = ["python", "report.py", "--out", "{output}"]
outputs = ["{root}/reports/daily/{date}.html"]
env = { LEVEL = "1" }
image = "python:3.12-slim"

[tasks.totals]
requires = ["report"]
command = [
    "python", "scripts/compute_totals.py", "--currency", "EUR", "--rounding", "half-even",
    "--out", "{output}", "{inputs}",
]
outputs = ["{root}/summaries/totals.csv"]
"""

WEEK = "date=2026-11-01..2026-11-07"
NEXT_WEEK = "date=2026-11-02..2026-11-08"


def backfilled(folder: Path) -> Path:
    """The README's backfill: a week of reports and their totals, built and recorded."""
    project = write_project(folder, BACKFILL)
    for day in range(1, 9):
        report = project / f"data/reports/daily/2026-11-0{day}.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"report {day}\n")
    (project / "data/summaries").mkdir()
    (project / "data/summaries/totals.csv").write_text("totals\n")
    accepted = kflow("accept", "-C", project, "totals", "--param", WEEK)
    assert accepted.exit_code == 0, accepted.output
    return project


def test_plan_line_shows_where_a_long_command_changed(tmp_path: Path) -> None:
    project = backfilled(tmp_path / "p")
    result = kflow("plan", "-C", project, "totals", "--param", NEXT_WEEK, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["instance"]: row for row in json.loads(result.stdout)["instances"]}
    detail = rows["totals"]["detail"]
    assert detail.startswith("command: ")
    before, after = detail[len("command: ") :].split(" → ")
    assert before != after  # cut around the first difference, not at a fixed width
    assert "2026-11-01.html" in before and "2026-11-01.html" not in after


def test_why_of_a_task_outside_the_defaults_shows_the_argv_diff_in_full(tmp_path: Path) -> None:
    project = backfilled(tmp_path / "p")
    # totals is not a default target: it is planned as `kflow plan totals --why totals` would
    result = kflow("plan", "-C", project, "--why", "totals", "--param", NEXT_WEEK)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("totals: RUNS (fingerprint changed: command: ")
    fingerprint = next(line for line in lines if line.split()[:1] == ["fingerprint"])
    assert fingerprint.split() == ["fingerprint", "stale", "changed:", "command"]
    diff = [line.strip() for line in lines[lines.index(fingerprint) + 1 :]]
    assert diff[:3] == [
        "command:",
        "- data/reports/daily/2026-11-01.html",
        "+ data/reports/daily/2026-11-08.html",
    ]
    assert not any("…" in line for line in diff)


def test_why_shows_image_and_env_changes_in_full(tmp_path: Path) -> None:
    project = backfilled(tmp_path / "p")
    toml = (project / "kflow.toml").read_text()
    changed = toml.replace('LEVEL = "1"', 'LEVEL = "2", MODE = "fast"').replace("3.12", "3.13")
    (project / "kflow.toml").write_text(changed)
    result = kflow("plan", "-C", project, "--why", "report[date=2026-11-03]", "--param", WEEK)
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0].startswith("report[date=2026-11-03]: RUNS (fingerprint changed: image: ")
    at = lines.index("image:")
    assert lines[at : at + 3] == ["image:", "- python:3.12-slim", "+ python:3.13-slim"]
    at = lines.index("env:")
    assert lines[at : at + 4] == ["env:", "- LEVEL=1", "+ LEVEL=2", "+ MODE=fast"]


def test_why_shows_a_source_inputs_stamps(tmp_path: Path) -> None:
    project = backfilled(tmp_path / "p")
    toml = (project / "kflow.toml").read_text()
    sourced = toml.replace("[tasks.totals]", '[tasks.totals]\ninputs = ["totals.py"]')
    (project / "kflow.toml").write_text(sourced)
    (project / "totals.py").write_text("print(1)\n")
    assert kflow("accept", "-C", project, "totals", "--param", WEEK).exit_code == 0
    (project / "totals.py").write_text("print(22)\n")
    result = kflow("plan", "-C", project, "--why", "totals", "--param", WEEK)
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0] == "totals: RUNS (fingerprint changed: source input totals.py changed)"
    at = next(i for i, line in enumerate(lines) if line.startswith("source inputs unchanged"))
    assert lines[at + 1].startswith("- size 9, modified ")
    assert lines[at + 2].startswith("+ size 10, modified ")


def test_why_and_force_suggest_a_near_miss_and_exit_2(tmp_path: Path) -> None:
    project = backfilled(tmp_path / "p")
    before = files_under(project)
    why = kflow("plan", "-C", project, "--why", "totls")
    assert why.exit_code == 2
    assert why.stderr.strip() == "kflow: error: --why totls: unknown task (did you mean 'totals'?)"
    instance = kflow("plan", "-C", project, "--why", "reprt[date=2026-11-01]")
    assert instance.exit_code == 2 and "did you mean 'report'?" in instance.stderr
    force = kflow("build", "-C", project, "--force", "totls")
    assert force.exit_code == 2 and "did you mean 'totals'?" in force.stderr
    far = kflow("plan", "-C", project, "--force", "zzz")
    assert far.exit_code == 2 and "(tasks: report, totals)" in far.stderr
    assert files_under(project) == before
