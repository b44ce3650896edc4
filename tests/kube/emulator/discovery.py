"""Discovery documents (``/api/v1``, ``/apis/GROUP/VERSION``): the resource lists kubectl
reads before any command, built from the resource table the router serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .resources import BY_PATH, Request, Response

if TYPE_CHECKING:
    from .cluster import Cluster

WRITES = ["create", "delete", "deletecollection", "patch", "update"]
READS = ["get", "list", "watch"]
SHORT_NAMES = {
    "pods": ["po"],
    "namespaces": ["ns"],
    "nodes": ["no"],
    "events": ["ev"],
    "configmaps": ["cm"],
}
SUBRESOURCES = {"pods": {"log": ["get"], "status": ["get"], "eviction": ["create"]}}


def resource_list(cluster: Cluster, req: Request) -> Response:
    """The APIResourceList of the group version in the request's path."""
    from .router import REVIEWS

    parts = req.path.strip("/").split("/")
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    resources: list[dict[str, Any]] = []
    for (g, plural), rt in sorted(BY_PATH.items()):
        if g != group:
            continue
        singular = rt.kind.lower()
        resources.append(
            {
                "name": plural,
                "singularName": singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": sorted(READS + WRITES),
                "shortNames": SHORT_NAMES.get(plural, []),
            }
        )
        for sub, verbs in SUBRESOURCES.get(plural, {}).items():
            resources.append(
                {
                    "name": f"{plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                }
            )
    for (g, plural), (rt, _) in REVIEWS.items():
        if g == group:
            resources.append(
                {
                    "name": plural,
                    "singularName": rt.kind.lower(),
                    "namespaced": False,
                    "kind": rt.kind,
                    "verbs": ["create"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return Response(
        200,
        {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        },
    )
