"""Kubernetes executor at scale: 1,000 pods on the emulated cluster with no kubelet delay
(time scale 1e-4: built-in delays vanish, the default 7-day deadline lasts 60 s).

Run by hand (not collected by pytest), from the repository root:

    python tests/benchmarks/bench_kubernetes.py [N] [JOBS] [QPS] [LATENCY_MS]

`kflow build` runs as a separate process against the emulator (in this process). Prints
the wall time, API requests per instance (by verb, from the emulator's request log) and
the delay from a pod's end (the command's last act is to write the time) to kflow
recording the attempt's end (the run record). SPEC §6 targets: a few requests per task,
completion seen within 1 s. QPS is kflow's client-side limit for creates and deletes
(``KFLOW_KUBE_QPS``, default 20 in kflow; the benchmark raises it to measure kflow, not
the limiter). LATENCY_MS (default 0) delays every API request by that much, as a real API
server's admission and etcd write do (tens of ms for a pod create): what concurrent
creates are for.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.kube.emulator import KubeEmulator


def write_project(folder: Path, n: int) -> None:
    values = ", ".join(f'"{i}"' for i in range(n))
    (folder / "ends").mkdir()
    (folder / "kflow.toml").write_text(
        f"""
[project]
name = "bench"
storage = "file://./data"

[tasks.t]
image = "busybox:1.36"
matrix = {{ i = [{values}] }}
command = ["sh", "-c", "date +%s.%N > ends/{{i}}"]

[profiles.kube]
executor = "kubernetes"
kubeconfig = "kubeconfig"
"""
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    jobs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    qps = sys.argv[3] if len(sys.argv) > 3 else "500"
    latency_ms = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    folder = Path(tempfile.mkdtemp(prefix="kflow-bench-kube-"))
    write_project(folder, n)
    emulator = KubeEmulator(
        workdir=folder,
        time_scale=1e-4,
        schedule_delay=0.0,
        images_present=True,
        nodes={"node-1": {"cpu": "1000", "memory": "1000Gi", "pods": str(n + 10)}},
    ).start()
    if latency_ms:
        emulator.faults.latency(".*", latency_ms / 1000)
    try:
        emulator.write_kubeconfig(folder / "kubeconfig")
        env = {**os.environ, "KFLOW_KUBE_QPS": qps, "KFLOW_KUBE_BURST": qps}
        argv = [
            sys.executable,
            "-m",
            "kflow",
            "build",
            "--profile",
            "kube",
            "-B",
            "-j",
            str(jobs),
            "--json",
        ]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        finished = next(e for e in events if e["event"] == "run_finished")
        failures = [e for e in events if e["event"] == "failed"][:3]
        assert finished["succeeded"] == n, (finished, failures, done.stderr[-2000:])
        (record_path,) = (folder / "data/.kflow/runs").glob("*.json")
        record = json.loads(record_path.read_text())
        delays = []
        for iid, entry in record["instances"].items():
            index = iid.split("=", 1)[1].rstrip("]")
            ended_in_pod = float((folder / "ends" / index).read_text())
            delays.append(entry["attempts"][-1]["ended"] - ended_in_pod)
        verbs = emulator.verb_counts()
        total = sum(verbs.values())
        delays.sort()
        print(
            f"{n} pods, -j {jobs}, client QPS {qps}, API latency {latency_ms:g} ms: "
            f"{wall:.1f} s wall "
            f"({wall / n * 1000:.1f} ms per pod, kflow start-up included)"
        )
        print(
            f"API requests: {total} = {total / n:.2f} per instance; by verb: "
            + ", ".join(f"{v}={c}" for v, c in sorted(verbs.items()))
        )
        print(
            f"pod end -> kflow records it: median {statistics.median(delays):.3f} s, "
            f"p95 {delays[int(len(delays) * 0.95) - 1]:.3f} s, max {delays[-1]:.3f} s"
        )
        print(
            f"peak watches {emulator.max_concurrent('watches')}, "
            f"peak running pods {emulator.max_concurrent('pods')}"
        )
    finally:
        emulator.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
