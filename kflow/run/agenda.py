"""What may start next in a run, always earliest in plan order first (as ``make -j1`` would).

Three queues of instances, each a heap of plan positions: ``ready`` (every
requirement inside the run has succeeded), ``prepared`` (lease taken and state
marked: may start at once) and ``delayed`` (retries waiting for their backoff).
Pure bookkeeping: no I/O, no records, no events.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from kflow.graph import Graph
from kflow.model import InstanceId


class Agenda:
    def __init__(self, graph: Graph, order: Sequence[InstanceId]):
        self.order = list(order)
        self.index = {iid: n for n, iid in enumerate(self.order)}
        # requirements inside this run that have not succeeded yet
        self._blocked: dict[InstanceId, set[InstanceId]] = {
            iid: {r for r in graph.instances[iid].requires if r in self.index}
            for iid in self.order
        }
        self._ready = [self.index[i] for i in self.order if not self._blocked[i]]
        heapq.heapify(self._ready)
        self._prepared: list[int] = []
        self._delayed: list[tuple[float, int]] = []  # (monotonic due time, position)

    def __contains__(self, iid: InstanceId) -> bool:
        return iid in self.index

    # -- ready: requirements done ----------------------------------------------------

    @property
    def has_ready(self) -> bool:
        return bool(self._ready)

    def pop_ready(self) -> InstanceId:
        return self.order[heapq.heappop(self._ready)]

    def make_ready(self, iid: InstanceId) -> None:
        heapq.heappush(self._ready, self.index[iid])

    def unblock(self, done: InstanceId, dependents: Iterable[InstanceId]) -> list[InstanceId]:
        """``done`` succeeded (or was reused): the dependents it was the last requirement of."""
        unblocked = []
        for dependent in dependents:
            waiting_on = self._blocked.get(dependent)
            if waiting_on is None or done not in waiting_on:
                continue
            waiting_on.discard(done)
            if not waiting_on:
                unblocked.append(dependent)
        return unblocked

    # -- prepared: may start at once ---------------------------------------------------

    @property
    def prepared_count(self) -> int:
        return len(self._prepared)

    def add_prepared(self, iid: InstanceId) -> None:
        heapq.heappush(self._prepared, self.index[iid])

    def next_prepared(self, preparing: Iterable[InstanceId]) -> InstanceId | None:
        """The first prepared instance, unless one earlier in plan order is nearly prepared."""
        if not self._prepared:
            return None
        first = self._prepared[0]
        if any(self.index[iid] < first for iid in preparing):
            return None
        return self.order[heapq.heappop(self._prepared)]

    def take_prepared(self) -> list[InstanceId]:
        """Empty the prepared queue; what was in it."""
        taken = [self.order[i] for i in self._prepared]
        self._prepared.clear()
        return taken

    # -- delayed: retries waiting for their time -----------------------------------------

    @property
    def has_delayed(self) -> bool:
        return bool(self._delayed)

    def delay(self, iid: InstanceId, due: float) -> None:
        heapq.heappush(self._delayed, (due, self.index[iid]))

    def next_due(self) -> float | None:
        return self._delayed[0][0] if self._delayed else None

    def pop_due(self, now: float) -> InstanceId | None:
        if not self._delayed or self._delayed[0][0] > now:
            return None
        return self.order[heapq.heappop(self._delayed)[1]]

    def take_delayed(self) -> list[InstanceId]:
        """Empty the delayed queue; what was in it."""
        taken = [self.order[i] for _, i in self._delayed]
        self._delayed.clear()
        return taken
