"""Generic CRUD handlers (create/get/list/update/patch/delete/deletecollection) for every
resource type; pods plug their specifics in through ``pods.py``."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import TYPE_CHECKING, Any

from . import pods
from .errors import (
    ApiError,
    FieldError,
    RawValue,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
)
from .errors import not_found as _not_found
from .patch import apply_patch
from .podspec import validate_metadata
from .resources import NAMESPACES, PODS, SECRETS, Request, ResourceType, Response
from .selectors import make_filter

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)


def not_found(rt: ResourceType, name: str) -> ApiError:
    return _not_found(rt.plural, name, rt.group)


def require_rt(req: Request) -> ResourceType:
    assert req.resource is not None
    return req.resource


def store_ns(req: Request) -> str:
    """The store key's namespace: empty for cluster-scoped resources."""
    return req.namespace if req.resource is not None and req.resource.namespaced else ""


def _body_object(req: Request, rt: ResourceType) -> Obj:
    if not isinstance(req.body, dict):
        raise bad_request(f"Object '{rt.kind}' is missing in '{req.raw_body[:200]!r}'")
    obj = req.body
    kind = obj.get("kind")
    if kind and kind != rt.kind:
        raise bad_request(
            f"{kind} in version \"{obj.get('apiVersion', '')}\" cannot be handled as a {rt.kind}"
        )
    obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    return obj


def manager_name(req: Request) -> str:
    return req.query.get("fieldManager") or req.headers.get("user-agent", "unknown").split("/")[0]


def _managed(req: Request, rt: ResourceType, operation: str, now: str) -> Obj:
    return {"manager": manager_name(req), "operation": operation, "apiVersion": rt.api_version,
            "time": now, "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}


def _normalise_secret(obj: Obj) -> None:
    data = obj.get("data") or {}
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                f"Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data "
                f"at input byte 0 (key {key})"
            ) from None
    obj["data"] = data
    obj.setdefault("type", "Opaque")


def _check_namespace(cluster: Cluster, rt: ResourceType, namespace: str) -> None:
    if rt.namespaced and not cluster.namespace_exists(namespace):
        raise _not_found("namespaces", namespace)


def dry_run(req: Request) -> bool:
    value = req.query.get("dryRun", "")
    if value and value != "All":
        raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


# --- create ------------------------------------------------------------------------------------


def create(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    obj = _body_object(req, rt)
    meta = obj["metadata"]
    body_ns = meta.get("namespace")
    if rt.namespaced and body_ns and body_ns != req.namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    _check_namespace(cluster, rt, req.namespace)
    now = cluster.clock.now_iso()
    if rt is PODS:
        obj = pods.prepare_create(cluster, req, obj)
        meta = obj["metadata"]
    else:
        errs = validate_metadata(meta)
        if errs:
            raise invalid(rt.kind, meta.get("name") or meta.get("generateName", ""), errs, rt.group)
        if not meta.get("name"):
            from .podspec import random_suffix

            meta["name"] = meta["generateName"] + random_suffix()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        meta.pop("resourceVersion", None)
        if rt.namespaced:
            meta["namespace"] = req.namespace
        if rt is SECRETS:
            _normalise_secret(obj)
        if rt is NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
    meta["managedFields"] = [_managed(req, rt, "Update", now)]
    name = meta["name"]
    if dry_run(req):
        if rt is PODS:
            cluster.faults.check_quota(obj, req.namespace)
        if cluster.store.get(rt.key, store_ns(req), name) is not None:
            raise already_exists(rt.plural, name, rt.group)
        return Response(201, obj)
    if rt is NAMESPACES:
        if cluster.namespace_exists(name):
            raise already_exists(rt.plural, name, rt.group)
        cluster.add_namespace(name)  # with its kube-root-ca.crt, like a real cluster
        stored = cluster.store.get(rt.key, "", name)
        assert stored is not None
        return Response(201, stored)
    with cluster.store.lock:  # quota admission and the write: one step
        if rt is PODS:
            cluster.faults.check_quota(obj, req.namespace)
        stored = cluster.store.create(rt.key, store_ns(req), name, obj)
    if stored is None:
        raise already_exists(rt.plural, name, rt.group)
    if rt is PODS:
        cluster.kubelet.pod_created(req.namespace, name)
    return Response(201, stored)


# --- read --------------------------------------------------------------------------------------


def get(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    obj = cluster.store.get(rt.key, store_ns(req), req.name)
    if obj is None:
        raise not_found(rt, req.name)
    return Response(200, obj)


def _encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, binascii.Error):
        raise bad_request("continue key is not valid: illegal base64 data") from None


def list_objects(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    match = make_filter(req.query.get("labelSelector"), req.query.get("fieldSelector"),
                        set(rt.fields))
    namespace = req.namespace if rt.namespaced and req.namespace else None
    limit = req.int_param("limit") or 0
    token = req.query.get("continue")
    rv_param = req.query.get("resourceVersion", "")
    rv_match = req.query.get("resourceVersionMatch", "")
    start = ""
    store = cluster.store
    if token:
        list_rv, start = _decode_continue(token)
        items = store.list_at(rt.key, namespace, list_rv)
        if items is None:
            now_rv = store.rv
            fresh = _encode_continue(now_rv, start)
            raise ApiError(410, CONTINUE_EXPIRED, "Expired", metadata={"continue": fresh})
    elif rv_param and rv_param != "0" and rv_match == "Exact":
        list_rv = _parse_rv(rv_param)
        at = store.list_at(rt.key, namespace, list_rv) if list_rv <= store.rv else None
        if at is None:
            raise expired(f"too old resource version: {list_rv} ({store.floor_of(rt.key)})")
        items = at
    else:
        if rv_param and rv_param != "0":
            wanted = _parse_rv(rv_param)
            if wanted > store.rv:
                raise ApiError(504, "Too large resource version: "
                               f"{wanted}, current: {store.rv}", "Timeout",
                               {"causes": [{"reason": "ResourceVersionTooLarge",
                                            "message": "Too large resource version"}],
                                "retryAfterSeconds": 1})
        items, list_rv = store.list(rt.key, namespace)
    selected = [o for o in items if match(o) and _key(o) > start]
    meta: Obj = {"resourceVersion": str(list_rv)}
    if limit > 0 and len(selected) > limit:
        meta["continue"] = _encode_continue(list_rv, _key(selected[limit - 1]))
        meta["remainingItemCount"] = len(selected) - limit
        selected = selected[:limit]
    for o in selected:
        o.pop("kind", None)
        o.pop("apiVersion", None)
    return Response(200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                          "metadata": meta, "items": selected})


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'invalid resource version "{value}"') from None


# --- update / patch ----------------------------------------------------------------------------


def _finish_update(cluster: Cluster, req: Request, rt: ResourceType, old: Obj, new: Obj) -> Obj:
    """Common update rules: immutable metadata, per-type checks, managedFields."""
    new["kind"], new["apiVersion"] = rt.kind, rt.api_version
    meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
    if meta.get("name", old_meta["name"]) != old_meta["name"]:
        raise bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL "
            f"({old_meta['name']})"
        )
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds", "generation"):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    errs = validate_metadata(meta)
    if errs:
        raise invalid(rt.kind, old_meta["name"], errs, rt.group)
    if rt is PODS:
        pods.check_update(old, new)
    if rt is SECRETS:
        _normalise_secret(new)
    if rt is NAMESPACES:
        new["status"] = old.get("status")
    now = cluster.clock.now_iso()
    meta["managedFields"] = [_managed(req, rt, "Update", now)]
    return new


def update(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    obj = _body_object(req, rt)
    meta = obj["metadata"]
    if meta.get("name") and meta["name"] != req.name:
        raise bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL "
            f"({req.name})"
        )
    store = cluster.store
    with store.lock:
        old = store.get(rt.key, store_ns(req), req.name)
        if old is None:
            if rt.create_on_update:
                return create(cluster, req)
            raise not_found(rt, req.name)
        rv = meta.get("resourceVersion")
        if not rv:
            if not rt.unconditional_update:
                raise invalid(rt.kind, req.name, [FieldError(
                    "Invalid", "metadata.resourceVersion", RawValue("0x0"),
                    "must be specified for an update"
                )], rt.group)
        elif rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, req.name, rt.group)
        new = _finish_update(cluster, req, rt, old, obj)
        if dry_run(req):
            return Response(200, new)
        stored = store.replace(rt.key, store_ns(req), req.name, new)
    assert stored is not None
    return Response(200, stored)


def patch(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    ctype = req.headers.get("content-type", "")
    store = cluster.store
    with store.lock:
        old = store.get(rt.key, store_ns(req), req.name)
        if old is None:
            raise not_found(rt, req.name)
        new = apply_patch(ctype, old, req.body)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, req.name, rt.group)
        new = _finish_update(cluster, req, rt, old, new)
        if dry_run(req):
            return Response(200, new)
        stored = store.replace(rt.key, store_ns(req), req.name, new)
    assert stored is not None
    return Response(200, stored)


# --- delete ------------------------------------------------------------------------------------


def delete_options(req: Request) -> Obj:
    """Merge DeleteOptions from the body and the query (query wins, as in the apiserver)."""
    opts: Obj = dict(req.body) if isinstance(req.body, dict) else {}
    grace = req.int_param("gracePeriodSeconds")
    if grace is not None:
        opts["gracePeriodSeconds"] = grace
    if "propagationPolicy" in req.query:
        opts["propagationPolicy"] = req.query["propagationPolicy"]
    if "dryRun" in req.query:
        opts["dryRun"] = [req.query["dryRun"]]
    return opts


def check_preconditions(rt: ResourceType, obj: Obj, opts: Obj) -> None:
    pre = opts.get("preconditions") or {}
    meta = obj["metadata"]
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise conflict(rt.plural, meta["name"], rt.group,
                       f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                       f"meta: {meta.get('uid')}")
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
        raise conflict(rt.plural, meta["name"], rt.group,
                       "Precondition failed: ResourceVersion in precondition: "
                       f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                       f"{meta.get('resourceVersion')}")


def delete(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    opts = delete_options(req)
    if rt is PODS:
        return pods.delete_pod(cluster, req, opts)
    store = cluster.store
    with store.lock:
        obj = store.get(rt.key, store_ns(req), req.name)
        if obj is None:
            raise not_found(rt, req.name)
        check_preconditions(rt, obj, opts)
        if "All" not in (opts.get("dryRun") or []):
            store.delete(rt.key, store_ns(req), req.name)
    return Response(200, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": req.name, "group": rt.group, "kind": rt.plural,
                    "uid": obj["metadata"].get("uid")},
    })


def delete_collection(cluster: Cluster, req: Request) -> Response:
    rt = require_rt(req)
    listing = list_objects(cluster, req).body
    opts = delete_options(req)
    deleted = []
    for item in listing["items"]:
        meta = item["metadata"]
        sub = Request(req.method, req.path, req.query, req.headers, b"", opts, req.user,
                      req.groups, rt, meta.get("namespace", ""), meta["name"], "", "delete")
        try:
            resp = delete(cluster, sub)
            if rt is PODS:  # the pod as the DELETE left it (possibly still terminating)
                item = {k: v for k, v in resp.body.items() if k not in ("kind", "apiVersion")}
            deleted.append(item)
        except ApiError as exc:
            if exc.code != 404:
                raise
    listing["items"] = deleted
    return Response(200, listing)
