"""Send one signal to a real `kflow build` N times and count how often it is not acted on.

    python -m tests.signal_harness --signal SIGTSTP -n 100 --load

Not a test (slow, and it loads the machine): the measurement behind the job-control fix.
``--load`` runs a busy loop on each core meanwhile. SIGTSTP counts as acted on when kflow
is stopped and the attempt's process group frozen (``group_frozen``); it also counts the
tries where the attempt's first process is not "T" (the job-control test's former check).
SIGINT/SIGTERM count as acted on when kflow exits (130) within the deadline.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.processes import describe_group, group_frozen, has_text, start_build, state

# The attempt waits for `go` in a shell loop that starts `sleep` again and again.
PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.x]
command = ["sh", "-c", '''echo $$ > first-pid; while [ ! -e go ]; do sleep 0.02; done;
  echo x > "$0"''', "{output}"]
outputs = ["{root}/x.txt"]
"""


def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def one_try(sig: signal.Signals, deadline: float) -> tuple[bool, bool, float]:
    """(acted on, attempt's first process in state T or not SIGTSTP, seconds it took)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "kflow.toml").write_text(PROJECT)
        proc = start_build(root, env={"KFLOW_LEASE_TTL": "2"}, merged=True)
        try:
            if not _within(120, has_text(root / "first-pid")):
                raise RuntimeError("the attempt never started: " + proc.communicate()[0])
            task = int((root / "first-pid").read_text())
            sent = time.monotonic()
            proc.send_signal(sig)
            if sig != signal.SIGTSTP:
                ok = _within(deadline, lambda: proc.poll() is not None)
                return ok and proc.returncode == 130, True, time.monotonic() - sent
            ok = _within(deadline, lambda: state(proc.pid) == "T" and group_frozen(task))
            took, letter = time.monotonic() - sent, state(task)
            if not ok:
                print(f"kflow {state(proc.pid)}; attempt: {describe_group(task)}", flush=True)
            (root / "go").touch()
            proc.send_signal(signal.SIGCONT)
            out = proc.communicate(timeout=120)[0]
            if proc.returncode != 0:
                print(f"exit {proc.returncode}: {out[-500:]}", flush=True)
            return ok, letter == "T", took
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", default="SIGTSTP", choices=["SIGTSTP", "SIGINT", "SIGTERM"])
    parser.add_argument("-n", type=int, default=100, help="how many tries")
    parser.add_argument("--deadline", type=float, default=10.0, help="s to act on one")
    parser.add_argument("--load", action="store_true", help="a busy loop on each core")
    args = parser.parse_args()
    sig = signal.Signals[args.signal]
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)
        if args.load
    ]
    missed = not_t = 0
    times: list[float] = []
    try:
        for n in range(args.n):
            ok, letter_t, took = one_try(sig, args.deadline)
            missed += not ok
            not_t += not letter_t
            times.append(took)
            print(f"{n}: {'ok' if ok else 'NOT ACTED ON'} {took:.2f}s", flush=True)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    times.sort()
    print(
        f"{sig.name}: {args.n} tries, {missed} not acted on within {args.deadline:g} s"
        + (
            f", {not_t} with the attempt's first process not in state T"
            if sig == signal.SIGTSTP
            else ""
        )
        + f"; median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s"
    )


if __name__ == "__main__":
    main()
