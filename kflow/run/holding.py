"""Leases for commands that change state outside a run (`kflow accept`, `kflow clean`).

They must not act on an instance a build is running: its outputs may be half written
(accept would vouch for them) or about to be (clean would delete under it). So they take
every instance's lease first, without waiting, as `kflow build --no-wait` does, and refuse
(exit 3) naming the run that holds one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kflow.errors import EXIT_HELD, KflowError
from kflow.run.ids import new_run_id
from kflow.run.leases import Leases
from kflow.storage import Storage


class HeldByRun(KflowError):
    """Another run holds an instance this command would change."""

    exit_code = EXIT_HELD


@contextmanager
def holding(storage: Storage, root: str, instances: Iterable[str], verb: str) -> Iterator[None]:
    """Hold every named instance's lease for the block, or raise ``HeldByRun`` (nothing held)."""
    leases = Leases(storage, root, new_run_id())
    leases.start()  # a long clean outlives a lease's TTL: keep them alive meanwhile
    try:
        for name in instances:
            other = leases.try_acquire(name)
            if other is not None:
                raise HeldByRun(
                    f"cannot {verb} {name}: {other} holds it",
                    hint="wait for that run to end (or `kflow cancel` it); nothing was changed",
                )
        yield
    finally:
        leases.stop()
        leases.release_all()
