"""Leases: one per instance on the project's storage, so two runs never build it at once.

A lease is ``{root}/.kflow/leases/<instance>.json`` holding the holder's run id,
host, pid and an expiry time. It is taken with an atomic create; a lease whose
expiry has passed (its holder died) is taken over with a compare-and-swap on
its stamp, so of two runs racing for an expired lease exactly one wins. A
heartbeat thread renews held leases every ``ttl / 3`` seconds.

Expiry times are wall-clock times of the holder's machine: machines sharing a
storage need clocks within a small fraction of the TTL of each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

from kflow.errors import KflowError
from kflow.run.ids import safe_name
from kflow.run.records import kflow_dir
from kflow.storage import Stamp, Storage

DEFAULT_TTL = 30.0


def default_ttl() -> float:
    """The lease TTL: ``KFLOW_LEASE_TTL`` seconds if set (tests use a short one), else 30 s."""
    try:
        return float(os.environ.get("KFLOW_LEASE_TTL", DEFAULT_TTL))
    except ValueError:
        return DEFAULT_TTL


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease says about its holder."""

    holder: str
    instance: str
    expires: float
    host: str = ""
    pid: int = 0

    def expired(self, now: float | None = None) -> bool:
        return self.expires <= (time.time() if now is None else now)

    def __str__(self) -> str:
        if not self.holder:
            return "another run"  # known only by having taken our lease over
        where = f" on {self.host} pid {self.pid}" if self.host else ""
        return f"run {self.holder}{where}"


def lease_location(root: str, instance: str) -> str:
    return f"{kflow_dir(root)}/leases/{safe_name(instance)}.json"


def _parse(data: bytes | None) -> LeaseInfo | None:
    if data is None:
        return None
    try:
        raw = json.loads(data)
        return LeaseInfo(
            str(raw["holder"]),
            str(raw["instance"]),
            float(raw["expires"]),
            str(raw.get("host", "")),
            int(raw.get("pid", 0)),
        )
    except (ValueError, KeyError, TypeError):
        return LeaseInfo("?", "?", 0.0)  # unreadable: treat as expired, so it gets replaced


class Leases:
    """The leases one run holds, and the heartbeat that keeps them alive."""

    def __init__(self, storage: Storage, root: str, holder: str, ttl: float | None = None):
        self.storage = storage
        self.root = root
        self.holder = holder
        self.ttl = default_ttl() if ttl is None else ttl
        self._held: dict[str, Stamp] = {}  # instance → stamp of our last write
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        # Renewals and releases do not interleave: a release must see our latest stamp.
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beats = 0
        self.host = socket.gethostname()

    def _payload(self, instance: str) -> bytes:
        self._beats += 1  # makes every write's bytes unique (S3 compares ETags)
        return json.dumps(
            {
                "holder": self.holder,
                "instance": instance,
                "expires": time.time() + self.ttl,
                "host": self.host,
                "pid": os.getpid(),
                "beat": self._beats,
            }
        ).encode()

    def try_acquire(self, instance: str) -> LeaseInfo | None:
        """Take the instance's lease: None when it is ours now, else who holds it."""
        location = lease_location(self.root, instance)
        current: LeaseInfo | None = None
        for _ in range(5):
            if self.storage.create_exclusive(location, self._payload(instance)):
                self._remember(instance, location)
                return None
            stamp = self.storage.stat(location)
            if stamp is None:
                continue  # released in between: try to create it again
            current = _parse(self.storage.read_many([location])[location])
            if current is None:
                continue
            if current.holder == self.holder:
                self._remember(instance, location)
                return None
            if not current.expired():
                return current
            if self.storage.replace_if_unchanged(location, self._payload(instance), stamp):
                self._remember(instance, location)
                return None
        return current or LeaseInfo("?", instance, time.time() + self.ttl)

    def _remember(self, instance: str, location: str) -> None:
        stamp = self.storage.stat(location)
        with self._lock:
            if stamp is not None:
                self._held[instance] = stamp
            self._lost.discard(instance)

    def holder_of(self, instance: str) -> LeaseInfo | None:
        """The live holder of the instance's lease, None when it is free or expired."""
        location = lease_location(self.root, instance)
        info = _parse(self.storage.read_many([location])[location])
        return None if info is None or info.expired() else info

    def release(self, instance: str) -> None:
        """Give the lease up (only if it is still ours)."""
        with self._io:
            with self._lock:
                stamp = self._held.pop(instance, None)
            if stamp is None:
                return
            location = lease_location(self.root, instance)
            if self.storage.stat(location) == stamp:
                self.storage.delete_many([location])

    def release_all(self) -> None:
        with self._lock:
            held = list(self._held)
        for instance in held:
            with contextlib.suppress(KflowError):  # if it fails, the lease expires on its own
                self.release(instance)

    def take_lost(self) -> set[str]:
        """Instances whose lease another run took over since the last call (we failed to renew)."""
        with self._lock:
            lost, self._lost = self._lost, set()
            return lost

    def renew(self) -> None:
        """Push every held lease's expiry forward."""
        with self._lock:
            held = dict(self._held)
        for instance in held:
            with self._io:
                self._renew_one(instance)

    def _renew_one(self, instance: str) -> None:
        with self._lock:
            stamp = self._held.get(instance)
        if stamp is None:
            return  # released meanwhile
        location = lease_location(self.root, instance)
        try:
            renewed = self.storage.replace_if_unchanged(
                location, self._payload(instance), stamp
            )
            new_stamp = self.storage.stat(location) if renewed else None
        except KflowError:
            return  # storage hiccup: try again at the next beat
        with self._lock:
            if new_stamp is not None:
                self._held[instance] = new_stamp
            else:
                self._held.pop(instance, None)
                self._lost.add(instance)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="kflow-leases", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
