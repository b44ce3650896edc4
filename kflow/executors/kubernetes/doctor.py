"""What `kflow doctor` asks the cluster: each answer a ``Check`` with what to fix if it failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kflow.errors import KflowError
from kflow.executors.kubernetes.api import Api, ApiFailure
from kflow.executors.kubernetes.config import ClusterConfig

# (verb, API group, resource, subresource): everything the executor uses. Leases between
# runs live on the project's storage, not in the cluster: no coordination.k8s.io access.
PERMISSIONS = (
    ("create", "", "pods", ""),
    ("get", "", "pods", ""),
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
    ("delete", "", "pods", ""),
    ("patch", "", "pods", ""),
    ("deletecollection", "", "pods", ""),
    ("get", "", "pods", "log"),
)

PROBE_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "kflow-doctor-probe", "labels": {"app.kubernetes.io/managed-by": "kflow"}},
    "spec": {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "main",
                "image": "busybox:1.36",
                "command": ["true"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }
        ],
    },
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


def cluster_checks(cluster: ClusterConfig, image: str | None = None) -> Iterator[Check]:
    """Context, server version, namespace, permissions, a dry-run create — in that order."""
    api = Api(cluster)
    ns = cluster.namespace
    yield Check("context", True, f"{cluster.context} ({cluster.server}), namespace {ns}")
    try:
        version = _version(api)
    except KflowError as exc:
        yield Check("server", False, str(exc), "check that the cluster runs and the URL is right")
        return
    yield Check("server", True, version)
    yield _namespace(api, ns)
    for verb, group, resource, sub in PERMISSIONS:
        yield _permission(api, ns, verb, group, resource, sub)
    yield _dry_run(api, ns, image)


def _version(api: Api) -> str:
    import kubernetes.client

    client: Any = kubernetes.client
    resp = api.json("get version", client.VersionApi(api.cluster.api_client).get_code)
    data = resp
    return str(data.get("gitVersion") or f"{data.get('major')}.{data.get('minor')}")


def _namespace(api: Api, ns: str) -> Check:
    try:
        api.request("get namespace", api.core.read_namespace, ns)
    except ApiFailure as exc:
        if exc.status == 404:
            return Check(
                "namespace",
                False,
                f"namespace {ns!r} does not exist",
                f"kubectl create namespace {ns}, or set namespace in the profile",
            )
        if exc.status == 403:
            return Check("namespace", True, f"{ns} (cannot read namespaces; not needed)")
        return Check("namespace", False, exc.message)
    except KflowError as exc:
        return Check("namespace", False, str(exc))
    return Check("namespace", True, f"{ns} exists")


def _permission(api: Api, ns: str, verb: str, group: str, resource: str, sub: str) -> Check:
    import kubernetes.client

    client: Any = kubernetes.client
    what = f"{verb} {resource}{'/' + sub if sub else ''}" + (f" ({group})" if group else "")
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": ns,
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": sub,
            }
        },
    }
    authz = client.AuthorizationV1Api(api.cluster.api_client)
    try:
        resp = api.json(
            "create selfsubjectaccessreview", authz.create_self_subject_access_review, body
        )
    except (ApiFailure, KflowError) as exc:
        return Check(f"can {what}", False, f"access review failed: {exc}")
    status = resp.get("status") or {}
    if status.get("allowed"):
        return Check(f"can {what}", True)
    reason = status.get("reason") or "denied"
    rule = f"resources: [{resource}{'/' + sub if sub else ''}], verbs: [{verb}]"
    return Check(
        f"can {what}",
        False,
        reason,
        f'grant it in a Role bound to your user in {ns} (apiGroups: ["{group}"], '
        f"{rule}); see examples/kind/rbac.yaml",
    )


def _dry_run(api: Api, ns: str, image: str | None) -> Check:
    pod = json.loads(json.dumps(PROBE_POD))
    if image:
        pod["spec"]["containers"][0]["image"] = image
    try:
        api.request("create pod (dry run)", api.core.create_namespaced_pod, ns, pod, dry_run="All")
    except ApiFailure as exc:
        return Check(
            "dry-run pod create",
            False,
            f"{exc.status} {exc.reason}: {exc.message}",
            "admission, quota or policy rejects kflow's pods: see the message",
        )
    except KflowError as exc:
        return Check("dry-run pod create", False, str(exc))
    return Check("dry-run pod create", True, "accepted (nothing was created)")
