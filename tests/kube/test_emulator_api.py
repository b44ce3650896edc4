"""The emulator's REST surface, exercised through the real ``kubernetes`` client."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.manifests import pod_manifest
from tests.kube.emulator.wire import read_pod

NS = "kflow-test"


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["code"] == exc.status
    return body


def test_version_and_namespaces(kube_api_client: Any, core_v1: Any) -> None:
    info = client.VersionApi(kube_api_client).get_code()
    assert info.major == "1" and info.git_version.startswith("v1.33")
    ns = core_v1.read_namespace(NS)
    assert ns.status.phase == "Active"
    with pytest.raises(ApiException) as err:
        core_v1.read_namespace("nope")
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'namespaces "nope" not found'


def test_create_defaults_get_and_conflicts(core_v1: Any) -> None:
    pod = core_v1.create_namespaced_pod(NS, pod_manifest("p1", labels={"a": "b"}))
    meta, spec = pod.metadata, pod.spec
    assert meta.uid and meta.resource_version and meta.creation_timestamp
    assert meta.namespace == NS and pod.kind == "Pod"
    assert spec.termination_grace_period_seconds == 30 and spec.dns_policy == "ClusterFirst"
    assert spec.scheduler_name == "default-scheduler" and spec.service_account_name == "default"
    assert spec.enable_service_links is True and spec.priority == 0
    assert {t.key for t in spec.tolerations} == {"node.kubernetes.io/not-ready",
                                                 "node.kubernetes.io/unreachable"}
    main = spec.containers[0]
    assert main.termination_message_path == "/dev/termination-log"
    assert main.termination_message_policy == "File" and main.image_pull_policy == "IfNotPresent"
    assert any(v.name.startswith("kube-api-access-") for v in spec.volumes)
    assert pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort"
    got = core_v1.read_namespaced_pod("p1", NS)
    assert got.metadata.uid == meta.uid
    assert core_v1.read_namespaced_pod_status("p1", NS).metadata.uid == meta.uid
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("p1"))
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'pods "p1" already exists'
    assert body["details"] == {"name": "p1", "kind": "pods"}
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_pod("missing", NS)
    assert err.value.status == 404 and status_of(err.value)["message"] == 'pods "missing" not found'
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod("ghost", pod_manifest("p2"))
    assert status_of(err.value)["message"] == 'namespaces "ghost" not found'
    assert core_v1.list_namespaced_pod("ghost").items == []


def test_generate_name_and_automount_off(core_v1: Any) -> None:
    manifest = pod_manifest("", extra_spec={"automountServiceAccountToken": False})
    manifest["metadata"] = {"generateName": "job-"}
    pod = core_v1.create_namespaced_pod(NS, manifest)
    assert pod.metadata.name.startswith("job-") and len(pod.metadata.name) == 9
    assert not pod.spec.volumes and not pod.spec.containers[0].volume_mounts


def test_validation_422_with_causes(core_v1: Any) -> None:
    bad = pod_manifest("Bad_Name", restart_policy="Sometimes")
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, bad)
    body = status_of(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value: '
                                      '"Bad_Name": a lowercase RFC 1123 subdomain')
    fields = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert fields == {"metadata.name": "FieldValueInvalid",
                      "spec.restartPolicy": "FieldValueNotSupported"}
    dup = pod_manifest("dup")
    dup["spec"]["containers"].append(dict(dup["spec"]["containers"][0]))
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, dup)
    assert status_of(err.value)["details"]["causes"][0] == {
        "reason": "FieldValueDuplicate", "message": 'Duplicate value: "main"',
        "field": "spec.containers[1].name"}
    long_label = pod_manifest("lbl", labels={"k": "x" * 64})
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, long_label)
    assert "must be no more than 63 characters" in status_of(err.value)["message"]
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("dl", deadline=0))
    assert "spec.activeDeadlineSeconds: Invalid value: 0" in status_of(err.value)["message"]
    quantity = pod_manifest("q")
    quantity["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "lots"}}
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, quantity)
    assert err.value.status == 400
    assert core_v1.list_namespaced_pod(NS).items == []


def test_dry_run_does_not_store(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    pod = core_v1.create_namespaced_pod(NS, pod_manifest("dry"), dry_run="All")
    assert pod.metadata.uid and pod.metadata.resource_version is None
    assert core_v1.list_namespaced_pod(NS).items == []
    assert kube_emulator.requests(method="POST")[0].query["dryRun"] == "All"


def test_list_selectors_and_pagination(core_v1: Any) -> None:
    for i in range(5):
        labels = {"app.kubernetes.io/managed-by": "kflow", "kflow.dev/run": "r1" if i < 3 else "r2"}
        core_v1.create_namespaced_pod(NS, pod_manifest(f"p{i}", labels=labels))
    sel = "app.kubernetes.io/managed-by=kflow,kflow.dev/run=r1"
    names = [p.metadata.name for p in core_v1.list_namespaced_pod(NS, label_selector=sel).items]
    assert names == ["p0", "p1", "p2"]
    assert len(core_v1.list_namespaced_pod(NS, label_selector="kflow.dev/run in (r2)").items) == 2
    assert len(core_v1.list_namespaced_pod(NS, label_selector="kflow.dev/run!=r1").items) == 2
    assert len(core_v1.list_namespaced_pod(NS, label_selector="!kflow.dev/run").items) == 0
    by_name = core_v1.list_namespaced_pod(NS, field_selector="metadata.name=p3").items
    assert [p.metadata.name for p in by_name] == ["p3"]
    with pytest.raises(ApiException) as err:
        core_v1.list_namespaced_pod(NS, field_selector="spec.bogus=1")
    assert err.value.status == 400
    assert status_of(err.value)["message"] == "field label not supported: spec.bogus"
    with pytest.raises(ApiException) as err:
        core_v1.list_namespaced_pod(NS, label_selector="a in (b")
    assert err.value.status == 400
    page = core_v1.list_namespaced_pod(NS, limit=2)
    assert [p.metadata.name for p in page.items] == ["p0", "p1"]
    assert page.metadata.remaining_item_count == 3 and page.metadata._continue
    rest: list[str] = []
    token = page.metadata._continue
    while token:
        nxt = core_v1.list_namespaced_pod(NS, limit=2, _continue=token)
        assert nxt.metadata.resource_version == page.metadata.resource_version
        rest += [p.metadata.name for p in nxt.items]
        token = nxt.metadata._continue
    assert rest == ["p2", "p3", "p4"]
    everything = core_v1.list_pod_for_all_namespaces()
    assert len(everything.items) == 5


def test_expired_continue_token(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    for i in range(3):
        core_v1.create_namespaced_pod(NS, pod_manifest(f"p{i}"))
    page = core_v1.list_namespaced_pod(NS, limit=1)
    core_v1.create_namespaced_pod(NS, pod_manifest("p9"))
    kube_emulator.faults.compact()
    with pytest.raises(ApiException) as err:
        core_v1.list_namespaced_pod(NS, limit=1, _continue=page.metadata._continue)
    body = status_of(err.value)
    assert err.value.status == 410 and body["reason"] == "Expired"
    assert body["metadata"]["continue"]


def test_patch_labels_and_forbidden_spec_change(core_v1: Any) -> None:
    core_v1.create_namespaced_pod(NS, pod_manifest("p", labels={"a": "1"}))
    patched = core_v1.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"b": "2"},
                                                                  "annotations": {"x": "y"}}})
    assert patched.metadata.labels == {"a": "1", "b": "2"}
    assert patched.metadata.annotations == {"x": "y"}
    removed = core_v1.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"a": None}}})
    assert removed.metadata.labels == {"b": "2"}
    jp = core_v1.patch_namespaced_pod("p", NS, [{"op": "add", "path": "/metadata/labels/c",
                                                 "value": "3"}])
    assert jp.metadata.labels == {"b": "2", "c": "3"}
    with pytest.raises(ApiException) as err:
        core_v1.patch_namespaced_pod("p", NS, {"spec": {"restartPolicy": "Always"}})
    assert err.value.status == 422
    assert "pod updates may not change fields" in status_of(err.value)["message"]


def test_delete_preconditions_grace_and_collection(core_v1: Any,
                                                   kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.unschedulable("pending-*")
    core_v1.create_namespaced_pod(NS, pod_manifest("pending-1", labels={"run": "x"}))
    uid = core_v1.read_namespaced_pod("pending-1", NS).metadata.uid
    with pytest.raises(ApiException) as err:
        core_v1.delete_namespaced_pod("pending-1", NS, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert f"Precondition failed: UID in precondition: not-the-uid, UID in object meta: {uid}" \
        in body["message"]
    gone = core_v1.delete_namespaced_pod("pending-1", NS, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=uid)))
    assert gone.metadata.name == "pending-1"  # unscheduled: deleted at once
    assert read_pod(core_v1, "pending-1") is None
    with pytest.raises(ApiException) as err:
        core_v1.delete_namespaced_pod("pending-1", NS)
    assert err.value.status == 404
    for i in range(3):
        core_v1.create_namespaced_pod(NS, pod_manifest(f"pending-c{i}",
                                                       labels={"run": "y" if i else "z"}))
    raw = core_v1.delete_collection_namespaced_pod(NS, label_selector="run=y",
                                                   _preload_content=False)
    deleted = json.loads(raw.data)
    assert deleted["kind"] == "PodList"
    assert sorted(p["metadata"]["name"] for p in deleted["items"]) == ["pending-c1", "pending-c2"]
    assert [p.metadata.name for p in core_v1.list_namespaced_pod(NS).items] == ["pending-c0"]


def test_auth_401_and_rbac_403(kube_emulator: KubeEmulator, tmp_path: Any,
                               core_v1: Any, kube_api_client: Any) -> None:
    from kubernetes import config

    bad = kube_emulator.write_kubeconfig(tmp_path / "bad", token="wrong")
    bad_api = client.CoreV1Api(config.new_client_from_config(config_file=bad))
    with pytest.raises(ApiException) as err:
        bad_api.list_namespaced_pod(NS)
    assert err.value.status == 401 and status_of(err.value)["reason"] == "Unauthorized"
    kube_emulator.rbac.deny("create", "pods", group="", namespace=NS)
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("p"))
    body = status_of(err.value)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods is forbidden: User "system:serviceaccount:kflow-test:kflow" '
                               'cannot create resource "pods" in API group "" in the namespace '
                               '"kflow-test"')
    kube_emulator.rbac.deny("get", "pods/log")
    authz = client.AuthorizationV1Api(kube_api_client)

    def review(verb: str, resource: str, sub: str = "", group: str = "") -> bool:
        spec = client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(
            namespace=NS, verb=verb, group=group, resource=resource, subresource=sub))
        return bool(authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=spec)).status.allowed)

    assert review("create", "pods") is False
    assert review("get", "pods", "log") is False
    assert review("list", "pods") is True
    assert review("update", "leases", group="coordination.k8s.io") is True
    rules = authz.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace=NS)))
    assert rules.status.incomplete is False
    who = client.AuthenticationV1Api(kube_api_client).create_self_subject_review(
        client.V1SelfSubjectReview())
    assert who.status.user_info.username == "system:serviceaccount:kflow-test:kflow"


def test_lease_optimistic_concurrency(kube_api_client: Any) -> None:
    coord = client.CoordinationV1Api(kube_api_client)
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="kflow-lock"),
                           spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15))
    created = coord.create_namespaced_lease(NS, lease)
    with pytest.raises(ApiException) as err:
        coord.create_namespaced_lease(NS, lease)
    assert status_of(err.value)["reason"] == "AlreadyExists"
    assert status_of(err.value)["message"] == \
        'leases.coordination.k8s.io "kflow-lock" already exists'
    current = coord.read_namespaced_lease("kflow-lock", NS)
    current.spec.holder_identity = "b"
    updated = coord.replace_namespaced_lease("kflow-lock", NS, current)
    assert updated.spec.holder_identity == "b"
    assert updated.metadata.resource_version != created.metadata.resource_version
    stale = current  # still carries the old resourceVersion
    stale.spec.holder_identity = "c"
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("kflow-lock", NS, stale)
    body = status_of(err.value)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on leases.coordination.k8s.io '
                               '"kflow-lock": the object has been modified; please apply your '
                               "changes to the latest version and try again")
    stale.metadata.resource_version = None
    with pytest.raises(ApiException) as err:
        coord.replace_namespaced_lease("kflow-lock", NS, stale)
    assert err.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in \
        status_of(err.value)["message"]
    patched = coord.patch_namespaced_lease("kflow-lock", NS, {"spec": {"holderIdentity": "d"}})
    assert patched.spec.holder_identity == "d"
    assert len(coord.list_namespaced_lease(NS).items) == 1
    coord.delete_namespaced_lease("kflow-lock", NS)
    assert coord.list_namespaced_lease(NS).items == []


def test_secrets_and_configmaps(core_v1: Any) -> None:
    secret = core_v1.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), string_data={"key": "value"}))
    assert secret.data == {"key": "dmFsdWU="} and secret.type == "Opaque"
    cm = core_v1.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg"), data={"a": "b"}))
    assert cm.data == {"a": "b"}
    names = [c.metadata.name for c in core_v1.list_namespaced_config_map(NS).items]
    assert names == ["cfg", "kube-root-ca.crt"]
    core_v1.delete_namespaced_secret("creds", NS)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_secret("creds", NS)
    assert err.value.status == 404


@pytest.mark.parametrize(("method", "retry_after", "expected"), [
    ("GET", 0, 4), ("GET", None, 1), ("POST", 0, 1), ("DELETE", 0, 4)])
def test_429_and_urllib3_silent_retries(core_v1: Any, kube_emulator: KubeEmulator, method: str,
                                        retry_after: int | None, expected: int) -> None:
    kube_emulator.faults.fail_requests(method, r"/pods", 429, times=None, retry_after=retry_after)
    kube_emulator.reset_requests()
    with pytest.raises(ApiException) as err:
        if method == "GET":
            core_v1.list_namespaced_pod(NS)
        elif method == "POST":
            core_v1.create_namespaced_pod(NS, pod_manifest("p"))
        else:
            core_v1.delete_namespaced_pod("p", NS)
    assert err.value.status == 429
    body = status_of(err.value)
    assert body["reason"] == "TooManyRequests"
    assert kube_emulator.count(method=method, path_re="/pods") == expected


def test_fail_next_n_then_succeed(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    rule = kube_emulator.faults.fail_requests("GET", r"/pods$", 503, times=3, retry_after=0)
    assert core_v1.list_namespaced_pod(NS).items == []  # urllib3 retried 3 times silently
    assert rule.hits == 3 and kube_emulator.count(method="GET", path_re="/pods$") == 4
    kube_emulator.faults.fail_requests("POST", r"/pods$", 500, message="boom")
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("p"))
    assert err.value.status == 500 and status_of(err.value)["message"] == "boom"
    core_v1.create_namespaced_pod(NS, pod_manifest("p"))


def test_lost_response_still_performs_the_write(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    import urllib3

    kube_emulator.faults.lose_response("POST", r"/pods$")
    with pytest.raises((urllib3.exceptions.HTTPError, ConnectionError)):
        core_v1.create_namespaced_pod(NS, pod_manifest("p"), _request_timeout=5)
    assert read_pod(core_v1, "p") is not None
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("p"))
    assert status_of(err.value)["reason"] == "AlreadyExists"


def test_admission_and_reject_create(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.admission_deny("no pods today", pod_glob="deny-*")
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("deny-1"))
    assert err.value.status == 400
    assert status_of(err.value)["message"] == \
        'admission webhook "validate.kflow.test" denied the request: no pods today'
    kube_emulator.faults.reject_create("rej-*", message="nope", field="spec.containers[0].image")
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, pod_manifest("rej-1"))
    assert err.value.status == 422
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.containers[0].image"


def test_throttle_and_request_log(core_v1: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.faults.throttle(qps=0.001, burst=2, retry_after=None)
    core_v1.list_namespaced_pod(NS)
    core_v1.list_namespaced_pod(NS)
    with pytest.raises(ApiException) as err:
        core_v1.list_namespaced_pod(NS)
    assert err.value.status == 429
    assert kube_emulator.count(verb="list", status=200) == 2
    assert kube_emulator.verb_counts()["list"] == 3
    assert kube_emulator.request_counts()[("GET", f"/api/v1/namespaces/{NS}/pods")] == 3
    rec = kube_emulator.requests()[0]
    assert rec.user == "system:serviceaccount:kflow-test:kflow"
    assert rec.user_agent.startswith("OpenAPI-Generator/")


def raw_post(kube: KubeEmulator, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
    """POST bypassing the client's own model validation (v37 rejects unknown fields itself)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(kube.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer test-token"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            warnings = "\n".join(resp.headers.get_all("Warning") or [])
            return resp.status, {"Warning": warnings}, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_unknown_fields_dropped_with_warning_or_rejected_when_strict(
        kube_emulator: KubeEmulator) -> None:
    typo = pod_manifest("typo")
    typo["spec"]["serviceAcountName"] = "x"
    typo["spec"]["containers"][0]["commnd"] = ["true"]
    path = f"/api/v1/namespaces/{NS}/pods"
    code, _, body = raw_post(kube_emulator, path + "?fieldValidation=Strict", typo)
    assert code == 400
    assert body["message"] == (
        'strict decoding error: unknown field "spec.containers[0].commnd", unknown field '
        '"spec.serviceAcountName"')
    code, headers, stored = raw_post(kube_emulator, path, typo)
    assert code == 201
    assert 'unknown field \\"spec.serviceAcountName\\"' in headers["Warning"]
    assert "commnd" not in stored["spec"]["containers"][0]
    assert "serviceAcountName" not in stored["spec"]


def test_go_style_booleans_and_latency(kube_emulator: KubeEmulator, core_v1: Any) -> None:
    import urllib.request

    kube_emulator.faults.expire_history()
    for flag in ("True", "1", "t"):  # kubernetes 35.x sends watch=True
        req = urllib.request.Request(
            f"{kube_emulator.url}/api/v1/namespaces/{NS}/pods?watch={flag}&resourceVersion=1",
            headers={"Authorization": "Bearer test-token"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.readline())["type"] == "ERROR"
    kube_emulator.faults.latency(r"/pods$", 0.3)
    started = time.monotonic()
    core_v1.list_namespaced_pod(NS)
    assert time.monotonic() - started >= 0.3
    import urllib3

    with pytest.raises(urllib3.exceptions.HTTPError):  # read timeouts, retried by urllib3
        core_v1.list_namespaced_pod(NS, _request_timeout=(1, 0.1))


def test_discovery_namespace_create_and_415(kube_api_client: Any, core_v1: Any,
                                            kube_emulator: KubeEmulator) -> None:
    assert client.CoreApi(kube_api_client).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(kube_api_client).get_api_versions().groups
    assert "coordination.k8s.io" in {g.name for g in groups}
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="extra")))
    assert core_v1.read_namespace("extra").status.phase == "Active"
    assert core_v1.read_namespaced_config_map("kube-root-ca.crt", "extra").data["ca.crt"]
    with pytest.raises(ApiException) as err:
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="extra")))
    assert status_of(err.value)["reason"] == "AlreadyExists"
    core_v1.create_namespaced_pod(NS, pod_manifest("p"))
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{kube_emulator.url}/api/v1/namespaces/{NS}/pods/p", data=b"{}", method="PATCH",
        headers={"Authorization": "Bearer test-token", "Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=5)
    assert http_err.value.code == 415


def test_huge_body_is_413(core_v1: Any) -> None:
    huge = pod_manifest("huge")
    huge["metadata"]["annotations"] = {f"k{i}": "x" * 1000 for i in range(3200)}
    with pytest.raises(ApiException) as err:
        core_v1.create_namespaced_pod(NS, huge)
    assert err.value.status == 413
    assert status_of(err.value)["message"] == "Request entity too large: limit is 3145728"


def test_pod_quota_refuses_with_the_real_403_until_a_pod_goes(
    core_v1: Any, kube_emulator: KubeEmulator
) -> None:
    quota = kube_emulator.faults.pod_quota(1, name="compute")
    core_v1.create_namespaced_pod(NS, pod_manifest("first", "sleep 30"))
    for dry_run in ("All", None):
        with pytest.raises(ApiException) as info:
            core_v1.create_namespaced_pod(NS, pod_manifest("second"), dry_run=dry_run)
        body = status_of(info.value)
        assert info.value.status == 403 and body["reason"] == "Forbidden"
        assert body["message"] == ('pods "second" is forbidden: exceeded quota: compute, '
                                   "requested: pods=1, used: pods=1, limited: pods=1")
        assert body["details"] == {"name": "second", "kind": "pods"}
    assert quota.hits == 2
    core_v1.delete_namespaced_pod("first", NS, grace_period_seconds=0)
    core_v1.create_namespaced_pod(NS, pod_manifest("second"))  # the quota freed up


def test_a_revoked_token_gets_401(kube_emulator: KubeEmulator, core_v1: Any) -> None:
    core_v1.list_namespaced_pod(NS)
    kube_emulator.rbac.revoke_token("test-token")
    with pytest.raises(ApiException) as info:
        core_v1.list_namespaced_pod(NS)
    assert info.value.status == 401


def test_clients_resetting_connections_print_nothing(
    kube_emulator_factory: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket
    import struct

    kube = kube_emulator_factory()
    watch = b"GET /api/v1/namespaces/kflow-test/pods?watch=true HTTP/1.1\r\n"
    for request in (b"GET /version HTTP/1.1\r\n", watch):
        for _ in range(3):
            conn = socket.create_connection(("127.0.0.1", kube.port))
            conn.sendall(request + b"Host: x\r\nAuthorization: Bearer test-token\r\n\r\n")
            conn.recv(65536)  # an answer: the server now waits for more (or streams)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # TCP RST
    kube.stop()  # waits for every connection thread
    assert kube.errors == []
    assert "Traceback" not in capfd.readouterr().err
