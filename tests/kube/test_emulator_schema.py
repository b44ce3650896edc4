"""Every object the emulator emits deserialises with the current ``kubernetes`` models and passes
``kubernetes-validate`` (schema 1.30 and the newest it ships, strict: no unknown fields)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest
from tests.kube.emulator.wire import read_pod, wait_gone, wait_phase, wait_pod

NS = "kflow-test"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
MODELS = {
    "Pod": client.V1Pod,
    "Event": client.CoreV1Event,
    "Lease": client.V1Lease,
    "Namespace": client.V1Namespace,
    "Node": client.V1Node,
    "Secret": client.V1Secret,
    "ConfigMap": client.V1ConfigMap,
    "Status": client.V1Status,
    "PodList": client.V1PodList,
    "EventList": client.CoreV1EventList,
    "LeaseList": client.V1LeaseList,
    "NamespaceList": client.V1NamespaceList,
    "NodeList": client.V1NodeList,
    "SecretList": client.V1SecretList,
    "ConfigMapList": client.V1ConfigMapList,
    "SelfSubjectAccessReview": client.V1SelfSubjectAccessReview,
    "SelfSubjectRulesReview": client.V1SelfSubjectRulesReview,
}


@pytest.fixture(autouse=True)
def cached_schemas(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """kubernetes-validate re-reads its (large) schema files on every call: cache them."""
    cached = functools.lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", cached)
    yield


def raw(call: Any, *args: Any, **kwargs: Any) -> Any:
    return json.loads(call(*args, _preload_content=False, **kwargs).data)


def shape(value: Any) -> Any:
    """The structure of a JSON value with every scalar replaced by its type name."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


SEEN: set[str] = set()


def deserialise(obj: dict[str, Any], model: Any) -> Any:
    """The client's own deserialisation: pydantic ``from_dict`` (v37+) or the generated
    ``ApiClient.__deserialize`` (older releases); both raise on missing required fields."""
    if hasattr(model, "from_dict"):
        return model.from_dict(obj)
    return client.ApiClient()._ApiClient__deserialize(obj, model.__name__)


def check(obj: dict[str, Any]) -> None:
    kind = obj["kind"]
    model = MODELS[kind]
    deserialise(obj, model)
    if kind.endswith("List") or kind.startswith("SelfSubject") or kind == "Status":
        return  # kubernetes-validate ships no schema for these
    signature = json.dumps(shape(obj))
    if signature in SEEN:  # JSON-schema validity depends on structure and types only
        return
    SEEN.add(signature)
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def start_zoo(core_v1: Any, kube: KubeEmulator) -> None:
    faults = kube.faults
    faults.unschedulable("unsched")
    faults.image_pull_error("reg/missing:*")
    faults.oom_kill("oom")
    faults.evict("evicted")
    kube.create_secret("creds", {"k": "v"})
    env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}},
           {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    pods = [
        pod_manifest("ok", "echo ok", env=env, labels={"kflow.dev/run": "r1"}),
        pod_manifest("fail", "echo no; exit 4", message_policy="FallbackToLogsOnError"),
        pod_manifest("unsched"),
        pod_manifest("pull", image="reg/missing:1"),
        pod_manifest("cfg", env=[{"name": "X", "valueFrom": {"secretKeyRef": {
            "name": "absent", "key": "k"}}}]),
        pod_manifest("oom", "sleep 30"),
        pod_manifest("deadline", "sleep 30", deadline=10),
        pod_manifest("evicted", "sleep 30"),
        pod_manifest("crash", "exit 1", restart_policy="OnFailure"),
        pod_manifest("running", "sleep 30", grace=5),
    ]
    init = pod_manifest("init", "echo main")
    init["spec"]["initContainers"] = [{"name": "prep", "image": "busybox:1.36",
                                       "command": ["true"]}]
    pods.append(init)
    sized = pod_manifest("sized", "echo sized")
    sized["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": "64Mi"}}
    pods.append(sized)
    for p in pods:
        core_v1.create_namespaced_pod(NS, p)


def test_every_emitted_object_is_schema_valid(core_v1: Any, kube_api_client: Any,
                                              kube_emulator: KubeEmulator) -> None:
    start_zoo(core_v1, kube_emulator)
    for name in ("ok", "fail", "oom", "deadline", "evicted", "init", "sized"):
        wait_phase(core_v1, name, "Succeeded", "Failed")

    def waiting(name: str, reason: str) -> None:
        wait_pod(core_v1, name, lambda p: any(
            (cs.get("state", {}).get("waiting") or {}).get("reason") == reason
            for cs in p["status"].get("containerStatuses") or []))

    waiting("pull", "ImagePullBackOff")
    waiting("cfg", "CreateContainerConfigError")
    waiting("crash", "CrashLoopBackOff")
    wait_pod(core_v1, "running", lambda p: p["status"].get("phase") == "Running")
    core_v1.delete_namespaced_pod("running", NS)
    wait_gone(core_v1, "running")
    assert read_pod(core_v1, "sized")["status"]["qosClass"] == "Guaranteed"  # type: ignore[index]

    coord = client.CoordinationV1Api(kube_api_client)
    coord.create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="lock"),
        spec=client.V1LeaseSpec(holder_identity="me", lease_duration_seconds=15)))

    # every version of every pod, as the watch stream emitted it
    resp = core_v1.list_namespaced_pod(NS, watch=True, resource_version="1", timeout_seconds=1,
                                       _preload_content=False)
    events = [json.loads(line) for line in resp.data.splitlines()]
    assert {e["type"] for e in events} == {"ADDED", "MODIFIED", "DELETED"}
    for event in events:
        check(event["object"])
    assert len(events) > 50

    listings = [
        raw(core_v1.list_namespaced_pod, NS),
        raw(core_v1.list_namespaced_event, NS),
        raw(coord.list_namespaced_lease, NS),
        raw(core_v1.list_namespace),
        raw(core_v1.list_node),
        raw(core_v1.list_namespaced_secret, NS),
        raw(core_v1.list_namespaced_config_map, NS),
    ]
    for listing in listings:
        check(listing)
        item_kind = listing["kind"][: -len("List")]
        for item in listing["items"]:
            check({"kind": item_kind, "apiVersion": listing["apiVersion"], **item})
    kinds = {e["reason"] for e in listings[1]["items"]}
    assert {"Scheduled", "FailedScheduling", "Pulling", "Pulled", "Created", "Started",
            "BackOff", "Failed", "Killing", "Evicted", "DeadlineExceeded"} <= kinds

    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod("missing", NS)
    check(json.loads(err.value.body))
    authz = client.AuthorizationV1Api(kube_api_client)
    ssar = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            namespace=NS, verb="create", resource="pods"))), _preload_content=False)
    check(json.loads(ssar.data))
    rules = authz.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace=NS)), _preload_content=False)
    check(json.loads(rules.data))
    client.VersionApi(kube_api_client).get_code()
