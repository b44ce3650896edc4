"""Shared options before the command, where git and make users type them: `kflow -C DIR build`
means `kflow build -C DIR`; given both, the one after the command wins; `--param` lists join."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

REPO = Path(__file__).resolve().parents[2]

PROJECT = """
[project]
name = "shared"
storage = "file://./data"

[params]
day = { type = "str", default = "mon" }
n = { type = "int", default = 1 }

[tasks.make]
command = ["sh", "-c", "echo {day} {n} > {output}"]
outputs = ["{root}/{day}-{n}.txt"]

[profiles.alt]
storage = "file://./alt"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", PROJECT)


def test_directory_before_the_command_is_the_same_as_after(project: Path) -> None:
    before = kflow("-C", project, "plan")
    after = kflow("plan", "-C", project)
    assert before.exit_code == after.exit_code == 0, before.output
    assert before.stdout == after.stdout
    assert "data/mon-1.txt" in before.stdout
    built = kflow("-C", project, "build")
    assert built.exit_code == 0, built.output
    assert (project / "data/mon-1.txt").read_text() == "mon 1\n"
    assert "up to date" in kflow("--directory", project, "build").stdout


def test_file_profile_and_param_before_the_command(project: Path, tmp_path: Path) -> None:
    other = project / "other.toml"
    other.write_text(PROJECT.replace('name = "shared"', 'name = "other"'))
    (project / "kflow.toml").unlink()
    listed = kflow("-C", project, "-f", other, "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert '"project": "other"' in listed.stdout
    planned = kflow("-C", project, "-f", other, "--profile", "alt", "--param", "day=tue", "plan")
    assert planned.exit_code == 0, planned.output
    assert "alt/tue-1.txt" in planned.stdout and "data/" not in planned.stdout
    built = kflow("-C", project, "--file", other, "--profile", "alt", "-p", "n=5", "build")
    assert built.exit_code == 0, built.output
    assert (project / "alt/mon-5.txt").read_text() == "mon 5\n"


def test_the_option_after_the_command_wins(project: Path, tmp_path: Path) -> None:
    elsewhere = write_project(tmp_path / "q", PROJECT.replace("./data", "./q-data"))
    planned = kflow("-C", elsewhere, "plan", "-C", project)
    assert planned.exit_code == 0, planned.output
    assert "data/mon-1.txt" in planned.stdout and "q-data" not in planned.stdout
    planned = kflow("-C", project, "--profile", "nope", "plan", "--profile", "alt")
    assert planned.exit_code == 0, planned.output
    assert "alt/mon-1.txt" in planned.stdout


def test_params_before_and_after_are_joined_later_ones_winning(project: Path) -> None:
    planned = kflow("-C", project, "--param", "day=tue", "--param", "n=2", "plan", "-p", "n=3")
    assert planned.exit_code == 0, planned.output
    assert "tue-3.txt" in planned.stdout
    built = kflow("-C", project, "-p", "day=wed", "build", "-p", "n=4")
    assert built.exit_code == 0, built.output
    assert (project / "data/wed-4.txt").read_text() == "wed 4\n"
    shown = kflow("-C", project, "runs", "show", "latest")
    assert shown.exit_code == 0, shown.output
    assert "day=wed" in shown.stdout and "n=4" in shown.stdout


def test_bad_shared_options_before_the_command_are_usage_errors(
    project: Path, tmp_path: Path
) -> None:
    before = files_under(project)
    missing = kflow("-C", tmp_path / "nowhere", "build")
    assert missing.exit_code == 2
    assert f"kflow: error: -C {tmp_path / 'nowhere'}: no such directory" in missing.stderr
    malformed = kflow("-C", project, "--param", "day", "build")
    assert malformed.exit_code == 2 and "--param 'day': expected NAME=VALUE" in malformed.stderr
    # a command that takes no --param says so, as it would after the command
    unused = kflow("-C", project, "--param", "day=tue", "list")
    assert unused.exit_code == 2
    assert "kflow: error: --param does not apply to 'kflow list'" in unused.stderr
    assert kflow("-C", project, "--profile", "alt", "init").exit_code == 2
    assert files_under(project) == before


def test_doctor_runs_and_logs_take_the_options_before_them_too(project: Path) -> None:
    assert kflow("-C", project, "build").exit_code == 0
    for args in (["runs"], ["runs", "show", "latest"], ["logs", "make"], ["doctor"]):
        result = kflow("-C", project, *args)
        assert result.exit_code == 0, (args, result.output)


def test_help_shows_the_shared_options_and_completion_still_works() -> None:
    shown = kflow("--help")
    assert shown.exit_code == 0
    for option in ("-C", "--file", "--profile", "--param", "--install-completion"):
        assert option in shown.stdout
    # typer guesses the shell from the parent processes (shellingham); a test run started
    # without a shell among them (a CI runner, a detached job) would fail to guess. With the
    # guess turned off, --show-completion takes the shell by name, as users may also type it.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = subprocess.run(
        [str(Path(sys.executable).with_name("kflow")), "--show-completion", "bash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0 and "_KFLOW_COMPLETE" in script.stdout, script.stderr


def _complete(words: str) -> list[str]:
    env = {
        **os.environ,
        "_KFLOW_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    # the installed `kflow` script: completion is keyed to the program's name
    script = Path(sys.executable).with_name("kflow")
    done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    return done.stdout.split()


def test_completion_after_options_before_the_command() -> None:
    assert "plan" in _complete("kflow -C examples/etl pl")
    assert "build" in _complete("kflow --profile kind b")


def test_the_example_plans_with_the_directory_before_the_command() -> None:
    def plan(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "kflow", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = plan("-C", "examples/etl", "plan")
    assert "5 instances" in before or "report[date=" in before  # built already, or not
    assert before == plan("plan", "-C", "examples/etl")
