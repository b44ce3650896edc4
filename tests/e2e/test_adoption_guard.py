"""An output left half-written by a killed attempt is never adopted by another instance
that makes the same file: a parameter value used only in the command, or the task renamed,
gives a new instance id with no record, and "outputs that exist with no record count as up
to date" (SPEC §2) must not take a file whose last attempt did not finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import data_project, kflow
from tests.processes import has_text, start_build, wait_until
from tests.storage.s3server import S3Server

# The command writes half its output, then waits for the test's "go" before the rest.
TASK = """
[params]
v = "p1"

[tasks.{name}]
command = ["sh", "-c", '''echo HALF-{{v}} > {{output}}; echo started > started;
           while [ ! -e go ]; do sleep 0.02; done; echo REST-{{v}} >> {{output}}''']
outputs = ["{{root}}/t.txt"]
"""


def _runs(project: Path, *args: str) -> dict[str, str]:
    result = kflow("plan", "-C", project, "--json", *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["instances"]
    return {row["instance"]: row["reason"] for row in rows if row["runs"]}


def _killed_halfway(project: Path) -> None:
    """A build of t[v=p1] killed with SIGKILL while its output is half written."""
    proc = start_build(project, env={"KFLOW_KILL_GRACE": "0.5"})
    try:
        wait_until(has_text(project / "started"), "the attempt never started", proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        (project / "go").touch()  # an attempt the kill left behind ends
    assert (project / "data" / "t.txt").read_text() == "HALF-p1\n"
    (project / "go").unlink()


@pytest.mark.parametrize("change", ["param", "rename"])
def test_a_half_written_output_is_not_adopted_by_another_instance(
    tmp_path: Path, change: str
) -> None:
    data_project(tmp_path, TASK.format(name="t"))
    _killed_halfway(tmp_path)
    if change == "param":
        args: tuple[str, ...] = ("-p", "v=p2")
        instance = "t[v=p2]"
    else:
        data_project(tmp_path, TASK.format(name="u"))
        args, instance = (), "u[v=p1]"
    runs = _runs(tmp_path, *args)
    assert list(runs) == [instance], runs
    assert runs[instance].startswith("incomplete"), runs
    why = kflow("plan", "-C", tmp_path, "--why", instance, *args)
    assert "did not finish" in why.stdout, why.output

    (tmp_path / "go").touch()
    result = kflow("build", "-C", tmp_path, *args)
    assert result.exit_code == 0, result.output
    value = args[1][2:] if args else "p1"
    assert (tmp_path / "data" / "t.txt").read_text() == f"HALF-{value}\nREST-{value}\n"
    assert _runs(tmp_path, *args) == {}


# Over S3 (moto's server): a few instances are listed by key there, so the marks of other
# instances need the whole listing; the task puts its half, then its whole output.
PUT = """
import sys, time
from pathlib import Path
import boto3

endpoint, url, value = sys.argv[1:]
bucket, _, key = url.removeprefix("s3://").partition("/")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.put_object(Bucket=bucket, Key=key, Body=f"HALF-{value}".encode())
Path("started").write_text("started\\n")
while not Path("go").exists():
    time.sleep(0.02)
s3.put_object(Bucket=bucket, Key=key, Body=f"WHOLE-{value}".encode())
"""

S3_TASK = """
[project]
storage = "s3://BUCKET/p"
storage_options = { endpoint_url = "ENDPOINT" }

[params]
v = "p1"

[tasks.t]
command = ["python", "put.py", "ENDPOINT", "{output}", "{v}"]
outputs = ["{root}/t.txt"]
"""


@pytest.mark.slow
def test_a_half_written_object_is_not_adopted_by_another_instance_on_s3(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    toml = s3_server.fill(S3_TASK, s3_bucket)
    (tmp_path / "kflow.toml").write_text(toml)
    (tmp_path / "put.py").write_text(PUT)
    env = {**s3_server.env(), "KFLOW_KILL_GRACE": "0.5"}
    proc = start_build(tmp_path, env=env)
    try:
        wait_until(has_text(tmp_path / "started"), "the attempt never started", proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        (tmp_path / "go").touch()

    def kflow_s3(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "kflow", *args, "-C", str(tmp_path), "-p", "v=p2"]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
        )

    planned = kflow_s3("plan", "--json")
    assert planned.returncode == 0, planned.stderr
    rows = [row for row in json.loads(planned.stdout)["instances"] if row["runs"]]
    assert [(row["instance"], row["reason"][:10]) for row in rows] == [
        ("t[v=p2]", "incomplete")
    ], planned.stdout
    built = kflow_s3("build")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "t[v=p2]" in built.stdout + built.stderr
