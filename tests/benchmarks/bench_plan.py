"""Planning benchmark: kflow plan vs GNU make on the same layered graph (run by hand).

    python tests/benchmarks/bench_plan.py [--sizes 1000 10000] [--s3]

For each size N it writes a project of N instances in layers (each instance
requires two of the previous layer: the same cell and its transpose) plus the
same graph as a Makefile, builds it with make, records it with `kflow accept`,
and times, each as the median of a few runs of the real command:
- `kflow plan` with everything up to date vs `make -q`;
- `kflow plan` after one first-layer source changed vs `make -n`;
- `kflow plan` with one output missing;
- with --s3: the up-to-date plan on moto's S3 server, with its request count.

Wall times are noisy on a shared machine: each kflow figure is the median of
7 runs after a warm-up, and also shows the CPU time (user + system). With
--phases it then times, in process, the CPU of each phase of the up-to-date
plan (import, load, expand, order, resolve, stat, record index, fingerprints,
digests, observe, decide).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def shape(n: int) -> tuple[int, int]:
    """(layers, side) with layers * side**2 ≈ n."""
    side = {1000: 10, 10000: 25}.get(n) or max(2, int(math.sqrt(n / 10)))
    return max(1, n // (side * side)), side


def write_project(folder: Path, n: int, storage: str, options: str = "") -> None:
    layers, side = shape(n)
    cells = list(range(side))
    lines = [
        "[project]",
        f'storage = "{storage}"',
        options,
        "",
        "[tasks.l0]",
        f"matrix = {{ a = {cells}, b = {cells} }}",
        'command = ["cp", "{input}", "{output}"]',
        'inputs = ["src/{a}_{b}.txt"]',
        'outputs = ["{root}/l0/{a}_{b}.txt"]',
    ]
    for k in range(1, layers):
        lines += [
            "",
            f"[tasks.l{k}]",
            f"matrix = {{ a = {cells}, b = {cells} }}",
            f'requires = [{{ task = "l{k - 1}", params = {{ a = "{{a}}", b = "{{b}}" }} }},'
            f' {{ task = "l{k - 1}", params = {{ a = "{{b}}", b = "{{a}}" }} }}]',
            'command = ["touch", "{output}"]',
            f'outputs = ["{{root}}/l{k}/{{a}}_{{b}}.txt"]',
        ]
    lines.append(f'\n[tasks.all]\nrequires = ["l{layers - 1}"]\ncommand = ["true"]\n')
    (folder / "kflow.toml").write_text("\n".join(lines) + "\n")
    (folder / "src").mkdir(exist_ok=True)
    for a in cells:
        for b in cells:
            (folder / "src" / f"{a}_{b}.txt").write_text(f"{a} {b}\n")
    make = [f"all: {' '.join(f'data/l{layers - 1}/{a}_{b}.txt' for a in cells for b in cells)}", ""]
    for a in cells:
        for b in cells:
            make += [f"data/l0/{a}_{b}.txt: src/{a}_{b}.txt", "\t@mkdir -p $(@D) && cp $< $@"]
            for k in range(1, layers):
                make += [
                    f"data/l{k}/{a}_{b}.txt: data/l{k - 1}/{a}_{b}.txt data/l{k - 1}/{b}_{a}.txt",
                    "\t@mkdir -p $(@D) && touch $@",
                ]
    (folder / "Makefile").write_text("\n".join(make) + "\n")


def timed(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, repeat: int = 7
) -> float:
    return timed_cpu(argv, cwd, env, repeat)[0]


def timed_cpu(
    argv: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    repeat: int = 7,
    warm_up: bool = True,
) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of a command, after a warm-up run."""
    times, cpus = [], []
    if warm_up:
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, _, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def kflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "kflow", *args]


PHASES = """
import sys, time
start = time.process_time()
import kflow.cli.plan_commands as commands
from pathlib import Path
from kflow import graph, plan, state
from kflow.load import load_project
marks = {"import": time.process_time() - start}
def phase(name, call):
    began = time.process_time()
    result = call()
    marks[name] = marks.get(name, 0.0) + time.process_time() - began
    return result
with commands.paused_gc():
    project = phase("load", lambda: load_project(None, None, None))
    expander = graph.Expander(project, {})
    ids = phase("expand", lambda: graph.resolve_target(expander, "all", Path.cwd()))
    order = phase("order", expander.ordered)
    built = graph.Graph(project, phase("resolve", lambda: expander.resolve(order)), tuple(ids))
    storage = commands.project_storage(project)
    instances = list(built.instances.values())
    locations = sorted({loc for i in instances for loc in (*i.outputs.values(), *i.inputs)})
    stamps = phase("  stat", lambda: storage.stat_many(locations))
    store = state.StateStore(storage, project.root)
    phase("  index", lambda: store.index({i.id.task for i in instances}))
    phase("  fingerprints", lambda: state.fingerprints(instances))
    phase("  digests", lambda: state.inputs_digests(instances, stamps))
    observed = phase("observe", lambda: plan.observe(built, storage, store))
    phase("decide", lambda: plan.decide(built, observed))
print("  ".join(f"{name.strip()} {cpu:.3f}" for name, cpu in marks.items()))
"""


def local_case(n: int, work: Path, phases: bool = False) -> None:
    folder = work / f"local-{n}"
    folder.mkdir()
    write_project(folder, n, "file://./data")
    subprocess.run(["make", "-r", "-j2", "-s"], cwd=folder, check=True)
    subprocess.run(kflow("accept", "all"), cwd=folder, check=True, stdout=subprocess.DEVNULL)
    count = subprocess.run(kflow("plan", "--json"), cwd=folder, capture_output=True, text=True)
    assert '"to_run": []' in count.stdout, count.stdout[:500]
    noop, noop_cpu = timed_cpu(kflow("plan"), folder)
    make_q = timed(["make", "-r", "-q"], folder)
    kflow_import = timed([sys.executable, "-c", "import kflow.cli.plan_commands"], folder)
    phase_cpu = ""
    if phases:
        phase_cpu = subprocess.run(
            [sys.executable, "-c", PHASES], cwd=folder, capture_output=True, text=True, check=True
        ).stdout.strip()
    time.sleep(0.01)
    (folder / "src" / "0_1.txt").write_text("changed\n")
    changed, changed_cpu = timed_cpu(kflow("plan"), folder)
    make_n = timed(["make", "-r", "-n"], folder)
    (folder / "src" / "0_1.txt").write_text("0 1\n")
    missing_file = next((folder / "data" / "l1").iterdir())
    missing_file.unlink()
    missing, missing_cpu = timed_cpu(kflow("plan"), folder)
    print(f"\n## {n} instances, local disk ({shape(n)[0]} layers of {shape(n)[1] ** 2})")
    print(
        f"kflow plan, up to date          {noop:7.3f} s (CPU {noop_cpu:.3f} s)   "
        f"make -r -q {make_q:7.3f} s   (python + kflow import alone: {kflow_import:.3f} s)"
    )
    print(
        f"kflow plan, one source changed  {changed:7.3f} s (CPU {changed_cpu:.3f} s)   "
        f"make -r -n {make_n:7.3f} s"
    )
    print(f"kflow plan, one output missing  {missing:7.3f} s (CPU {missing_cpu:.3f} s)")
    if phase_cpu:
        print(f"CPU by phase (up to date, in process): {phase_cpu}")


def s3_case(n: int, work: Path) -> None:
    from tests.storage.s3server import FAKE_AWS_ENV, S3Server

    os.environ.update(FAKE_AWS_ENV)  # this process creates the bucket too
    server = S3Server().start()
    try:
        bucket = server.create_bucket()
        folder = work / f"s3-{n}"
        folder.mkdir()
        options = f'storage_options = {{ endpoint_url = "{server.endpoint_url}" }}'
        write_project(folder, n, f"s3://{bucket}/bench", options)
        layers, side = shape(n)
        server.put_objects(
            bucket,
            {
                f"bench/l{k}/{a}_{b}.txt": b"x"
                for k in range(layers)
                for a in range(side)
                for b in range(side)
            },
        )
        env = {**os.environ, **FAKE_AWS_ENV}
        start = time.perf_counter()
        subprocess.run(
            kflow("accept", "all"), cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL
        )
        accept = time.perf_counter() - start
        subprocess.run(kflow("plan"), cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
        server.reset_counts()
        noop, noop_cpu = timed_cpu(kflow("plan"), folder, env, repeat=1, warm_up=False)
        requests = server.count()
        lists = sum(1 for r in server.requests if "list-type" in r.query)
        print(f"\n## {n} instances on S3 (moto server, {layers} layer prefixes + records)")
        print(
            f"kflow plan, up to date  {noop:7.3f} s (kflow's CPU {noop_cpu:.3f} s; the rest is"
            f" moto's server)   {requests} requests ({lists} listings)"
        )
        print(f"(kflow accept of all {n}: {accept:.1f} s)")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--s3", action="store_true")
    parser.add_argument("--phases", action="store_true", help="Also time each phase in process.")
    args = parser.parse_args()
    # As an installed kflow runs: from compiled bytecode (PYTHONDONTWRITEBYTECODE would
    # otherwise make every run compile kflow's modules again).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "kflow")], check=True)
    work = Path(tempfile.mkdtemp(prefix="kflow-bench-"))
    try:
        for n in args.sizes:
            local_case(n, work, args.phases)
            if args.s3:
                s3_case(n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
