"""The watchdog ends attempts kflow started but had not registered yet when it died."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

# A stand-in for kflow: starts a watchdog, starts an attempt exactly as the local executor
# does (own session, the watchdog's tag in its environment) but dies before it registers
# the attempt's group — the window between the attempt's start and its ``+PGID`` line.
DYING_KFLOW = textwrap.dedent(
    """
    import os, subprocess, sys
    from kflow.executors.watchdog import TAG, Watchdog

    dog = Watchdog(0.5, sys.argv[1])
    task = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $$ $! > " + sys.argv[2] + "; wait"],
        env={**os.environ, TAG: dog.tag},
        start_new_session=True,
    )
    print(dog.tag, flush=True)
    while not os.path.exists(sys.argv[2]) or not open(sys.argv[2]).read().strip():
        pass
    os._exit(9)  # gone, as with SIGKILL: no close, no registration
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_an_attempt_started_but_not_registered_dies_with_kflow(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    kflow = subprocess.run(
        [sys.executable, "-c", DYING_KFLOW, str(tmp_path / "logs"), str(pids_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert kflow.returncode == 9, kflow.stderr
    watchdog = int(kflow.stdout.strip())
    pids = [int(p) for p in pids_file.read_text().split()]
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in [*pids, watchdog]):
        assert time.monotonic() < deadline, "the unregistered attempt outlived its kflow"
        time.sleep(0.05)
