"""Pure-Python projects and the Python API, end to end through the CLI.

A project in ``kflow.py`` with decorated-function tasks builds (its own file must not
shadow the kflow package in the attempt), and the API answers mistakes with exit 2,
the file and the line — never a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import kflow, write_project
from tests.helpers import would_run as _would_run

PURE = """\
from kflow import param, project, task

project(name="pure", storage="file://./data")
param("who", default="world")


@task(outputs=["{root}/hello-{who}.txt"])
def hello(who, outputs):
    with open(outputs["0"], "w") as f:
        f.write(f"hello {who}\\n")


@task
def bare(outputs):
    return 0
"""


def test_kflow_py_project_with_decorated_task_builds(tmp_path: Path) -> None:
    source = PURE.replace("@task\ndef bare", "@task(outputs=['{root}/bare.txt'])\ndef bare")
    source = source.replace("    return 0", "    open(outputs['0'], 'w').write('ok')")
    project = write_project(tmp_path / "p", **{"kflow.py": source})
    assert kflow("check", "-C", project).exit_code == 0
    # a real process, as cron runs it: the attempt's `python` must import kflow, not kflow.py
    done = subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "data/hello-world.txt").read_text() == "hello world\n"
    assert (project / "data/bare.txt").read_text() == "ok"
    again = kflow("build", "-C", project, "-q")
    assert again.exit_code == 0, again.output


def test_decorated_task_can_import_its_neighbours(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        **{
            "kflow.py": """\
            from kflow import project, task
            import helpers

            project(storage="file://./data")

            @task(outputs=["{root}/x.txt"])
            def x(outputs):
                open(outputs["0"], "w").write(helpers.text())
            """,
            "helpers.py": "def text():\n    return 'from a neighbour'\n",
        },
    )
    result = kflow("build", "-C", project)
    assert result.exit_code == 0, result.output
    assert (project / "data/x.txt").read_text() == "from a neighbour"


def test_bare_task_decorator_is_a_task(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", **{"kflow.py": PURE})
    result = kflow("list", "-C", project, "--json")
    assert result.exit_code == 0, result.output
    assert {t["name"] for t in json.loads(result.stdout)["tasks"]} == {"hello", "bare"}


def _check(tmp_path: Path, source: str) -> tuple[int, str, str]:
    project = write_project(tmp_path / "p", **{"kflow.py": source})
    result = kflow("check", "-C", project)
    return result.exit_code, result.stdout, result.stderr


def test_task_call_without_a_name_is_exit_2_with_file_and_line(tmp_path: Path) -> None:
    code, _, err = _check(
        tmp_path,
        'from kflow import task\n\n\ntask(command=["true"], outputs=["x"])\n',
    )
    assert code == 2 and "Traceback" not in err
    assert "kflow.py:4" in err and "needs a name" in err


def test_nameless_task_that_decorates_nothing_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, 'from kflow import task\n\ntask(outputs=["x"])\n')
    assert code == 2 and "kflow.py:3" in err and "defines nothing" in err


def test_second_project_call_is_exit_2_with_file_and_line(tmp_path: Path) -> None:
    code, _, err = _check(
        tmp_path,
        'from kflow import project, task\n\nproject(name="a")\nproject(storage="file://./d")\n'
        'task("t", command=["true"], outputs=["x"])\n',
    )
    assert code == 2 and "Traceback" not in err
    assert "kflow.py:4" in err and "project() is called twice (first at line 3)" in err


def test_decorating_a_nested_function_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _check(
        tmp_path,
        "from kflow import task\n\ndef make():\n    @task(outputs=['x'])\n    def inner(outputs):\n"
        "        pass\n\nmake()\n",
    )
    assert code == 2 and "kflow.py:4" in err and "top level" in err


def test_print_while_loading_goes_to_stderr(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        "[project]\ninclude = ['more.py']\n[tasks.a]\ncommand = ['true']\noutputs = ['a.txt']\n",
        **{"more.py": "from kflow import task\nprint('hello from more.py')\n"},
    )
    (project / "a.txt").write_text("made")
    listing = kflow("list", "-C", project, "--json")
    assert listing.exit_code == 0
    json.loads(listing.stdout)  # stdout is JSON alone
    assert "hello from more.py" in listing.stderr
    quiet = kflow("build", "-C", project, "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ""
    plan = kflow("plan", "-C", project, "--json")
    assert plan.exit_code == 0 and "hello from" not in plan.stdout


TWO_TASKS = """\
from kflow import project, task

project(storage="file://./data")
SUFFIX = "!"


def helper(text):
    return text + SUFFIX


@task(outputs=["{root}/one.txt"])
def one(outputs):
    open(outputs["0"], "w").write(helper("one"))


@task(outputs=["{root}/two.txt"])
def two(outputs):
    open(outputs["0"], "w").write(helper("two"))


def unrelated():
    return 1


task("other", command=["cp", "kflow.py", "{output}"], outputs=["{root}/other.txt"])
"""


def test_editing_one_function_reruns_only_its_task(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", **{"kflow.py": TWO_TASKS})
    source = project / "kflow.py"
    assert kflow("build", "-C", project).exit_code == 0
    assert _would_run(project) == {}

    def edit(old: str, new: str) -> dict[str, str]:
        source.write_text(source.read_text().replace(old, new))
        return _would_run(project)

    # comments, blank lines and an unrelated function: nothing reruns
    assert edit("def helper", "# a comment\n\n\ndef helper") == {}
    assert edit("return 1", "return 2  # changed") == {}
    # another task defined in the same file by a call: that task only
    assert edit('"cp", "kflow.py"', '"cp", "-p", "kflow.py"') == {"other": "fingerprint changed"}
    assert kflow("build", "-C", project).exit_code == 0
    # one task's own function: that task only
    assert edit('helper("two")', 'helper("TWO")') == {"two": "fingerprint changed"}
    assert kflow("build", "-C", project).exit_code == 0
    assert (project / "data/two.txt").read_text() == "TWO!"
    # a helper both call, then a module-level constant: both rerun
    assert edit("text + SUFFIX", "SUFFIX + text") == {
        "one": "fingerprint changed",
        "two": "fingerprint changed",
    }
    assert kflow("build", "-C", project).exit_code == 0
    assert edit('SUFFIX = "!"', 'SUFFIX = "?"') == {
        "one": "fingerprint changed",
        "two": "fingerprint changed",
    }
    why = kflow("plan", "-C", project, "--why", "one")
    assert "KFLOW_CODE_HASH" in why.stdout, why.output


def test_sys_exit_while_loading_is_exit_2_with_file_and_line(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, "import sys\n\nsys.exit(3)\n")
    assert code == 2 and "kflow.py:3" in err and "SystemExit(3)" in err


def test_decorated_function_whose_name_is_rebound_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _check(
        tmp_path,
        "from kflow import task\n\n@task(outputs=['x'])\ndef f(outputs):\n    pass\n\nf = 3\n",
    )
    assert code == 2 and "kflow.py:3" in err and "names something else" in err, err
