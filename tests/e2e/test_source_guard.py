"""Source inputs of any task are never deleted, never written into (SPEC §1): the graph
refuses such outputs (exit 2) and the deletion guard refuses, whatever the targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.paths import PlacePattern, place_of
from kflow.storage.guard import DeletionGuard
from tests.helpers import data_project, kflow, refused, write_project

OTHER_TASKS_INPUT = """
[project]
name = "h"
storage = "file://./data"
[tasks.t]
command = ["sh", "-c", "mkdir -p {output} && exit 1"]
outputs = ["{root}/ref"]
[tasks.u]
command = ["true"]
inputs = ["INPUT"]
outputs = ["{root}/u"]
"""


@pytest.mark.parametrize("source", ["data/ref/keep.txt", "data/ref/*.txt"], ids=["file", "glob"])
def test_clean_and_failed_build_never_delete_another_tasks_source_input(
    tmp_path: Path, source: str
) -> None:
    project = write_project(tmp_path / "p", OTHER_TASKS_INPUT.replace("INPUT", source))
    keep = project / "data" / "ref" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("keep")
    # u is not among the targets: its input is protected all the same
    for command in ("check", ("clean", "--yes", "t"), ("build", "-B", "t")):
        refused(project, command, says=f"source input '{source}'")
        assert keep.read_text() == "keep"


@pytest.mark.parametrize("source", ["lib", "lib/*.txt"], ids=["folder", "glob"])
@pytest.mark.parametrize("across", [False, True], ids=["same-task", "other-task"])
def test_output_inside_a_source_input_is_refused(tmp_path: Path, source: str, across: bool) -> None:
    maker = "t" if not across else "m"
    project = write_project(
        tmp_path / "p",
        f"""
        [tasks.t]
        command = ["sh", "-c", "exit 1"]
        inputs = ["{source}"]
        outputs = ["out/t"]
        [tasks.{maker}]
        command = ["sh", "-c", "exit 1"]
        outputs = ["lib/a.txt"]
        """
        if across
        else f"""
        [tasks.t]
        command = ["sh", "-c", "exit 1"]
        inputs = ["{source}"]
        outputs = ["lib/a.txt"]
        """,
    )
    (project / "lib").mkdir()
    (project / "lib" / "a.txt").write_text("mine")
    for command in ("check", ("plan", maker), ("build", "-B", maker)):
        stderr = refused(project, command, says=f"'{source}'")
        # a glob that another planned task's output matches names that task
        made = across and "*" in source and "is made by task 'm'" in stderr
        inside = "'lib/a.txt'" in stderr and "lies inside source input" in stderr
        assert made or inside
    assert (project / "lib" / "a.txt").read_text() == "mine"


def test_guard_refuses_deleting_inside_a_source_input_folder(tmp_path: Path) -> None:
    folder = str(tmp_path)
    patterns = [
        PlacePattern(place_of(text, folder), text)
        for text in ("lib", "raw/*/in.csv", "data/**/x.txt")
    ]
    guard = DeletionGuard(folder, "data", patterns=patterns)
    for denied in ("lib", "lib/a.txt", "raw", "raw/d1", "raw/d1/in.csv", "data/a/b/x.txt"):
        assert guard.problem(denied) is not None, denied
    for allowed in ("libx", "raw/d1/out.csv", "out/lib", "out/x.txt"):
        assert guard.problem(allowed) is None, allowed


BY_NAME = """
[project]
storage = "file://./data"
[params]
name = { default = "x" }
[tasks.t]
command = ["sh", "-c", "mkdir -p data/out && echo hi > {output}"]
outputs = ["{root}/out/{name}.txt"]
"""


@pytest.mark.parametrize("value", ["*", "a?", "[ab]", "x]"])
def test_glob_characters_in_a_path_parameter_are_refused(tmp_path: Path, value: str) -> None:
    project = write_project(tmp_path / "p", BY_NAME)
    assert kflow("build", "-C", project).exit_code == 0
    param = ("-p", f"name={value}")
    commands = [(command, *param) for command in ("build", "plan", "check")]
    refused(project, *commands, says=("parameter 'name'", "glob"))


def test_too_long_path_parameter_is_a_definition_error(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", BY_NAME)
    too_long = ("build", "-p", f"name={'n' * 300}")
    refused(project, too_long, says=("parameter 'name'", "255 bytes"))


def test_output_over_a_definition_file_that_does_not_exist_yet_is_refused(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [project]
        include = ["pipelines/*.py"]
        [tasks.q]
        command = ["sh", "-c", "echo 'x = (' > {output}"]
        outputs = ["pipelines/q.py"]
        """,
    )
    (project / "pipelines").mkdir()
    (project / "pipelines" / "p.py").write_text("")
    for output in ("pipelines/q.py", "kflow.py"):
        toml = (project / "kflow.toml").read_text().replace("pipelines/q.py", output)
        (project / "kflow.toml").write_text(toml)
        for command in ("check", "build"):
            stderr = refused(project, command)
            assert "definition file" in stderr or "include pattern" in stderr, (output, stderr)
        assert not (project / output).exists()


@pytest.mark.parametrize(
    "outputs",
    [
        '["{root}/a", "file://./data/a", "ABS/data/a"]',
        '["{root}/a", "{root}/a/b"]',
    ],
    ids=["same-file-three-ways", "nested"],
)
def test_one_instance_naming_one_place_twice_is_refused(tmp_path: Path, outputs: str) -> None:
    project = tmp_path / "p"
    data_project(
        project,
        f"""
        [tasks.t]
        command = ["true"]
        outputs = {outputs.replace("ABS", str(project))}
        """,
    )
    stderr = refused(project, "check")
    assert "of t is also output" in stderr or "of t lies inside output" in stderr


@pytest.mark.parametrize("output", ["{root}/x.csv", "{root}/{day}.csv", "{root}/{day}"])
def test_glob_source_input_another_task_could_make_names_the_task(
    tmp_path: Path, output: str
) -> None:
    project = data_project(
        tmp_path / "p",
        f"""
        [params]
        day = {{ default = "d1" }}
        [tasks.a]
        command = ["sh", "-c", "mkdir -p data && touch {{output}}"]
        outputs = ["{output}"]
        [tasks.b]
        command = ["cat", "{{input}}"]
        inputs = ["data/*.csv"]
        outputs = ["out/b.txt"]
        """,
    )
    (project / "data").mkdir()
    # before a has run (nothing matches) and after (something does): the same answer
    for command in ("check", ("build", "b"), ("plan", "b")):
        stderr = refused(
            project, command, says="source input 'data/*.csv' of b is made by task 'a'"
        )
        assert "no task makes it" not in stderr
    if output != "{root}/{day}":  # data/d1 is no match of data/*.csv
        refused(project, ("build", "a"), says="lies inside source input 'data/*.csv' of task 'b'")
    (project / "data" / "x.csv").write_text("")
    refused(project, ("build", "b"), says="made by task 'a'")


def test_clean_up_never_follows_a_symlinked_folder_out_of_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("keep me")
    project = data_project(
        tmp_path / "p",
        """
        [tasks.t]
        command = ["sh", "-c", "exit 1"]
        outputs = ["{root}/link/x.txt"]
        """,
    )
    (project / "data").mkdir()
    (project / "data" / "link").symlink_to(outside)
    result = kflow("build", "-C", project, "-B")
    assert result.exit_code == 1, result.output
    assert (outside / "x.txt").read_text() == "keep me"
    refused(project, ("clean", "--yes"), says="symbolic link")
    assert (outside / "x.txt").read_text() == "keep me"


def test_a_symlinked_root_is_still_cleaned(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    project = data_project(
        tmp_path / "p",
        """
        [tasks.t]
        command = ["sh", "-c", "echo x > {output}"]
        outputs = ["{root}/x.txt"]
        """,
    )
    (project / "data").symlink_to(big)
    assert kflow("build", "-C", project).exit_code == 0
    assert (big / "x.txt").exists()
    result = kflow("clean", "-C", project, "--yes")
    assert result.exit_code == 0, result.output
    assert not (big / "x.txt").exists()


def test_a_planned_tasks_input_is_judged_by_its_value_not_its_template(tmp_path: Path) -> None:
    # inputs = ["{src}"] as a template could be any top-level name; planned, it is "lib"
    project = data_project(
        tmp_path / "p",
        """
        [params]
        src = { default = "lib" }
        [tasks.t]
        command = ["sh", "-c", "mkdir -p data && echo x > {output} && exit $(cat lib/code)"]
        inputs = ["{src}"]
        outputs = ["{root}/t.txt"]
        """,
    )
    (project / "lib").mkdir()
    (project / "lib" / "code").write_text("1")
    assert kflow("build", "-C", project).exit_code == 1
    assert not (project / "data" / "t.txt").exists()  # the failed attempt's output is gone
    (project / "lib" / "code").write_text("0")
    assert kflow("build", "-C", project).exit_code == 0
    result = kflow("clean", "-C", project, "--yes")
    assert result.exit_code == 0, result.output
    assert not (project / "data" / "t.txt").exists()
    assert (project / "lib" / "code").exists()
