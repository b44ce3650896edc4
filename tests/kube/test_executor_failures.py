"""Failures are named, not timed out: each surfaces its reason and `kflow build` exits 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import kflow
from tests.kube.emulator import KubeEmulator
from tests.kube.test_executor_support import ClusterProject, alongside, cluster_project, gate

__all__ = ["cluster_project"]

TASK = """
[project]
name = "fail"
storage = "file://./data"

[tasks.job]
image = "{image}"
command = ["sh", "-c", "{script}"]
outputs = ["{root}/out.txt"]
{extra}
"""


def _project(
    image: str = "busybox:1.36", script: str = "echo ok > {output}", extra: str = ""
) -> str:
    return TASK.replace("{image}", image).replace("{script}", script).replace("{extra}", extra)


def _nothing(emulator: KubeEmulator) -> None:
    pass


CASES: list[tuple[str, str, Callable[[KubeEmulator], object], list[str]]] = [
    (
        "image-pull",
        _project(image="registry.example.com/missing:1"),
        lambda e: e.faults.image_pull_error("registry.example.com/*"),
        ["cannot pull image 'registry.example.com/missing:1'"],
    ),
    (
        "invalid-image",
        _project(image="registry.example.com/oops:1"),
        lambda e: e.faults.image_pull_error("*oops*", kind="InvalidImageName"),
        ["InvalidImageName", "registry.example.com/oops:1"],
    ),
    (
        "missing-secret",
        _project(extra='env.TOKEN = { secret = "api-creds", key = "token" }'),
        _nothing,
        ["CreateContainerConfigError", 'secret "api-creds" not found'],
    ),
    (
        "unschedulable",
        _project(extra='pending_timeout = "3s"\nresources = { cpu = "64" }'),
        lambda e: e.faults.unschedulable(message="0/1 nodes are available: 1 Insufficient cpu."),
        ["Unschedulable", "0/1 nodes are available: 1 Insufficient cpu."],
    ),
    (
        "oom",
        _project(script="echo eating; sleep 5", extra='resources = { memory = "64Mi" }'),
        lambda e: e.faults.oom_kill(after_output="eating"),
        ["OOMKilled", "memory limit 64Mi"],
    ),
    (
        "deadline",
        _project(script="sleep 30", extra='timeout = "2s"'),
        _nothing,
        ["timed out after 2s (DeadlineExceeded)"],
    ),
    (
        "exit-code",
        _project(script="echo something went wrong; exit 3"),
        _nothing,
        ["exit code 3", "something went wrong"],
    ),
]


@pytest.mark.parametrize(
    ("toml", "fault", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_failing_pod_names_its_reason_and_exits_1(
    cluster_project: ClusterProject,
    toml: str,
    fault: Callable[[KubeEmulator], object],
    expected: list[str],
) -> None:
    fault(cluster_project.emulator)
    cluster_project.write(toml)
    result = cluster_project.build()
    assert result.exit_code == 1, result.output
    for text in expected:
        assert text in result.output, result.output
    assert not (cluster_project.folder / "data/out.txt").exists()


def test_a_failed_pod_is_kept_for_debugging_unless_cleanup_says_always(
    cluster_project: ClusterProject,
) -> None:
    cluster_project.write(_project(script="exit 2"))
    assert cluster_project.build().exit_code == 1
    (kept,) = cluster_project.pods()
    assert kept["status"]["phase"] == "Failed"  # type: ignore[index]
    cluster_project.write(_project(script="exit 2", extra='pod_cleanup = "always"'))
    assert cluster_project.build().exit_code == 1
    assert cluster_project.pods() == []  # the kept one was replaced, the new one deleted


def _running(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running"  # type: ignore[no-any-return]


def _go(cluster_project: ClusterProject) -> Path:
    return cluster_project.folder / "go"


def _only_run_record(cluster_project: ClusterProject) -> dict[str, Any]:
    (path,) = (cluster_project.folder / "data/.kflow/runs").glob("*.json")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def test_eviction_is_retried_without_using_retries(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    rule = emulator.faults.evict("*", kind="node-pressure", times=1)  # the first pod only
    # the first pod is still running when the kubelet evicts it; its retry finds the gate open
    script = f"echo attempt on $HOSTNAME; {gate()}; echo ok > {{output}}"
    cluster_project.write(_project(script=script))
    with alongside(lambda: emulator.wait_for(lambda: rule.hits), opens=_go(cluster_project)):
        result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert emulator.count("POST", r"/pods$", status=201) == 2  # retries = 0, yet 2 pods
    assert (cluster_project.folder / "data/out.txt").read_text() == "ok\n"
    # The free retry is an attempt of its own: its own number, pod, record and log.
    first, second = _only_run_record(cluster_project)["instances"]["job"]["attempts"]
    assert (first["number"], first["status"]) == (1, "failed")
    assert (second["number"], second["status"]) == (2, "succeeded")
    assert (first["free"], second["free"]) == (True, False)  # the report marks it
    assert first["where"] != second["where"]
    assert first["log"] != second["log"]
    logs = [(cluster_project.folder / a["log"]).read_text() for a in (first, second)]
    assert f"attempt on {first['where']}" in logs[0], logs
    assert f"attempt on {second['where']}" in logs[1], logs
    shown = kflow("runs", "show", "latest", "-C", str(cluster_project.folder))
    assert shown.exit_code == 0, shown.output
    assert "attempt 1: failed (" in shown.stdout and "attempt 2: succeeded," in shown.stdout
    assert first["log"] in shown.stdout and second["log"] in shown.stdout
    (kept,) = cluster_project.pods()  # the evicted pod, kept for debugging like any failed one
    assert kept["metadata"]["name"] == first["where"]  # type: ignore[index]


def test_an_evicted_attempt_does_not_give_a_failing_task_an_extra_try(
    cluster_project: ClusterProject,
) -> None:
    emulator = cluster_project.emulator
    rule = emulator.faults.evict("*", kind="node-pressure", times=1)
    cluster_project.write(_project(script=f"{gate()}; exit 3"))  # retries = 0
    with alongside(lambda: emulator.wait_for(lambda: rule.hits), opens=_go(cluster_project)):
        result = cluster_project.build()
    assert result.exit_code == 1, result.output
    # the evicted pod (free) and the one try the task has: no third pod
    assert emulator.count("POST", r"/pods$", status=201) == 2
    attempts = _only_run_record(cluster_project)["instances"]["job"]["attempts"]
    assert [a["number"] for a in attempts] == [1, 2]
    assert attempts[1]["exit_code"] == 3


def test_a_pod_deleted_by_someone_else_is_retried_for_free(cluster_project: ClusterProject) -> None:
    emulator, folder = cluster_project.emulator, cluster_project.folder
    cluster_project.write(_project(script=f"touch started; {gate()}; echo ok > {{output}}"))

    def delete_once_started() -> None:
        emulator.wait_for(lambda: (folder / "started").exists())
        assert emulator.faults.delete_externally("*") == 1

    with alongside(delete_once_started, opens=folder / "go"):
        result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert emulator.count("POST", r"/pods$", status=201) == 2


def test_a_pod_on_a_lost_node_is_retried_for_free(cluster_project: ClusterProject) -> None:
    emulator, folder = cluster_project.emulator, cluster_project.folder
    cluster_project.write(_project(script=f"touch started; {gate()}; echo ok > {{output}}"))

    def lose_then_restore() -> None:
        # Running as the API reports it (the process can start before the kubelet says so):
        # the node is lost under a running pod, whose status then freezes.
        emulator.wait_for(lambda: (folder / "started").exists())
        emulator.wait_for(lambda: [p for p in cluster_project.pods() if _running(p)])
        emulator.faults.lose_node(mark_not_ready_after=0.0)
        emulator.wait_for(lambda: emulator.count("DELETE"))  # kflow gave up on it
        emulator.faults.restore_node()

    with alongside(lose_then_restore, opens=folder / "go"):
        result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert "node lost" in result.output
    # the pod given up on is deleted, not kept: it must not go on beside its retry
    assert cluster_project.pods() == []
    assert emulator.count("POST", r"/pods$", status=201) == 2
