"""The run survives what clusters do: dropped and stalled watches, 410 Gone, 429, 5xx;
and fails fast, with the server's words, on what retrying cannot fix (403, unreachable)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kube.emulator import KubeEmulator
from tests.kube.test_executor_support import ClusterProject, alongside, cluster_project, gate

__all__ = ["cluster_project"]

PROJECT = """
[project]
name = "sturdy"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.first]
command = ["sh", "-c", "touch first-started; sleep 0.6; echo 1 > {output}"]
outputs = ["{root}/first.txt"]

[tasks.second]
requires = ["first"]
command = ["sh", "-c", "cat {input} > {output}"]
outputs = ["{root}/second.txt"]
"""


# ``first`` runs until the test has done what it does to the cluster (the gate opens then).
GATED = PROJECT.replace("sleep 0.6", gate())


def _while_first_runs(project: ClusterProject, action: Callable[[KubeEmulator], object]) -> None:
    project.write(GATED)

    def run() -> None:
        project.emulator.wait_for(lambda: (project.folder / "first-started").exists())
        action(project.emulator)

    with alongside(run, opens=project.folder / "go"):
        result = project.build()
    assert result.exit_code == 0, result.output
    assert (project.folder / "data/second.txt").read_text() == "1\n"


@pytest.mark.parametrize("mode", ["clean", "reset", "truncate"])
def test_a_dropped_watch_is_resumed_from_the_last_version(
    cluster_project: ClusterProject, mode: str
) -> None:
    def drop(emulator: KubeEmulator) -> None:
        emulator.wait_for(lambda: emulator.open_streams("watch"))
        assert emulator.faults.drop_watches(mode) >= 1

    _while_first_runs(cluster_project, drop)
    emulator = cluster_project.emulator
    assert emulator.count(verb="watch") >= 2
    assert emulator.count(verb="list") == 2  # the run's list, the adoption lookup: no relist


@pytest.mark.parametrize("http_410", [False, True])
def test_410_gone_relists_and_nothing_is_lost(
    cluster_project: ClusterProject, http_410: bool
) -> None:
    def expire(emulator: KubeEmulator) -> None:
        # Writes the pod watch does not see, then compaction: its version is now too old.
        emulator.create_configmap("unrelated", {"a": "b"})
        emulator.faults.expire_history(http_410=http_410)
        emulator.faults.drop_watches("reset")

    _while_first_runs(cluster_project, expire)
    assert cluster_project.emulator.count(verb="list") >= 3  # relisted after the 410


def test_a_stalled_watch_is_noticed_and_resumed(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_WATCH_SECONDS", "1")  # read timeout 2 s
    _while_first_runs(cluster_project, lambda e: e.faults.stall_watches(30))


def test_429_on_creates_and_deletes_is_honoured(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    emulator.faults.fail_requests("POST", r"/pods$", status=429, times=2, retry_after=0.2)
    emulator.faults.fail_requests("DELETE", r"/pods/", status=429, times=1, retry_after=0.2)
    cluster_project.write(PROJECT)
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert emulator.count("POST", r"/pods$", status=429) == 2
    assert emulator.count("POST", r"/pods$", status=201) == 2
    assert cluster_project.pods() == []


def test_server_errors_are_retried_with_backoff(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    emulator.faults.fail_requests("POST", r"/pods$", status=500, times=2)
    emulator.faults.fail_requests("GET", r"/log$", status=503, times=2)
    emulator.faults.fail_requests("DELETE", r"/pods/", status=502, times=2)
    cluster_project.write(PROJECT)
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert emulator.count("POST", r"/pods$", status=201) == 2
    assert cluster_project.pods() == []


def test_permission_denied_fails_fast_with_the_server_message(
    cluster_project: ClusterProject,
) -> None:
    cluster_project.emulator.rbac.deny("create", "pods")
    cluster_project.write(PROJECT)
    result = cluster_project.build()
    assert result.exit_code == 4, result.output
    assert 'cannot create resource "pods"' in result.output


def test_an_unreachable_cluster_exits_4_naming_context_and_server(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_RETRY_DEADLINE", "0.5")
    cluster_project.write(PROJECT)
    emulator = cluster_project.emulator
    url = emulator.url
    emulator.write_kubeconfig(cluster_project.folder / "kubeconfig", context="far-away")
    kubeconfig = cluster_project.folder / "kubeconfig"
    kubeconfig.write_text(kubeconfig.read_text().replace(url, "http://127.0.0.1:9"))
    result = cluster_project.build()
    assert result.exit_code == 4, result.output
    assert "far-away" in result.output and "http://127.0.0.1:9" in result.output


def test_a_lost_create_response_does_not_make_a_second_pod(
    cluster_project: ClusterProject,
) -> None:
    emulator = cluster_project.emulator
    rule = emulator.faults.lose_response("POST", r"/pods$", times=1)
    cluster_project.write(PROJECT)
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert rule.hits == 1
    # The retried create met the pod the lost one made (409) and took it as its own.
    assert emulator.count("POST", r"/pods$", status=409) == 1
    assert emulator.count("POST", r"/pods$", status=201) == 1
    assert cluster_project.pods() == []
