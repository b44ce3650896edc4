"""`kflow cancel` on a build that runs pods: its pods are deleted, the run recorded cancelled."""

from __future__ import annotations

import json

import pytest

from tests.helpers import kflow
from tests.kube.long_pods import long_project, wait_for_pods
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

LONG = long_project(2, "echo partial > {output}; touch started-{n}; sleep 60")


def test_cancel_deletes_the_runs_pods_and_exits_130(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_CANCEL_POLL", "0.2")
    cluster_project.write(LONG)
    folder = cluster_project.folder
    proc = cluster_project.start("-j", "2", "--json")
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())  # run_started comes first, before any pod
    assert first["event"] == "run_started"
    run_id = first["run_id"]
    wait_for_pods(folder, 2, proc)
    assert len(cluster_project.pods(run_id)) == 2

    asked = kflow("cancel", run_id, "-C", folder, "--profile", "kube")
    assert asked.exit_code == 0, asked.output
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    finished = json.loads(out.strip().splitlines()[-1])
    assert finished["event"] == "run_finished" and finished["status"] == "cancelled"
    assert cluster_project.pods() == []
    assert cluster_project.emulator.running_processes() == []
    assert not list(folder.glob("data/slow-*.txt"))
    record = json.loads((folder / f"data/.kflow/runs/{run_id}.json").read_text())
    assert record["status"] == "cancelled"
