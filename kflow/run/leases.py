"""Leases: one per instance on the project's storage, so two runs never build it at once.

A lease is ``{root}/.kflow/leases/<instance>.json`` naming its holder: the run
id, and the kflow process (host, boot id, pid namespace, pid and start time)
plus the watchdogs that end its attempts should it die. It is taken with an
atomic create, renewed by a heartbeat every ``ttl / 3`` seconds (each write has
new bytes), and released (deleted) when the instance is done.

Another run takes a lease over, with a compare-and-swap on its stamp so that of
two racing runs exactly one wins, when
- its holder is provably gone: named from this place (same host, boot and pid
  namespace) and neither kflow nor its watchdogs run any more (SPEC §3: at once,
  not after the TTL); or
- it has not changed for the holder's TTL, as measured by the observer's own
  monotonic clock since it first saw those bytes (as Kubernetes leader election
  does). No clock agreement between hosts is needed: wall-clock times written
  into a lease are for people, never compared.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kflow.errors import KflowError
from kflow.executors.liveness import (
    Place,
    all_gone,
    attempt_processes,
    my_start_time,
    place_from,
    place_json,
)
from kflow.executors.liveness import this_place as _this_place
from kflow.executors.watchdog import end_groups, watchdogs
from kflow.run.ids import safe_name
from kflow.run.records import kflow_dir
from kflow.storage import Stamp, Storage

DEFAULT_TTL = 30.0
# Ending a dead holder's orphaned attempts: SIGTERM, SIGKILL after KILL_GRACE s (as its
# watchdog would have), then up to ORPHANS_GONE s for them to be gone before giving up.
KILL_GRACE = 2.0
ORPHANS_GONE = 60.0


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
    ttl: float = DEFAULT_TTL
    place: Place = field(default_factory=lambda: Place("", "", ""))
    pid: int = 0
    # (pid, start time) of the kflow process and of its watchdogs
    processes: tuple[tuple[int, int], ...] = ()

    @property
    def host(self) -> str:
        return self.place.host

    def gone(self) -> bool:
        """Whether the holder is provably dead: kflow and its watchdogs gone from this place."""
        return all_gone(self.place, list(self.processes))

    def __str__(self) -> str:
        if not self.holder:
            return "another run"  # known only by having taken our lease over
        where = f" on {self.host} pid {self.pid}" if self.host else ""
        return f"run {self.holder}{where}"


def lease_location(root: str, instance: str) -> str:
    return f"{kflow_dir(root)}/leases/{safe_name(instance)}.json"


def _parse(data: bytes) -> LeaseInfo | None:
    """What the lease says; None when it is unreadable (it then expires by the TTL alone)."""
    try:
        raw: dict[str, Any] = json.loads(data)
        processes = [(int(raw.get("pid", 0)), int(raw.get("start", 0)))]
        processes += [(int(p), int(t)) for p, t in raw.get("watchdogs", [])]
        return LeaseInfo(
            str(raw["holder"]),
            str(raw["instance"]),
            float(raw.get("ttl", DEFAULT_TTL)),
            place_from(raw),
            int(raw.get("pid", 0)),
            tuple(processes),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def end_orphans(holder: LeaseInfo, grace: float = KILL_GRACE) -> bool:
    """End the attempt of ``holder.instance`` that a dead holder left running here (a
    kflow killed together with its watchdog leaves its attempts' groups behind): SIGTERM,
    SIGKILL after ``grace``, then wait until they are gone. Without this, taking the lease
    over would start a second copy beside the first. False: some would not go."""
    if not holder.holder or not holder.place.known or holder.place != _this_place():
        return True  # another host's processes: out of reach, the TTL covers them
    # only the local executor's attempts: tagged with one of the holder's watchdogs
    dogs = {pid for pid, _ in holder.processes[1:]}
    found = attempt_processes(holder.holder, holder.instance, dogs)
    if not found:
        return True
    end_groups(set(found.values()), grace)
    deadline = time.monotonic() + ORPHANS_GONE
    while attempt_processes(holder.holder, holder.instance, dogs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class Leases:
    """The leases one run holds, and the heartbeat that keeps them alive."""

    def __init__(
        self,
        storage: Storage,
        root: str,
        holder: str,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.storage = storage
        self.root = root
        self.holder = holder
        self.ttl = default_ttl() if ttl is None else ttl
        self._clock = clock  # the observer's: judges how long another's lease stood still
        self._held: dict[str, Stamp] = {}  # instance → stamp of our last write
        self._lost: set[str] = set()
        # instance → (the other holder's lease bytes, when we first saw exactly them)
        self._seen: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        # Renewals and releases do not interleave: a release must see our latest stamp.
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beats = itertools.count(1)

    def _payload(self, instance: str) -> bytes:
        return json.dumps(
            {
                "holder": self.holder,
                "instance": instance,
                **place_json(_this_place()),
                "pid": os.getpid(),
                "start": my_start_time(),
                "watchdogs": watchdogs(),
                "ttl": self.ttl,
                "written": time.time(),  # for people reading it; never compared
                "beat": next(self._beats),  # every write's bytes differ (S3 compares ETags)
            }
        ).encode()

    def try_acquire(self, instance: str) -> LeaseInfo | None:
        """Take the instance's lease: None when it is ours now, else who holds it."""
        location = lease_location(self.root, instance)
        current: LeaseInfo | None = None
        for _ in range(5):
            # Not durable: a lease matters only while its holder lives (a power loss ends
            # both), and its fsyncs would cost more than the trivial task it guards.
            if self.storage.create_exclusive(location, self._payload(instance), durable=False):
                self._remember(instance, location)
                return None
            found = self.storage.read_stamped(location)
            if found is None:
                continue  # released in between: try to create it again
            data, stamp = found
            current = _parse(data)
            if current is not None and current.holder == self.holder:
                self._remember(instance, location)
                return None
            if not self._may_take(instance, data, current):
                return current or LeaseInfo("", instance)
            if self.storage.replace_if_unchanged(location, self._payload(instance), stamp):
                self._remember(instance, location)
                return None
        return current or LeaseInfo("", instance)

    def _may_take(self, instance: str, data: bytes, current: LeaseInfo | None) -> bool:
        """Whether another's lease is free for the taking: its holder provably gone, or
        the lease unchanged for its TTL by our own clock since we first saw it. A dead
        holder's attempts still running here are ended first (see ``end_orphans``)."""
        if current is not None and current.gone():
            return end_orphans(current)
        now = self._clock()
        with self._lock:
            seen = self._seen.get(instance)
            if seen is None or seen[0] != data:
                self._seen[instance] = (data, now)
                return False
        ttl = current.ttl if current is not None else self.ttl
        # (a live holder's attempts are its own: a stopped kflow kills them once continued)
        return now - seen[1] >= ttl

    def _remember(self, instance: str, location: str) -> None:
        stamp = self.storage.stat(location)
        with self._lock:
            if stamp is not None:
                self._held[instance] = stamp
            self._lost.discard(instance)
            self._seen.pop(instance, None)

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

    def stop(self, wait: bool = True) -> None:
        """End the heartbeat (``wait``: for the renewal in progress, if any)."""
        self._stop.set()
        if self._thread is not None and wait:
            self._thread.join(timeout=5)
            self._thread = None
