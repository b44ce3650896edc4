"""``pods/log`` (§3.8) through the real client: filters, 400s, 404, follow streams, log faults."""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import pytest
import urllib3
from kubernetes import watch
from kubernetes.client.rest import ApiException

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest
from tests.kube.emulator.wire import wait_phase, wait_pod

NS = "kflow-test"


def message(exc: ApiException) -> str:
    return str(json.loads(exc.body)["message"])


def run_to_end(core_v1: Any, kube: KubeEmulator, name: str, script: str) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest(name, script))
    wait_phase(core_v1, name, "Succeeded", "Failed")


def test_filters(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    run_to_end(core_v1, kube_emulator, "f", "for i in 1 2 3 4 5; do echo line$i; done")
    assert core_v1.read_namespaced_pod_log("f", NS) == "line1\nline2\nline3\nline4\nline5\n"
    assert core_v1.read_namespaced_pod_log("f", NS, tail_lines=2) == "line4\nline5\n"
    assert core_v1.read_namespaced_pod_log("f", NS, limit_bytes=8) == "line1\nli"
    stamped = core_v1.read_namespaced_pod_log("f", NS, timestamps=True, tail_lines=1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line5\n", stamped)
    assert core_v1.read_namespaced_pod_log("f", NS, since_seconds=3600).count("\n") == 5
    kube_emulator.clock.advance(7200)
    assert core_v1.read_namespaced_pod_log("f", NS, since_seconds=3600) == ""
    assert kube_emulator.logs("f").startswith("line1")


def test_waiting_container_400_and_unscheduled_empty(core_v1: Any,
                                                     kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.stuck_pending("stuck")
    kube_emulator.faults.unschedulable("nosched")
    core_v1.create_namespaced_pod(NS, pod_manifest("stuck"))
    core_v1.create_namespaced_pod(NS, pod_manifest("nosched"))
    wait_pod(core_v1, "stuck", lambda p: p["status"].get("containerStatuses"))
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("stuck", NS)
    assert err.value.status == 400
    assert message(err.value) == \
        'container "main" in pod "stuck" is waiting to start: ContainerCreating'
    assert core_v1.read_namespaced_pod_log("nosched", NS) == ""
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("stuck", NS, previous=True)
    assert message(err.value) == 'previous terminated container "main" in pod "stuck" not found'


def test_container_must_be_named_when_several(core_v1: Any) -> None:
    manifest = pod_manifest("two")
    manifest["spec"]["containers"].append({"name": "side", "image": "busybox:1.36",
                                           "command": ["true"]})
    core_v1.create_namespaced_pod(NS, manifest)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("two", NS)
    assert message(err.value) == \
        "a container name must be specified for pod two, choose one of: [main side]"


def test_404_after_deletion(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    run_to_end(core_v1, kube_emulator, "gone", "echo bye")
    core_v1.delete_namespaced_pod("gone", NS)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("gone", NS)
    assert err.value.status == 404 and message(err.value) == 'pods "gone" not found'


def test_follow_streams_and_ends_with_the_process(core_v1: Any,
                                                  kube_emulator: KubeEmulator) -> None:
    script = "echo first; while [ ! -f go ]; do sleep 0.01; done; echo second"
    core_v1.create_namespaced_pod(NS, pod_manifest("fol", script))
    wait_pod(core_v1, "fol", lambda p: p["status"].get("phase") == "Running")
    resp = core_v1.read_namespaced_pod_log("fol", NS, follow=True, _preload_content=False,
                                           _request_timeout=(2, 10))
    chunks: list[bytes] = []
    for chunk in resp.stream(1024):
        chunks.append(chunk)
        if len(chunks) == 1:  # "first" was streamed while the process still runs
            assert kube_emulator.running_processes()
            open(os.path.join(kube_emulator.workdir, "go"), "w").close()
    assert b"".join(chunks) == b"first\nsecond\n"
    assert wait_phase(core_v1, "fol", "Succeeded")  # the stream ended with the process
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert kube_emulator.max_concurrent("logs") == 1


def test_follow_through_watch_stream(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("wl", "echo a; sleep 0.1; echo b"))
    wait_pod(core_v1, "wl", lambda p: p["status"].get("phase") == "Running")
    lines = list(watch.Watch().stream(core_v1.read_namespaced_pod_log, name="wl", namespace=NS))
    assert lines == ["a", "b"]


def test_stalled_and_dropped_log_streams(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("st", "echo one; sleep 30"))
    wait_pod(core_v1, "st", lambda p: p["status"].get("phase") == "Running")
    resp = core_v1.read_namespaced_pod_log("st", NS, follow=True, _preload_content=False,
                                           _request_timeout=(2, 0.3))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        for chunk in resp.stream(1024):
            assert chunk == b"one\n"
            kube_emulator.faults.stall_log_stream("st", after_bytes=0)
    resp.release_conn()
    resp = core_v1.read_namespaced_pod_log("st", NS, follow=True, _preload_content=False)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for i, _ in enumerate(resp.stream(1024)):
            if i == 0:
                kube_emulator.wait_for(lambda: kube_emulator.open_streams("log") == 1)
                kube_emulator.faults.drop_log_stream("reset", "st")


def test_rotation_unavailable_and_large_logs(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.large_logs(1, pod_glob="big")
    run_to_end(core_v1, kube_emulator, "big", "echo tail")
    data = core_v1.read_namespaced_pod_log("big", NS)
    assert len(data) >= 1024 * 1024 and data.endswith("tail\n")
    assert kube_emulator.faults.rotate_logs("big", keep_bytes=5) == 1
    assert core_v1.read_namespaced_pod_log("big", NS) == "tail\n"
    kube_emulator.faults.logs_unavailable("big", status=500)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("big", NS)
    assert err.value.status == 500


def test_slow_logs(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.slow_logs("slow", bytes_per_sec=40)
    core_v1.create_namespaced_pod(NS, pod_manifest("slow", "echo 0123456789; echo 0123456789"))
    wait_phase(core_v1, "slow", "Succeeded")
    started = time.monotonic()
    resp = core_v1.read_namespaced_pod_log("slow", NS, follow=True, _preload_content=False)
    assert resp.data == b"0123456789\n0123456789\n"
    assert time.monotonic() - started > 0.4


def test_truncated_log_stream(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("tr", "echo one; sleep 30"))
    wait_pod(core_v1, "tr", lambda p: p["status"].get("phase") == "Running")
    resp = core_v1.read_namespaced_pod_log("tr", NS, follow=True, _preload_content=False)
    chunks = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in resp.stream(1024):
            chunks.append(chunk)
            if len(chunks) == 1:
                kube_emulator.wait_for(lambda: kube_emulator.open_streams("log") == 1)
                assert kube_emulator.faults.drop_log_stream("truncate", "tr") == 1
    assert chunks[0] == b"one\n"


def test_logs_rotate_at_ten_mebibytes(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.large_logs(10.5, pod_glob="huge")
    run_to_end(core_v1, kube_emulator, "huge", "echo last")
    data = core_v1.read_namespaced_pod_log("huge", NS)
    assert data.endswith("last\n") and len(data) < 1024 * 1024  # only the current file
