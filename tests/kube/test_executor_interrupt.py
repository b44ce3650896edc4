"""Real signals to a real `kflow build`: Ctrl-C leaves no pod; after kill -9 a new build
re-attaches to the pod still running instead of starting a second one."""

from __future__ import annotations

import signal
import time

import pytest

from tests.kube.long_pods import long_project, wait_for_pods
from tests.kube.test_executor_support import ClusterProject, cluster_project, gate
from tests.processes import wait_until

__all__ = ["cluster_project"]

LONG = long_project(3, "touch started-{n}; sleep 60; echo done > {output}")

# One slow task: it says it started, waits (WAIT: a fixed time, or the test's gate), ends.
SLOW = """
[project]
name = "adopt"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.slow]
command = ["sh", "-c", "echo $KFLOW_RUN >> runs; WAIT; echo done > {output}"]
outputs = ["{root}/slow.txt"]
"""
ADOPT = SLOW.replace("WAIT", "sleep 4")


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
    emulator = cluster_project.emulator
    # The pod's status says Running a moment after its process started (the kubelet reports
    # it): wait for it. On a busy machine the 4 s pod may even have ended by now; the
    # restart takes the result of a pod that succeeded meanwhile, as of one still running.
    name = left["metadata"]["name"]  # type: ignore[index]
    emulator.wait_for_phase(name, "Running", "Succeeded")
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert (cluster_project.folder / "data/slow.txt").read_text() == "done\n"
    assert emulator.count("POST", r"/pods$", status=201) == 1  # no second pod
    assert len(runs.read_text().split()) == 1  # the command ran once
    assert cluster_project.pods() == []


GATED = SLOW.replace("WAIT", gate())


def test_a_restarted_build_takes_the_result_of_a_pod_that_ended_while_kflow_was_dead(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The restart lists pods only after the killed build's pod has succeeded (a slow start,
    # a busy machine, a cron tick later): it must take that pod's result, not run it again.
    monkeypatch.setenv("KFLOW_LEASE_TTL", "1")
    cluster_project.write(GATED)
    folder = cluster_project.folder
    runs = folder / "runs"
    proc = cluster_project.start()
    wait_until(runs.exists, "the pod never started", proc)
    proc.kill()  # kill -9: no cleanup at all
    proc.wait()
    (left,) = cluster_project.pods()
    (folder / "go").touch()
    emulator = cluster_project.emulator
    emulator.wait_for_phase(left["metadata"]["name"], "Succeeded")  # type: ignore[index]
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert (folder / "data/slow.txt").read_text() == "done\n"
    assert emulator.count("POST", r"/pods$", status=201) == 1  # no second pod
    assert len(runs.read_text().split()) == 1  # the command ran once
    assert cluster_project.pods() == []  # the adopted pod was collected (pod_cleanup)


def test_a_succeeded_pod_kept_by_pod_cleanup_is_never_taken_by_a_later_build(
    cluster_project: ClusterProject,
) -> None:
    # A finished run's kept pod is marked collected: its result was that run's, so a build
    # that must make the output again runs the command again instead of adopting it.
    cluster_project.write(
        GATED.replace("[tasks.slow]", '[tasks.slow]\npod_cleanup = "never"'), go=""
    )
    folder = cluster_project.folder
    first = cluster_project.build()
    assert first.exit_code == 0, first.output
    (kept,) = cluster_project.pods()
    assert kept["metadata"]["labels"]["kflow.dev/collected"] == "true"  # type: ignore[index]
    (folder / "data/slow.txt").unlink()
    second = cluster_project.build()
    assert second.exit_code == 0, second.output
    assert (folder / "data/slow.txt").read_text() == "done\n"
    assert len((folder / "runs").read_text().split()) == 2  # ran again, as asked
    assert cluster_project.emulator.count("POST", r"/pods$", status=201) == 2
