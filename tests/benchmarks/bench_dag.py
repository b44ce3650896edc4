"""Layered DAG of distinct tasks: make vs doit vs kflow (`kflow.py` loop, generated `kflow.toml`).

Run by hand (not collected by pytest), from the repository root:

    python tests/benchmarks/bench_dag.py [--sizes 1000 5000 10000] [--runs 3] [--no-cold]
                                         [--forms py toml] [--profile | --profile-only]
                                         [--overhead N]

For each size N it writes the same graph four times: a `Makefile`, a `kflow.py` that
defines the tasks in a loop, a generated `kflow.toml` with one `[tasks.NAME]` table per
task, and (when doit is importable here) a `dodo.py`. The graph has 20 layers of
W = N/20 distinct tasks; task j of layer k requires tasks j and j+1 (mod W) of layer
k-1; layer 0 reads source files; one `final` task fans in the last layer. Every task
is `cksum` of its inputs via `sh` into its output, as a Makefile recipe runs. A second
shape, one task with N instances (`matrix`), is measured against its own Makefile.

It reports, side by side in one run, with ratios to make: the cold build at -j 2 (once:
it is long); the no-op build (`make -q`, `doit run`, `kflow build`) and `kflow plan`
(median of --runs runs after a check run; one run when it takes over 20 s); `kflow plan`
and the build after one source changed; and kflow's peak RSS (the wait4 rusage of the
process, children included). --no-cold builds with make only, copies the outputs and
records them with `kflow accept`, and measures only what runs nothing (no-op and
changed-source plans). --forms picks the kflow forms (py, toml; none: make and doit
only). --profile then prints the top 20 cumulative entries (and the top 12 by own time)
of a cProfile of a warm no-op `kflow plan` (its load cache filled) of each form at the
largest size; --profile-only sets up that size as --no-cold does and profiles, measuring
nothing else.

First (unless --no-cold), the per-task overhead: N (--overhead, 1,000; 0 skips) no-op
tasks, `sh -c 'true > out'` as a Makefile recipe runs it, cold at -j 2, kflow vs make
(median of --runs, interleaved); kflow's own cost per task is (kflow - make) / N x 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = 20
SH = '["sh", "-c", "cksum {inputs} > {output}"]'
SLOW = 20.0  # seconds: a no-op slower than this is run once, not --runs times

KFLOW_PY = """\
from kflow import project, task

project(name="bench", storage="file://./data")
W, LAYERS = @W@, @LAYERS@
COMMAND = ["sh", "-c", "cksum {inputs} > {output}"]

for j in range(W):
    task(f"t0_{j}", command=COMMAND, inputs=[f"src/{j}.txt"], outputs=[f"{{root}}/l0/{j}.txt"])
for k in range(1, LAYERS):
    for j in range(W):
        task(
            f"t{k}_{j}",
            command=COMMAND,
            requires=[f"t{k - 1}_{j}", f"t{k - 1}_{(j + 1) % W}"],
            outputs=[f"{{root}}/l{k}/{j}.txt"],
        )
task(
    "final",
    command=COMMAND,
    requires=[f"t{LAYERS - 1}_{j}" for j in range(W)],
    outputs=["{root}/final.txt"],
)
"""

DODO_PY = """\
W, LAYERS = @W@, @LAYERS@
DOIT_CONFIG = {"verbosity": 0}


def task_t():
    for k in range(LAYERS):
        for j in range(W):
            if k == 0:
                deps = [f"src/{j}.txt"]
            else:
                deps = [f"data/l{k - 1}/{j}.txt", f"data/l{k - 1}/{(j + 1) % W}.txt"]
            out = f"data/l{k}/{j}.txt"
            yield {
                "name": f"{k}_{j}",
                "actions": [f"cksum {' '.join(deps)} > {out}"],
                "file_dep": deps,
                "targets": [out],
            }


def task_final():
    deps = [f"data/l{LAYERS - 1}/{j}.txt" for j in range(W)]
    return {
        "actions": [f"cksum {' '.join(deps)} > data/final.txt"],
        "file_dep": deps,
        "targets": ["data/final.txt"],
    }
"""


def width(n: int) -> int:
    return max(2, n // LAYERS)


def deps_of(k: int, j: int, w: int) -> list[str]:
    if k == 0:
        return [f"src/{j}.txt"]
    return [f"data/l{k - 1}/{j}.txt", f"data/l{k - 1}/{(j + 1) % w}.txt"]


def write_sources(folder: Path, count: int, outputs: list[str]) -> None:
    """Source files, and the output folders (made here for every tool alike)."""
    (folder / "src").mkdir(parents=True)
    for j in range(count):
        (folder / "src" / f"{j}.txt").write_text(f"{j}\n")
    for sub in outputs:
        (folder / "data" / sub).mkdir(parents=True, exist_ok=True)


def write_make(folder: Path, w: int) -> None:
    last = " ".join(f"data/l{LAYERS - 1}/{j}.txt" for j in range(w))
    lines = [f"data/final.txt: {last}", "\tcksum $^ > $@"]
    for k in range(LAYERS):
        for j in range(w):
            lines += [f"data/l{k}/{j}.txt: {' '.join(deps_of(k, j, w))}", "\tcksum $^ > $@"]
    (folder / "Makefile").write_text("\n".join(lines) + "\n")


def write_toml(folder: Path, w: int) -> None:
    parts = ['[project]\nname = "bench"\nstorage = "file://./data"\n']
    for j in range(w):
        parts.append(
            f'[tasks.t0_{j}]\ncommand = {SH}\ninputs = ["src/{j}.txt"]\n'
            f'outputs = ["{{root}}/l0/{j}.txt"]\n'
        )
    for k in range(1, LAYERS):
        for j in range(w):
            parts.append(
                f'[tasks.t{k}_{j}]\ncommand = {SH}\nrequires = ["t{k - 1}_{j}", '
                f'"t{k - 1}_{(j + 1) % w}"]\noutputs = ["{{root}}/l{k}/{j}.txt"]\n'
            )
    last = ", ".join(f'"t{LAYERS - 1}_{j}"' for j in range(w))
    parts.append(
        f'[tasks.final]\ncommand = {SH}\nrequires = [{last}]\noutputs = ["{{root}}/final.txt"]\n'
    )
    (folder / "kflow.toml").write_text("\n".join(parts))


def fill(template: str, w: int) -> str:
    return template.replace("@W@", str(w)).replace("@LAYERS@", str(LAYERS))


def write_instances(folder: Path, n: int) -> None:
    """One task with n instances, and the same as a Makefile pattern rule."""
    write_sources(folder, n, ["t"])
    values = ", ".join(str(i) for i in range(n))
    (folder / "kflow.toml").write_text(
        f'[project]\nname = "bench"\nstorage = "file://./data"\n\n[tasks.t]\n'
        f"matrix = {{ i = [{values}] }}\ncommand = {SH}\n"
        'inputs = ["src/{i}.txt"]\noutputs = ["{root}/t/{i}.txt"]\n'
    )
    targets = " ".join(f"data/t/{i}.txt" for i in range(n))
    (folder / "Makefile").write_text(
        f".PHONY: all\nall: {targets}\ndata/t/%.txt: src/%.txt\n\tcksum $^ > $@\n"
    )


@dataclass
class Run:
    wall: float
    rss_mib: float
    cpu: float = 0.0  # user + system seconds, children included


@dataclass
class Cell:
    seconds: float | None = None
    runs: int = 0
    rss_mib: float | None = None
    median: bool = False


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def put(self, row: str, column: str, cell: Cell) -> None:
        self.rows.setdefault(row, {})[column] = cell


def run(argv: list[str], cwd: Path, expect: int | None = 0, tries: int = 3) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code == -signal.SIGKILL and tries > 1:
        # Not ours: on a shared machine someone's broad `pkill` may hit us. Measure again.
        print(f"(killed by someone else, measured again: {' '.join(argv[-3:])})", file=sys.stderr)
        return run(argv, cwd, expect, tries - 1)
    if expect is not None and code != expect:
        raise SystemExit(f"{argv} in {cwd} exited {code}:\n{err.decode()[-3000:]}")
    return Run(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)  # KiB on Linux


def median_of(argv: list[str], cwd: Path, runs: int, expect: int | None = 0) -> Cell:
    """Median wall time of `runs` runs; one run when it is slow (it is noise-proof enough)."""
    first = run(argv, cwd, expect)
    results = [first]
    if first.wall < SLOW:
        results += [run(argv, cwd, expect) for _ in range(runs - 1)]
    walls = [r.wall for r in results]
    return Cell(statistics.median(walls), len(results), max(r.rss_mib for r in results), True)


def once(argv: list[str], cwd: Path) -> Cell:
    result = run(argv, cwd)
    return Cell(result.wall, 1, result.rss_mib)


# The console script, not `python -m kflow`: -m puts the current folder first on
# sys.path, where the project's own kflow.py would shadow the package.
KFLOW = str(Path(sys.executable).with_name("kflow"))


def kflow(*args: str) -> list[str]:
    return [KFLOW, *args]


def doit(*args: str) -> list[str]:
    return [sys.executable, "-m", "doit", *args]


def assert_up_to_date(folder: Path) -> None:
    done = subprocess.run(kflow("plan", "--json"), cwd=folder, capture_output=True, text=True)
    assert '"to_run": []' in done.stdout, (folder, done.stdout[:300], done.stderr[-2000:])


def change_source(folder: Path) -> None:
    (folder / "src" / "0.txt").write_text("changed\n")


def distinct_case(n: int, work: Path, args: argparse.Namespace, with_doit: bool) -> Table:
    w = width(n)
    outs = [f"l{k}" for k in range(LAYERS)]
    base = work / f"dag-{n}"
    folders = {name: base / name for name in ("make", "py", "toml", "doit")}
    for folder in folders.values():
        write_sources(folder, w, outs)
    write_make(folders["make"], w)
    (folders["py"] / "kflow.py").write_text(fill(KFLOW_PY, w))
    write_toml(folders["toml"], w)
    (folders["doit"] / "dodo.py").write_text(fill(DODO_PY, w))
    forms = {f"kflow.{sub}": folders[sub] for sub in args.forms}
    columns = ["make", *(["doit"] if with_doit else []), *forms]
    table = Table(f"{w * LAYERS + 1:,} distinct tasks ({LAYERS} layers of {w} + a fan-in)", columns)

    if args.no_cold or args.profile_only:
        run(["make", "-r", "-s", "-j2"], folders["make"])
        for folder in forms.values():
            shutil.copytree(folders["make"] / "data", folder / "data", dirs_exist_ok=True)
            run(kflow("accept", "final"), folder)
        if with_doit and not args.profile_only:
            run(doit("run", "-n", "2"), folders["doit"])
    else:
        table.put("cold build, -j 2", "make", once(["make", "-r", "-s", "-j2"], folders["make"]))
        if with_doit:
            table.put("cold build, -j 2", "doit", once(doit("run", "-n", "2"), folders["doit"]))
        for name, folder in forms.items():
            table.put("cold build, -j 2", name, once(kflow("build", "-j", "2"), folder))
    for folder in forms.values():
        assert_up_to_date(folder)
    if args.profile_only:
        return table

    noop = "no-op build (`make -q`, `doit run`, `kflow build`)"
    table.put(noop, "make", median_of(["make", "-r", "-q"], folders["make"], args.runs))
    if with_doit:
        table.put(noop, "doit", median_of(doit("run"), folders["doit"], args.runs))
    for name, folder in forms.items():
        table.put(noop, name, median_of(kflow("build"), folder, args.runs))
    plan = "no-op `kflow plan` (make: `make -q`)"
    table.put(plan, "make", table.rows[noop]["make"])
    for name, folder in forms.items():
        table.put(plan, name, median_of(kflow("plan"), folder, args.runs))

    time.sleep(0.01)  # a later mtime for make
    for folder in folders.values():
        change_source(folder)
    changed = "one source changed: plan (`make -n`, `kflow plan`)"
    table.put(changed, "make", median_of(["make", "-r", "-n"], folders["make"], args.runs))
    for name, folder in forms.items():
        table.put(changed, name, median_of(kflow("plan"), folder, args.runs))
    if not args.no_cold:
        cone = sum(min(k + 1, w) for k in range(LAYERS)) + 1  # what src/0.txt reaches
        rebuilt = f"one source changed: build, -j 2 ({cone} tasks run)"
        table.put(rebuilt, "make", once(["make", "-r", "-s", "-j2"], folders["make"]))
        if with_doit:
            table.put(rebuilt, "doit", once(doit("run", "-n", "2"), folders["doit"]))
        for name, folder in forms.items():
            table.put(rebuilt, name, once(kflow("build", "-j", "2"), folder))
    return table


def instances_case(n: int, work: Path, args: argparse.Namespace) -> Table:
    folder = work / f"instances-{n}"
    write_instances(folder, n)
    table = Table(f"one task with {n:,} instances", ["make", "kflow.toml"])
    if args.no_cold:
        run(["make", "-r", "-s", "-j2"], folder)
        run(kflow("accept", "t"), folder)
    else:
        table.put("cold build, -j 2", "make", once(["make", "-r", "-s", "-j2"], folder))
        shutil.rmtree(folder / "data" / "t")
        (folder / "data" / "t").mkdir()
        table.put("cold build, -j 2", "kflow.toml", once(kflow("build", "-j", "2"), folder))
    assert_up_to_date(folder)
    noop = "no-op build (`make -q`, `kflow build`)"
    table.put(noop, "make", median_of(["make", "-r", "-q"], folder, args.runs))
    table.put(noop, "kflow.toml", median_of(kflow("build"), folder, args.runs))
    plan = "no-op `kflow plan` (make: `make -q`)"
    table.put(plan, "make", table.rows[noop]["make"])
    table.put(plan, "kflow.toml", median_of(kflow("plan"), folder, args.runs))
    time.sleep(0.01)
    change_source(folder)
    changed = "one source changed: plan (`make -n`, `kflow plan`)"
    table.put(changed, "make", median_of(["make", "-r", "-n"], folder, args.runs))
    table.put(changed, "kflow.toml", median_of(kflow("plan"), folder, args.runs))
    if not args.no_cold:
        # make first: it rebuilds data/t/0.txt, which kflow then sees as changed output
        # of a changed input and reruns too; both run exactly one task.
        rebuilt = "one source changed: build, -j 2 (1 task runs)"
        table.put(rebuilt, "make", once(["make", "-r", "-s", "-j2"], folder))
        table.put(rebuilt, "kflow.toml", once(kflow("build", "-j", "2"), folder))
    return table


NOOP = '["sh", "-c", "true > {output}"]'


def overhead_case(n: int, work: Path, runs: int) -> None:
    """kflow's own cost per task beyond the process: n no-op tasks (`true` through `sh`,
    so that the output is written), cold at -j 2, kflow vs make; median of ``runs``."""
    folder = work / f"overhead-{n}"
    (folder / "data" / "o").mkdir(parents=True)
    values = ", ".join(str(i) for i in range(n))
    (folder / "kflow.toml").write_text(
        f'[project]\nname = "bench"\nstorage = "file://./data"\n\n[tasks.o]\n'
        f'matrix = {{ i = [{values}] }}\ncommand = {NOOP}\noutputs = ["{{root}}/o/{{i}}.txt"]\n'
    )
    targets = " ".join(f"data/o/{i}.txt" for i in range(n))
    (folder / "Makefile").write_text(f".PHONY: all\nall: {targets}\ndata/o/%.txt:\n\ttrue > $@\n")

    def cold(argv: list[str]) -> Run:
        shutil.rmtree(folder / "data")
        (folder / "data" / "o").mkdir(parents=True)
        return run(argv, folder)

    times: dict[str, list[Run]] = {"make": [], "kflow": []}
    for _ in range(runs):  # interleaved: both see the same machine load
        times["make"].append(cold(["make", "-r", "-s", "-j2"]))
        times["kflow"].append(cold(kflow("build", "-j", "2")))
    make, ours = (statistics.median(r.wall for r in times[k]) for k in ("make", "kflow"))
    make_cpu, our_cpu = (statistics.median(r.cpu for r in times[k]) for k in ("make", "kflow"))
    rss = max(r.rss_mib for r in times["kflow"])
    per_task = (ours - make) / n * 2 * 1000  # two slots: each does n/2 tasks
    # CPU does not depend on how busy the machine is: kflow's own, start-up included.
    cpu_per_task = (our_cpu - make_cpu) / n * 1000
    print(f"\n### per-task overhead: {n:,} no-op tasks (`sh -c 'true > out'`), cold, -j 2\n")
    print(
        "| make | kflow | kflow's own ms per task, wall ((kflow - make) / N x jobs) "
        "| kflow's own CPU ms per task ((kflow - make) / N) |"
    )
    print("|---|---|---|---|")
    print(
        f"| {make:.3f} s | {ours:.3f} s ({ours / make:.1f}x) | {per_task:.2f} ms "
        f"| {cpu_per_task:.2f} ms |  (median of {runs}; peak RSS {rss:.0f} MiB; "
        f"CPU make {make_cpu:.2f} s, kflow {our_cpu:.2f} s)"
    )


def show(table: Table) -> None:
    print(f"\n### {table.title}\n")
    print("| | " + " | ".join(table.columns) + " |")
    print("|---" * (len(table.columns) + 1) + "|")
    rss: dict[str, list[str]] = {}
    for row, cells in table.rows.items():
        anchor = cells.get("make")
        texts = []
        for column in table.columns:
            cell = cells.get(column)
            if cell is None or cell.seconds is None:
                texts.append("")
                continue
            text = f"{cell.seconds:.3f} s"
            if column != "make" and anchor and anchor.seconds:
                text += f" ({cell.seconds / anchor.seconds:.1f}x)"
            if cell.median and cell.runs == 1:
                text += " [1 run]"  # too slow to repeat
            texts.append(text)
            if column.startswith("kflow") and cell.rss_mib is not None:
                rss.setdefault(column, []).append(f"{row.split(' (')[0]} {cell.rss_mib:.0f}")
        print(f"| {row} | " + " | ".join(texts) + " |")
    print()
    for column, figures in rss.items():
        print(f"peak RSS of {column}, MiB: " + "; ".join(figures))


def profile(n: int, work: Path, forms: list[str]) -> None:
    for sub in forms:
        name = f"kflow.{sub}"
        folder = work / f"dag-{n}" / sub
        out = work / f"plan-{sub}.prof"
        # -C from outside the folder: the profiler keeps the current folder on sys.path.
        plan = [KFLOW, "plan", "-C", str(folder)]
        # The current folder is part of the load cache's key: a first plan from here fills the
        # entry, so that the profile is of a warm no-op plan, as measured, not of a load.
        subprocess.run(plan, cwd=work, check=True, stdout=subprocess.DEVNULL)
        argv = [sys.executable, "-m", "cProfile", "-o", str(out), *plan]
        subprocess.run(argv, cwd=work, check=True, stdout=subprocess.DEVNULL)
        print(f"\n### cProfile of the no-op `kflow plan`, {name}, {n:,} distinct tasks\n")
        stats = pstats.Stats(str(out))
        print(
            f"{stats.total_tt:.2f} s profiled; top 20 by cumulative time (CLI wrappers left out):"
        )
        show_entries(stats, "cumulative", 20)
        print("top 12 by own time (where the cumulative time is finally spent):")
        show_entries(stats, "own", 12)


WRAPPERS = ("/click/", "/typer/", "<frozen runpy>", "<built-in method builtins.exec>")


def show_entries(stats: pstats.Stats, key: str, count: int) -> None:
    rows = []
    for (path, line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, _, own, cumulative, _ = entry
        short = "/".join(Path(path).parts[-2:])
        where = function if path == "~" else f"{short}:{line}({function})"
        if any(w in path or w == where for w in WRAPPERS) or path.endswith("/bin/kflow"):
            continue
        rows.append((cumulative if key == "cumulative" else own, own, cumulative, calls, where))
    rows.sort(reverse=True)
    print(f"{'cumulative':>11} {'own':>8} {'calls':>9}  function")
    for _, own, cumulative, calls, where in rows[:count]:
        print(f"{cumulative:10.3f}s {own:7.3f}s {calls:9d}  {where}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=3, help="runs per no-op figure (median)")
    parser.add_argument("--no-cold", action="store_true", help="run no task: no-op part only")
    parser.add_argument("--profile", action="store_true", help="profile the largest no-op plan")
    parser.add_argument("--no-instances", action="store_true", help="skip the one-task shape")
    parser.add_argument(
        "--forms", nargs="*", choices=["py", "toml"], default=["py", "toml"], help="kflow forms"
    )
    parser.add_argument(
        "--profile-only", action="store_true", help="set up the largest size and profile only"
    )
    parser.add_argument(
        "--overhead",
        type=int,
        default=1000,
        metavar="N",
        help="per-task overhead over N no-op tasks (0: skip)",
    )
    args = parser.parse_args()
    with_doit = importlib.util.find_spec("doit") is not None
    # As an installed kflow runs: from compiled bytecode (PYTHONDONTWRITEBYTECODE would
    # otherwise make every run compile kflow's modules again).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "kflow")], check=True)
    work = Path(tempfile.mkdtemp(prefix="kflow-bench-dag-"))
    print(
        f"bench_dag.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; doit "
        + ("included" if with_doit else "not importable: left out")
        + ("; --no-cold: nothing is run by the tools" if args.no_cold else "")
    )
    print(
        f"no-op and plan figures: median of {args.runs} runs (one when slower than {SLOW:g} s);"
        " builds: one run; (rx): ratio to make on the same row"
    )
    if args.profile_only:
        args.sizes, args.no_instances, args.profile = [max(args.sizes)], True, True
    try:
        if args.overhead and not (args.no_cold or args.profile_only):
            overhead_case(args.overhead, work, args.runs)
        for n in args.sizes:
            table = distinct_case(n, work, args, with_doit)
            if not args.profile_only:
                show(table)
            if not args.no_instances:
                show(instances_case(n, work, args))
            sys.stdout.flush()
        if args.profile:
            profile(max(args.sizes), work, args.forms)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
