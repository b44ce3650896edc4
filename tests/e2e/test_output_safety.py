"""Outputs never leave the project's reach (SPEC §1): bad paths are exit 2 before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kflow.run.outputs import remove_outputs
from kflow.storage import Storage
from tests.helpers import data_project, kflow, refused, write_project
from tests.storage.s3server import S3Server

FAILING = """
[project]
storage = "file://./data"
[params]
name = { default = "ok" }
[tasks.t]
command = ["sh", "-c", "mkdir -p {output} && echo x > {output}/f && exit 3"]
outputs = ["{root}/{name}"]
"""


def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    return folder


def test_param_value_climbing_out_is_refused_before_running(tmp_path: Path) -> None:
    kept = victim(tmp_path)
    project = write_project(tmp_path / "a" / "p", FAILING)
    # data/../../victim would be tmp_path/a/victim; climb one more to reach the real one
    climb = ("--param", "name=../../../victim")
    commands = [("build", *climb), ("clean", "--yes", *climb), ("plan", *climb), ("check", *climb)]
    refused(project, *commands, says=("'name'", "../../../victim"))
    assert (kept / "precious.txt").read_text() == "keep me"
    assert not (project / "data").exists()


@pytest.mark.parametrize(
    "value", ["..", ".", "a/b", "-rf", "x\0y"], ids=["dotdot", "dot", "slash", "dash", "nul"]
)
def test_param_value_in_a_path_is_one_segment(tmp_path: Path, value: str) -> None:
    project = write_project(tmp_path / "p", FAILING)
    refused(project, ("plan", "--param", f"name={value}"), says="parameter 'name'")


def test_bad_default_and_matrix_values_in_paths_are_refused(tmp_path: Path) -> None:
    default = write_project(tmp_path / "d", FAILING.replace('default = "ok"', 'default = ".."'))
    refused(default, "check", says="parameter 'name' value '..'")
    matrix = write_project(
        tmp_path / "m",
        """
        [tasks.t]
        command = ["true"]
        matrix = { part = ["a", "../b"] }
        outputs = ["out/{part}.txt"]
        """,
    )
    refused(matrix, "check", says="parameter 'part' value '../b'")
    # a range value ends up in paths too: negative ints start with '-'
    ranged = write_project(
        tmp_path / "r",
        """
        [params]
        n = { type = "int", default = 1 }
        [tasks.t]
        command = ["true"]
        outputs = ["out/{n}.txt"]
        """,
    )
    refused(ranged, ("plan", "--param", "n=-2..1"), says="parameter 'n' value '-")
    # values used only in the command are not paths: anything goes
    free = write_project(
        tmp_path / "f",
        """
        [params]
        msg = { default = "../a b/-c" }
        [tasks.t]
        command = ["echo", "{msg}"]
        outputs = ["out.txt"]
        """,
    )
    assert kflow("check", "-C", free).exit_code == 0


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("/etc/passwd", "outside the project folder"),
        ("../outside.txt", "outside the project folder"),
        ("{root}/../../x", "outside the project folder"),
        (".", "is the project folder itself"),
        ("{root}", "is {root} itself"),
        ("{root}/.kflow/runs", "kflow's records"),
        ("kflow.toml", "definition file"),
        ("lib", "definition file"),
        ("script.py", "source input"),
    ],
)
def test_outputs_out_of_reach_are_refused_by_check(tmp_path: Path, output: str, words: str) -> None:
    project = write_project(
        tmp_path / "p",
        f"""
        [project]
        storage = "file://./data"
        include = ["lib/*.py"]
        [tasks.t]
        command = ["python", "script.py"]
        inputs = ["script.py"]
        outputs = ["{output}"]
        """,
        **{
            "script.py": "",
            "lib__more.py": "from kflow import task\n\ntask('more', command=['true'])\n",
        },
    )
    refused(project, "check", says=(words, "tasks.t.outputs"))


def test_remote_output_climbing_out_of_root_is_refused(tmp_path: Path) -> None:
    base = """
        [project]
        storage = "s3://bucket/sales"
        [tasks.t]
        command = ["true"]
        outputs = ["OUT"]
        """
    up = write_project(tmp_path / "up", base.replace("OUT", "{root}/../other/x"))
    refused(up, "graph", says="'.' or '..'")
    own = write_project(tmp_path / "own", base.replace("OUT", "s3://elsewhere/x.csv"))
    assert kflow("graph", "-C", own).exit_code == 0


def test_output_inside_another_instances_folder_output_is_refused(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [tasks.folder]
        command = ["true"]
        outputs = ["out"]
        [tasks.file]
        command = ["true"]
        outputs = ["out/x.txt"]
        """,
    )
    refused(project, "check", says="'out/x.txt' of file lies inside output 'out' of folder")


def test_failed_folder_task_keeps_the_other_tasks_output(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", FAILING.replace("{root}/{name}", "{root}"))
    (project / "data").mkdir()
    (project / "data" / "other.txt").write_text("other")
    assert kflow("build", "-C", project).exit_code == 2
    assert (project / "data" / "other.txt").read_text() == "other"


def test_param_climbing_out_of_an_s3_root_is_refused_and_nothing_is_deleted(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    s3_server.put_objects(s3_bucket, {"other/precious.txt": b"keep", "sales/x/a.txt": b"a"})
    project = write_project(
        tmp_path / "p",
        f"""
        [project]
        storage = "s3://{s3_bucket}/sales"
        storage_options = {{ endpoint_url = "{s3_server.endpoint_url}" }}
        [params]
        name = {{ default = "x" }}
        [tasks.t]
        command = ["sh", "-c", "touch ran; exit 3"]
        outputs = ["{{root}}/{{name}}"]
        """,
    )
    up = ("--param", "name=..")
    refused(project, ("build", *up), ("clean", "--yes", *up), says="parameter 'name' value '..'")
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)
    assert sorted(o["Key"] for o in listed["Contents"]) == ["other/precious.txt", "sales/x/a.txt"]
    assert not (project / "ran").exists()


def test_clean_up_on_s3_never_deletes_the_root_the_bucket_or_the_records(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    keys = {"sales/.kflow/runs/r.json": b"r", "sales/parts/a.txt": b"a", "other/b.txt": b"b"}
    s3_server.put_objects(s3_bucket, keys)
    storage = Storage(tmp_path, {"s3": {"endpoint_url": s3_server.endpoint_url}})
    root = f"s3://{s3_bucket}/sales"
    doomed = [root, f"s3://{s3_bucket}", f"{root}/../other", f"{root}/.kflow", f"{root}/parts"]
    remove_outputs(storage, root, doomed)
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)
    left = sorted(o["Key"] for o in listed["Contents"])
    assert left == ["other/b.txt", "sales/.kflow/runs/r.json"]


# -- missing source inputs, and source inputs another task makes --------------------------

MISSING = """
[tasks.t]
command = ["sh", "-c", "touch ran; cat nosuch.csv > {output}"]
inputs = ["nosuch.csv"]
outputs = ["out.txt"]
"""


@pytest.mark.parametrize("command", ["check", "plan", "build"])
def test_missing_source_input_is_exit_2_before_anything_runs(tmp_path: Path, command: str) -> None:
    project = write_project(tmp_path / "p", MISSING)
    refused(project, command, says="source input 'nosuch.csv' does not exist")
    assert not (project / "ran").exists()


def test_source_input_made_by_another_task_names_the_task(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        day = { default = "d1" }
        [tasks.make]
        command = ["touch", "{output}"]
        outputs = ["made/{day}.csv"]
        [tasks.use]
        command = ["cat", "made/{day}.csv"]
        inputs = ["made/{day}.csv"]
        outputs = ["used/{day}.csv"]
        """,
    )
    commands = ("check", ("plan", "use"), ("build", "use"))
    refused(project, *commands, says=("made by task 'make'", "requires"))


# -- limits and refusals -----------------------------------------------------------------


def test_clean_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", FAILING.replace("exit 3", "exit 0"))
    assert kflow("build", "-C", project).exit_code == 0
    made = project / "data" / "ok"
    refused = subprocess.run(
        [sys.executable, "-m", "kflow", "clean", "-C", str(project)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr
    assert "use --yes" in refused.stderr
    assert made.is_dir()
    dry = kflow("clean", "-C", project, "-n")
    assert dry.exit_code == 0 and "would delete" in dry.stdout
    assert kflow("clean", "-C", project, "--yes").exit_code == 0
    assert not made.exists()


def test_instance_count_beyond_the_limit_is_refused_before_expanding(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        date = { type = "date", default = "2026-01-01" }
        n = { type = "int", default = 1 }
        [tasks.t]
        command = ["true"]
        outputs = ["out/{date}/{n}.txt"]
        """,
    )
    args = ("--param", "date=1950-01-01..2049-12-31", "--param", "n=1..99999")
    refused(project, ("check", *args), ("plan", *args), says=("too many instances", "1,000,000"))


def test_instance_count_of_all_the_targets_together_is_capped(tmp_path: Path) -> None:
    task = """
        [tasks.NAME]
        command = ["true"]
        matrix = { m = [1, 2, 3, 4, 5, 6] }
        outputs = ["NAME/{n}-{m}.txt"]
        """
    project = write_project(
        tmp_path / "p",
        '[params]\nn = { type = "int", default = 1 }\n'
        + task.replace("NAME", "a")
        + task.replace("NAME", "b"),
    )
    refused(project, ("plan", "--param", "n=1..99999"), says="1,199,988 instances in all")


@pytest.mark.parametrize(
    ("storage", "words"),
    [
        ("memory://x", "tasks run in other processes"),
        ("nosuchproto://bucket/x", "unknown storage protocol"),
        ("s3:/bkt/x", "write s3://bkt/x"),
    ],
)
def test_unusable_storage_is_a_definition_error(tmp_path: Path, storage: str, words: str) -> None:
    project = write_project(
        tmp_path / "p",
        f"""
        [project]
        storage = "{storage}"
        [tasks.t]
        command = ["true"]
        outputs = ["{{root}}/x.txt"]
        """,
    )
    refused(project, "check", "plan", "build", says=words)
    assert not (project / "s3:").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-inf"])
def test_float_param_must_be_finite(tmp_path: Path, value: str) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        x = { type = "float", default = 0.5 }
        [tasks.t]
        command = ["echo", "{x}"]
        outputs = ["out.txt"]
        """,
    )
    refused(project, ("plan", "--param", f"x={value}"), says="not a valid float")


# -- one file, one name --------------------------------------------------------------------


def test_duplicate_outputs_are_compared_by_canonical_location(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    project = data_project(
        folder,
        f"""
        [tasks.a]
        command = ["true"]
        outputs = ["{{root}}/x.txt"]
        [tasks.b]
        command = ["true"]
        outputs = ["file://./data/x.txt"]
        [tasks.c]
        command = ["true"]
        outputs = ["{folder.resolve()}/data/x.txt"]
        """,
    )
    stderr = refused(project, "check", says="is also output")
    named = [name for name in ("of a", "of b", "of c") if name in stderr]
    assert len(named) == 2, stderr


def test_target_path_matching_two_patterns_picks_the_shortest_stem(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        name = { default = "x" }
        [tasks.general]
        command = ["touch", "{output}"]
        outputs = ["out/{name}.txt"]
        [tasks.special]
        command = ["touch", "{output}"]
        outputs = ["out/special-{name}.txt"]
        """,
    )
    result = kflow("plan", "-C", project, "out/special-1.txt")
    assert result.exit_code == 0, result.output
    assert "special[name=1]" in result.stdout and "general" not in result.stdout


def test_target_path_matching_two_equal_patterns_is_ambiguous(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [params]
        a = { default = "x" }
        b = { default = "y" }
        [tasks.one]
        command = ["touch", "{output}"]
        outputs = ["out/{a}-x.txt"]
        [tasks.two]
        command = ["touch", "{output}"]
        outputs = ["out/x-{b}.txt"]
        """,
    )
    refused(project, ("plan", "out/x-x.txt"), says=("ambiguous", "one[a=x]", "two[b=x]"))


def test_param_given_twice_is_an_error(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", FAILING)
    twice = ("plan", "--param", "name=a", "--param", "name=b")
    refused(project, twice, says="--param name given twice")
