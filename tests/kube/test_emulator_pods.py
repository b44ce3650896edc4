"""The fake scheduler/kubelet: lifecycle, status shapes (§3.6), deletion (§3.7), pod faults."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest
from tests.kube.emulator.wire import (
    event_reasons,
    pod_events,
    read_pod,
    wait_gone,
    wait_phase,
    wait_pod,
)

NS = "kflow-test"
Obj = dict[str, Any]


def finished(core_v1: Any, name: str, timeout: float = 60) -> Obj:
    return wait_phase(core_v1, name, "Succeeded", "Failed", timeout=timeout)


def main_status(pod: Obj) -> Obj:
    return pod["status"]["containerStatuses"][0]  # type: ignore[no-any-return]


def waiting_reason(pod: Obj | None) -> str | None:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return (statuses[0].get("state", {}).get("waiting") or {}).get("reason")


def cond(pod: Obj, ctype: str) -> Obj:
    return next(c for c in pod["status"]["conditions"] if c["type"] == ctype)


def test_success_writes_outputs_and_reports_completed(core_v1: Any,
                                                      kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("ok", "mkdir -p out && echo data > out/x.txt"))
    pod = finished(core_v1, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    with open(os.path.join(kube_emulator.workdir, "out", "x.txt")) as fh:
        assert fh.read() == "data\n"
    cs = main_status(pod)
    term = cs["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"] and term["containerID"].startswith("containerd://")
    assert cs["ready"] is False and cs["started"] is False and cs["restartCount"] == 0
    assert cs["image"] == "busybox:1.36" and cs["imageID"].startswith("docker.io/library/busybox@")
    assert cond(pod, "Ready")["status"] == "False"
    assert cond(pod, "Ready")["reason"] == "PodCompleted"
    assert cond(pod, "PodScheduled")["status"] == "True"
    assert pod["spec"]["nodeName"] == "node-1" and pod["status"]["podIP"].startswith("10.244.")
    assert pod["status"]["startTime"] and pod["status"]["hostIP"]
    expected = {"Scheduled", "Pulling", "Pulled", "Created", "Started"}
    assert expected <= set(event_reasons(core_v1, "ok"))
    typed = core_v1.read_namespaced_pod("ok", NS)
    assert typed.status.container_statuses[0].state.terminated.exit_code == 0


def test_running_shape(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("run", "echo started; sleep 30"))
    pod = wait_pod(core_v1, "run", lambda p: p["status"].get("phase") == "Running")
    cs = main_status(pod)
    assert "running" in cs["state"] and cs["ready"] is True and cs["started"] is True
    wait_pod(core_v1, "run", lambda p: cond(p, "Ready")["status"] == "True")
    assert len(kube_emulator.running_processes()) == 1
    assert kube_emulator.orphans("nope") == []


def test_failure_with_fallback_to_logs(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest(
        "bad", "echo line1; echo oops >&2; exit 3", message_policy="FallbackToLogsOnError"))
    pod = finished(core_v1, "bad")
    term = main_status(pod)["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert term == {**term, "exitCode": 3, "reason": "Error", "message": "line1\noops\n"}
    assert cond(pod, "Ready")["reason"] == "PodFailed"


def test_termination_message_file(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest(
        "msg", "echo 'disk full' > /dev/termination-log; exit 2"))
    term = main_status(finished(core_v1, "msg"))["state"]["terminated"]
    assert term["exitCode"] == 2 and term["message"] == "disk full\n"
    assert not os.path.exists("/dev/termination-log")


def test_environment_resolution(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.create_secret("creds", {"token": "s3cr3t"})
    kube_emulator.create_configmap("cfg", {"mode": "fast"})
    env = [
        {"name": "PLAIN", "value": "v"},
        {"name": "EXPANDED", "value": "$(PLAIN)-x"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NSP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "RUN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['run']"}}},
    ]
    core_v1.create_namespaced_pod(NS, pod_manifest(
        "env", 'echo "$PLAIN $EXPANDED $TOKEN $MODE $POD $NSP $RUN"', env=env,
        labels={"run": "r7"}))
    finished(core_v1, "env")
    assert core_v1.read_namespaced_pod_log("env", NS) == "v v-x s3cr3t fast env kflow-test r7\n"


def test_missing_secret_then_created(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "k"}}}]
    core_v1.create_namespaced_pod(NS, pod_manifest("cfg", "echo $T", env=env))
    pod = wait_pod(core_v1, "cfg", lambda p: waiting_reason(p) ==
                                     "CreateContainerConfigError")
    assert main_status(pod)["state"]["waiting"]["message"] == 'secret "s3-creds" not found'
    assert pod["status"]["phase"] == "Pending"
    failed = [e for e in pod_events(core_v1, "cfg") if e["reason"] == "Failed"]
    assert failed[0]["message"] == 'Error: secret "s3-creds" not found'
    assert failed[0]["type"] == "Warning"
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("cfg", NS)
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == \
        'container "main" in pod "cfg" is waiting to start: CreateContainerConfigError'
    kube_emulator.create_secret("s3-creds", {"k": "now-here"})
    finished(core_v1, "cfg")
    assert core_v1.read_namespaced_pod_log("cfg", NS) == "now-here\n"


def test_active_deadline(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("slow", "sleep 30", deadline=20))
    pod = finished(core_v1, "slow")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == \
        "Pod was active on the node longer than the specified deadline"
    term = main_status(pod)["state"]["terminated"]
    assert term["exitCode"] == 137 and term["reason"] == "Error"
    assert "DeadlineExceeded" in event_reasons(core_v1, "slow")
    assert kube_emulator.running_processes() == []


@pytest.mark.parametrize(("script", "code"), [("sleep 30", 143),
                                              ("trap '' TERM; sleep 30 & wait; sleep 30", 137)])
def test_graceful_delete_sigterm_then_sigkill(core_v1: Any, kube_emulator: KubeEmulator,
                                              script: str, code: int) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("del", script, grace=20))
    wait_pod(core_v1, "del", lambda p: p["status"].get("phase") == "Running")
    rv = core_v1.read_namespaced_pod("del", NS).metadata.resource_version
    resp = core_v1.delete_namespaced_pod("del", NS)
    assert resp.metadata.deletion_timestamp is not None
    assert resp.metadata.deletion_grace_period_seconds == 20
    w = watch.Watch()
    final = None
    for ev in w.stream(core_v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
        if ev["type"] == "DELETED":
            w.stop()
        else:
            final = ev["object"]
    assert final is not None
    term = final.status.container_statuses[0].state.terminated
    assert term.exit_code == code and final.status.phase == "Failed"
    assert "Killing" in event_reasons(core_v1, "del")
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("del", NS)
    assert err.value.status == 404
    assert kube_emulator.running_processes() == []


def test_unschedulable_until(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    rule = kube_emulator.faults.unschedulable("u-*", message=msg)
    kube_emulator.faults.unschedulable("v-*", until=0.2)
    core_v1.create_namespaced_pod(NS, pod_manifest("u-1"))
    core_v1.create_namespaced_pod(NS, pod_manifest("v-1"))
    pod = wait_pod(core_v1, "u-1", lambda p: p["status"].get("conditions"))
    assert pod["status"]["conditions"] == [{
        "type": "PodScheduled", "status": "False", "lastProbeTime": None,
        "lastTransitionTime": pod["status"]["conditions"][0]["lastTransitionTime"],
        "reason": "Unschedulable", "message": msg}]
    assert pod["status"]["phase"] == "Pending" and "nodeName" not in pod["spec"]
    event = next(e for e in pod_events(core_v1, "u-1") if e["reason"] == "FailedScheduling")
    assert event["reportingComponent"] == "default-scheduler" and event["eventTime"]
    assert event["type"] == "Warning" and event["message"] == msg
    rule.remove()  # e.g. the autoscaler added a node
    assert finished(core_v1, "u-1")["status"]["phase"] == "Succeeded"
    assert finished(core_v1, "v-1")["status"]["phase"] == "Succeeded"  # `until` expired



@pytest.mark.kube_emulator(nodes={"node-1": {"pods": "1"}})
def test_pods_capacity_queues_pods(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    for i in range(3):
        core_v1.create_namespaced_pod(NS, pod_manifest(f"c{i}", "sleep 0.3",
                                                       labels={"kflow.dev/run": "r"}))
    for i in range(3):
        finished(core_v1, f"c{i}")
    assert kube_emulator.max_concurrent("pods") == 1
    scheduling = [e for e in core_v1.list_namespaced_event(NS).items
                  if e.reason == "FailedScheduling"]
    assert scheduling and "Too many pods" in scheduling[0].message
    assert sorted(kube_emulator.orphans("r")) == ["c0", "c1", "c2"]


def test_image_pull_backoff_then_recovery(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.image_pull_error("reg/missing:*", recover_after=0.6)
    core_v1.create_namespaced_pod(NS, pod_manifest("img", image="reg/missing:1"))
    pod = wait_pod(core_v1, "img", lambda p: waiting_reason(p) == "ErrImagePull")
    assert "rpc error" in main_status(pod)["state"]["waiting"]["message"]
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("img", NS)
    assert json.loads(err.value.body)["message"].split(": ", 1)[1] in (
        "image can't be pulled", "trying and failing to pull image")  # state may have moved on
    pod = wait_pod(core_v1, "img", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert main_status(pod)["state"]["waiting"]["message"] == \
        'Back-off pulling image "reg/missing:1"'
    assert {"BackOff", "Failed"} <= set(event_reasons(core_v1, "img"))
    assert finished(core_v1, "img")["status"]["phase"] == "Succeeded"


def test_invalid_image_name(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("inv", image="Reg/UPPER:1"))
    pod = wait_pod(core_v1, "inv", lambda p: waiting_reason(p) == "InvalidImageName")
    assert "invalid reference format" in main_status(pod)["state"]["waiting"]["message"]
    assert "InspectFailed" in event_reasons(core_v1, "inv")


def test_oom_kill_and_oom_but_succeeded(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.oom_kill("oom-kill", after_output="allocating")
    kube_emulator.faults.oom_kill("oom-report", mode="report")
    core_v1.create_namespaced_pod(NS, pod_manifest("oom-kill", "echo allocating; sleep 30"))
    core_v1.create_namespaced_pod(NS, pod_manifest("oom-report", "echo fine"))
    killed = main_status(finished(core_v1, "oom-kill"))["state"]["terminated"]
    assert killed["exitCode"] == 137 and killed["reason"] == "OOMKilled"
    pod = finished(core_v1, "oom-report")
    term = main_status(pod)["state"]["terminated"]
    assert pod["status"]["phase"] == "Succeeded" and term["reason"] == "OOMKilled"
    assert term["exitCode"] == 0


def test_node_pressure_eviction(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.evict("ev-*", kind="node-pressure")
    core_v1.create_namespaced_pod(NS, pod_manifest("ev-1", "sleep 30"))
    pod = finished(core_v1, "ev-1")
    assert pod["status"]["reason"] == "Evicted"
    assert pod["status"]["message"].startswith("The node was low on resource: memory.")
    target = cond(pod, "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "TerminationByKubelet"
    term = main_status(pod)["state"]["terminated"]
    assert term["exitCode"] == 137 and term["reason"] == "ContainerStatusUnknown"
    assert "Evicted" in event_reasons(core_v1, "ev-1")


def test_eviction_api_and_preemption(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("victim", "sleep 30", grace=5))
    wait_pod(core_v1, "victim", lambda p: p["status"].get("phase") == "Running")
    rv = core_v1.read_namespaced_pod("victim", NS).metadata.resource_version
    core_v1.create_namespaced_pod_eviction("victim", NS, client.V1Eviction(
        metadata=client.V1ObjectMeta(name="victim", namespace=NS)))
    w = watch.Watch()
    conditions = set()
    for ev in w.stream(core_v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=60):
        for c in ev["object"].status.conditions or []:
            if c.type == "DisruptionTarget":
                conditions.add(c.reason)
        if ev["type"] == "DELETED":
            w.stop()
    assert conditions == {"EvictionByEvictionAPI"}
    kube_emulator.faults.evict("pre", kind="preempt")
    core_v1.create_namespaced_pod(NS, pod_manifest("pre", "sleep 30", grace=5))
    wait_gone(core_v1, "pre")
    assert "Preempted" in [e["reason"] for e in pod_events(core_v1, "pre")]


def test_node_shutdown(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("sd", "sleep 30"))
    wait_pod(core_v1, "sd", lambda p: p["status"].get("phase") == "Running")
    assert kube_emulator.faults.node_shutdown() == 1
    pod = finished(core_v1, "sd")
    assert pod["status"]["reason"] == "Terminated"
    assert pod["status"]["message"] == "Pod was terminated in response to imminent node shutdown."
    assert main_status(pod)["state"]["terminated"]["exitCode"] == 143


def test_lost_node_freezes_status_and_logs(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    script = "echo a; while [ ! -f go ]; do sleep 0.01; done; echo b"
    core_v1.create_namespaced_pod(NS, pod_manifest("lost", script))
    wait_pod(core_v1, "lost", lambda p: p["status"].get("phase") == "Running")
    kube_emulator.faults.lose_node(mark_not_ready_after=0.05)
    pod = wait_pod(core_v1, "lost", lambda p: cond(p, "Ready")["status"] == "False")
    assert pod["status"]["phase"] == "Running"
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("lost", NS)
    assert err.value.status == 500
    open(os.path.join(kube_emulator.workdir, "go"), "w").close()
    kube_emulator.wait_for(lambda: not kube_emulator.running_processes())
    time.sleep(0.1)
    assert read_pod(core_v1, "lost")["status"]["phase"] == "Running"  # type: ignore[index]
    kube_emulator.faults.restore_node()
    assert finished(core_v1, "lost")["status"]["phase"] == "Succeeded"


def test_lost_node_taint_deletion_sticks_terminating(core_v1: Any,
                                                     kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("t", "sleep 30"))
    wait_pod(core_v1, "t", lambda p: p["status"].get("phase") == "Running")
    kube_emulator.faults.lose_node(taint_delete_after=0.05)
    pod = wait_pod(core_v1, "t", lambda p: p["metadata"].get("deletionTimestamp"))
    assert cond(pod, "DisruptionTarget")["reason"] == "DeletionByTaintManager"
    assert read_pod(core_v1, "t") is not None  # stuck Terminating while the node is gone
    kube_emulator.faults.restore_node()
    wait_gone(core_v1, "t")


def test_external_delete_and_forced_paths(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("x1", "sleep 30"))
    wait_pod(core_v1, "x1", lambda p: p["status"].get("phase") == "Running")
    assert kube_emulator.faults.delete_externally("x1") == 1
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod("x1", NS)
    assert err.value.status == 404
    kube_emulator.faults.deadline_exceeded("x2")
    core_v1.create_namespaced_pod(NS, pod_manifest("x2", "sleep 30"))
    assert finished(core_v1, "x2")["status"]["reason"] == "DeadlineExceeded"
    core_v1.create_namespaced_pod(NS, pod_manifest("x3", "sleep 30"))
    wait_pod(core_v1, "x3", lambda p: p["status"].get("phase") == "Running")
    assert kube_emulator.faults.phase_unknown("x3") == 1
    assert core_v1.read_namespaced_pod("x3", NS).status.phase == "Unknown"


def test_stuck_pending_and_create_container_error(core_v1: Any,
                                                  kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.stuck_pending("sp")
    kube_emulator.faults.create_container_error("ce", reason="CreateContainerError",
                                                message="context deadline exceeded")
    core_v1.create_namespaced_pod(NS, pod_manifest("sp"))
    core_v1.create_namespaced_pod(NS, pod_manifest("ce"))
    kube_emulator.wait_for(lambda: "FailedMount" in event_reasons(core_v1, "sp"))
    assert waiting_reason(read_pod(core_v1, "sp") or {}) == "ContainerCreating"
    pod = wait_pod(core_v1, "ce", lambda p: waiting_reason(p) == "CreateContainerError")
    assert main_status(pod)["state"]["waiting"]["message"] == "context deadline exceeded"


def test_crash_loop_back_off_and_previous_logs(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("crash", "echo run; exit 1",
                                                   restart_policy="OnFailure"))
    pod = wait_pod(core_v1, "crash", lambda p: waiting_reason(p) == "CrashLoopBackOff"
                                     and main_status(p)["restartCount"] >= 2)
    cs = main_status(pod)
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["state"]["waiting"]["message"].startswith("back-off ")
    assert "restarting failed container=main pod=crash_kflow-test(" in \
        cs["state"]["waiting"]["message"]
    assert core_v1.read_namespaced_pod_log("crash", NS, previous=True) == "run\n"
    assert "BackOff" in event_reasons(core_v1, "crash")


def test_init_containers_run_first(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    manifest = pod_manifest("init", "cat ready.txt")
    manifest["spec"]["initContainers"] = [{"name": "prep", "image": "busybox:1.36",
                                           "command": ["sh", "-c", "echo go > ready.txt"]}]
    core_v1.create_namespaced_pod(NS, manifest)
    pod = finished(core_v1, "init")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == \
        "Completed"
    assert cond(pod, "Initialized")["status"] == "True"
    assert core_v1.read_namespaced_pod_log("init", NS, container="main") == "go\n"
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod_log("init", NS, container="nope")
    assert err.value.status == 400


def test_command_not_found_is_start_error(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    manifest = pod_manifest("nf")
    manifest["spec"]["containers"][0]["command"] = ["definitely-not-a-binary"]
    core_v1.create_namespaced_pod(NS, manifest)
    term = main_status(finished(core_v1, "nf"))["state"]["terminated"]
    assert term["exitCode"] == 128 and term["reason"] == "StartError"
    assert "executable file not found in $PATH" in term["message"]


def test_clock_advance_fires_the_deadline(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    # 36000 s scaled by 0.01 is still 360 s: advancing the clock makes it due now
    core_v1.create_namespaced_pod(NS, pod_manifest("adv", "sleep 600", deadline=36000))
    wait_pod(core_v1, "adv", lambda p: p["status"].get("phase") == "Running")
    kube_emulator.clock.advance(400)
    assert finished(core_v1, "adv", timeout=60)["status"]["reason"] == "DeadlineExceeded"


def test_taint_eviction_and_stale_node_pressure(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.evict("taint", kind="taint")
    kube_emulator.faults.evict("stale", kind="node-pressure", stale_container_state=True)
    core_v1.create_namespaced_pod(NS, pod_manifest("taint", "sleep 30", grace=5))
    core_v1.create_namespaced_pod(NS, pod_manifest("stale", "sleep 30"))
    wait_gone(core_v1, "taint")
    assert "TaintManagerEviction" in event_reasons(core_v1, "taint")
    pod = finished(core_v1, "stale")
    assert pod["status"]["reason"] == "Evicted" and "running" in main_status(pod)["state"]


def test_python_runs_the_test_interpreter(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    import sys

    manifest = pod_manifest("py", image="python:3.12-slim")
    manifest["spec"]["containers"][0]["command"] = ["python", "-c",
                                                    "import sys; print(sys.executable)"]
    core_v1.create_namespaced_pod(NS, manifest)
    finished(core_v1, "py")
    assert core_v1.read_namespaced_pod_log("py", NS) == sys.executable + "\n"


def test_workdir_is_configurable(kube_emulator_factory: Any, tmp_path: Any) -> None:
    from kubernetes import config

    project = tmp_path / "project"
    project.mkdir()
    kube = kube_emulator_factory(workdir=project)
    api = client.CoreV1Api(config.new_client_from_config(
        config_file=kube.write_kubeconfig(tmp_path / "kc")))
    api.create_namespaced_pod(NS, pod_manifest("w1", "echo one > out.txt"))
    wait_phase(api, "w1", "Succeeded")
    other = tmp_path / "other"
    other.mkdir()
    kube.workdir = other
    api.create_namespaced_pod(NS, pod_manifest("w2", "pwd > out.txt"))
    wait_phase(api, "w2", "Succeeded")
    assert (project / "out.txt").read_text() == "one\n"
    assert (other / "out.txt").read_text().strip() == str(other)


def test_invalid_image_name_fault_and_pull_fault_removal(core_v1: Any,
                                                         kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.image_pull_error("reg/odd:*", kind="InvalidImageName")
    stuck = kube_emulator.faults.image_pull_error("reg/gone:*")
    core_v1.create_namespaced_pod(NS, pod_manifest("odd", image="reg/odd:1"))
    core_v1.create_namespaced_pod(NS, pod_manifest("gone", image="reg/gone:1"))
    wait_pod(core_v1, "odd", lambda p: waiting_reason(p) == "InvalidImageName")
    wait_pod(core_v1, "gone", lambda p: waiting_reason(p) == "ImagePullBackOff")
    stuck.remove()  # the image was pushed
    assert finished(core_v1, "gone")["status"]["phase"] == "Succeeded"
    assert waiting_reason(read_pod(core_v1, "odd")) == "InvalidImageName"


@pytest.mark.kube_emulator(deadline_scale=1.0)
def test_deadline_in_real_seconds(core_v1: Any) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("real", "sleep 30", deadline=1))
    wait_phase(core_v1, "real", "Running")
    started = time.monotonic()
    pod = finished(core_v1, "real")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert 0.5 < time.monotonic() - started < 30  # 1 real second (scaled: 0.01 s)
