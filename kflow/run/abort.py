"""A second Ctrl-C: the run record says "interrupted" even though kflow exits at once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable

from kflow.errors import EXIT_INTERRUPTED
from kflow.run.records import RunRecord

ABORT_TIMEOUT = 1.0  # a second Ctrl-C exits at once: what storage gets to record it
NOT_STARTED = ("queued", "waiting", "retrying", "preparing")


def mark_aborted(record: RunRecord, killed: Iterable[str], now: float | None = None) -> None:
    """``killed`` instances (their running attempt killed) are interrupted, those not
    started skipped, and the run interrupted with exit code 130."""
    now = time.time() if now is None else now
    for name in killed:
        entry = record.instances[name]
        entry.status, entry.detail = "interrupted", "killed by a second interrupt"
        for attempt in entry.attempts:
            if attempt.status == "running":
                attempt.status, attempt.reason, attempt.ended = "failed", "killed", now
    for entry in record.instances.values():
        if entry.status in NOT_STARTED:
            entry.status, entry.detail = "skipped", "not started: interrupted"
    record.status, record.exit_code, record.ended = "interrupted", EXIT_INTERRUPTED, now


def briefly(work: Callable[[], None], timeout: float = ABORT_TIMEOUT) -> None:
    """Run ``work`` on another thread and wait at most ``timeout`` s for it; errors are
    dropped. For the last writes of a process about to end: best effort, never a hang
    (a storage call the interrupted main thread was in the middle of may hold a lock)."""

    def guarded() -> None:
        with contextlib.suppress(Exception):
            work()

    writer = threading.Thread(target=guarded, name="kflow-abort", daemon=True)
    writer.start()
    writer.join(timeout)
