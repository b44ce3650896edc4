"""The emulator's clock: real time plus a manual offset, with a time-scale for built-in delays.

* ``time()`` is the wall clock (``time.time()``) plus everything ``advance()`` added. All object
  timestamps and all timers of the kubelet/scheduler use it.
* ``scaled(d)`` converts a Kubernetes duration (grace periods, back-offs, deadlines, built-in
  delays) into clock seconds: ``d * time_scale``. With ``time_scale=0.01`` a 30 s grace period
  lasts 0.3 s.
* ``sleep_until(t, wake)`` waits until ``time() >= t`` and returns early when ``wake`` is set or the
  clock is advanced, so ``advance()`` makes pending timers fire at once.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale
        self._offset = 0.0
        self._cond = threading.Condition()

    def time(self) -> float:
        return time.time() + self._offset

    def scaled(self, seconds: float) -> float:
        return max(0.0, float(seconds)) * self.time_scale

    def advance(self, seconds: float) -> None:
        """Move the clock forward: timers due before ``time() + seconds`` fire now."""
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()

    def sleep_until(self, deadline: float, wake: threading.Event | None = None) -> bool:
        """Wait until ``deadline`` (clock time). Returns False if woken early by ``wake``."""
        while True:
            if wake is not None and wake.is_set():
                return False
            remaining = deadline - self.time()
            if remaining <= 0:
                return True
            with self._cond:
                self._cond.wait(min(remaining, 0.02))

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        return self.sleep_until(self.time() + seconds, wake)

    # --- formatting -------------------------------------------------------------------------

    def now_iso(self) -> str:
        return rfc3339(self.time())

    def now_micro(self) -> str:
        return rfc3339_micro(self.time())


def rfc3339(t: float) -> str:
    """Seconds-precision timestamp as the API server writes metav1.Time."""
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: float) -> str:
    """metav1.MicroTime format."""
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_nano(t: float) -> str:
    """The kubelet's log timestamp format (RFC3339Nano, 9 fraction digits)."""
    whole = int(t)
    nanos = round((t - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    base = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def parse_rfc3339(value: str) -> float:
    """Parse an RFC3339 timestamp (any fraction precision) to epoch seconds."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        frac = float("0." + digits) if digits else 0.0
        text = head + rest[i:]
    else:
        frac = 0.0
    return datetime.fromisoformat(text).timestamp() + frac
