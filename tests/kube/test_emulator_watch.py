"""Watch semantics (§3.3-3.4) as the real ``watch.Watch`` sees them."""

from __future__ import annotations

import json
import time
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest
from tests.kube.emulator.wire import wait_pod

NS = "kflow-test"


def test_initial_added_then_changes_then_deleted(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("w-*")
    core_v1.create_namespaced_pod(NS, pod_manifest("w-1", labels={"run": "a"}))
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    deleted = False
    for ev in w.stream(core_v1.list_namespaced_pod, NS, label_selector="run=a",
                       timeout_seconds=60):
        obj = ev["object"]
        assert isinstance(obj, client.V1Pod)
        seen.append((ev["type"], obj.metadata.name))
        if len(seen) == 1:
            core_v1.patch_namespaced_pod("w-1", NS, {"metadata": {"annotations": {"x": "1"}}})
        # Delete once: the scheduler's status writes are MODIFIED events that carry the
        # annotation too, and may arrive after the delete.
        if not deleted and ev["type"] == "MODIFIED" and \
                (obj.metadata.annotations or {}).get("x") == "1":
            core_v1.delete_namespaced_pod("w-1", NS)
            deleted = True
        if ev["type"] == "DELETED":
            w.stop()
    assert seen[0] == ("ADDED", "w-1") and seen[-1] == ("DELETED", "w-1")
    assert seen.count(("DELETED", "w-1")) == 1


def _watch_until_deleted(core_v1: Any, name: str, rv: str) -> list[dict[str, Any]]:
    """The raw events of pod ``name`` after ``rv``, up to and including its DELETED."""
    w = watch.Watch()
    events: list[dict[str, Any]] = []
    for ev in w.stream(core_v1.list_namespaced_pod, NS, field_selector=f"metadata.name={name}",
                       resource_version=rv, timeout_seconds=60):
        events.append({"type": ev["type"], "object": ev["raw_object"]})
        if ev["type"] == "DELETED":
            w.stop()
    return events


def test_patch_then_delete_of_a_running_pod_is_sent_as_a_real_server_sends_it(
    core_v1: Any, kube_emulator: KubeEmulator
) -> None:
    # A real API server: the patch is one MODIFIED; DELETE of a scheduled, running pod is
    # graceful: MODIFIED with deletionTimestamp + deletionGracePeriodSeconds, the kubelet's
    # final status writes (MODIFIED, still marked for deletion), then DELETED with the last
    # state; nothing after it.
    core_v1.create_namespaced_pod(NS, pod_manifest("gd", "sleep 30", grace=20))
    wait_pod(core_v1, "gd", lambda p: p["status"].get("phase") == "Running", timeout=60)
    rv = core_v1.read_namespaced_pod("gd", NS).metadata.resource_version
    core_v1.patch_namespaced_pod("gd", NS, {"metadata": {"annotations": {"x": "1"}}})
    core_v1.delete_namespaced_pod("gd", NS)
    events = _watch_until_deleted(core_v1, "gd", rv)
    types = [e["type"] for e in events]
    assert types[-1] == "DELETED" and types.count("DELETED") == 1, types
    assert set(types[:-1]) == {"MODIFIED"}, types
    metas = [e["object"]["metadata"] for e in events]
    mark = next(i for i, m in enumerate(metas) if "deletionTimestamp" in m)
    assert mark >= 1 and metas[mark - 1].get("annotations") == {"x": "1"}, metas
    assert metas[mark]["deletionGracePeriodSeconds"] == 20
    # from the mark on, every event (the DELETED too) carries it, unchanged
    stamp = metas[mark]["deletionTimestamp"]
    assert all(m.get("deletionTimestamp") == stamp for m in metas[mark:]), metas
    rvs = [int(m["resourceVersion"]) for m in metas]
    assert rvs == sorted(set(rvs)), rvs
    last = events[-1]["object"]
    assert last["status"]["phase"] == "Failed"  # SIGTERM ended `sleep`: exit 143
    assert last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143


def test_delete_of_an_unscheduled_pod_is_immediate(core_v1: Any,
                                                   kube_emulator: KubeEmulator) -> None:
    # Not bound to a node: the server deletes at once (no graceful MODIFIED), whatever the grace.
    kube_emulator.faults.unschedulable("u-*")
    core_v1.create_namespaced_pod(NS, pod_manifest("u-1", grace=20))
    rv = core_v1.read_namespaced_pod("u-1", NS).metadata.resource_version
    core_v1.patch_namespaced_pod("u-1", NS, {"metadata": {"annotations": {"x": "1"}}})
    core_v1.delete_namespaced_pod("u-1", NS)
    events = _watch_until_deleted(core_v1, "u-1", rv)
    assert events[-1]["type"] == "DELETED"
    assert all("deletionTimestamp" not in e["object"]["metadata"] for e in events[:-1])
    assert any(e["object"]["metadata"].get("annotations") == {"x": "1"} for e in events[:-1])


def test_resume_from_resource_version_has_no_synthetic_added(core_v1: Any,
                                                             kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("old"))
    listing = core_v1.list_namespaced_pod(NS)
    rv = listing.metadata.resource_version
    core_v1.create_namespaced_pod(NS, pod_manifest("new"))
    w = watch.Watch()
    events = []
    for ev in w.stream(core_v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
        events.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "new":
            w.stop()
    assert events[-1] == ("ADDED", "new")
    assert ("ADDED", "old") not in events  # "old" may show up as MODIFIED by the scheduler


def test_label_transitions_become_deleted_and_added(core_v1: Any,
                                                    kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("t", labels={"run": "a"}))
    rv = core_v1.list_namespaced_pod(NS).metadata.resource_version
    core_v1.patch_namespaced_pod("t", NS, {"metadata": {"labels": {"run": "b"}}})
    core_v1.patch_namespaced_pod("t", NS, {"metadata": {"labels": {"run": "a"}}})
    w = watch.Watch()
    types = []
    for ev in w.stream(core_v1.list_namespaced_pod, NS, label_selector="run=a",
                       resource_version=rv, timeout_seconds=60):
        if ev["type"] == "MODIFIED":  # the scheduler's status writes
            continue
        types.append(ev["type"])
        if ev["type"] == "DELETED":
            # DELETED carries the previous (still matching) content with the new RV
            assert ev["object"].metadata.labels == {"run": "a"}
        if len(types) == 2:
            w.stop()
    assert types == ["DELETED", "ADDED"]


def test_bookmarks_update_resource_version(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.bookmarks(0.05)
    w = watch.Watch()
    for ev in w.stream(core_v1.list_namespaced_pod, NS, allow_watch_bookmarks=True,
                       timeout_seconds=60):
        assert ev["type"] == "BOOKMARK"
        raw = ev["raw_object"]
        assert set(raw) == {"kind", "apiVersion", "metadata"}
        assert set(raw["metadata"]) == {"resourceVersion"}
        w.stop()
        if int(kubernetes.__version__.split(".")[0]) >= 37:  # 35.x ignores bookmark RVs
            assert w.resource_version == raw["metadata"]["resourceVersion"]
        break


def test_send_initial_events_ends_with_annotated_bookmark(core_v1: Any,
                                                          kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    w = watch.Watch()
    types = []
    for ev in w.stream(core_v1.list_namespaced_pod, NS, allow_watch_bookmarks=True,
                       send_initial_events=True, resource_version_match="NotOlderThan",
                       timeout_seconds=60):
        types.append(ev["type"])
        if ev["type"] == "BOOKMARK":
            annotations = ev["raw_object"]["metadata"]["annotations"]
            assert annotations == {"k8s.io/initial-events-end": "true"}
            w.stop()
    assert types == ["ADDED", "BOOKMARK"]


def test_expired_history_gives_410(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    rv = core_v1.list_namespaced_pod(NS).metadata.resource_version
    core_v1.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"x": "y"}}})
    floor = kube_emulator.faults.expire_history()
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core_v1.list_namespaced_pod, NS, resource_version=rv,
                                      timeout_seconds=60):
            pass
    assert err.value.status == 410
    assert f"too old resource version: {rv} ({floor})" in str(err.value.reason)
    # Raw stream: HTTP 200, then one ERROR event carrying a Status.
    resp = core_v1.list_namespaced_pod(NS, watch=True, resource_version=rv, timeout_seconds=60,
                                       _preload_content=False)
    assert resp.status == 200
    lines = [json.loads(x) for x in resp.data.splitlines()]
    assert lines == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"too old resource version: {rv} ({floor})", "reason": "Expired",
        "code": 410}}]
    kube_emulator.faults.expire_history(http_410=True)
    with pytest.raises(ApiException) as err:
        core_v1.list_namespaced_pod(NS, watch=True, resource_version=rv, timeout_seconds=60,
                                    _preload_content=False)
    assert err.value.status == 410


def test_timeout_seconds_ends_the_stream_cleanly(core_v1: Any) -> None:
    started = time.monotonic()
    events = list(watch.Watch().stream(core_v1.list_namespaced_pod, NS, timeout_seconds=1))
    assert events == []
    assert 0.9 < time.monotonic() - started < 30  # ended by the server, not a read timeout


@pytest.mark.parametrize("mode", ["clean", "reset", "truncate"])
def test_drop_watches(core_v1: Any, kube_emulator: KubeEmulator, mode: str) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    w = watch.Watch()
    got = []

    def consume() -> None:
        for ev in w.stream(core_v1.list_namespaced_pod, NS, timeout_seconds=60):
            got.append(ev["type"])
            if len(got) == 1:
                kube_emulator.wait_for(lambda: kube_emulator.open_streams("watch") == 1)
                assert kube_emulator.faults.drop_watches(mode) == 1

    started = time.monotonic()
    if mode == "clean":
        consume()  # with timeout_seconds the generator just ends
    else:
        with pytest.raises(urllib3.exceptions.ProtocolError):
            consume()
    assert got[0] == "ADDED" and time.monotonic() - started < 30  # the drop, not the timeout


def test_stalled_watch_needs_a_read_timeout(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.stall_watches(5, new_too=True)
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        for _ in watch.Watch().stream(core_v1.list_namespaced_pod, NS, timeout_seconds=10,
                                      _request_timeout=(2, 0.3)):
            pass
    kube_emulator.faults.clear()


def test_duplicate_events(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    rv = core_v1.list_namespaced_pod(NS).metadata.resource_version
    kube_emulator.faults.duplicate_watch_events()
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    w = watch.Watch()
    seen = []
    for ev in w.stream(core_v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
        seen.append((ev["type"], ev["object"].metadata.resource_version))
        if len(seen) == 2:
            w.stop()
    assert seen[0] == seen[1]


def test_event_watch_with_field_selector(core_v1: Any) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("ev"))
    w = watch.Watch()
    reasons = []
    expected = {"Scheduled", "Pulling", "Pulled", "Created", "Started"}
    for ev in w.stream(core_v1.list_namespaced_event, NS, timeout_seconds=60,
                       field_selector="involvedObject.name=ev,involvedObject.kind=Pod"):
        assert isinstance(ev["object"], client.CoreV1Event)
        assert ev["object"].involved_object.name == "ev"
        reasons.append(ev["object"].reason)
        if expected <= set(reasons):
            w.stop()
    assert expected <= set(reasons)


@pytest.mark.kube_emulator(ring_size=5)
def test_history_is_kept_per_resource(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("*")
    core_v1.create_namespaced_pod(NS, pod_manifest("a"))
    rv = core_v1.list_namespaced_pod(NS).metadata.resource_version
    for i in range(8):  # event churn does not evict pod history
        core_v1.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm{i}")))
    core_v1.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"x": "1"}}})
    w = watch.Watch()
    for ev in w.stream(core_v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
        if (ev["object"].metadata.labels or {}).get("x") == "1":
            w.stop()
    for i in range(8):  # but pod churn beyond the ring does
        core_v1.patch_namespaced_pod("a", NS, {"metadata": {"labels": {"x": str(i)}}})
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core_v1.list_namespaced_pod, NS, resource_version=rv,
                                      timeout_seconds=60):
            pass
    assert err.value.status == 410


def test_no_bookmarks(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.no_bookmarks()
    events = list(watch.Watch().stream(core_v1.list_namespaced_pod, NS, timeout_seconds=1,
                                       allow_watch_bookmarks=True))
    assert events == []
