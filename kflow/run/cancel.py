"""Cancel requests: ``{root}/.kflow/cancel/RUN_ID`` on the project's storage.

`kflow cancel RUN` writes one from wherever the storage is reachable (a laptop
cancelling a CronJob's run); the run looks for it every few seconds and then
stops as on SIGTERM. Storage is the only channel: kflow has no server.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Callable

from kflow.errors import KflowError
from kflow.run.records import kflow_dir
from kflow.storage import Storage


def cancel_location(root: str, run_id: str) -> str:
    return f"{kflow_dir(root)}/cancel/{run_id}"


def poll_interval() -> float:
    """``KFLOW_CANCEL_POLL`` seconds if set, else 2: how soon a run notices a cancel."""
    try:
        return max(0.05, float(os.environ.get("KFLOW_CANCEL_POLL", "2")))
    except ValueError:
        return 2.0


def request_cancel(storage: Storage, root: str, run_id: str) -> str:
    """Ask run ``run_id`` to stop; where the request was written."""
    location = cancel_location(root, run_id)
    by = ""
    with contextlib.suppress(Exception):  # who asked is for people reading it, nothing more
        by = f"{getpass.getuser()}@{socket.gethostname()}"
    request = {"run": run_id, "requested": time.time(), "by": by}
    storage.write_atomic(location, json.dumps(request).encode())
    return location


class CancelWatch:
    """Looks for the run's cancel request every ``interval`` s, on its own thread, and calls
    ``on_cancel`` once when it appears. A storage hiccup is tried again at the next look."""

    def __init__(
        self,
        storage: Storage,
        root: str,
        run_id: str,
        on_cancel: Callable[[], None],
        interval: float | None = None,
    ):
        self.storage = storage
        self.location = cancel_location(root, run_id)
        self.on_cancel = on_cancel
        self.interval = poll_interval() if interval is None else interval
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="kflow-cancel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                found = self.storage.exists(self.location)
            except KflowError:
                continue
            if found:
                self.cancelled = True
                self.on_cancel()
                return

    def stop(self) -> None:
        """Stop looking; a request that was acted on is removed (it has done its job)."""
        self._stop.set()
        if self.cancelled:
            with contextlib.suppress(KflowError):
                self.storage.delete_many([self.location])
