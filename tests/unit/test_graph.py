"""Instance expansion, requirements, targets and order, on real projects loaded from files."""

from pathlib import Path

import pytest

from kflow.errors import UsageError
from kflow.graph import build_graph
from kflow.load import load_project
from kflow.pyfunc import BOOTSTRAP
from tests.helpers import write_project

ETL = """
[project]
name = "sales"
storage = "file://./data"
default = ["report"]

[params]
date = { type = "date", default = "2026-11-24" }

[tasks.extract]
command = ["python", "extract.py", "--date", "{date}", "--out", "{output}"]
outputs = ["{root}/raw/{date}.csv"]

[tasks.clean]
requires = ["extract"]
matrix = { region = ["eu", "us"] }
command = "python clean.py {input} {output} --region {region}"
outputs = ["{root}/clean/{region}/{date}.parquet"]

[tasks.report]
requires = ["clean"]
command = ["python", "report.py", "{inputs}", "--out", "{outputs.html}"]
outputs = { html = "{root}/reports/{date}.html" }
"""

ETL_PY = """
from kflow import param, project, task

project(name="sales", storage="file://./data", default=["report"])
param("date", type="date", default="2026-11-24")
task("extract", command=["python", "extract.py", "--date", "{date}", "--out", "{output}"],
     outputs=["{root}/raw/{date}.csv"])
task("clean", requires=["extract"], matrix={"region": ["eu", "us"]},
     command="python clean.py {input} {output} --region {region}",
     outputs=["{root}/clean/{region}/{date}.parquet"])
task("report", requires=["clean"],
     command=["python", "report.py", "{inputs}", "--out", "{outputs.html}"],
     outputs={"html": "{root}/reports/{date}.html"})
"""


@pytest.fixture
def etl(tmp_path: Path) -> Path:
    return write_project(tmp_path / "etl", ETL)


def test_fan_in_and_pass_through(etl: Path) -> None:
    graph = build_graph(load_project(etl))
    assert [str(i) for i in graph.instances] == [
        "extract[date=2026-11-24]",
        "clean[date=2026-11-24,region=eu]",
        "clean[date=2026-11-24,region=us]",
        "report[date=2026-11-24]",
    ]
    report = graph.instances[graph.targets[0]]
    assert [str(r) for r in report.requires] == [
        "clean[date=2026-11-24,region=eu]",
        "clean[date=2026-11-24,region=us]",
    ]
    assert report.argv == (
        "python",
        "report.py",
        "data/clean/eu/2026-11-24.parquet",
        "data/clean/us/2026-11-24.parquet",
        "--out",
        "data/reports/2026-11-24.html",
    )
    clean_eu = next(i for i in graph.instances.values() if i.id.param_dict.get("region") == "eu")
    assert clean_eu.argv == (
        "python",
        "clean.py",
        "data/raw/2026-11-24.csv",
        "data/clean/eu/2026-11-24.parquet",
        "--region",
        "eu",
    )


def test_backfill_range_builds_one_instance_per_day(etl: Path) -> None:
    graph = build_graph(load_project(etl), ["report"], {"date": "2026-11-01..2026-11-03"})
    assert [str(t) for t in graph.targets] == [
        "report[date=2026-11-01]",
        "report[date=2026-11-02]",
        "report[date=2026-11-03]",
    ]
    assert len(graph.instances) == 3 * 4


def test_output_path_target_binds_parameters_like_a_make_pattern_rule(etl: Path) -> None:
    graph = build_graph(load_project(etl), ["data/clean/eu/2026-11-20.parquet"])
    assert [str(t) for t in graph.targets] == ["clean[date=2026-11-20,region=eu]"]
    assert [str(i) for i in graph.instances] == [
        "extract[date=2026-11-20]",
        "clean[date=2026-11-20,region=eu]",
    ]


def test_output_path_relative_to_a_subfolder_and_absolute(etl: Path) -> None:
    project = load_project(etl)
    graph = build_graph(project, ["eu/2026-11-20.parquet"], base_dir=etl / "data" / "clean")
    assert [str(t) for t in graph.targets] == ["clean[date=2026-11-20,region=eu]"]
    graph = build_graph(project, [str(etl / "data/raw/2026-11-19.csv")])
    assert [str(t) for t in graph.targets] == ["extract[date=2026-11-19]"]


def test_instance_id_target_may_leave_parameters_to_defaults(etl: Path) -> None:
    graph = build_graph(load_project(etl), ["clean[region=us]"])
    assert [str(t) for t in graph.targets] == ["clean[date=2026-11-24,region=us]"]


def test_unknown_output_path_is_a_usage_error(etl: Path) -> None:
    with pytest.raises(UsageError, match="unknown target"):
        build_graph(load_project(etl), ["data/clean/asia/2026-11-20.parquet"])


def test_python_and_toml_definitions_give_the_same_model(tmp_path: Path) -> None:
    toml = build_graph(load_project(write_project(tmp_path / "a", ETL)))
    python = build_graph(load_project(write_project(tmp_path / "b", None, **{"kflow.py": ETL_PY})))
    assert list(toml.instances) == list(python.instances)
    for iid, instance in toml.instances.items():
        other = python.instances[iid]
        assert (instance.argv, dict(instance.outputs), instance.inputs, instance.requires) == (
            other.argv,
            dict(other.outputs),
            other.inputs,
            other.requires,
        )
        assert instance.task.command == other.task.command


def test_explicit_requirement_mapping(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        date = { type = "date", default = "2026-11-24" }
        [tasks.daily]
        command = ["x", "{output}"]
        outputs = ["{root}/{date}.csv"]
        [tasks.compare]
        requires = ["daily", { task = "daily", params = { date = "2026-01-01" } }]
        command = ["diff", "{inputs}"]
        outputs = ["{root}/cmp-{date}.txt"]
        """,
    )
    graph = build_graph(load_project(project), ["compare"])
    compare = graph.instances[graph.targets[0]]
    assert [str(r) for r in compare.requires] == [
        "daily[date=2026-11-24]",
        "daily[date=2026-01-01]",
    ]


def test_order_is_deterministic_and_requirements_come_first(etl: Path) -> None:
    project = load_project(etl)
    first = list(build_graph(project, ["report"], {"date": "2026-11-01..2026-11-05"}).instances)
    second = list(build_graph(project, ["report"], {"date": "2026-11-01..2026-11-05"}).instances)
    assert first == second
    position = {iid: n for n, iid in enumerate(first)}
    graph = build_graph(project, ["report"], {"date": "2026-11-01..2026-11-05"})
    for instance in graph.instances.values():
        assert all(position[r] < position[instance.id] for r in instance.requires)


def test_decorated_python_function_is_a_task_fingerprinted_by_its_code(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[project]\ninclude = ['pipelines/*.py']\n[params]\nwho = 'world'\n",
        **{
            "pipelines__greet.py": """
            from kflow import task

            @task(outputs=["{root}/hello-{who}.txt"])
            def hello(who, outputs):
                open(outputs["0"], "w").write("hi " + who)
            """
        },
    )
    graph = build_graph(load_project(project), ["hello"])
    instance = graph.instances[graph.targets[0]]
    assert str(instance.id) == "hello[who=world]"
    assert instance.argv == ("python", "-c", BOOTSTRAP, "pipelines/greet.py", "hello")
    assert instance.source_inputs == ()  # the function's code is in the fingerprint instead
    assert len(instance.env["KFLOW_CODE_HASH"]) == 16
