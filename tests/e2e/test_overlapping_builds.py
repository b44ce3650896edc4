"""N overlapping `kflow build` processes run every instance of a graph exactly once (SPEC §3).

Each task appends its id to a side-effect log, sleeps a random while and writes its
output. The builds start at random offsets, so every way of meeting another run
happens: waiting on a held lease, or finding a lease free because the other run has
finished that instance already and released it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.storage.s3server import S3Server

# A fan-out/fan-in graph: a → m[region] and b1..b3 → c (fan-in over everything) → d1, d2 → e.
HEAD = """
[project]
name = "overlap"
storage = "file://./data"
default = ["e"]
"""


def _task(name: str, pause: str, requires: list[str], extra: str = "") -> str:
    reqs = ", ".join(f'"{r}"' for r in requires)
    return f"""
[tasks.{name}]
requires = [{reqs}]
{extra}command = ["sh", "-c", 'echo "$KFLOW_TASK" >> effects.log; sleep {pause}; echo ok > "$1"', "-", "{{output}}"]
outputs = ["{{root}}/{name}{{suffix}}.txt"]
"""  # noqa: E501


def _project(folder: Path, rng: random.Random) -> list[str]:
    """Write the project with random task durations; the ids of its instances."""

    def pause() -> str:
        return f"{rng.uniform(0.05, 0.5):.2f}"

    regions = ["x", "y", "z"]
    parts = [HEAD]
    # the matrix task reads its duration from a file per region
    matrix = 'matrix = { region = ["x", "y", "z"] }\n'
    parts.append(_task("a", pause(), []).replace("{suffix}", ""))
    m = _task("m", "$(cat pause-$KFLOW_PARAM_REGION)", ["a"], matrix)
    parts.append(m.replace("{suffix}", "-{region}"))
    for region in regions:
        (folder / f"pause-{region}").write_text(pause())
    ids = ["a", *(f"m[region={r}]" for r in regions)]
    for n in (1, 2, 3):
        parts.append(_task(f"b{n}", pause(), ["a"]).replace("{suffix}", ""))
        ids.append(f"b{n}")
    parts.append(_task("c", pause(), ["m", "b1", "b2", "b3"]).replace("{suffix}", ""))
    for n in (1, 2):
        parts.append(_task(f"d{n}", pause(), ["c"]).replace("{suffix}", ""))
    parts.append(_task("e", pause(), ["d1", "d2"]).replace("{suffix}", ""))
    ids += ["c", "d1", "d2", "e"]
    (folder / "kflow.toml").write_text("".join(parts))
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("repetition", [1, 2])
@pytest.mark.parametrize("builds", [2, 4, 8])
def test_overlapping_builds_run_every_instance_exactly_once(
    tmp_path: Path, builds: int, repetition: int
) -> None:
    seed = f"{builds}-{repetition}-{os.getpid()}"
    rng = random.Random(seed)
    ids = _project(tmp_path, rng)
    offsets = sorted(rng.uniform(0, 0.8) for _ in range(builds))
    env = {**os.environ, "KFLOW_LEASE_TTL": "30"}
    procs: list[subprocess.Popen[str]] = []
    began = time.monotonic()
    for offset in offsets:
        # the random start offsets are the test's input, not a wait for a condition
        time.sleep(max(0.0, began + offset - time.monotonic()))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "-j", "4"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    context = f"seed {seed}, offsets {offsets}\n" + "\n----\n".join(outputs)
    assert [proc.returncode for proc in procs] == [0] * builds, context
    effects = Counter((tmp_path / "effects.log").read_text().split())
    assert effects == Counter(ids), context
    assert (tmp_path / "data/e.txt").read_text() == "ok\n"


# Over S3 (moto's server): the leases and the records are objects; tasks put their outputs.
PUT = """
import os, sys, time
import boto3

endpoint, url, pause = sys.argv[1:]
with open("effects.log", "a") as log:
    log.write(os.environ["KFLOW_TASK"] + "\\n")
time.sleep(float(pause))
bucket, _, key = url.removeprefix("s3://").partition("/")
boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").put_object(
    Bucket=bucket, Key=key, Body=b"ok"
)
"""

S3_PROJECT = """
[project]
name = "overlap"
storage = "s3://BUCKET/p"
storage_options = { endpoint_url = "ENDPOINT" }
default = ["c"]

[tasks.a]
command = ["python", "put.py", "ENDPOINT", "{output}", "0.3"]
outputs = ["{root}/a.txt"]

[tasks.m]
requires = ["a"]
matrix = { region = ["x", "y"] }
command = ["python", "put.py", "ENDPOINT", "{output}", "0.1"]
outputs = ["{root}/m-{region}.txt"]

[tasks.c]
requires = ["m"]
command = ["python", "put.py", "ENDPOINT", "{output}", "0.1"]
outputs = ["{root}/c.txt"]
"""


@pytest.mark.slow
def test_two_overlapping_builds_on_s3_run_every_instance_once(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    toml = s3_server.fill(S3_PROJECT, s3_bucket)
    (tmp_path / "kflow.toml").write_text(toml)
    (tmp_path / "put.py").write_text(PUT)
    env = {**os.environ, **s3_server.env(), "KFLOW_LEASE_TTL": "30"}
    command = [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path)]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    # the second starts once the first has started its first task: it meets the first run
    # holding `a`, then finds later instances built and their leases already released
    deadline = time.monotonic() + 60
    while not (tmp_path / "effects.log").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    second = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    outputs = [proc.communicate(timeout=120)[0] for proc in (first, second)]
    context = "\n----\n".join(outputs)
    assert (first.returncode, second.returncode) == (0, 0), context
    effects = Counter((tmp_path / "effects.log").read_text().split())
    assert effects == Counter(["a", "m[region=x]", "m[region=y]", "c"]), context
