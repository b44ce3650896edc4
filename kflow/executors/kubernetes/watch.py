"""One LIST + WATCH of a run's pods, kept alive in a background thread (a mini informer).

The watch resumes from the last resourceVersion it saw (BOOKMARKs included)
after a clean end, a dropped connection or a stalled stream (the read timeout
is longer than ``timeoutSeconds``, so a silent server is noticed). A 410 Gone,
as an ERROR event or as the HTTP status, means the history is gone: list
again and carry on from the list's version. Each list is handed over whole, so
the owner can notice pods that vanished while nobody was watching.
Objects are parsed as plain JSON, never as client models (cheaper, and
indifferent to the client's version).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kflow.errors import KflowError
from kflow.executors.kubernetes.api import Api, ApiFailure

log = logging.getLogger(__name__)

Pod = dict[str, Any]
WATCH_SECONDS = 50  # the server ends each watch after this long; we then resume


class RunWatch:
    """Calls ``on_list(pods, started)`` after each list and ``on_event(type, pod)`` per change.

    ``on_fatal(error)`` is called once if the cluster cannot be watched any more
    (unreachable past the retry deadline, or permission denied).
    """

    def __init__(
        self,
        api: Api,
        selector: str,
        on_list: Callable[[list[Pod], float], None],
        on_event: Callable[[str, Pod], None],
        on_fatal: Callable[[Exception], None],
        watch_seconds: int = WATCH_SECONDS,
    ):
        self.api = api
        self.selector = selector
        self.on_list = on_list
        self.on_event = on_event
        self.on_fatal = on_fatal
        self.watch_seconds = watch_seconds
        self.resource_version: str | None = None
        self.lists = 0
        self.watches = 0
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name="kflow-pod-watch", daemon=True)
        self.listed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        self._thread.join(timeout=2)

    def relist(self) -> None:
        """Start over with a fresh list (after the owner suspects it missed something)."""
        self.resource_version = None
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()

    def _run(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
                pause = 0.1
            except ApiFailure as exc:
                if exc.status == 410:
                    self.resource_version = None
                    continue
                if exc.status in (401, 403, 404):
                    self.on_fatal(exc)
                    return
                log.debug("watch failed: %s", exc)
            except KflowError as exc:
                self.on_fatal(exc)
                return
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.debug("watch stream ended: %r", exc)
            self._stop.wait(pause)
            pause = min(pause * 2, 2.0)

    def _list(self) -> None:
        started = time.monotonic()
        resp = self.api.json(
            "list pods",
            self.api.core.list_namespaced_pod,
            self.api.namespace,
            label_selector=self.selector,
        )
        self.lists += 1
        data = resp
        self.resource_version = str(data["metadata"]["resourceVersion"])
        self.on_list(list(data.get("items") or []), started)
        self.listed.set()

    def _watch(self) -> None:
        from kubernetes.watch import watch as client_watch

        iter_resp_lines: Any = client_watch.iter_resp_lines
        resp = self.api.call(
            "watch pods",
            self.api.core.list_namespaced_pod,
            self.api.namespace,
            label_selector=self.selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _preload_content=False,
            # Longer than the server's timeout: a stalled (half-open) stream is noticed.
            _request_timeout=(10, self.watch_seconds + max(1.0, self.watch_seconds / 5)),
        )
        self.watches += 1
        self._resp = resp
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    return
                if line and not line.isspace():
                    self._handle(json.loads(line))
                if self.resource_version is None:
                    return  # a relist was asked for
        finally:
            self._resp = None
            resp.release_conn()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            raise ApiFailure(code, str(obj.get("reason")), str(obj.get("message")))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.on_event(str(kind), obj)
