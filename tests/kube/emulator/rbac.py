"""Bearer-token authentication and a tiny RBAC table; the access-review endpoints answer from
the same table (§3.10)."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ApiError, bad_request
from .resources import Request, Response

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    allow: bool
    verbs: tuple[str, ...]
    resources: tuple[str, ...]  # "pods", "pods/log", "*"
    groups: tuple[str, ...]
    namespaces: tuple[str, ...]  # "*" = any
    users: tuple[str, ...]

    def matches(self, user: str, verb: str, group: str, resource: str, ns: str) -> bool:
        return (
            any(fnmatch.fnmatchcase(verb, v) for v in self.verbs)
            and any(fnmatch.fnmatchcase(resource, r) for r in self.resources)
            and any(fnmatch.fnmatchcase(group, g) for g in self.groups)
            and any(fnmatch.fnmatchcase(ns, n) for n in self.namespaces)
            and any(fnmatch.fnmatchcase(user, u) for u in self.users)
        )


def _tuple(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


class Rbac:
    """Default: every authenticated user may do everything. ``deny``/``allow`` rules are checked
    newest first; the first match wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self.tokens: dict[str, tuple[str, list[str]]] = {}

    def add_token(self, token: str, user: str, groups: list[str] | None = None) -> None:
        self.tokens[token] = (user, groups or ["system:authenticated"])

    def revoke_token(self, token: str) -> None:
        """The token expires: requests bearing it get 401 from now on."""
        self.tokens.pop(token, None)

    def _add(self, allow: bool, verbs: Any, resources: Any, group: Any, namespace: Any,
             user: Any) -> Rule:
        rule = Rule(allow, _tuple(verbs), _tuple(resources), _tuple(group), _tuple(namespace),
                    _tuple(user))
        with self._lock:
            self._rules.insert(0, rule)
        return rule

    def deny(self, verbs: str | list[str] = "*", resources: str | list[str] = "*",
             group: str | list[str] = "*", namespace: str | list[str] = "*",
             user: str | list[str] = "*") -> Rule:
        return self._add(False, verbs, resources, group, namespace, user)

    def allow(self, verbs: str | list[str] = "*", resources: str | list[str] = "*",
              group: str | list[str] = "*", namespace: str | list[str] = "*",
              user: str | list[str] = "*") -> Rule:
        return self._add(True, verbs, resources, group, namespace, user)

    def deny_all_except(self, allowed: list[tuple[str, str, str]], user: str = "*") -> None:
        """Only ``(verb, group, resource)`` triples in ``allowed`` pass."""
        self.deny(user=user)
        for verb, group, resource in allowed:
            self.allow(verb, resource, group, user=user)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def allowed(self, user: str, verb: str, group: str, resource: str, ns: str) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.matches(user, verb, group, resource, ns):
                    return rule.allow
        return True

    def rules_for(self, user: str, ns: str) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    # --- request checks ------------------------------------------------------------------------

    def authenticate(self, req: Request) -> None:
        header = req.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if req.path in ("/version", "/healthz", "/readyz", "/livez") and not token:
            req.user, req.groups = "system:anonymous", ["system:unauthenticated"]
            return
        if token not in self.tokens:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        req.user, req.groups = self.tokens[token]

    def authorize(self, req: Request) -> None:
        rt = req.resource
        if rt is None or not req.verb:
            return
        resource = rt.plural + (f"/{req.subresource}" if req.subresource else "")
        if self.allowed(req.user, req.verb, rt.group, resource, req.namespace):
            return
        what = f'{rt.plural} "{req.name}"' if req.name else rt.plural
        where = f' in the namespace "{req.namespace}"' if rt.namespaced and req.namespace else ""
        scope = "" if where else " at the cluster scope"
        message = (f'{what} is forbidden: User "{req.user}" cannot {req.verb} resource '
                   f'"{resource}" in API group "{rt.group}"{where}{scope}')
        details: Obj = {"kind": rt.plural}
        if req.name:
            details["name"] = req.name
        if rt.group:
            details["group"] = rt.group
        raise ApiError(403, message, "Forbidden", details)


# --- review endpoints ---------------------------------------------------------------------------


def _review_body(req: Request, kind: str) -> Obj:
    if not isinstance(req.body, dict):
        raise bad_request(f"{kind} body is missing")
    body = dict(req.body)
    body["kind"] = kind
    body["metadata"] = {"creationTimestamp": None}
    return body


def access_review(cluster: Cluster, req: Request) -> Response:
    body = _review_body(req, "SelfSubjectAccessReview")
    body["apiVersion"] = "authorization.k8s.io/v1"
    spec = body.get("spec") or {}
    attrs = spec.get("resourceAttributes")
    if attrs:
        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource += "/" + attrs["subresource"]
        ok = cluster.rbac.allowed(req.user, attrs.get("verb", ""), attrs.get("group", ""),
                                  resource, attrs.get("namespace", ""))
    else:
        ok = True
    status: Obj = {"allowed": ok}
    if not ok:
        status["reason"] = ""
    body["status"] = status
    return Response(201, body)


def rules_review(cluster: Cluster, req: Request) -> Response:
    body = _review_body(req, "SelfSubjectRulesReview")
    body["apiVersion"] = "authorization.k8s.io/v1"
    ns = (body.get("spec") or {}).get("namespace", "")
    rules = []
    denies = [r for r in cluster.rbac.rules_for(req.user, ns) if not r.allow]
    if not denies:
        rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    for r in cluster.rbac.rules_for(req.user, ns):
        if r.allow:
            rules.append({"verbs": list(r.verbs), "apiGroups": list(r.groups),
                          "resources": list(r.resources)})
    body["status"] = {"resourceRules": rules,
                      "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/version"]}],
                      "incomplete": False}
    return Response(201, body)


def self_review(cluster: Cluster, req: Request) -> Response:
    body = _review_body(req, "SelfSubjectReview")
    body["apiVersion"] = "authentication.k8s.io/v1"
    body["status"] = {"userInfo": {"username": req.user, "groups": list(req.groups)}}
    return Response(201, body)
