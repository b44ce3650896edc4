"""Local executor overhead: 1,000 trivial instances (`true`) with -j 2, kflow vs `make -j2`.

Run by hand (not collected by pytest):

    python tests/benchmarks/bench_local_executor.py [N]

Prints wall times and the per-instance overhead of kflow beyond what make
spends on the same processes. Target (SPEC §6): under 5 ms per instance.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 3


def write_projects(folder: Path, n: int) -> None:
    values = ", ".join(f'"{i}"' for i in range(n))
    (folder / "kflow.toml").write_text(
        f"""
[project]
name = "bench"
storage = "file://./data"

[tasks.t]
matrix = {{ i = [{values}] }}
command = ["true"]
"""
    )
    rules = "\n".join(f"t{i}:\n\ttrue" for i in range(n))
    targets = " ".join(f"t{i}" for i in range(n))
    (folder / "Makefile").write_text(f".PHONY: all {targets}\nall: {targets}\n{rules}\n")


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    folder = Path(tempfile.mkdtemp(prefix="kflow-bench-"))
    try:
        write_projects(folder, n)
        kflow_argv = [sys.executable, "-m", "kflow", "build", "-B", "-j", "2", "--json"]
        make_s = kflow_s = run_s = float("inf")
        for _ in range(ROUNDS):  # alternate, keep the best: other load on the machine is noise
            make_s = min(make_s, timed(["make", "-s", "-j2"], folder)[0])
            total, out = timed(kflow_argv, folder)
            events = [json.loads(line) for line in out.splitlines()]
            finished = next(e for e in events if e["event"] == "run_finished")
            assert finished["succeeded"] == n, finished
            kflow_s, run_s = min(kflow_s, total), min(run_s, finished["duration"])
        plan_s, _ = timed([sys.executable, "-m", "kflow", "plan", "-B", "--json"], folder)
        startup_s, _ = timed([sys.executable, "-m", "kflow", "--version"], folder)
        print(f"{n} instances of `true`, -j 2, best of {ROUNDS}")
        rows = [
            ("make -j2", make_s),
            ("kflow build -B -j 2 (total)", kflow_s),
            ("  of which the run itself", run_s),
        ]
        for label, seconds in rows:
            print(f"{label + ':':<31}{seconds:7.2f} s  ({seconds / n * 1000:.2f} ms/instance)")
        print(f"  kflow plan -B alone: {plan_s:.2f} s;  kflow --version: {startup_s:.2f} s")
        print(f"overhead beyond make, run:     {(run_s - make_s) / n * 1000:7.2f} ms/instance")
        print(f"overhead beyond make, total:   {(kflow_s - make_s) / n * 1000:7.2f} ms/instance")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
