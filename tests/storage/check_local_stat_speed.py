"""Quick check, not a test: how long local stat_many takes for 10,000 files in 100 folders.

    python -m tests.storage.check_local_stat_speed [DIR]

Prints the best of several runs next to a bare os.stat loop over the same files,
the floor any Python implementation sits on. No timed assertion lives in the test
suite: timings depend on the machine (see SPEC §6, benchmarks measure these).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable

from kflow.storage import Storage

FOLDERS, PER_FOLDER, RUNS = 100, 100, 20


def best_of(call: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    project = tempfile.mkdtemp(dir=sys.argv[1] if len(sys.argv) > 1 else None)
    present = []
    for folder in range(FOLDERS):
        os.makedirs(f"{project}/out/f{folder:03d}")
        for i in range(PER_FOLDER):
            name = f"out/f{folder:03d}/{i:04d}.csv"
            with open(f"{project}/{name}", "wb") as f:
                f.write(b"x" * i)
            present.append(name)
    missing = [name.replace("out/", "gone/") for name in present]
    storage = Storage(project)
    absolute = [f"{project}/{name}" for name in present]

    print(
        f"stat_many, {len(present)} present:  {best_of(lambda: storage.stat_many(present)):6.1f} ms"
    )
    print(
        f"stat_many, {len(missing)} missing:  {best_of(lambda: storage.stat_many(missing)):6.1f} ms"
    )
    print(
        f"bare os.stat loop, same files: {best_of(lambda: [os.stat(p) for p in absolute]):6.1f} ms"
    )


if __name__ == "__main__":
    main()
