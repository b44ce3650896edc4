"""core/v1 Events written by the fake scheduler and kubelet (§3.9).

Kubelet events use the legacy shape (``count``, ``firstTimestamp``, ``lastTimestamp``, ``source``)
and are aggregated: the same (object, reason, message) bumps ``count``. Scheduler events use the
events.k8s.io shape as seen through core/v1: ``eventTime`` set, ``firstTimestamp``/
``lastTimestamp`` null, repeats counted in ``series`` - as a real scheduler does.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from typing import TYPE_CHECKING, Any

from .clock import rfc3339, rfc3339_micro
from .resources import EVENTS

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]


class EventRecorder:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._lock = threading.Lock()
        self._index: dict[tuple[str, ...], tuple[str, str]] = {}

    def record(
        self,
        pod: Obj,
        type_: str,
        reason: str,
        message: str,
        container: str | None = None,
        component: str = "kubelet",
    ) -> None:
        meta = pod["metadata"]
        ns, uid = meta["namespace"], meta["uid"]
        field_path = f"spec.containers{{{container}}}" if container else None
        if container and any(c.get("name") == container
                             for c in pod["spec"].get("initContainers") or []):
            field_path = f"spec.initContainers{{{container}}}"
        node = pod["spec"].get("nodeName") or self.cluster.nodes[0]
        key = (uid, field_path or "", reason, message, type_, component)
        t = self.cluster.clock.time()
        store = self.cluster.store
        with self._lock:
            existing = self._index.get(key)
            if existing is not None:
                ens, ename = existing

                def _bump(ev: Obj) -> Obj:
                    if component == "default-scheduler":
                        series = ev.get("series") or {"count": 1}
                        ev["series"] = {"count": series["count"] + 1,
                                        "lastObservedTime": rfc3339_micro(t)}
                    else:
                        ev["count"] = int(ev.get("count") or 1) + 1
                        ev["lastTimestamp"] = rfc3339(t)
                    return ev

                if store.mutate(EVENTS.key, ens, ename, _bump) is not None:
                    return
            name = f"{meta['name']}.{secrets.token_hex(8)}"
            involved: Obj = {"kind": "Pod", "namespace": ns, "name": meta["name"], "uid": uid,
                             "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion")}
            if field_path:
                involved["fieldPath"] = field_path
            event: Obj = {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                             "creationTimestamp": rfc3339(t)},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": type_,
            }
            if component == "default-scheduler":
                event.update({
                    "source": {},
                    "firstTimestamp": None,
                    "lastTimestamp": None,
                    "eventTime": rfc3339_micro(t),
                    "action": "Scheduling" if reason != "Scheduled" else "Binding",
                    "reportingComponent": "default-scheduler",
                    "reportingInstance": "default-scheduler-fake-control-plane",
                })
            else:
                event.update({
                    "source": {"component": component, "host": node},
                    "firstTimestamp": rfc3339(t),
                    "lastTimestamp": rfc3339(t),
                    "count": 1,
                    "eventTime": None,
                    "reportingComponent": component,
                    "reportingInstance": node,
                })
            if store.create(EVENTS.key, ns, name, event) is not None:
                self._index[key] = (ns, name)
