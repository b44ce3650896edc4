"""Small things a user notices: instance order, messages, counts, --help, warnings, hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

# A task's command: make its output (and the folder it is in).
WRITE = (
    "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
    "p.parent.mkdir(parents=True, exist_ok=True); p.write_text('x')"
)

NUMBERS = """
[project]
name = "numbers"
storage = "file://./data"

[params]
k = { type = "int", default = 1 }

[tasks.square]
matrix = { n = [1, 2, 10] }
command = ["python", "-c", "{write}", "{output}"]
outputs = ["{root}/square/{n}-{k}.txt"]

[tasks.total]
requires = ["square"]
command = ["python", "-c", "{write}", "{output}"]
outputs = ["{root}/total-{k}.txt"]
"""


def test_instances_come_in_the_order_of_their_typed_values(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", NUMBERS.replace("{write}", WRITE))
    planned = kflow("plan", "-C", project, "--json", "--param", "k=1..10", "square")
    instances = [row["instance"] for row in json.loads(planned.stdout)["instances"]]
    assert instances == [f"square[k={k},n={n}]" for k in range(1, 11) for n in (1, 2, 10)]

    graph = kflow("graph", "-C", project, "total")
    assert graph.stdout.splitlines() == [
        "square[k=1,n=1]",
        "square[k=1,n=2]",
        "square[k=1,n=10]",
        "total[k=1]  <- square[k=1,n=1], square[k=1,n=2], square[k=1,n=10]",
    ]

    built = kflow("build", "-C", project, "-j", "1", "--json", "total")
    assert built.exit_code == 0, built.output
    events = [json.loads(line) for line in built.stdout.splitlines()]
    started = [e["instance"] for e in events if e["event"] == "started"]
    assert started == ["square[k=1,n=1]", "square[k=1,n=2]", "square[k=1,n=10]", "total[k=1]"]


def test_a_target_outside_the_matrix_names_the_values(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        """
        [project]
        name = "regions"
        storage = "file://./data"

        [tasks.clean]
        matrix = { region = ["eu", "us"] }
        command = ["true", "{output}"]
        outputs = ["{root}/clean/{region}.csv"]
        """,
    )
    result = kflow("build", "-C", project, "clean[region=mars]")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "kflow: error: clean[region=mars]: 'mars' is not a value of clean's matrix region (eu, us)"
    )
    assert files_under(project) == {"kflow.toml"}


def test_counts_and_verbs_agree_with_their_numbers(tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert kflow("init", project).exit_code == 0
    again = kflow("init", project)
    assert again.exit_code == 2
    assert "steps.py already exist;" in again.stderr
    (project / "steps.py").unlink()
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "steps.py").write_text("# mine\n")
    one = kflow("init", tmp_path / "q")
    assert one.exit_code == 2 and "steps.py already exists;" in one.stderr

    single = write_project(
        tmp_path / "single",
        """
        [project]
        name = "single"
        storage = "file://./data"

        [tasks.only]
        command = ["true"]
        outputs = ["{root}/only.txt"]
        """,
    )
    assert kflow("check", "-C", single).stdout.startswith("ok: single: 1 task, 1 instance\n")
    (single / "data").mkdir()
    (single / "data/only.txt").write_text("made by hand\n")
    assert kflow("accept", "-C", single, "only").stdout == "accepted 1 instance\n"
    plan = kflow("plan", "-C", single)
    assert plan.stdout == "up to date: nothing to do (1 instance checked)\n"
    dry = kflow("clean", "-C", single, "-n")
    assert dry.stdout.splitlines()[-1] == "1 output of 1 instance would be deleted"
    deleted = kflow("clean", "-C", single, "--yes")
    assert deleted.stdout.splitlines()[-1] == "deleted 1 output of 1 instance"


COMMANDS = [
    ["logs"],
    ["runs"],
    ["runs", "show"],
    ["build"],
    ["plan"],
    ["accept"],
    ["clean"],
    ["list"],
    ["graph"],
    ["check"],
    ["init"],
    ["doctor"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_arguments_as_a_user_types_them(command: list[str]) -> None:
    result = kflow(*command, "--help")
    assert result.exit_code == 0
    assert "{" not in result.stdout and "<" not in result.stdout, result.stdout


def test_logs_help_reads_run_then_instance() -> None:
    usage = kflow("logs", "--help").stdout.splitlines()[0]
    assert usage == "Usage: kflow logs [OPTIONS] [RUN] INSTANCE"


SECRETS = """
[project]
name = "secrets"
storage = "file://./data"

[tasks.load]
command = ["python", "-c", "open('{output}', 'w').write('loaded')"]
env = { API_KEY = { secret = "creds", key = "api" }, LEVEL = "3" }
env_from = ["minio-credentials", "configmap:settings"]
outputs = ["{root}/load.txt"]

[tasks.report]
requires = ["load"]
command = ["python", "-c", "open('{output}', 'w').write('report')"]
env = { MODE = { config_map = "cfg", key = "mode" } }
outputs = ["{root}/report.txt"]

[tasks.plain]
command = ["python", "-c", "open('{output}', 'w').write('plain')"]
outputs = ["{root}/plain.txt"]
"""


def test_local_runs_say_once_which_variables_tasks_go_without(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", SECRETS)
    result = kflow("build", "-C", project, "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    warnings = [e for e in events if e["event"] == "env_not_passed"]
    assert len(warnings) == 1
    assert warnings[0]["executor"] == "local"
    assert warnings[0]["tasks"] == {
        "load": [
            "API_KEY (secret creds, key api)",
            "env_from secret minio-credentials",
            "env_from config map settings",
        ],
        "report": ["MODE (config map cfg, key mode)"],
    }

    again = kflow("build", "-C", project, "-B", "report")
    lines = [line for line in again.stdout.splitlines() if "warning:" in line]
    assert len(lines) == 1
    assert lines[0].endswith(
        "warning: the local executor runs these tasks without: "
        "load: API_KEY (secret creds, key api), env_from secret minio-credentials, "
        "env_from config map settings; report: MODE (config map cfg, key mode)"
    )
    quiet = kflow("build", "-C", project, "-B", "plain")
    assert quiet.exit_code == 0 and "warning" not in quiet.stdout


def test_shell_variable_with_a_default_gets_the_literal_brace_hint(tmp_path: Path) -> None:
    toml = """
    [project]
    name = "shell"
    storage = "file://./data"

    [tasks.greet]
    shell = true
    command = "echo ${GREETING-hello} > {output}"
    outputs = ["{root}/greeting.txt"]
    """
    project = write_project(tmp_path / "p", toml)
    result = kflow("build", "-C", project)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("(write '${{GREETING-hello}}' for a literal brace)")
    assert files_under(project) == {"kflow.toml"}
    write_project(project, toml.replace("${GREETING-hello}", "${{GREETING-hello}}"))
    assert kflow("build", "-C", project).exit_code == 0
    assert (project / "data/greeting.txt").read_text() == "hello\n"


def test_the_live_view_shows_the_warning_too() -> None:
    import io

    from rich.console import Console

    from kflow.cli.run_view import LiveView
    from kflow.run import events as ev

    screen = io.StringIO()
    view = LiveView(Console(file=screen, force_terminal=True, width=200, highlight=False))
    view(ev.EnvNotPassed(executor="local", tasks={"load": ["API_KEY (secret creds, key api)"]}))
    view.close()
    assert (
        "warning: the local executor runs these tasks without: "
        "load: API_KEY (secret creds, key api)" in screen.getvalue()
    )
