"""A pure-Python project's decorated task runs in a pod whose working folder holds the project.

The pod's `python` must import the kflow package, not the project's own `kflow.py`.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers import kflow
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

PURE = """\
from kflow import profile, project, task

project(name="pure", storage="file://./data")
profile("kube", executor="kubernetes", kubeconfig="kubeconfig", image="python:3.12-slim")


@task(outputs=["{root}/hello.txt"])
def hello(outputs):
    with open(outputs["0"], "w") as f:
        f.write("hello from a pod")
"""

# The "image" is this interpreter: its folder first on the container's PATH, and the
# PYTHONPATH the tests run with (if any), so `python` there has kflow installed.
IMAGE_ENV = {
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
}


@pytest.mark.kube_emulator(extra_env=IMAGE_ENV)
def test_kflow_py_project_decorated_task_runs_in_a_pod(cluster_project: ClusterProject) -> None:
    (cluster_project.folder / "kflow.py").write_text(PURE)
    result = kflow("build", "-C", str(cluster_project.folder), "--profile", "kube")
    assert result.exit_code == 0, result.output
    assert (cluster_project.folder / "data/hello.txt").read_text() == "hello from a pod"
    assert cluster_project.emulator.count("POST", r"/pods$") == 1
