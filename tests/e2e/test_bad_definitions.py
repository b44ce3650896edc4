"""Bad input: one clear message naming the file and key or line, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

GOOD_TASK = """
[tasks.extract]
command = ["python", "x.py", "{output}"]
outputs = ["{root}/raw.csv"]
"""

CASES = {
    "malformed_toml": (
        "[project\nname = 'x'\n",
        ["kflow.toml:1", "malformed TOML"],
    ),
    "unknown_task_key": (
        "[tasks.extract]\ncomand = ['true']\ncommand = ['true']\n",
        ["kflow.toml:2", "tasks.extract.comand", "unknown key", "did you mean 'command'"],
    ),
    "unknown_section": (
        "[taks.extract]\ncommand = ['true']\n" + GOOD_TASK,
        ["kflow.toml:1", "taks", "did you mean 'tasks'"],
    ),
    "wrong_type": (
        "[tasks.extract]\ncommand = ['true']\nretries = 'three'\n",
        ["kflow.toml:3", "tasks.extract.retries", "expected an integer"],
    ),
    "bool_is_not_a_number": (
        "[tasks.extract]\ncommand = ['true']\nretries = true\n",
        ["tasks.extract.retries", "expected an integer, got a boolean"],
    ),
    "unknown_requirement": (
        GOOD_TASK + "[tasks.clean]\ncommand = ['true']\nrequires = ['extrct']\n",
        ["kflow.toml:7", "tasks.clean.requires", "unknown task 'extrct'", "did you mean 'extract'"],
    ),
    "cycle": (
        "[tasks.a]\ncommand = ['true']\nrequires = ['b']\n"
        "[tasks.b]\ncommand = ['true']\nrequires = ['c']\n"
        "[tasks.c]\ncommand = ['true']\nrequires = ['a']\n",
        ["requirement cycle: a -> b -> c -> a", "kflow.toml:"],
    ),
    "undefined_template_name": (
        "[params]\ndate = { type = 'date', default = 'today' }\n"
        "[tasks.extract]\ncommand = ['x', '{dat}']\n",
        ["kflow.toml:4", "tasks.extract.command", "'{dat}'", "did you mean 'date'"],
    ),
    "output_template_cannot_use_inputs": (
        "[tasks.extract]\ncommand = ['true']\noutputs = ['{input}.out']\n",
        ["tasks.extract.outputs", "'{input}'"],
    ),
    "bad_param_default": (
        "[params]\nday = { type = 'date', default = '2026-13-45' }\n" + GOOD_TASK,
        ["kflow.toml:2", "params.day.default", "not a valid date"],
    ),
    "unknown_param_type": (
        "[params]\nn = { type = 'integer', default = 1 }\n" + GOOD_TASK,
        ["params.n.type", "unknown type 'integer'", "did you mean 'int'"],
    ),
    "bad_quantity": (
        "[tasks.extract]\ncommand = ['true']\nresources = { cpu = '250 millicores' }\n",
        ["kflow.toml:3", "tasks.extract.resources.cpu", "bad resource quantity", "250m"],
    ),
    "bad_duration": (
        "[defaults]\ntimeout = 'half an hour'\n" + GOOD_TASK,
        ["kflow.toml:2", "defaults.timeout", "bad duration", "30m"],
    ),
    "duplicate_outputs": (
        GOOD_TASK + "[tasks.other]\ncommand = ['true']\noutputs = ['{root}/raw.csv']\n",
        ["tasks.other.outputs", "also an output of task 'extract'"],
    ),
    "missing_command": (
        "[tasks.extract]\noutputs = ['x']\n",
        ["kflow.toml:1", "tasks.extract", "missing key 'command'"],
    ),
    "unbalanced_brace": (
        "[tasks.extract]\ncommand = ['echo', '{oops']\n",
        ["tasks.extract", "unbalanced '{'"],
    ),
    "unknown_default_target": (
        "[project]\ndefault = ['extrakt']\n" + GOOD_TASK,
        ["kflow.toml:2", "project.default", "did you mean 'extract'"],
    ),
    "matrix_not_a_list": (
        "[tasks.extract]\ncommand = ['true']\nmatrix = { region = 'eu' }\n",
        ["kflow.toml:3", "tasks.extract.matrix.region", "non-empty list"],
    ),
    "unknown_executor_in_profile": (
        "[profiles.kind]\nexecutor = 'kubernetis'\n" + GOOD_TASK,
        ["profiles.kind.executor", "unknown executor 'kubernetis'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_definition_is_named_with_exit_2_and_writes_nothing(tmp_path: Path, case: str) -> None:
    toml, expected = CASES[case]
    project = write_project(tmp_path / "p", toml)
    before = files_under(project)
    result = kflow("check", "-C", project)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"
    assert result.stderr.count("\n") == 1  # one clear message
    assert files_under(project) == before


@pytest.mark.parametrize("command", ["list", "graph", "plan", "build"])
def test_every_command_reports_bad_definitions_the_same_way(tmp_path: Path, command: str) -> None:
    project = write_project(tmp_path / "p", CASES["unknown_task_key"][0])
    before = files_under(project)
    result = kflow(command, "-C", project)
    assert result.exit_code == 2
    assert "did you mean 'command'" in result.stderr
    assert files_under(project) == before


def test_bad_param_value_on_the_command_line(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[params]\ndate = { type = 'date', default = 'today' }\n"
        "[tasks.extract]\ncommand = ['x', '{date}']\noutputs = ['{root}/{date}.csv']\n",
    )
    result = kflow("graph", "-C", project, "--param", "date=2026-02-30")
    assert result.exit_code == 2
    assert "--param date=2026-02-30" in result.stderr and "not a valid date" in result.stderr

    result = kflow("graph", "-C", project, "--param", "dat=2026-02-01")
    assert result.exit_code == 2
    assert "unknown parameter 'dat'" in result.stderr and "did you mean 'date'" in result.stderr

    result = kflow("graph", "-C", project, "--param", "date=2026-02-05..2026-02-01")
    assert result.exit_code == 2 and "end comes before the start" in result.stderr


def test_unknown_target_suggests_a_task(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", GOOD_TASK)
    result = kflow("graph", "-C", project, "extrct")
    assert result.exit_code == 2
    assert "unknown target 'extrct'" in result.stderr and "did you mean 'extract'" in result.stderr


def test_unknown_instance_parameter_is_named(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[tasks.clean]\ncommand = ['x', '{region}']\nmatrix = { region = ['eu', 'us'] }\n",
    )
    result = kflow("graph", "-C", project, "clean[regoin=eu]")
    assert result.exit_code == 2 and "did you mean 'region'" in result.stderr
    result = kflow("graph", "-C", project, "clean[region=ap]")
    assert result.exit_code == 2
    assert "'ap' is not a value of clean's matrix region (eu, us)" in result.stderr


def test_no_project_found_says_how_to_make_one(tmp_path: Path) -> None:
    result = kflow("list", "-C", tmp_path)
    assert result.exit_code == 2
    assert "no kflow.toml or kflow.py" in result.stderr and "kflow init" in result.stderr


def test_python_definition_errors_name_the_file_and_line(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[project]\ninclude = ['more.py']\n" + GOOD_TASK,
        **{
            "more.py": """\
            from kflow import task

            task("clean", command=["true"], requires=["extrac"])
            """
        },
    )
    result = kflow("check", "-C", project)
    assert result.exit_code == 2
    assert "more.py:3" in result.stderr and "did you mean 'extract'" in result.stderr

    (project / "more.py").write_text("from kflow import task\n\nx = 1 / 0\n")
    result = kflow("check", "-C", project)
    assert (
        result.exit_code == 2
        and "more.py:3" in result.stderr
        and "ZeroDivisionError" in result.stderr
    )


def test_task_defined_in_toml_and_python_is_a_duplicate(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[project]\ninclude = ['more.py']\n" + GOOD_TASK,
        **{"more.py": "from kflow import task\ntask('extract', command=['true'])\n"},
    )
    result = kflow("check", "-C", project)
    assert result.exit_code == 2
    assert "'tasks.extract' is defined twice" in result.stderr and "more.py:2" in result.stderr
