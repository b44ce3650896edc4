"""Real signals to a real `kflow build`: Ctrl-C leaves no pod; after kill -9 a new build
re-attaches to the pod still running instead of starting a second one."""

from __future__ import annotations

import signal
import time

import pytest

from tests.kube.long_pods import long_project, wait_for_pods
from tests.kube.test_executor_support import ClusterProject, cluster_project
from tests.processes import wait_until

__all__ = ["cluster_project"]

LONG = long_project(3, "touch started-{n}; sleep 60; echo done > {output}")

ADOPT = """
[project]
name = "adopt"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.slow]
command = ["sh", "-c", "echo $KFLOW_RUN >> runs; sleep 4; echo done > {output}"]
outputs = ["{root}/slow.txt"]
"""


def test_ctrl_c_deletes_every_pod_of_the_run_and_exits_130(
    cluster_project: ClusterProject,
) -> None:
    cluster_project.write(LONG)
    proc = cluster_project.start("-j", "3")
    folder = cluster_project.folder
    wait_for_pods(folder, 3, proc)
    assert len(cluster_project.pods()) == 3
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 30  # the pods were deleted, not waited for (60 s)
    assert cluster_project.pods() == []
    assert cluster_project.emulator.running_processes() == []
    assert not list(folder.glob("data/slow-*.txt"))


@pytest.mark.parametrize("lease_ttl", ["1"])
def test_a_restarted_build_adopts_the_pod_a_killed_build_left_running(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch, lease_ttl: str
) -> None:
    monkeypatch.setenv("KFLOW_LEASE_TTL", lease_ttl)
    cluster_project.write(ADOPT)
    runs = cluster_project.folder / "runs"
    proc = cluster_project.start()
    wait_until(runs.exists, "the pod never started", proc)
    proc.kill()  # kill -9: no cleanup at all
    proc.wait()
    (left,) = cluster_project.pods()
    assert left["status"]["phase"] == "Running"  # type: ignore[index]
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert (cluster_project.folder / "data/slow.txt").read_text() == "done\n"
    emulator = cluster_project.emulator
    assert emulator.count("POST", r"/pods$", status=201) == 1  # no second pod
    assert len(runs.read_text().split()) == 1  # the command ran once
    assert cluster_project.pods() == []
