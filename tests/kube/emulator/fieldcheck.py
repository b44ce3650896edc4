"""Unknown-field handling on pod create (``fieldValidation``): the API server drops unknown fields
(with a ``Warning`` header by default) or rejects them with 400 under ``Strict``.

Only the structures kflow writes are described (ObjectMeta, PodSpec, Container, EnvVar and their
references); anything deeper (affinity, probes, volumes, ...) is passed through unchecked.
"""

from __future__ import annotations

from typing import Any

from .errors import bad_request

Schema = dict[str, Any]  # key -> child schema, None (opaque), or [child] for lists

META = dict.fromkeys((
    "annotations", "creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp",
    "finalizers", "generateName", "generation", "labels", "managedFields", "name", "namespace",
    "ownerReferences", "resourceVersion", "selfLink", "uid"))
KEY_REF = dict.fromkeys(("name", "key", "optional"))
ENV = {"name": None, "value": None, "valueFrom": {
    "configMapKeyRef": KEY_REF, "secretKeyRef": KEY_REF, "fileKeyRef": None,
    "fieldRef": dict.fromkeys(("apiVersion", "fieldPath")),
    "resourceFieldRef": dict.fromkeys(("containerName", "resource", "divisor"))}}
NAME_REF = dict.fromkeys(("name", "optional"))
CONTAINER: Schema = {
    **dict.fromkeys((
        "args", "command", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name",
        "ports", "readinessProbe", "resizePolicy", "restartPolicy", "restartPolicyRules",
        "securityContext", "startupProbe", "stdin", "stdinOnce", "terminationMessagePath",
        "terminationMessagePolicy", "tty", "volumeDevices", "volumeMounts", "workingDir")),
    "env": [ENV],
    "envFrom": [{"prefix": None, "configMapRef": NAME_REF, "secretRef": NAME_REF}],
    "resources": dict.fromkeys(("limits", "requests", "claims")),
}
POD_SPEC: Schema = {
    **dict.fromkeys((
        "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig",
        "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "evictionResponders",
        "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname",
        "hostnameOverride", "imagePullSecrets", "nodeName", "nodeSelector", "os", "overhead",
        "preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims",
        "resources", "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates",
        "schedulingGroup", "securityContext", "serviceAccount", "serviceAccountName",
        "setHostnameAsFQDN", "shareProcessNamespace", "subdomain",
        "terminationGracePeriodSeconds", "tolerations", "topologySpreadConstraints", "volumes")),
    "containers": [CONTAINER],
    "initContainers": [CONTAINER],
}
POD: Schema = {"apiVersion": None, "kind": None, "metadata": META, "spec": POD_SPEC,
               "status": None}


def _walk(obj: Any, schema: Any, path: str, unknown: list[str]) -> Any:
    if schema is None:
        return obj
    if isinstance(schema, list):
        if not isinstance(obj, list):
            return obj
        return [_walk(item, schema[0], f"{path}[{i}]", unknown) for i, item in enumerate(obj)]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        child = f"{path}.{key}" if path else key
        if key not in schema:
            unknown.append(child)
            continue
        out[key] = _walk(value, schema[key], child, unknown)
    return out


def prune_pod(pod: dict[str, Any], mode: str) -> tuple[dict[str, Any], list[str]]:
    """Returns the pruned pod and the Warning header values; raises 400 under Strict."""
    unknown: list[str] = []
    pruned = _walk(pod, POD, "", unknown)
    if not unknown or mode == "Ignore":
        return pruned, []
    if mode == "Strict":
        if len(unknown) == 1:
            raise bad_request(f'strict decoding error: unknown field "{unknown[0]}"')
        listed = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise bad_request(f"strict decoding error: {listed}")
    return pruned, [f'299 - "unknown field \\"{u}\\""' for u in unknown]
