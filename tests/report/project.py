"""A small project for the report tests: a fan-out, a task that fails after a retry, markup
in a parameter value; built for real through the CLI."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import kflow, write_project

MARKUP = "<img src=x onerror=alert(1)>"

PROJECT = """
[project]
name = "demo"
storage = "file://./data"
default = ["summary"]

[params]
note = { default = "<img src=x onerror=alert(1)>" }

[tasks.fetch]
matrix = { region = ["eu", "us", "asia"] }
command = "sh -c 'echo fetching {region}; echo {region} > {output}'"
outputs = ["{root}/raw-{region}.txt"]

[tasks.flaky]
requires = [{ task = "fetch", params = { region = "{region}" } }]
matrix = { region = ["eu", "us", "asia"] }
retries = 1
retry_delay = 0.01
command = "sh -c 'test {region} != us || {{ echo boom-us-tail; exit 3; }}; cat {input} > {output}'"
outputs = ["{root}/clean-{region}.txt"]

[tasks.summary]
requires = ["flaky"]
command = "sh -c 'echo {note}; cat {inputs} > {output}'"
outputs = ["{root}/summary.txt"]
"""


def built_project(folder: Path) -> Path:
    """The project, built once with -k: 3 fetch, 2 flaky ok + 1 failed twice, summary skipped."""
    write_project(folder, PROJECT)
    result = kflow("build", "-C", folder, "-k")
    assert result.exit_code == 1, result.output
    return folder
