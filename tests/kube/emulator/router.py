"""Map ``(method, path, query)`` to a handler and the request attributes RBAC checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import api, discovery, logs, pods, rbac, watch
from .errors import ApiError
from .resources import BY_PATH, NAMESPACES, Request, ResourceType, Response, Stream

if TYPE_CHECKING:
    from .cluster import Cluster

Handler = Callable[["Cluster", Request], "Response | Stream"]
REVIEWS: dict[tuple[str, str], tuple[ResourceType, Handler]] = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"): (
        ResourceType("selfsubjectaccessreviews", "SelfSubjectAccessReview",
                     "authorization.k8s.io", namespaced=False), rbac.access_review),
    ("authorization.k8s.io", "selfsubjectrulesreviews"): (
        ResourceType("selfsubjectrulesreviews", "SelfSubjectRulesReview",
                     "authorization.k8s.io", namespaced=False), rbac.rules_review),
    ("authentication.k8s.io", "selfsubjectreviews"): (
        ResourceType("selfsubjectreviews", "SelfSubjectReview", "authentication.k8s.io",
                     namespaced=False), rbac.self_review),
}
VERSIONS = {"": "v1", "coordination.k8s.io": "v1", "authorization.k8s.io": "v1",
            "authentication.k8s.io": "v1", "policy": "v1"}


def not_found_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource",
                    "MethodNotAllowed", {})


def _version(cluster: Cluster, req: Request) -> Response:
    return Response(200, cluster.version_info())


def _discovery(cluster: Cluster, req: Request) -> Response:
    if req.path.rstrip("/") == "/api":
        return Response(200, {"kind": "APIVersions", "versions": ["v1"],
                              "serverAddressByClientCIDRs": [
                                  {"clientCIDR": "0.0.0.0/0", "serverAddress": cluster.address}]})
    groups = []
    for group in ("coordination.k8s.io", "authorization.k8s.io", "authentication.k8s.io",
                  "policy"):
        gv = {"groupVersion": f"{group}/v1", "version": "v1"}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return Response(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


def route(req: Request) -> Handler:
    path = req.path.rstrip("/") or "/"
    if path == "/version":
        return _version
    if path in ("/healthz", "/readyz", "/livez"):
        return lambda c, r: Response(200, b"ok", "text/plain")
    if path in ("/api", "/apis"):
        return _discovery
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 2 and parts[1] == "v1":
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
        if VERSIONS.get(group) != parts[2]:
            raise not_found_path()
    else:
        raise not_found_path()
    if not rest:  # kubectl's discovery of one group version
        return discovery.resource_list
    if (group, rest[0]) in REVIEWS and len(rest) == 1:
        rt, handler = REVIEWS[(group, rest[0])]
        if req.method != "POST":
            raise method_not_allowed()
        req.resource, req.verb = rt, "create"
        return handler
    namespace, name, sub = "", "", ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, resource = rest[1], rest[2]
        name = rest[3] if len(rest) > 3 else ""
        sub = rest[4] if len(rest) > 4 else ""
        if len(rest) > 5:
            raise not_found_path()
    else:
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3:
            raise not_found_path()
    found = BY_PATH.get((group, resource))
    if found is None or (namespace and not found.namespaced):
        raise not_found_path()
    rt = found
    if rt is NAMESPACES and name:
        namespace = name
    req.resource, req.namespace, req.name, req.subresource = rt, namespace, name, sub
    if rt.namespaced and name and not namespace:
        raise not_found_path()
    return _handler_for(req, rt)


def _handler_for(req: Request, rt: ResourceType) -> Handler:
    method, name, sub = req.method, req.name, req.subresource
    table: dict[tuple[str, bool, str], tuple[str, Any]] = {
        ("GET", False, ""): ("list", api.list_objects),
        ("POST", False, ""): ("create", api.create),
        ("DELETE", False, ""): ("deletecollection", api.delete_collection),
        ("GET", True, ""): ("get", api.get),
        ("PUT", True, ""): ("update", api.update),
        ("PATCH", True, ""): ("patch", api.patch),
        ("DELETE", True, ""): ("delete", api.delete),
        ("GET", True, "status"): ("get", api.get),
    }
    if rt.plural == "pods":
        table[("GET", True, "log")] = ("get", logs.read_log)
        table[("POST", True, "eviction")] = ("create", pods.evict)
    key = (method, bool(name), sub)
    if key not in table:
        if any(k[1:] == key[1:] for k in table):
            raise method_not_allowed()
        raise not_found_path()
    verb, handler = table[key]
    if verb == "list" and req.flag("watch"):
        verb, handler = "watch", watch.watch
    if not rt.namespaced and verb == "create" and rt is not NAMESPACES:
        raise method_not_allowed()
    if rt.namespaced and not req.namespace and verb in ("create", "deletecollection"):
        raise method_not_allowed()  # only list/watch exist across all namespaces
    req.verb = verb
    return handler  # type: ignore[no-any-return]
