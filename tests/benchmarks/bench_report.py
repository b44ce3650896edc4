"""`kflow report` at scale: report size, time to write it, time for Chromium to load it.

Run by hand (not collected by pytest), from the repository root:

    python tests/benchmarks/bench_report.py [--sizes 1000 10000] [--runs 3]

For each size N it writes a recorded run of N instances (tests/report/big.py: a fan-out
of extract → transform pairs, some retried, and 50 fan-in loads, each attempt with its
log), then measures, as medians of --runs: `kflow report -o FILE` in a subprocess (the
whole command, interpreter start included), the HTML file's size, and the time headless
Chromium (Debian's `chromium`, via playwright) takes from navigation to the last view
drawn.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.report.big import write_big_run

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


def measure(size: int, runs: int) -> tuple[float, int, float]:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="kflow-bench-report-"))
    try:
        write_big_run(folder, size)
        out = folder / "report.html"
        writes = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "kflow", "report", "-C", str(folder), "-o", str(out)],
                check=True,
                capture_output=True,
            )
            writes.append(time.perf_counter() - began)
        loads = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            for _ in range(runs):
                page = browser.new_page()
                began = time.perf_counter()
                page.goto(out.as_uri())
                page.wait_for_selector("#not-run", timeout=120_000)
                loads.append(time.perf_counter() - began)
                page.close()
            browser.close()
        return statistics.median(writes), out.stat().st_size, statistics.median(loads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'instances':>10} {'report size':>12} {'write (s)':>10} {'load in Chromium (s)':>21}")
    for size in args.sizes:
        write, nbytes, load = measure(size, args.runs)
        print(f"{size:>10} {nbytes / 1e6:>10.1f}MB {write:>10.2f} {load:>21.2f}")


if __name__ == "__main__":
    main()
