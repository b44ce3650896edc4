"""Watch streams (§3.3-3.4): initial ADDED events, exact-start resume, selector transitions,
bookmarks, timeoutSeconds, 410 Expired, and the registry of live streams that faults act on."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ApiError, bad_request, status_body
from .resources import Request, ResourceType, Stream, StreamWriter
from .selectors import make_filter
from .store import StoreEvent

if TYPE_CHECKING:
    from .cluster import Cluster

Obj = dict[str, Any]


@dataclass
class LiveStream:
    """One open watch or log stream; faults set ``abort`` or ``stall_until``."""

    id: int
    kind: str  # watch | log
    path: str
    pod: str = ""
    abort: str | None = None  # clean | reset | truncate
    stall_until: float = 0.0
    stall_after_bytes: int | None = None
    sent_bytes: int = 0
    wake: threading.Event = field(default_factory=threading.Event)

    def stalled(self) -> bool:
        if self.stall_after_bytes is not None and self.sent_bytes >= self.stall_after_bytes:
            return True
        return time.monotonic() < self.stall_until


class StreamRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._live: dict[int, LiveStream] = {}
        self._peak: dict[str, int] = {"watch": 0, "log": 0}
        self.total: dict[str, int] = {"watch": 0, "log": 0}
        self.stall_new_watches_for = 0.0

    def open(self, kind: str, path: str, pod: str = "") -> LiveStream:
        with self._lock:
            s = LiveStream(next(self._ids), kind, path, pod)
            if kind == "watch" and self.stall_new_watches_for > 0:
                s.stall_until = time.monotonic() + self.stall_new_watches_for
            self._live[s.id] = s
            self.total[kind] = self.total.get(kind, 0) + 1
            count = sum(1 for x in self._live.values() if x.kind == kind)
            self._peak[kind] = max(self._peak.get(kind, 0), count)
            return s

    def close(self, stream: LiveStream) -> None:
        with self._lock:
            self._live.pop(stream.id, None)

    def live(self, kind: str | None = None) -> list[LiveStream]:
        with self._lock:
            return [s for s in self._live.values() if kind is None or s.kind == kind]

    def peak(self, kind: str) -> int:
        with self._lock:
            return self._peak.get(kind, 0)

    def abort_all(self, kind: str, mode: str, pod_filter: Any = None) -> int:
        streams = [s for s in self.live(kind) if pod_filter is None or pod_filter(s.pod)]
        for s in streams:
            s.abort = mode
            s.wake.set()
        return len(streams)


def _line(event_type: str, obj: Obj) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}


def convert(ev: StoreEvent, match: Any) -> tuple[str, Obj] | None:
    """cacheWatcher.convertToWatchEvent: selector transitions become ADDED/DELETED."""
    cur_passes = ev.type != "DELETED" and match(ev.obj)
    old_passes = ev.prev is not None and match(ev.prev)
    if not cur_passes and not old_passes:
        return None
    if cur_passes and not old_passes:
        return "ADDED", copy.deepcopy(ev.obj)
    if cur_passes and old_passes:
        return "MODIFIED", copy.deepcopy(ev.obj)
    assert ev.prev is not None
    old = copy.deepcopy(ev.prev)
    old["metadata"]["resourceVersion"] = str(ev.rv)
    return "DELETED", old


def watch(cluster: Cluster, req: Request) -> Stream:
    rt = req.resource
    assert rt is not None
    match = make_filter(req.query.get("labelSelector"), req.query.get("fieldSelector"),
                        set(rt.fields))
    namespace = req.namespace if rt.namespaced and req.namespace else None
    timeout_param = req.int_param("timeoutSeconds")
    bookmarks = req.flag("allowWatchBookmarks")
    send_initial = req.flag("sendInitialEvents")
    rv_param = req.query.get("resourceVersion", "")
    if send_initial and (req.query.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
        raise ApiError(422, "sendInitialEvents requires setting resourceVersionMatch to "
                       "NotOlderThan and allowWatchBookmarks to true", "Invalid")
    store = cluster.store
    start_rv: int | None = None
    if rv_param not in ("", "0") and not send_initial:
        try:
            start_rv = int(rv_param)
        except ValueError:
            raise bad_request(f'invalid resource version "{rv_param}"') from None
        floor = store.floor_of(rt.key)
        if start_rv < floor and cluster.faults.watch_http_410:
            raise ApiError(410, f"too old resource version: {start_rv} ({floor})", "Expired")
    # unset or 0: the server's own (long) timeout
    timeout: float = float(timeout_param) if timeout_param else cluster.default_watch_timeout
    settings = cluster.faults

    def produce(w: StreamWriter) -> str | None:
        live = cluster.streams.open("watch", req.path)
        started = time.monotonic()
        try:
            with store.lock:
                if start_rv is None:
                    items, last_rv = store.list(rt.key, namespace)
                    initial = [_line("ADDED", o) for o in items if match(o)]
                else:
                    last_rv = start_rv
                    initial = []
                    if store.events_after(start_rv, rt.key) is None:
                        err = status_body(410, f"too old resource version: {start_rv} "
                                          f"({store.floor_of(rt.key)})", "Expired")
                        initial = [_line("ERROR", err)]
            for line in initial:
                w.write(line)
                live.sent_bytes += len(line)
            if initial and start_rv is not None:
                return None  # the 410 ERROR ends the stream
            if send_initial:
                w.write(_line("BOOKMARK", _bookmark(rt, last_rv, initial_end=True)))
            interval = settings.bookmark_interval
            next_bookmark = time.monotonic() + (interval or 0)
            while True:
                if live.abort:
                    return None if live.abort == "clean" else live.abort
                if live.stalled():  # a real server still notices the client going away
                    if cluster.stopping or w.closed():
                        return None
                    live.wake.wait(0.02)
                    continue
                if time.monotonic() - started >= timeout or cluster.stopping or w.closed():
                    return None
                with store.cond:
                    events = store.events_after(last_rv, rt.key)
                    if events == []:
                        store.cond.wait(0.05)
                        events = store.events_after(last_rv, rt.key)
                if events is None:
                    err = status_body(410, f"too old resource version: {last_rv} "
                                      f"({store.floor_of(rt.key)})", "Expired")
                    w.write(_line("ERROR", err))
                    return None
                for ev in events:
                    last_rv = ev.rv
                    if ev.resource != rt.key or (namespace and ev.namespace != namespace):
                        continue
                    out = convert(ev, match)
                    if out is None:
                        continue
                    line = _line(*out)
                    w.write(line)
                    live.sent_bytes += len(line)
                    if settings.duplicate_events:
                        w.write(line)
                interval = settings.bookmark_interval
                if bookmarks and interval and time.monotonic() >= next_bookmark:
                    w.write(_line("BOOKMARK", _bookmark(rt, last_rv)))
                    next_bookmark = time.monotonic() + interval
        finally:
            cluster.streams.close(live)

    return Stream(200, "application/json", produce, "watch")
