"""Leases on real local storage: one holder at a time, expiry, takeover, loss."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kflow.executors.local import LocalExecutor
from kflow.graph import build_graph
from kflow.load import load_project
from kflow.plan import Decision, Reason
from kflow.run import NoState, Runner
from kflow.run import events as ev
from kflow.run.leases import Leases, lease_location
from kflow.storage import Storage


def _pair(tmp_path: Path, ttl: float) -> tuple[Leases, Leases]:
    storage = Storage(tmp_path)
    return Leases(storage, "data", "run-a", ttl), Leases(storage, "data", "run-b", ttl)


def test_only_one_run_holds_an_instance(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, 30)
    assert a.try_acquire("x[n=1]") is None
    held = b.try_acquire("x[n=1]")
    assert held is not None and held.holder == "run-a"
    assert b.try_acquire("x[n=2]") is None  # other instances are free


def test_released_lease_can_be_taken_and_release_is_only_by_the_holder(tmp_path: Path) -> None:
    a, b = _pair(tmp_path, 30)
    a.try_acquire("x")
    b.release("x")  # not b's: nothing happens
    assert b.try_acquire("x") is not None
    a.release("x")
    assert not (tmp_path / lease_location("data", "x")).exists()
    assert b.try_acquire("x") is None


class Clock:
    """An observer's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lease_unchanged_for_the_ttl_by_the_observers_clock_is_taken_over(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    clock = Clock()
    a = Leases(storage, "data", "run-a", 5)
    b = Leases(storage, "data", "run-b", 5, clock=clock)
    a.try_acquire("x")
    assert b.try_acquire("x") is not None  # first seen now
    clock.now += 4.9
    assert b.try_acquire("x") is not None  # not yet a TTL without a change
    clock.now += 0.1
    assert b.try_acquire("x") is None  # the holder stopped renewing: b takes it over
    a.renew()
    assert a.take_lost() == {"x"}
    assert a.take_lost() == set()
    a.release("x")  # no longer a's: b keeps it
    assert a.try_acquire("x") is not None


def test_renewed_lease_is_never_taken_over_whatever_time_it_says(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    clock = Clock()
    a = Leases(storage, "data", "run-a", 5)
    b = Leases(storage, "data", "run-b", 5, clock=clock)
    a.try_acquire("x")
    for _ in range(10):
        assert b.try_acquire("x") is not None
        clock.now += 3  # more than a TTL in all, but a renews in between
        a.renew()
    assert a.take_lost() == set()


def test_heartbeat_keeps_a_lease_alive_past_its_ttl(tmp_path: Path) -> None:
    # A TTL long enough that a busy machine's thread scheduling cannot miss every beat of it
    a, b = _pair(tmp_path, 2.0)
    a.try_acquire("x")
    first_expiry = time.time() + 2.0
    a.start()
    try:
        while time.time() < first_expiry + 0.5:  # past the TTL of the first write
            time.sleep(0.05)
        assert b.try_acquire("x") is not None
    finally:
        a.stop()
    assert a.take_lost() == set()


def test_run_that_loses_a_lease_stops_its_attempt_and_waits_for_the_new_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFLOW_LEASE_TTL", "3")  # the run's own lease: beats every second
    (tmp_path / "kflow.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "t"
            storage = "file://./data"
            [tasks.x]
            command = '''sh -c 'if [ -e again ]; then echo ok > {output};
                                   else touch again; sleep 20; fi' '''
            outputs = ["{root}/x.txt"]
            """
        )
    )
    graph = build_graph(load_project(tmp_path, None, None), [])
    storage = Storage(tmp_path)
    events: list[ev.Event] = []

    def steal_when_started() -> None:
        while not (tmp_path / "again").exists():
            time.sleep(0.01)
        fake = {"holder": "thief", "instance": "x", "expires": time.time() + 0.6, "beat": 1}
        storage.write_atomic(lease_location("data", "x"), json.dumps(fake).encode())

    threading.Thread(target=steal_when_started, daemon=True).start()
    executor = LocalExecutor(tmp_path)
    runner = Runner(
        graph,
        list(graph.instances),
        {iid: Decision(iid, Reason.OUTPUT_MISSING, "x") for iid in graph.instances},
        executor=executor,
        storage=storage,
        hooks=NoState(),
        sink=events.append,
    )
    try:
        result = runner.run()
    finally:
        executor.close()
    kinds = [e.kind for e in events if getattr(e, "instance", None) == "x"]
    assert kinds[:3] == ["started", "lease_lost", "waiting"]
    assert kinds[-2:] == ["started", "succeeded"]
    assert result.exit_code == 0
