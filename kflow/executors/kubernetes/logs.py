"""Follow a running pod's log while it runs, so it survives the pod (eviction, deletion).

At most ``limit`` streams at once (each holds a connection); a pod that gets no
stream still has its log read once it ends. A stream that ends before its
container did (a dropped connection, a kubelet log rotation) is not trusted:
the log is then read again in full.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from kflow.executors.kubernetes.api import Api
from kflow.executors.kubernetes.manifest import CONTAINER


class LogFollower:
    def __init__(self, api: Api, name: str):
        self.api = api
        self.name = name
        self.chunks: list[bytes] = []
        self.complete = False  # the stream ended by itself (the container exited)
        self.done = threading.Event()
        self._resp: Any = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"kflow-log-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            resp = self.api.core.read_namespaced_pod_log(
                self.name,
                self.api.namespace,
                container=CONTAINER,
                follow=True,
                _preload_content=False,
                _request_timeout=(10, None),
            )
            self._resp = resp
            try:
                for chunk in resp.stream(64 * 1024):
                    self.chunks.append(chunk)
                self.complete = not self._stopped
            finally:
                resp.release_conn()
        except Exception:  # the final read covers for a stream that failed
            self.complete = False
        finally:
            self.done.set()

    def text(self) -> bytes:
        return b"".join(self.chunks)

    def stop(self) -> None:
        self._stopped = True
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):  # best effort; the thread is a daemon
                resp.shutdown()


class LogStreams:
    """The run's followers, at most ``limit`` at a time."""

    def __init__(self, api: Api, limit: int):
        self.api = api
        self.limit = limit
        self.followers: dict[str, LogFollower] = {}
        self.lock = threading.Lock()

    def follow(self, name: str) -> None:
        with self.lock:
            if name in self.followers or self.limit <= 0:
                return
            live = sum(1 for f in self.followers.values() if not f.done.is_set())
            if live >= self.limit:
                return
            follower = self.followers[name] = LogFollower(self.api, name)
        follower.start()

    def finished_log(self, name: str, wait: float = 2.0) -> tuple[bytes | None, bytes]:
        """(the full log if the stream saw it all, else None; whatever the stream got)."""
        with self.lock:
            follower = self.followers.pop(name, None)
        if follower is None:
            return None, b""
        if not follower.done.wait(wait):
            follower.stop()
            return None, follower.text()
        return (follower.text() if follower.complete else None), follower.text()

    def close(self) -> None:
        with self.lock:
            followers = list(self.followers.values())
            self.followers.clear()
        for follower in followers:
            follower.stop()
