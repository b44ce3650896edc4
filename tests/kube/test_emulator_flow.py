"""An executor-shaped flow: one LIST + WATCH ("mini informer") tracking a run of pods through a
watch drop, then logs and cleanup; asserts what the executor tests will rely on."""

from __future__ import annotations

import os
import time
from typing import Any

import urllib3
from kubernetes import watch

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest

NS = "kflow-test"
RUN = "app.kubernetes.io/managed-by=kflow,kflow.dev/run=r1"


def test_mini_informer_survives_a_dropped_watch(core_v1: Any,
                                                kube_emulator: KubeEmulator) -> None:
    labels = {"app.kubernetes.io/managed-by": "kflow", "kflow.dev/run": "r1"}
    names = [f"task-{i}" for i in range(6)]
    listing = core_v1.list_namespaced_pod(NS, label_selector=RUN)  # the informer starts first
    phases = {p.metadata.name: p.status.phase for p in listing.items}
    rv = listing.metadata.resource_version
    for i, name in enumerate(names):
        script = (f"while [ ! -f go ]; do sleep 0.01; done; echo out-{i} > {name}.txt; "
                  f"echo done {i}" + ("; exit 2" if i == 5 else ""))
        core_v1.create_namespaced_pod(NS, pod_manifest(name, script, labels=labels))
    last_rv_per_pod: dict[str, int] = {}
    dropped = False
    deadline = time.monotonic() + 90
    while any(phases.get(n) not in ("Succeeded", "Failed") for n in names):
        assert time.monotonic() < deadline, phases
        w = watch.Watch()
        try:
            for ev in w.stream(core_v1.list_namespaced_pod, NS, label_selector=RUN,
                               resource_version=rv, timeout_seconds=5,
                               _request_timeout=(2, 10)):
                pod = ev["object"]
                rv = pod.metadata.resource_version
                name = pod.metadata.name
                assert int(rv) > last_rv_per_pod.get(name, 0)  # ordered, no replays
                last_rv_per_pod[name] = int(rv)
                phases[name] = pod.status.phase
                if not dropped:  # the ADDED events guarantee a first event
                    dropped = True
                    kube_emulator.wait_for(lambda: kube_emulator.open_streams("watch") == 1)
                    kube_emulator.faults.drop_watches("reset")
                    open(os.path.join(kube_emulator.workdir, "go"), "w").close()
                if all(phases.get(n) in ("Succeeded", "Failed") for n in names):
                    w.stop()
        except urllib3.exceptions.ProtocolError:
            continue  # re-watch from the last RV seen
    assert dropped
    assert phases == {**{n: "Succeeded" for n in names[:5]}, "task-5": "Failed"}
    for i, name in enumerate(names):
        assert core_v1.read_namespaced_pod_log(name, NS) == f"done {i}\n"
        with open(os.path.join(kube_emulator.workdir, f"{name}.txt")) as fh:
            assert fh.read() == f"out-{i}\n"
    failed = core_v1.read_namespaced_pod("task-5", NS).status.container_statuses[0]
    assert failed.state.terminated.exit_code == 2
    core_v1.delete_collection_namespaced_pod(NS, label_selector=RUN, grace_period_seconds=1)
    kube_emulator.wait_for(lambda: not kube_emulator.orphans("r1"))
    # API budget: creates + 1 list + watches (1 + 1 after the drop, + timeouts) + logs + 2
    assert kube_emulator.count(verb="list") == 1
    assert kube_emulator.count(verb="create") == 6
    assert 2 <= kube_emulator.count(verb="watch") <= 4
    assert kube_emulator.running_processes() == []
    assert kube_emulator.max_concurrent("watches") == 1
