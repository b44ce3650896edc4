"""A ResourceQuota that is full is waited out (403 "exceeded quota" frees up as pods end), for
``KFLOW_KUBE_QUOTA_WAIT`` seconds at most; any other 403 (RBAC) still fails at once."""

from __future__ import annotations

import pytest

from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

CELLS = """
[project]
name = "quota"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.cell]
matrix = { n = ["1", "2", "3", "4"] }
command = ["sh", "-c", "sleep 0.5; echo {n} > {output}"]
outputs = ["{root}/cell-{n}.txt"]
"""

ONE = """
[project]
name = "quota"
storage = "file://./data"

[tasks.only]
image = "busybox:1.36"
command = ["sh", "-c", "echo 1 > {output}"]
outputs = ["{root}/only.txt"]
"""


def test_creates_over_the_quota_wait_for_pods_to_end(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    quota = emulator.faults.pod_quota(2, name="compute")
    cluster_project.write(CELLS)
    result = cluster_project.build("-j", "4")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (cluster_project.folder / "data").glob("cell-*.txt")) == [
        f"cell-{n}.txt" for n in range(1, 5)
    ]
    # Four pods at once do not fit a quota of two: refused, then created once others ended.
    assert quota.hits >= 1
    refused = emulator.requests("POST", r"/pods$", status=403)
    assert len(refused) == quota.hits
    assert emulator.count("POST", r"/pods$", status=201) == 4
    assert emulator.max_concurrent("pods") <= 2
    assert cluster_project.pods() == []


def test_a_quota_that_stays_full_fails_the_attempt_naming_it(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_QUOTA_WAIT", "1")
    emulator = cluster_project.emulator
    quota = emulator.faults.pod_quota(0, name="compute")
    cluster_project.write(ONE)
    result = cluster_project.build()
    assert result.exit_code == 1, result.output  # the attempt failed; the cluster is fine
    assert "quota stayed exceeded" in result.output
    assert "exceeded quota: compute, requested: pods=1, used: pods=0, limited: pods=0" in (
        result.output
    )
    assert quota.hits >= 2  # retried before giving up
    assert emulator.count("POST", r"/pods$") == quota.hits
    assert cluster_project.pods() == []


def test_rbac_forbidden_is_not_retried(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    emulator.rbac.deny("create", "pods")
    cluster_project.write(ONE)
    result = cluster_project.build()
    assert result.exit_code == 4, result.output
    assert 'cannot create resource "pods"' in result.output
    assert emulator.count("POST", r"/pods$") == 1
    assert cluster_project.pods() == []
