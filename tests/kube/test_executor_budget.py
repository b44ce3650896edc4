"""A 100-pod run costs a bounded number of API requests (research §5 item 3).

Budget, stated: at most 3 requests per pod (create, log, delete) plus 5 for the whole
run (the run's LIST and WATCH, the one adoption LIST, and room for a watch resumed
once). Tracking never polls a pod: there is no GET of a single pod at all.
"""

from __future__ import annotations

import pytest

from tests.kube.test_executor_support import ClusterProject, cluster_project, wide_project

__all__ = ["cluster_project"]

N = 100
PROJECT = wide_project("many", N)


def test_a_100_pod_run_stays_within_its_request_budget(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_QPS", "500")  # the default 20 creates+deletes/s is slow here
    cluster_project.write(PROJECT)
    result = cluster_project.build("-j", "25")
    assert result.exit_code == 0, result.output
    assert len(list((cluster_project.folder / "data").glob("cell-*.txt"))) == N
    emulator = cluster_project.emulator
    verbs = emulator.verb_counts()
    total = sum(verbs.values())
    assert total <= 3 * N + 5, verbs
    assert verbs["create"] == N and verbs["delete"] == N, verbs
    assert verbs["list"] <= 2 and verbs["watch"] <= 2, verbs
    assert verbs["get"] == N, verbs  # the logs; never a pod
    assert emulator.max_concurrent("watches") == 1
    assert cluster_project.pods() == []
