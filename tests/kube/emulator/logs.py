"""``GET pods/{name}/log`` (§3.8): container selection, the kubelet's 400s for containers that
have no log, previous instances, tail/since/timestamps/limitBytes filters, and follow streams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .clock import parse_rfc3339, rfc3339_nano
from .containers import ContainerLog
from .errors import ApiError, bad_request, not_found
from .resources import PODS, Request, Response, Stream, StreamWriter

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]


def _container_name(pod: Obj, requested: str | None) -> str:
    spec = pod["spec"]
    mains = [c["name"] for c in spec["containers"]]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if not requested:
        if len(mains) == 1:
            return str(mains[0])
        msg = f"a container name must be specified for pod {name}, choose one of: " \
              f"[{' '.join(mains)}]"
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise bad_request(msg)
    if requested not in mains + inits:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _status_of(pod: Obj, container: str) -> Obj | None:
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return dict(cs)
    return None


def _pick(pod: Obj, container: str, previous: bool, instances: list[ContainerLog]) -> ContainerLog:
    """kubelet validateContainerLogStatus: which instance to serve, or the 400 it returns."""
    name = pod["metadata"]["name"]
    cs = _status_of(pod, container)
    if cs is None:
        raise bad_request(f'container "{container}" in pod "{name}" is not available')
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    term, last_term = state.get("terminated"), last.get("terminated")
    if previous:
        if not last_term or not last_term.get("containerID") or not instances:
            raise bad_request(f'previous terminated container "{container}" in pod "{name}" '
                              "not found")
        return instances[-2] if (state.get("running") or term) and len(instances) > 1 \
            else instances[-1]
    if state.get("running"):
        return instances[-1]
    if term:
        if term.get("containerID") and instances:
            return instances[-1]
        if last_term and last_term.get("containerID") and instances:
            return instances[-1]
        raise bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last_term:
        if not last_term.get("containerID") or not instances:
            raise bad_request(f'container "{container}" in pod "{name}" is terminated')
        return instances[-1]
    reason = (state.get("waiting") or {}).get("reason")
    if reason == "ErrImagePull":
        detail = "image can't be pulled"
    elif reason == "ImagePullBackOff":
        detail = "trying and failing to pull image"
    elif reason:
        detail = reason
    else:
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start - '
                          "no logs yet")
    raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {detail}')


def read_log(cluster: Cluster, req: Request) -> Response | Stream:
    pod = cluster.store.get(PODS.key, req.namespace, req.name)
    if pod is None:
        raise not_found("pods", req.name)
    container = _container_name(pod, req.query.get("container"))
    if not pod["spec"].get("nodeName"):
        return Response(200, b"", "text/plain")
    node = pod["spec"]["nodeName"]
    if cluster.faults.node_lost(node) is not None:
        ip = cluster.kubelet.host_ip(node)
        raise ApiError(500, f'Get "https://{ip}:10250/containerLogs/{req.namespace}/{req.name}/'
                       f'{container}": dial tcp {ip}:10250: connect: no route to host',
                       "InternalError")
    unavailable = cluster.faults.logs_unavailable_for(pod)
    if unavailable is not None:
        raise ApiError(unavailable, f'pods "{req.name}" not found' if unavailable == 404 else
                       "Internal error occurred: failed to get container logs")
    instances = cluster.logs.get((req.namespace, req.name, pod["metadata"]["uid"]), {}).get(
        container, [])
    log = _pick(pod, container, req.flag("previous"), instances)
    tail = req.int_param("tailLines")
    since = req.int_param("sinceSeconds")
    since_time = req.query.get("sinceTime")
    limit = req.int_param("limitBytes")
    if since is not None and since < 1:
        raise ApiError(422, 'PodLogOptions "" is invalid: sinceSeconds: Invalid value: '
                       f"{since}: must be greater than 0", "Invalid")
    cutoff = None
    if since is not None:
        cutoff = cluster.clock.time() - since
    elif since_time:
        cutoff = parse_rfc3339(since_time)
    stamps = req.flag("timestamps")

    def render(lines: list[tuple[float, bytes]]) -> bytes:
        if stamps:
            return b"".join(rfc3339_nano(t).encode() + b" " + d for t, d in lines)
        return b"".join(d for _, d in lines)

    def initial() -> tuple[list[tuple[float, bytes]], int]:
        with log.cond:
            lines = list(log.lines)
            n = log.rotated + len(log.lines)  # absolute position, stable across rotation
        if cutoff is not None:
            lines = [x for x in lines if x[0] >= cutoff]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return lines, n

    if not req.flag("follow"):
        data = render(initial()[0])
        if limit is not None:
            data = data[:limit]
        return Response(200, data, "text/plain")

    pod_name = req.name
    uid = pod["metadata"]["uid"]

    def produce(w: StreamWriter) -> str | None:
        live = cluster.streams.open("log", req.path, pod_name)
        sent = 0
        rate = cluster.faults.log_rate_for(pod)
        try:
            lines, pos = initial()
            while True:
                for line in lines:
                    data = render([line])
                    if limit is not None:
                        data = data[: max(0, limit - sent)]
                    while live.stalled() and not live.abort and not cluster.stopping:
                        if w.closed():
                            return None
                        time.sleep(0.02)
                    if live.abort:
                        return None if live.abort == "clean" else live.abort
                    if data:
                        w.write(data)
                    sent += len(data)
                    live.sent_bytes = sent
                    if rate:
                        time.sleep(len(data) / rate)
                    if limit is not None and sent >= limit:
                        return None
                if live.abort:
                    return None if live.abort == "clean" else live.abort
                if cluster.stopping or w.closed():
                    return None
                current = cluster.store.get(PODS.key, req.namespace, pod_name)
                if current is None or current["metadata"]["uid"] != uid:
                    return None
                with log.cond:
                    if log.rotated + len(log.lines) == pos and not log.done:
                        log.cond.wait(0.05)
                    lines = log.lines[max(0, pos - log.rotated):]
                    pos = log.rotated + len(log.lines)
                    done = log.done
                if done and not lines:
                    return None
        finally:
            cluster.streams.close(live)

    return Stream(200, "text/plain", produce, "log")
