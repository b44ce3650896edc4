"""Logs are followed while a pod runs, so they outlive it; the executor driven directly."""

from __future__ import annotations

import time

from kflow.executors import make_executor
from kflow.executors.base import AttemptSpec, AttemptState, AttemptUpdate, Executor
from kflow.graph import build_graph
from kflow.load import load_project
from kflow.run.attempts import task_environment
from kflow.state import fingerprint, fingerprint_parts, instance_key
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

PROJECT = """
[project]
name = "logs"
storage = "file://./data"

[tasks.talk]
image = "busybox:1.36"
command = ["sh", "-c", "echo first words; touch started; sleep 30"]
outputs = ["{root}/talk.txt"]
"""


def _until(executor: Executor, state: AttemptState, timeout: float = 60) -> AttemptUpdate:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for update in executor.wait(0.1):
            if update.state is state:
                return update
    raise AssertionError(f"no {state} update")


def test_the_log_of_a_pod_deleted_while_running_is_kept(cluster_project: ClusterProject) -> None:
    cluster_project.write(PROJECT)
    project = load_project(cluster_project.folder, profile="kube")
    (instance,) = build_graph(project, ["talk"]).instances.values()
    executor = make_executor("kubernetes", project)
    try:
        env = task_environment(instance, "run-1")
        key, fp = instance_key(instance.id), fingerprint(fingerprint_parts(instance))
        spec = AttemptSpec("run-1", instance, 1, instance.argv, env, key, fp)
        handle = executor.submit(spec)
        _until(executor, AttemptState.RUNNING)
        emulator = cluster_project.emulator
        emulator.wait_for(lambda: (cluster_project.folder / "started").exists())
        # the line has travelled through the log stream kflow follows
        streams = executor._streams  # type: ignore[attr-defined]
        emulator.wait_for(
            lambda: any(b"first words" in f.text() for f in list(streams.followers.values()))
        )
        emulator.faults.delete_externally("*")
        failed = _until(executor, AttemptState.FAILED)
        assert failed.counts_as_attempt is False
        assert b"first words" in executor.logs(handle)
        assert emulator.count("GET", r"/log$") == 1  # the stream; no second read
        executor.release(handle)
    finally:
        executor.close()
    assert cluster_project.pods() == []
