"""The primitives under run leases: create-if-absent and compare-and-swap, under races."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kflow.storage import Stamp, Storage
from tests.storage.racer import create_in_process
from tests.storage.s3server import S3Server

RACERS = 8
PROCESSES = 4


def race(calls: list[Any]) -> list[Any]:
    """Run the zero-argument ``calls`` in threads released at the same instant."""
    start = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_create_exclusive_creates_only_once(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    lease = f"{root}/.kflow/leases/extract[date=2026-11-24]"

    assert storage.create_exclusive(lease, b"holder-1") is True
    assert storage.create_exclusive(lease, b"holder-2") is False
    assert storage.read_bytes(lease) == b"holder-1"


def test_create_exclusive_race_has_exactly_one_winner(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    lease = f"{root}/leases/one"

    results = race(
        [lambda i=i: storage.create_exclusive(lease, f"holder-{i}".encode()) for i in range(RACERS)]
    )

    assert results.count(True) == 1
    winner = results.index(True)
    assert storage.read_bytes(lease) == f"holder-{winner}".encode()


def test_replace_if_unchanged_is_a_compare_and_swap(backend_root: tuple[Storage, str]) -> None:
    storage, root = backend_root
    lease = f"{root}/leases/cas"
    storage.create_exclusive(lease, b"holder-1 expires 100")
    seen = storage.stat(lease)
    assert seen is not None

    assert storage.replace_if_unchanged(lease, b"holder-2 expires 200", seen) is True
    # The same (now stale) stamp no longer matches, even with the same size.
    assert storage.replace_if_unchanged(lease, b"holder-3 expires 300", seen) is False
    assert storage.read_bytes(lease) == b"holder-2 expires 200"

    fresh = storage.stat(lease)
    assert fresh is not None
    assert storage.replace_if_unchanged(lease, b"holder-3 expires 300", fresh) is True


def test_read_stamped_gives_the_stamp_of_the_content_it_returns(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    lease = f"{root}/leases/read"
    storage.write_atomic(lease, b"holder-1 expires 100")

    read = storage.read_stamped(lease)
    assert read is not None
    data, stamp = read
    assert data == b"holder-1 expires 100"
    current = storage.stat(lease)
    assert current is not None and stamp.size == current.size and stamp.etag == current.etag

    storage.write_atomic(lease, b"holder-2 expires 200")  # someone renews meanwhile
    assert storage.replace_if_unchanged(lease, b"holder-3 expires 300", stamp) is False
    fresh = storage.read_stamped(lease)
    assert fresh is not None and fresh[0] == b"holder-2 expires 200"
    assert storage.replace_if_unchanged(lease, b"holder-3 expires 300", fresh[1]) is True
    assert storage.read_stamped(f"{root}/leases/none") is None


def test_replace_if_unchanged_on_a_missing_location_is_refused(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    ghost = Stamp(size=3, mtime=1.0, etag="d41d8cd98f00b204e9800998ecf8427e")

    assert storage.replace_if_unchanged(f"{root}/leases/none", b"new", ghost) is False
    assert storage.stat(f"{root}/leases/none") is None


def test_replace_if_unchanged_race_has_exactly_one_winner(
    backend_root: tuple[Storage, str],
) -> None:
    storage, root = backend_root
    lease = f"{root}/leases/expired"
    storage.create_exclusive(lease, b"dead holder")
    seen = storage.stat(lease)
    assert seen is not None

    results = race(
        [
            lambda i=i: storage.replace_if_unchanged(lease, f"taker-{i:02d}".encode(), seen)
            for i in range(RACERS)
        ]
    )

    assert results.count(True) == 1
    assert storage.read_bytes(lease) == f"taker-{results.index(True):02d}".encode()


def test_local_cas_chain_never_revives_an_old_stamp(tmp_path: Path) -> None:
    # Same sizes, same clock tick: each version's mtime still moves forward.
    storage = Storage(tmp_path)
    storage.create_exclusive("lease", b"v0")
    stamps = [storage.stat("lease")]
    for i in range(1, 20):
        before = stamps[-1]
        assert before is not None
        assert storage.replace_if_unchanged("lease", f"v{i % 2}".encode(), before) is True
        stamps.append(storage.stat("lease"))

    assert len(set(stamps)) == len(stamps)
    old = stamps[0]
    assert old is not None
    assert storage.replace_if_unchanged("lease", b"v0", old) is False


def test_local_versions_never_share_a_stamp_even_within_one_clock_tick(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.write_atomic("lease", b"v1")
    future = os.stat(tmp_path / "lease").st_mtime_ns + 10**11  # as if the clock had not moved
    os.utime(tmp_path / "lease", ns=(future, future))
    v1 = storage.stat("lease")

    storage.write_atomic("lease", b"v2")  # same size, "same tick"
    v2 = storage.stat("lease")

    assert v1 is not None and v2 is not None and v1 != v2
    assert v2.mtime is not None and v1.mtime is not None and v2.mtime > v1.mtime
    assert storage.replace_if_unchanged("lease", b"v3", v1) is False


def test_s3_conditional_writes_send_the_conditions(
    s3_storage: Storage, s3_bucket: str, s3_server: S3Server
) -> None:
    lease = f"s3://{s3_bucket}/leases/x"
    s3_storage.create_exclusive(lease, b"a")
    seen = s3_storage.stat(lease)
    assert seen is not None and seen.etag
    s3_server.reset_counts()

    assert s3_storage.create_exclusive(lease, b"b") is False
    assert s3_storage.replace_if_unchanged(lease, b"c", seen) is True
    assert s3_storage.replace_if_unchanged(lease, b"d", seen) is False

    assert [(r.method, r.path) for r in s3_server.requests] == [
        ("PUT", f"/{s3_bucket}/leases/x")
    ] * 3


# -- processes, as two cron ticks would race -------------------------------------------
# Locally, atomicity comes from the kernel (link, flock), which threads of one
# process exercise differently from processes; on S3 it comes from the server,
# which cannot tell threads from processes, so the thread races above cover it.


@pytest.mark.slow
def test_create_exclusive_race_between_local_processes(tmp_path: Path) -> None:
    lease = "leases/proc"
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, like a second cron tick
    start, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(
            target=create_in_process, args=(str(tmp_path), {}, lease, f"proc-{i}", start, out)
        )
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    results = dict(out.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(timeout=10)

    winners = [name for name, won in results.items() if won]
    assert len(winners) == 1
    assert Storage(tmp_path).read_bytes(lease) == winners[0].encode()
