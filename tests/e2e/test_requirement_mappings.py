"""Requirements that are not pass-through: yesterday's instance, a rolling window, a chain of a
task's own earlier instances; in Python (functions) and TOML (offsets and ranges)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

# Each day's file holds its date and, after it, the lines of what it read.
APPEND = (
    "import sys, pathlib; out = pathlib.Path(sys.argv[1]); out.parent.mkdir(parents=True, "
    "exist_ok=True); out.write_text(''.join([sys.argv[2] + '\\n'] + "
    "[pathlib.Path(p).read_text() for p in sys.argv[3:]]))"
)

PYTHON_CHAIN = f"""
from datetime import date, timedelta

from kflow import param, project, task

project(name="chain", storage="file://./data")
param("date", type="date", default="2026-11-05")
START = date(2026, 11, 1)

task(
    "cumulative",
    command=["python", "-c", {APPEND!r}, "{{output}}", "{{date}}", "{{inputs}}"],
    outputs=["{{root}}/cumulative/{{date}}.txt"],
    requires=[{{
        "task": "cumulative",
        "params": {{"date": lambda date: date - timedelta(days=1) if date > START else []}},
    }}],
)
task(
    "last3",
    command=["python", "-c", {APPEND!r}, "{{output}}", "{{date}}", "{{inputs}}"],
    outputs=["{{root}}/last3/{{date}}.txt"],
    requires=[{{
        "task": "cumulative",
        "params": {{"date": lambda date: [date - timedelta(days=i) for i in range(3)]}},
    }}],
)
"""


def _graph(project: Path, *args: str) -> dict[str, list[str]]:
    result = kflow("graph", "-C", project, "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return {n["id"]: n["requires"] for n in json.loads(result.stdout)["instances"]}


def test_python_task_requires_its_own_earlier_instances_until_its_base_case(
    tmp_path: Path,
) -> None:
    project = write_project(tmp_path / "p", None, **{"kflow.py": PYTHON_CHAIN})
    graph = _graph(project, "cumulative")
    assert graph == {
        "cumulative[date=2026-11-01]": [],
        "cumulative[date=2026-11-02]": ["cumulative[date=2026-11-01]"],
        "cumulative[date=2026-11-03]": ["cumulative[date=2026-11-02]"],
        "cumulative[date=2026-11-04]": ["cumulative[date=2026-11-03]"],
        "cumulative[date=2026-11-05]": ["cumulative[date=2026-11-04]"],
    }
    result = kflow("build", "-C", project, "last3")
    assert result.exit_code == 0, result.output
    # each day read the day before it, back to the base case
    chained = (project / "data/cumulative/2026-11-05.txt").read_text().split()
    assert chained == [f"2026-11-0{d}" for d in (5, 4, 3, 2, 1)]
    window = (project / "data/last3/2026-11-05.txt").read_text().split()
    assert window[0] == "2026-11-05" and window.count("2026-11-01") == 3  # a fan-in over 3 days


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("lambda date: 1 / 0", ["raised ZeroDivisionError: division by zero"]),
        ("lambda date: 5", ["returned 5 (int), expected a date"]),
        ("lambda date: 'not-a-date'", ["'not-a-date' is not a valid date"]),
        ("lambda day: day", ["reads 'day', which is not a parameter of task 'last3'"]),
    ],
)
def test_python_requirement_function_errors_name_the_file_and_line(
    tmp_path: Path, function: str, expected: list[str]
) -> None:
    text = PYTHON_CHAIN.replace(
        "lambda date: [date - timedelta(days=i) for i in range(3)]", function
    )
    project = write_project(tmp_path / "p", None, **{"kflow.py": text})
    line = next(n for n, row in enumerate(text.splitlines(), 1) if function in row)
    before = files_under(project)
    for command in ("check", "build"):
        result = (
            kflow(command, "-C", project, "last3")
            if command == "build"
            else kflow(command, "-C", project)
        )
        assert result.exit_code == 2, result.output
        assert f"kflow.py:{line}: tasks.last3.requires[0].params.date" in result.stderr
        assert "Traceback" not in result.output
        for text_part in expected:
            assert text_part in result.stderr
    assert files_under(project) == before


TOML_WINDOWS = """
[project]
storage = "file://./data"
[params]
date = { type = "date", default = "2026-11-07" }
n = { type = "int", default = 3 }
[tasks.daily]
command = "touch {output}"
outputs = ["{root}/daily-{date}.txt"]
[tasks.yesterday]
requires = [{ task = "daily", params = { date = "{date-1d}" } }]
command = "touch {output}"
outputs = ["{root}/yesterday-{date}.txt"]
[tasks.weekly]
requires = [{ task = "daily", params = { date = "{date-6d}..{date}" } }]
command = "touch {output}"
outputs = ["{root}/weekly-{date}.txt"]
[tasks.fortnight_ago]
requires = [{ task = "daily", params = { date = "{date - 2w}" } }]
command = "touch {output}"
outputs = ["{root}/fortnight-{date}.txt"]
[tasks.numbered]
command = "touch {output}"
outputs = ["{root}/numbered-{n}.txt"]
[tasks.next]
requires = [{ task = "numbered", params = { n = "{n+1}" } }]
command = "touch {output}"
outputs = ["{root}/next-{n}.txt"]
[tasks.steps]
matrix = { k = [1, 2, 3] }
requires = [{ task = "steps", params = { k = "{k-1}" } }]
command = "touch {output}"
outputs = ["{root}/steps-{k}.txt"]
"""


def test_toml_offsets_and_ranges_pick_other_instances(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", TOML_WINDOWS)
    graph = _graph(project, "yesterday", "weekly", "fortnight_ago", "next", "steps")
    assert graph["yesterday[date=2026-11-07]"] == ["daily[date=2026-11-06]"]
    assert graph["weekly[date=2026-11-07]"] == [f"daily[date=2026-11-0{d}]" for d in range(1, 8)]
    assert graph["fortnight_ago[date=2026-11-07]"] == ["daily[date=2026-10-24]"]
    assert graph["next[n=3]"] == ["numbered[n=4]"]
    # a chain of its own instances ends where the offset leaves the matrix
    assert graph["steps[k=1]"] == []
    assert graph["steps[k=3]"] == ["steps[k=2]"]


def test_toml_chain_of_own_instances_ends_where_the_param_range_does(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        TOML_WINDOWS
        + """
[tasks.running_total]
requires = [{ task = "running_total", params = { date = "{date-1d}" } }, "daily"]
command = "touch {output}"
outputs = ["{root}/total-{date}.txt"]
""",
    )
    graph = _graph(project, "running_total", "--param", "date=2026-11-01..2026-11-03")
    assert graph["running_total[date=2026-11-01]"] == ["daily[date=2026-11-01]"]
    assert graph["running_total[date=2026-11-03]"] == [
        "running_total[date=2026-11-02]",
        "daily[date=2026-11-03]",
    ]
    result = kflow(
        "build", "-C", project, "running_total", "--param", "date=2026-11-01..2026-11-03"
    )
    assert result.exit_code == 0, result.output
    assert (project / "data/total-2026-11-03.txt").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{date-1x}", "bad offset unit 'x'"),
        ("{date-1}", "date is a date; its offset needs a unit"),
        ("{date-}", "bad offset in '{date-}'"),
        ("{dat-1d}", "reads 'dat', which is not a parameter of task 'yesterday'"),
        ("2026-11-01..{date}x", "is not a date (YYYY-MM-DD) or an int"),
    ],
)
def test_bad_offset_syntax_is_exit_2_at_its_key(tmp_path: Path, value: str, expected: str) -> None:
    project = write_project(tmp_path / "p", TOML_WINDOWS.replace("{date-1d}", value))
    line = next(n for n, row in enumerate(TOML_WINDOWS.splitlines(), 1) if "{date-1d}" in row)
    result = kflow("check", "-C", project)
    assert result.exit_code == 2, result.output
    assert f"kflow.toml:{line}: tasks.yesterday.requires[0].params.date" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_offset_in_days_on_an_int_is_exit_2(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", TOML_WINDOWS.replace("{n+1}", "{n+1d}"))
    result = kflow("check", "-C", project)
    assert result.exit_code == 2, result.output
    assert "tasks.next.requires[0].params.n" in result.stderr
    assert "n is an int" in result.stderr and "write {n+1}" in result.stderr


def test_instance_cycle_is_exit_2_with_the_cycle_printed(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        date = { type = "date", default = "2026-11-07" }
        [tasks.a]
        requires = [{ task = "b", params = { date = "{date-1d}" } }]
        command = "touch {output}"
        outputs = ["a-{date}.txt"]
        [tasks.b]
        requires = [{ task = "a", params = { date = "{date+1d}" } }]
        command = "touch {output}"
        outputs = ["b-{date}.txt"]
        """,
    )
    before = files_under(project)
    for command in ("check", "build"):
        result = kflow(command, "-C", project, *(["a"] if command == "build" else []))
        assert result.exit_code == 2, result.output
        assert (
            "requirement cycle: a[date=2026-11-07] -> b[date=2026-11-06] -> a[date=2026-11-07]"
            in result.stderr
        )
    assert files_under(project) == before


def test_chain_without_an_end_is_exit_2(tmp_path: Path) -> None:
    text = PYTHON_CHAIN.replace("if date > START else []", "")
    project = write_project(tmp_path / "p", None, **{"kflow.py": text})
    result = kflow("check", "-C", project)
    assert result.exit_code == 2, result.output
    assert "needs an end" in result.stderr and "return [] or None" in result.stderr
