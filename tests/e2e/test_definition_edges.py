"""Definitions at their edges: an instance that requires itself, values that print alike,
durations of zero, async task functions, bad storage in a profile, ``-C`` before ``init``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import files_under, kflow, write_project

# The project's header; kflow.toml's line numbers in the messages count from it.
HEADER = """
[project]
name = "h"
storage = "file://./data"
"""


def _project(tmp_path: Path, *lines: str, **files: str) -> Path:
    """A project in ``tmp_path/p``: HEADER, then these TOML lines; other files as in
    ``write_project``."""
    return write_project(tmp_path / "p", HEADER + "\n".join(lines) + "\n", **files)


def _exit_2_writing_nothing(project: Path, commands: list[list[str]], *shown: str) -> None:
    """Each command (with ``-C PROJECT``) is exit 2, its message says all of ``shown``, no
    traceback; and the project's folder is as it was (no data, no state)."""
    before = files_under(project)
    for args in commands:
        result = kflow(*args, "-C", project)
        assert result.exit_code == 2, (args, result.output)
        assert all(text in result.stderr for text in shown), (args, result.stderr)
        assert "Traceback" not in result.output
    assert files_under(project) == before


SELF_TOML = """
[project]
name = "h"
storage = "file://./data"
[tasks.a]
command = ["true"]
matrix = {{ n = [1, 2] }}
outputs = ["{{root}}/a{{n}}"]
requires = [{{ task = "a", params = {{ n = "{spec}" }} }}]
"""

SELF_PY = """
from kflow import project, task

project(name="h", storage="file://./data")
task(
    "a",
    command=["true"],
    matrix={"n": [1, 2]},
    outputs=["{root}/a{n}"],
    requires=[{"task": "a", "params": {"n": lambda n: n}}],
)
"""


@pytest.mark.parametrize("spec", ["{n-0}", "{n-1}..{n}", "python"])
@pytest.mark.parametrize("command", ["check", "plan", "build"])
def test_instance_that_requires_itself_is_exit_2_with_the_cycle(
    tmp_path: Path, spec: str, command: str
) -> None:
    if spec == "python":
        project = write_project(tmp_path / "p", None, **{"kflow.py": SELF_PY})
    else:
        project = write_project(tmp_path / "p", SELF_TOML.format(spec=spec))
    _exit_2_writing_nothing(project, [[command]], "requirement cycle: a[n=1] -> a[n=1]")


def test_init_after_dash_c_writes_into_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    result = kflow("-C", "d", "init")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path) == {"d", "d/kflow.toml", "d/steps.py"}
    assert "next: kflow build -C d" in result.stdout
    # a folder after init is inside -C's, as make -C d reads paths from d
    assert kflow("-C", "d", "init", "sub").exit_code == 0
    assert {"d/sub/kflow.toml", "d/sub/steps.py"} <= files_under(tmp_path)
    assert kflow("-C", "d", "build").exit_code == 0
    missing = kflow("-C", "nowhere", "init")
    assert missing.exit_code == 2 and "-C nowhere: no such directory" in missing.stderr
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "kflow.toml").exists()


@pytest.mark.parametrize(
    ("values", "shown"),
    [('[1, "1"]', "matrix values repeat: 1 (1 and '1')"), ('[true, "true"]', "repeat: true")],
)
def test_matrix_values_that_print_alike_repeat(tmp_path: Path, values: str, shown: str) -> None:
    project = _project(
        tmp_path,
        "[tasks.a]",
        'command = ["true"]',
        f"matrix = {{ n = {values} }}",
        'outputs = ["{root}/a{n}"]',
    )
    _exit_2_writing_nothing(
        project, [["check"], ["build"]], "kflow.toml:7: tasks.a.matrix.n:", shown
    )


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ('timeout = "0s"', "tasks.a.timeout: must be more than 0s, got '0s'"),
        ("timeout = 0", "tasks.a.timeout: must be more than 0s, got 0"),
        ('retry_delay = "-5"', "tasks.a.retry_delay: bad duration '-5'"),
        ("retry_delay = -1", "tasks.a.retry_delay: bad duration -1"),
        ("pending_timeout = inf", "tasks.a.pending_timeout: bad duration inf"),
        ('timeout = "nan"', "tasks.a.timeout: bad duration 'nan'"),
    ],
)
def test_durations_of_zero_negative_or_not_finite_are_exit_2_at_the_key(
    tmp_path: Path, setting: str, shown: str
) -> None:
    project = _project(
        tmp_path, "[tasks.a]", 'command = ["true"]', 'outputs = ["{root}/a"]', setting
    )
    _exit_2_writing_nothing(project, [["check"], ["build"]], f"kflow.toml:8: {shown}")


ASYNC_TASK = """
import asyncio

from kflow import project, task

project(name="h", storage="file://./data")


@task(outputs=["{root}/hello.txt"])
async def hello(outputs):
    await asyncio.sleep(0)
    with open(outputs["0"], "w") as f:
        f.write("hello\\n")


@task(outputs=["{root}/fails.txt"])
async def fails(outputs):
    return 3
"""


def _build_in_a_process(project: Path, target: str) -> subprocess.CompletedProcess[str]:
    """`kflow build -C PROJECT TARGET` as a real process: the attempt runs
    `python -c BOOTSTRAP kflow.py TARGET`."""
    return subprocess.run(
        [sys.executable, "-m", "kflow", "build", "-C", str(project), target],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_async_decorated_task_runs_to_its_end(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", None, **{"kflow.py": ASYNC_TASK})
    assert kflow("check", "-C", project).exit_code == 0
    done = _build_in_a_process(project, "hello")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "never awaited" not in done.stderr
    assert (project / "data/hello.txt").read_text() == "hello\n"
    # its return value is the exit code, as for a plain function
    failed = _build_in_a_process(project, "fails")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "exit code 3" in failed.stdout + failed.stderr


def _gcsfs_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("gcsfs") is None


@pytest.mark.parametrize("url", ["foo://x", "gs://bucket/x"])
def test_unusable_storage_in_a_profile_names_file_line_and_key(tmp_path: Path, url: str) -> None:
    if url.startswith("gs:") and not _gcsfs_missing():
        pytest.skip("gcsfs is installed here: gs:// is usable")
    project = _project(
        tmp_path,
        "[profiles.p]",
        f'storage = "{url}"',
        "[tasks.a]",
        'command = ["true"]',
        'outputs = ["{root}/a"]',
    )
    commands = [["check"], ["check", "--profile", "p"], ["plan", "--profile", "p"]]
    shown = ("kflow.toml:6: profiles.p.storage: ", f"cannot use {url}")
    _exit_2_writing_nothing(project, [*commands, ["build", "--profile", "p"]], *shown)


@pytest.mark.parametrize("inputs", ["lib/*.txt", "lib"])
def test_why_for_a_changed_source_input_agrees_with_its_header(tmp_path: Path, inputs: str) -> None:
    project = _project(
        tmp_path,
        "[tasks.t]",
        'command = ["sh", "-c", "cat lib/*.txt > {output}"]',
        f'inputs = ["{inputs}"]',
        'outputs = ["{root}/o"]',
        **{"lib__a.txt": "a\n"},
    )
    assert kflow("build", "-C", project).exit_code == 0
    (project / "lib/a.txt").write_text("b\n")
    result = kflow("plan", "-C", project, "--why", "t")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 2) for line in result.stdout.splitlines()[1:]}
    assert result.stdout.splitlines()[0] == (
        f"t: RUNS (fingerprint changed: source input {inputs} changed)"
    )
    assert rows["fingerprint"][1:] == ["stale", f"changed: source input {inputs}"]
    assert "source input" in result.stdout and "ok    unchanged" not in result.stdout
