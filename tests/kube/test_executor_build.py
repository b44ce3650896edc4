"""`kflow build` with pods: a project builds on the emulated cluster, then is up to date."""

from __future__ import annotations

import json

from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

PROJECT = """
[project]
name = "demo"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.hello]
command = ["sh", "-c", "echo hello from $KFLOW_TASK; echo hi > {output}"]
outputs = ["{root}/hello.txt"]

[tasks.shout]
requires = ["hello"]
matrix = { n = ["1", "2", "3"] }
command = ["sh", "-c", "tr a-z A-Z < {input} > {output}"]
outputs = ["{root}/shout-{n}.txt"]
"""


def _record(project: ClusterProject) -> dict[str, object]:
    records = sorted((project.folder / "data/.kflow/runs").glob("*.json"))
    data: dict[str, object] = json.loads(records[-1].read_text())
    return data


def test_a_project_builds_with_pods_and_the_second_build_does_nothing(
    cluster_project: ClusterProject,
) -> None:
    cluster_project.write(PROJECT)
    result = cluster_project.build("-j", "4")
    assert result.exit_code == 0, result.output
    for n in ("1", "2", "3"):
        assert (cluster_project.folder / f"data/shout-{n}.txt").read_text() == "HI\n"
    record = _record(cluster_project)
    assert record["executor"] == "kubernetes"
    log = (cluster_project.folder / "data/.kflow/logs").rglob("hello*")
    assert "hello from hello" in next(iter(log)).read_text()
    assert cluster_project.pods() == []  # succeeded pods are deleted
    creates = cluster_project.emulator.count("POST", r"/pods$")
    assert creates == 4
    again = cluster_project.build()
    assert again.exit_code == 0, again.output
    assert cluster_project.emulator.count("POST", r"/pods$") == 4


def test_the_executor_starts_without_the_slow_generated_api(
    cluster_project: ClusterProject,
) -> None:
    import subprocess
    import sys

    cluster_project.write(PROJECT)
    code = (
        "import sys, time; from pathlib import Path; t = time.monotonic();"
        "from kflow.load import load_project;"
        "from kflow.executors import make_executor;"
        f"p = load_project(Path({str(cluster_project.folder)!r}), profile='kube');"
        "e = make_executor('kubernetes', p); e.close();"
        "assert 'kubernetes.client.api.core_v1_api' not in sys.modules;"
        "print(time.monotonic() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
