"""Pod-specific API behaviour: create defaults/validation, update rules, graceful deletion
(§3.7) and the eviction subresource."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError, FieldError, bad_request, invalid, not_found
from .fieldcheck import prune_pod
from .podspec import (
    MUTABLE_SPEC_MESSAGE,
    apply_defaults,
    check_quantities,
    spec_update_allowed,
    validate_pod,
)
from .resources import PODS, Request, Response

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")


def prepare_create(cluster: Cluster, req: Request, pod: Obj) -> Obj:
    mode = req.query.get("fieldValidation", "Warn")
    if mode not in ("Ignore", "Warn", "Strict"):
        raise bad_request(f"fieldValidation must be one of Ignore, Warn, Strict, got {mode!r}")
    pod, warnings = prune_pod(pod, mode)
    req.warnings.extend(warnings)
    check_quantities(pod)
    pod = apply_defaults(pod, req.namespace, cluster.clock.now_iso())
    meta = pod["metadata"]
    errs = validate_pod(pod)
    name = meta.get("name") or meta.get("generateName") or ""
    if errs:
        raise invalid("Pod", name, errs)
    cluster.faults.check_create(pod)
    return pod


def check_update(old: Obj, new: Obj) -> None:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        new["spec"] = spec = old["spec"]
    if not spec_update_allowed(old["spec"], spec):
        raise invalid("Pod", old["metadata"]["name"],
                      [FieldError("Forbidden", "spec", None, MUTABLE_SPEC_MESSAGE)])
    ads_old, ads_new = old["spec"].get("activeDeadlineSeconds"), spec.get("activeDeadlineSeconds")
    if ads_new != ads_old and (ads_new is None or (ads_old is not None and ads_new > ads_old)):
        raise invalid("Pod", old["metadata"]["name"], [FieldError(
            "Invalid", "spec.activeDeadlineSeconds", ads_new,
            "must be less than or equal to previous value")])
    new["status"] = old.get("status")


def _is_immediate(pod: Obj, grace: int) -> bool:
    return (
        grace == 0
        or not pod["spec"].get("nodeName")
        or (pod.get("status") or {}).get("phase") in TERMINAL
    )


def delete_pod(cluster: Cluster, req: Request, opts: Obj) -> Response:
    from .api import check_preconditions

    store = cluster.store
    with store.lock:
        pod = store.get(PODS.key, req.namespace, req.name)
        if pod is None:
            raise not_found("pods", req.name)
        check_preconditions(PODS, pod, opts)
        if "All" in (opts.get("dryRun") or []):
            return Response(200, pod)
        grace = opts.get("gracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if grace < 0:
            grace = 1
        meta = pod["metadata"]
        if _is_immediate(pod, grace):
            last = store.delete(PODS.key, req.namespace, req.name)
            cluster.kubelet.pod_removed(req.namespace, req.name, meta["uid"])
            return Response(200, last)
        current = meta.get("deletionGracePeriodSeconds")
        if current is not None and current <= grace:
            return Response(200, pod)
        now = cluster.clock.time()

        def _mark(obj: Obj) -> Obj:
            from .clock import rfc3339

            obj["metadata"]["deletionTimestamp"] = rfc3339(now + grace)
            obj["metadata"]["deletionGracePeriodSeconds"] = grace
            return obj

        updated = store.mutate(PODS.key, req.namespace, req.name, _mark)
    cluster.kubelet.pod_deleting(req.namespace, req.name, grace)
    return Response(200, updated)


def evict(cluster: Cluster, req: Request) -> Response:
    body = req.body if isinstance(req.body, dict) else {}
    if body.get("kind") not in (None, "Eviction"):
        raise bad_request(f"{body.get('kind')} cannot be handled as a Eviction")
    name = (body.get("metadata") or {}).get("name") or req.name
    if name != req.name:
        raise bad_request("name in URL does not match name in Eviction object")
    store = cluster.store
    pod = store.get(PODS.key, req.namespace, req.name)
    if pod is None:
        raise not_found("pods", req.name)
    opts = dict(body.get("deleteOptions") or {})
    if req.query.get("dryRun") == "All":
        opts["dryRun"] = ["All"]
    if (pod.get("status") or {}).get("phase") not in TERMINAL and "All" not in opts.get(
        "dryRun", []
    ):
        cluster.kubelet.add_disruption(
            req.namespace, req.name, "EvictionByEvictionAPI", "Eviction API: evicting"
        )
    sub = Request("DELETE", req.path, {}, req.headers, b"", opts, req.user, req.groups,
                  PODS, req.namespace, req.name, "", "delete")
    try:
        delete_pod(cluster, sub, opts)
    except ApiError as exc:
        if exc.code != 404:
            raise
    return Response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Success", "code": 201})
