"""`kflow build` end to end through the CLI, on real projects in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from kflow.cli.app import app

PROJECT = """
[project]
name = "t"
storage = "file://./data"
default = ["report"]

[params]
who = { default = "world" }

[tasks.greet]
command = ["python", "-c", "import sys; open(sys.argv[1], 'w').write('hi ' + sys.argv[2])",
           "{output}", "{who}"]
outputs = ["{root}/greet-{who}.txt"]

[tasks.shout]
requires = ["greet"]
matrix = { loud = ["1", "2"] }
command = "sh -c 'echo shouting $KFLOW_PARAM_LOUD; tr a-z A-Z < {input} > {output}'"
outputs = ["{root}/shout-{who}-{loud}.txt"]

[tasks.report]
requires = ["shout"]
command = ["sh", "-c", "cat \\"$@\\" > {output}; echo $KFLOW_OUTPUTS", "-", "{inputs}"]
outputs = ["{root}/report-{who}.txt"]
"""


def _project(tmp_path: Path, text: str = PROJECT) -> Path:
    (tmp_path / "kflow.toml").write_text(textwrap.dedent(text))
    return tmp_path


def kflow(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["build", "-C", str(tmp_path), *args])
    return result.exit_code, result.output


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_build_runs_everything_then_nothing(tmp_path: Path) -> None:
    _project(tmp_path)
    code, out = kflow(tmp_path)
    assert code == 0, out
    assert (tmp_path / "data/report-world.txt").read_text() == "HI WORLDHI WORLD"
    assert "succeeded report" in out and "\x1b[" not in out
    code, out = kflow(tmp_path)
    assert code == 0 and "nothing to do" in out


def test_question_answers_with_exit_code_only(tmp_path: Path) -> None:
    _project(tmp_path)
    assert kflow(tmp_path, "-q") == (1, "")
    assert not (tmp_path / "data").exists()
    assert kflow(tmp_path)[0] == 0
    assert kflow(tmp_path, "-q") == (0, "")


def test_dry_run_lists_what_would_run_and_runs_nothing(tmp_path: Path) -> None:
    _project(tmp_path)
    code, out = kflow(tmp_path, "-n")
    assert code == 0
    assert "greet" in out and "report" in out
    assert not (tmp_path / "data/greet-world.txt").exists()


def test_always_reruns_and_force_reruns_a_task_and_its_dependents(tmp_path: Path) -> None:
    _project(tmp_path)
    kflow(tmp_path)
    code, out = kflow(tmp_path, "--force", "shout", "--json")
    assert code == 0
    started = [json.loads(line) for line in out.splitlines()]
    ran = [e["instance"] for e in started if e["event"] == "started"]
    assert sorted(ran) == [
        "report[who=world]",
        "shout[loud=1,who=world]",
        "shout[loud=2,who=world]",
    ]
    code, out = kflow(tmp_path, "-B", "--json")
    ran = [json.loads(line) for line in out.splitlines()]
    assert len([e for e in ran if e["event"] == "succeeded"]) == 4


def test_failing_task_exits_1_and_reruns_next_time(tmp_path: Path) -> None:
    text = PROJECT.replace("tr a-z A-Z < {input} > {output}", "echo partial > {output}; test -e ok")
    _project(tmp_path, text)
    code, out = kflow(tmp_path, "-j", "1")
    assert code == 1
    assert "failed shout[loud=1,who=world]: exit code 1" in out
    assert "skipped report[who=world]" in out
    assert not list((tmp_path / "data").glob("shout-*"))
    (tmp_path / "ok").touch()
    code, out = kflow(tmp_path)
    assert code == 0, out
    assert "started greet" not in out


def test_json_events_one_per_line(tmp_path: Path) -> None:
    _project(tmp_path)
    _, out = kflow(tmp_path, "--json", "greet")
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["run_started", "started", "succeeded", "run_finished"]
    assert events[-1]["exit_code"] == 0


def test_params_and_targets_reach_the_task(tmp_path: Path) -> None:
    _project(tmp_path)
    code, _ = kflow(tmp_path, "--param", "who=kflow", "data/greet-kflow.txt")
    assert code == 0
    assert (tmp_path / "data/greet-kflow.txt").read_text() == "hi kflow"


def test_bad_target_is_exit_2(tmp_path: Path) -> None:
    _project(tmp_path)
    assert kflow(tmp_path, "nope")[0] == 2


def test_python_dash_m_kflow_is_the_cli(tmp_path: Path) -> None:
    _project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "greet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "succeeded greet" in done.stdout


ENV_PROJECT = """
[project]
name = "t"
storage = "file://./data"

[params]
day = { default = "2026-11-24", type = "date" }

[tasks.src]
command = "sh -c 'echo > {output}'"
outputs = ["{root}/src-{day}.txt"]

[tasks.show]
requires = ["src"]
matrix = { region = ["eu"] }
env = { GREETING = "hi {region}" }
command = ["python", "-c", "import os, json; print(json.dumps(dict(os.environ)))"]
outputs = { out = "{root}/never-{region}-{day}.txt" }
"""


def test_task_sees_its_parameters_inputs_and_outputs_in_the_environment(tmp_path: Path) -> None:
    _project(tmp_path, ENV_PROJECT)
    code, out = kflow(tmp_path, "show")
    assert code == 1 and "did not write data/never-eu-2026-11-24.txt" in out
    code, log = cli("logs", "-C", str(tmp_path), "show")
    env = json.loads(log)
    assert env["KFLOW_TASK"] == "show[day=2026-11-24,region=eu]"
    assert json.loads(env["KFLOW_PARAMS"]) == {"day": "2026-11-24", "region": "eu"}
    assert env["KFLOW_PARAM_REGION"] == "eu" and env["KFLOW_PARAM_DAY"] == "2026-11-24"
    assert json.loads(env["KFLOW_INPUTS"]) == ["data/src-2026-11-24.txt"]
    assert json.loads(env["KFLOW_OUTPUTS"]) == {"out": "data/never-eu-2026-11-24.txt"}
    assert env["GREETING"] == "hi eu"
    assert env["KFLOW_RUN"] in out


def test_json_build_with_nothing_to_do_says_so_in_one_event(tmp_path: Path) -> None:
    _project(tmp_path)
    kflow(tmp_path, "greet")
    code, out = kflow(tmp_path, "greet", "--json")
    assert code == 0
    assert json.loads(out) == {"event": "up_to_date", "checked": 1}


def test_timeout_fails_the_attempt_and_removes_its_output(tmp_path: Path) -> None:
    text = """
    [project]
    name = "t"
    [tasks.slow]
    timeout = "0.3s"
    command = "sh -c 'echo partial > {output}; sleep 10'"
    outputs = ["slow.txt"]
    """
    _project(tmp_path, text)
    code, out = kflow(tmp_path)
    assert code == 1 and "failed slow: timed out after 0.3s" in out
    assert not (tmp_path / "slow.txt").exists()
