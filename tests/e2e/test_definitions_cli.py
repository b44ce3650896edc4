"""`kflow list`, `graph`, `check`, `init` and `--version` through the CLI."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import kflow, write_project

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("example", ["hello", "etl"])
def test_examples_are_valid(example: str) -> None:
    result = kflow("check", "-C", EXAMPLES / example)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")


def test_etl_example_expands_matrix_fan_in_and_backfill() -> None:
    result = kflow(
        "graph",
        "-C",
        EXAMPLES / "etl",
        "totals",
        "--format",
        "json",
        "--param",
        "date=2026-11-01..2026-11-03",
    )
    assert result.exit_code == 0, result.output
    nodes = {n["id"]: n for n in json.loads(result.stdout)["instances"]}
    assert len([n for n in nodes if n.startswith("clean[")]) == 9
    assert nodes["totals"]["requires"] == [f"report[date=2026-11-0{d}]" for d in (1, 2, 3)]
    assert nodes["report[date=2026-11-02]"]["requires"] == [
        f"clean[date=2026-11-02,region={r}]" for r in ("eu", "us", "apac")
    ]


def test_list_shows_tasks_params_outputs_and_descriptions() -> None:
    result = kflow("list", "-C", EXAMPLES / "etl", "--json")
    assert result.exit_code == 0
    listing = json.loads(result.stdout)
    by_name = {t["name"]: t for t in listing["tasks"]}
    assert by_name["clean"]["params"] == ["date", "region"]
    assert by_name["report"]["outputs"] == ["{root}/reports/{date}.csv"]
    assert by_name["totals"]["description"].startswith("Revenue per region over every date")
    assert listing["params"][0]["name"] == "date" and listing["params"][0]["default"] == "yesterday"
    plain = kflow("list", "-C", EXAMPLES / "etl")
    assert "{root}/clean/{region}/{date}.csv" in plain.stdout


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "clean[date=2026-11-24,region=eu]  <- extract[date=2026-11-24]"),
        ("dot", '"extract[date=2026-11-24]" -> "clean[date=2026-11-24,region=eu]";'),
        ("mermaid", "flowchart LR"),
    ],
)
def test_graph_formats(fmt: str, expected: str) -> None:
    result = kflow("graph", "-C", EXAMPLES / "etl", "--format", fmt, "--param", "date=2026-11-24")
    assert result.exit_code == 0, result.output
    assert expected in result.stdout


def test_graph_target_by_output_path() -> None:
    result = kflow("graph", "-C", EXAMPLES / "etl", "data/clean/us/2026-11-20.csv")
    assert result.stdout.splitlines() == [
        "extract[date=2026-11-20]",
        "clean[date=2026-11-20,region=us]  <- extract[date=2026-11-20]",
    ]


def test_init_writes_a_valid_project_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = kflow("init", tmp_path / "new")
    assert result.exit_code == 0, result.output
    assert kflow("check", "-C", tmp_path / "new").exit_code == 0
    before = (tmp_path / "new" / "kflow.toml").read_text()
    again = kflow("init", tmp_path / "new")
    assert again.exit_code == 2 and "already exist;" in again.stderr
    assert (tmp_path / "new" / "kflow.toml").read_text() == before


def test_profile_overrides_storage_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_ALLOW_MEMORY_STORAGE", "1")  # refused for real projects
    project = write_project(
        tmp_path / "p",
        """
        [project]
        storage = "file://./data"
        [defaults]
        image = "python:3.12"
        [profiles.ci]
        storage = "memory://ci"
        image = "python:3.13"
        [tasks.t]
        command = ["echo", "{output}"]
        outputs = ["{root}/x.txt"]
        """,
    )
    plain = kflow("graph", "-C", project, "--format", "json")
    assert json.loads(plain.stdout)["instances"][0]["argv"] == ["echo", "data/x.txt"]
    ci = kflow("graph", "-C", project, "--format", "json", "--profile", "ci")
    assert json.loads(ci.stdout)["instances"][0]["argv"] == ["echo", "memory://ci/x.txt"]
    bad = kflow("graph", "-C", project, "--profile", "ci2")
    assert bad.exit_code == 2 and "did you mean 'ci'" in bad.stderr


def test_version() -> None:
    result = kflow("--version")
    assert result.exit_code == 0 and result.stdout.startswith("kflow ")


def test_help_does_not_import_kubernetes_or_remote_storage() -> None:
    code = (
        "import sys\n"
        "from kflow.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = ('kubernetes', 's3fs', 'botocore', 'gcsfs', 'fsspec')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_file_option_and_walking_up_from_a_subfolder(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", "[tasks.t]\ncommand = ['true']\n")
    (project / "deep" / "er").mkdir(parents=True)
    assert kflow("check", "-C", project / "deep" / "er").exit_code == 0
    assert kflow("check", "-f", project / "kflow.toml").exit_code == 0


def test_init_project_builds_and_then_is_up_to_date(tmp_path: Path) -> None:
    assert kflow("init", tmp_path / "new").exit_code == 0
    first = kflow("build", "-C", tmp_path / "new")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "new" / "data" / "shout-world.txt").read_text() == "HELLO, WORLD\n"
    second = kflow("build", "-C", tmp_path / "new")
    assert second.exit_code == 0
    assert "up to date" in second.stdout


def test_shell_completion_is_offered() -> None:
    result = kflow("--help")
    assert "--install-completion" in result.stdout


def test_hello_example_is_what_init_writes(tmp_path: Path) -> None:
    assert kflow("init", tmp_path / "hello").exit_code == 0
    for name in ("kflow.toml", "steps.py"):
        assert (tmp_path / "hello" / name).read_text() == (EXAMPLES / "hello" / name).read_text()


def test_etl_rolling_window_builds_over_a_backfill_and_reads_seven_days(tmp_path: Path) -> None:
    project = tmp_path / "etl"
    shutil.copytree(EXAMPLES / "etl", project, ignore=shutil.ignore_patterns("data", ".kflow*"))
    result = kflow("build", "-C", project, "weekly", "--param", "date=2026-11-07..2026-11-08")
    assert result.exit_code == 0, result.output
    for day in ("2026-11-07", "2026-11-08"):
        with (project / "data" / "weekly" / f"{day}.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {row["region"] for row in rows} == {"eu", "us", "apac"}
        assert {row["days"] for row in rows} == {"7"}  # the window read seven daily reports
    # the window reached back before the backfill: 2026-11-01..2026-11-08, each made once
    reports = sorted(p.name for p in (project / "data" / "reports").iterdir())
    assert reports == [f"2026-11-0{d}.csv" for d in range(1, 9)]
    again = kflow("build", "-C", project, "weekly", "--param", "date=2026-11-07..2026-11-08")
    assert again.exit_code == 0 and "nothing to do" in again.stdout
