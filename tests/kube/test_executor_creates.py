"""Ready pods are created concurrently (``KFLOW_KUBE_CREATES`` at once), still within the
client-side rate limit (``KFLOW_KUBE_QPS``/``KFLOW_KUBE_BURST``), and a run interrupted while
creates are on the way leaves no pod behind."""

from __future__ import annotations

import signal

import pytest

from tests.kube.emulator.http import RequestRecord
from tests.kube.test_executor_support import ClusterProject, cluster_project, wide_project

__all__ = ["cluster_project"]

N = 8
PROJECT = wide_project("wide", N)
LATENCY = 0.5  # every pod create takes this long on the server


def _most_at_once(records: list[RequestRecord], seconds: float) -> int:
    """The most requests whose first ``seconds`` on the server overlap (a request the server
    holds that long cannot be followed by the next one from the same client thread before)."""
    edges = sorted([(r.t, 1) for r in records] + [(r.t + seconds, -1) for r in records])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_ready_pods_are_created_concurrently_up_to_the_bound(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_CREATES", "3")
    monkeypatch.setenv("KFLOW_KUBE_QPS", "500")
    emulator = cluster_project.emulator
    emulator.faults.latency(r"/pods$", LATENCY, method="POST")
    cluster_project.write(PROJECT)
    result = cluster_project.build("-j", str(N))
    assert result.exit_code == 0, result.output
    assert len(list((cluster_project.folder / "data").glob("cell-*.txt"))) == N
    creates = emulator.requests("POST", r"/pods$", status=201)
    assert len(creates) == N
    assert _most_at_once(creates, LATENCY) == 3  # more than one at a time, never more than 3
    assert cluster_project.pods() == []


def test_concurrent_creates_keep_to_the_client_rate_limit(
    cluster_project: ClusterProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_KUBE_QPS", "5")
    monkeypatch.setenv("KFLOW_KUBE_BURST", "2")
    emulator = cluster_project.emulator
    # The server allows twice kflow's limits: a client that keeps to its own never sees a 429.
    emulator.faults.throttle(10, burst=4, method="POST", path_re=r"/pods$")
    emulator.faults.throttle(10, burst=4, method="DELETE", path_re=r"/pods/")
    cluster_project.write(PROJECT)
    result = cluster_project.build("-j", str(N))
    assert result.exit_code == 0, result.output
    assert emulator.count(status=429) == 0
    assert emulator.count("POST", r"/pods$", status=201) == N
    assert emulator.count("DELETE", r"/pods/", status=200) == N
    assert cluster_project.pods() == []


def test_an_interrupt_while_creates_are_on_the_way_leaves_no_pod(
    cluster_project: ClusterProject,
) -> None:
    emulator = cluster_project.emulator
    emulator.faults.latency(r"/pods$", LATENCY, method="POST")
    cluster_project.write(PROJECT)
    proc = cluster_project.start("-j", str(N))
    emulator.wait_for(lambda: emulator.count("POST", r"/pods$") >= 1, 30)
    proc.send_signal(signal.SIGINT)  # while creates are held by the server
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert cluster_project.pods() == []
