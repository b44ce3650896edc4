"""`kflow doctor` against the emulated cluster; `delete_leftover_pods` for `kflow clean --pods`."""

from __future__ import annotations

import pytest

from kflow.executors.kubernetes.cleanup import delete_leftover_pods
from kflow.load import load_project
from tests.helpers import kflow
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

PROJECT = """
[project]
name = "doc"
storage = "file://./data"

[tasks.t]
image = "busybox:1.36"
command = ["sh", "-c", "sleep 30"]
outputs = ["{root}/t.txt"]
"""


def _doctor(project: ClusterProject) -> tuple[int, str]:
    result = kflow("doctor", "-C", str(project.folder), "--profile", "kube")
    return result.exit_code, result.output


def test_doctor_passes_on_a_healthy_cluster(cluster_project: ClusterProject) -> None:
    cluster_project.write(PROJECT)
    code, out = _doctor(cluster_project)
    assert code == 0, out
    assert "ok   context: kube-emulator" in out and "namespace kflow-test" in out
    assert "ok   server: v1.33" in out
    assert "ok   can create pods" in out and "ok   can get pods/log" in out
    assert "leases" not in out  # runs coordinate through storage: no cluster Leases needed
    assert "ok   dry-run pod create" in out
    assert "ok   storage" in out
    assert cluster_project.emulator.pods() == []  # the dry run created nothing


def test_doctor_names_a_missing_permission_and_how_to_grant_it(
    cluster_project: ClusterProject,
) -> None:
    cluster_project.emulator.rbac.deny("watch", "pods")
    cluster_project.write(PROJECT)
    code, out = _doctor(cluster_project)
    assert code == 4, out
    assert "FAIL can watch pods" in out
    assert "verbs: [watch]" in out
    assert "ok   can create pods" in out


def test_doctor_reports_an_admission_rejection(cluster_project: ClusterProject) -> None:
    cluster_project.emulator.faults.admission_deny("images must come from our registry")
    cluster_project.write(PROJECT)
    code, out = _doctor(cluster_project)
    assert code == 4, out
    assert "FAIL dry-run pod create" in out and "images must come from our registry" in out


def test_doctor_says_when_the_cluster_is_unreachable(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_RETRY_DEADLINE", "0.3")
    cluster_project.write(PROJECT)
    kubeconfig = cluster_project.folder / "kubeconfig"
    kubeconfig.write_text(
        kubeconfig.read_text().replace(cluster_project.emulator.url, "http://127.0.0.1:9")
    )
    code, out = _doctor(cluster_project)
    assert code == 4, out
    assert "FAIL server" in out and "127.0.0.1:9" in out


def test_leftover_pods_are_deleted(cluster_project: ClusterProject) -> None:
    cluster_project.write(PROJECT)
    proc = cluster_project.start()
    cluster_project.emulator.wait_for(lambda: cluster_project.pods(), timeout=30)
    proc.kill()
    proc.wait()
    project = load_project(cluster_project.folder, profile="kube")
    assert delete_leftover_pods(project, run_id="some-other-run") == 0
    result = kflow("clean", "--pods", "-C", str(cluster_project.folder), "--profile", "kube")
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted 1 leftover pod\n"
    assert cluster_project.pods() == []
