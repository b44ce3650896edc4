"""The object store: one lock, one global resourceVersion, one event ring feeding watches.

Objects are JSON-like dicts keyed by ``(resource, namespace, name)`` where ``resource`` is the
plural qualified by its group (``pods``, ``leases.coordination.k8s.io``). Every write bumps the
global counter, stamps ``metadata.resourceVersion`` and appends ``(rv, type, obj, prev)`` to the
ring. Watches read the ring; a watch from an RV below ``floor`` gets 410 Expired.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]


@dataclass(frozen=True)
class StoreEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    name: str
    obj: Obj
    prev: Obj | None


class Store:
    def __init__(self, ring_size: int = 1000) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self._objects: dict[Key, Obj] = {}
        self._rv = 1
        # one history ring per resource, like the API server's per-type watch cache
        self._rings: dict[str, deque[StoreEvent]] = {}
        self._floors: dict[str, int] = {}
        self.ring_size = ring_size
        self.floor = 1  # compaction floor for every resource
        self.listeners: list[Callable[[StoreEvent], None]] = []

    # --- reads ----------------------------------------------------------------------------------

    @property
    def rv(self) -> int:
        return self._rv

    def floor_of(self, resource: str) -> int:
        """Watches of ``resource`` may start at any RV >= this; older ones get 410."""
        return max(self.floor, self._floors.get(resource, 1))

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> tuple[builtins.list[Obj], int]:
        """All objects of a resource (optionally one namespace), sorted by key; and the list RV."""
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (res, ns, _), o in sorted(self._objects.items())
                if res == resource and (namespace is None or ns == namespace)
            ]
            return items, self._rv

    def view(self, resource: str, fn: Callable[[Obj], None]) -> None:
        """Call ``fn`` on every object of ``resource`` under the lock, without copying (``fn``
        must not mutate or keep them)."""
        with self.lock:
            for (res, _, _), obj in self._objects.items():
                if res == resource:
                    fn(obj)

    def list_at(
        self, resource: str, namespace: str | None, rv: int
    ) -> builtins.list[Obj] | None:
        """The list as it was at ``rv`` (rebuilt from the ring), or None if too old."""
        with self.lock:
            if rv < self.floor_of(resource):
                return None
            state = {
                k: o
                for k, o in self._objects.items()
                if k[0] == resource and (namespace is None or k[1] == namespace)
            }
            for ev in reversed(self._rings.get(resource, ())):
                if ev.rv <= rv:
                    break
                if namespace is not None and ev.namespace != namespace:
                    continue
                key = (ev.resource, ev.namespace, ev.name)
                if ev.type == "ADDED":
                    state.pop(key, None)
                elif ev.prev is not None:
                    state[key] = ev.prev
            return [copy.deepcopy(o) for _, o in sorted(state.items())]

    def events_after(self, rv: int, resource: str) -> builtins.list[StoreEvent] | None:
        """Events of ``resource`` with RV > ``rv``; None when some were compacted away (410)."""
        with self.lock:
            if rv < self.floor_of(resource):
                return None
            ring = self._rings.get(resource, ())
            if not ring or ring[-1].rv <= rv:
                return []
            return [ev for ev in ring if ev.rv > rv]

    # --- writes ---------------------------------------------------------------------------------

    def _bump(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, ev: StoreEvent) -> None:
        ring = self._rings.setdefault(ev.resource, deque())
        ring.append(ev)
        while len(ring) > self.ring_size:
            dropped = ring.popleft()
            self._floors[ev.resource] = max(self._floors.get(ev.resource, 1), dropped.rv)
        for listener in list(self.listeners):
            listener(ev)
        self.cond.notify_all()

    def create(self, resource: str, namespace: str, name: str, obj: Obj) -> Obj | None:
        """Store a new object; returns None if the key exists."""
        with self.lock:
            key = (resource, namespace, name)
            if key in self._objects:
                return None
            rv = self._bump()
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = str(rv)
            self._objects[key] = stored
            self._record(StoreEvent(rv, "ADDED", resource, namespace, name, stored, None))
            return copy.deepcopy(stored)

    def replace(self, resource: str, namespace: str, name: str, obj: Obj) -> Obj | None:
        """Overwrite an existing object unconditionally; None if missing."""
        with self.lock:
            key = (resource, namespace, name)
            prev = self._objects.get(key)
            if prev is None:
                return None
            rv = self._bump()
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = str(rv)
            self._objects[key] = stored
            self._record(StoreEvent(rv, "MODIFIED", resource, namespace, name, stored, prev))
            return copy.deepcopy(stored)

    def mutate(
        self, resource: str, namespace: str, name: str, fn: Callable[[Obj], Obj | None]
    ) -> Obj | None:
        """Read-modify-write under the lock. ``fn`` gets a copy and returns the new object, or
        None for "no change". Returns the stored object (new or unchanged), None if missing."""
        with self.lock:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                return None
            new = fn(copy.deepcopy(current))
            if new is None or new == current:
                return copy.deepcopy(current)
            return self.replace(resource, namespace, name, new)

    def delete(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            key = (resource, namespace, name)
            prev = self._objects.pop(key, None)
            if prev is None:
                return None
            rv = self._bump()
            last = copy.deepcopy(prev)
            last["metadata"]["resourceVersion"] = str(rv)
            self._record(StoreEvent(rv, "DELETED", resource, namespace, name, last, prev))
            return copy.deepcopy(last)

    def compact(self, below_rv: int | None = None) -> int:
        """Forget history: watches from an RV below the new floor get 410. Returns the floor."""
        with self.lock:
            target = self._rv if below_rv is None else below_rv
            for ring in self._rings.values():
                while ring and ring[0].rv <= target:
                    ring.popleft()
            self.floor = max(self.floor, target)
            self.cond.notify_all()
            return self.floor

    def wait(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait(timeout)

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()
