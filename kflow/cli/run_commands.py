"""`kflow build`, `kflow runs` and `kflow logs`."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from kflow.cli.app import app
from kflow.cli.common import (
    DirectoryOption,
    FileOption,
    ParamOption,
    ProfileOption,
    TargetsArgument,
    open_project,
    parse_params,
    paused_gc,
    project_file,
    reports_errors,
    shared_options,
)
from kflow.cli.plan_commands import (
    AlwaysOption,
    ForceOption,
    adopted_note,
    check_force,
    load_graph,
    print_plan,
    project_storage,
)
from kflow.errors import EXIT_INTERRUPTED, EXIT_TASK_FAILED, KflowError, UsageError
from kflow.graph import Graph
from kflow.model import Instance, InstanceId, parse_instance_id
from kflow.plan import Decision, Plan, make_plan, recheck
from kflow.storage import Storage

if TYPE_CHECKING:  # the run layer is imported only once something runs: a no-op build is cron's
    from kflow.run import Replanner, Runner
    from kflow.run.events import EventSink
    from kflow.run.records import RunRecord


def _replanner(plan: Plan, storage: Storage) -> Replanner:
    """Decide one instance again against what storage says now (its lease held)."""

    def replan(instance: Instance, waited: bool) -> Decision | None:
        decision = recheck(plan, instance.id, storage, waited=waited)
        return decision if decision.runs else None

    return replan


@contextlib.contextmanager
def _interrupts(runner: Runner) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: an orderly stop. Second: kill what runs and exit at once.
    Ctrl-Z stops the attempts with kflow; SIGCONT lets them go on once leases are checked."""
    seen = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            runner.request_stop()
            return
        if seen > 2:  # while the second one records the run: do not wait for storage
            os._exit(EXIT_INTERRUPTED)
        sys.stderr.write("kflow: interrupted again, exiting now\n")
        runner.abort()  # kills what runs, records the run: bounded, about a second at most
        os._exit(EXIT_INTERRUPTED)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Ctrl-Z, as a shell does it: stop the attempts' process groups, then ourselves.
        runner.request_suspend()

    def go_on(signum: int, frame: FrameType | None) -> None:
        runner.continued()

    handlers = {signal.SIGINT: handler, signal.SIGTERM: handler}
    if hasattr(signal, "SIGTSTP"):
        handlers.update({signal.SIGTSTP: stop, signal.SIGCONT: go_on})
    previous = {sig: signal.signal(sig, action) for sig, action in handlers.items()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            # Once interrupted and stopped, kflow only closes up and exits 130: a late second
            # Ctrl-C must not meet the default handler (a KeyboardInterrupt in the middle of
            # closing, or death by SIGINT while the interpreter shuts down).
            signal.signal(sig, signal.SIG_IGN if seen and sig == signal.SIGINT else old)


@app.command()
@reports_errors
def build(
    targets: TargetsArgument = None,
    jobs: Annotated[
        int | None,
        typer.Option("-j", "--jobs", help="Run up to N instances at once.", metavar="N", min=1),
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("-k", "--keep-going", help="Go on with independent branches.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("-n", "--dry-run", help="Print what would run; run nothing.")
    ] = False,
    question: Annotated[
        bool,
        typer.Option("-q", "--question", help="Run nothing; exit 0 if up to date, else 1."),
    ] = False,
    always: AlwaysOption = False,
    force: ForceOption = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Exit 3 instead of waiting when another run holds a task."),
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor", help="local or kubernetes (default: the profile's).", metavar="NAME"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON event per line.")] = False,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write the run as JUnit XML (for CI).", metavar="FILE"),
    ] = None,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Run the stale instances of the targets (default: the project's default targets)."""
    _check_executor(executor)  # bad usage is exit 2 whether or not anything is stale
    # As `kflow plan`: the collector stays off while the graph and plan are made (each pass
    # would rescan their objects); when nothing runs they are gone before it comes back.
    if junit is not None:  # imported only then: a no-op build is cron's, make it quick
        from kflow.cli.junit import check_junit_path, write_junit

        check_junit_path(junit, _main_definition(directory, file))
    with paused_gc():
        ready = _plan_build(
            directory, file, profile, targets, params, always, force, question, dry_run, as_json
        )
        if isinstance(ready, Plan):
            gc.freeze()  # the graph and plan live as long as the run: later passes skip them
    if not isinstance(ready, Plan):
        if junit is not None and not (question or dry_run):  # nothing ran: an empty report
            write_junit(junit, None, None, "", _main_definition(directory, file))
        raise typer.Exit(ready)
    if junit is not None:  # and none of the files it includes
        check_junit_path(junit, ready.graph.project.files)
    try:
        exit_code = _run(
            ready, targets, params, jobs, keep_going, no_wait, executor, as_json, junit
        )
    finally:
        gc.unfreeze()
    raise typer.Exit(exit_code)


def _check_executor(name: str | None) -> None:
    if name is None:
        return
    from kflow.executors import EXECUTORS

    if name not in EXECUTORS:
        raise UsageError(
            f"--executor: unknown executor {name!r}", hint=f"use one of {', '.join(EXECUTORS)}"
        )


def _plan_build(
    directory: Path | None,
    file: Path | None,
    profile: str | None,
    targets: list[str] | None,
    params: list[str] | None,
    always: bool,
    force: list[str] | None,
    question: bool,
    dry_run: bool,
    as_json: bool,
) -> Plan | int:
    """The plan of what to run, or the exit code when there is nothing to run (said so)."""
    graph = load_graph(directory, file, profile, targets, params)
    storage = project_storage(graph.project)
    plan = make_plan(graph, storage, always=always, force=check_force(graph, force))
    if question:
        return EXIT_TASK_FAILED if plan.to_run else 0
    if dry_run:
        print_plan(plan, as_json)
        if plan.adopted and not as_json:
            typer.echo(adopted_note(plan))
        return 0
    _record_adopted(plan)
    if not plan.to_run:
        if as_json:
            event: dict[str, object] = {"event": "up_to_date", "checked": len(plan.decisions)}
            if plan.adopted:
                event["recorded"] = len(plan.adopted)
            typer.echo(json.dumps(event))
        else:
            print_plan(plan, as_json)
            if plan.adopted:
                typer.echo(adopted_note(plan, done=True))
        return 0
    return plan


def _record_adopted(plan: Plan) -> None:
    """Outputs found up to date without a record get one (as `kflow accept` would), so that
    a later change of their command or inputs is seen (SPEC §2). Records of the old
    per-task layout move to the flat one first (planning alone stays read-only)."""
    if plan.store is not None:
        store = plan.store

        def alive(run: str) -> bool:
            from kflow.run.records import run_goes_on  # the run layer: only for old marks

            return run_goes_on(store.storage, plan.graph.project.root, run)

        store.upgrade(alive)
    if plan.adopted and plan.store is not None:
        instances = [plan.graph.instances[iid] for iid in plan.adopted]
        observed = plan.observed.stamps if plan.observed is not None else None
        plan.store.record_many(instances, "adopted", observed)


def _main_definition(directory: Path | None, file: Path | None) -> list[Path]:
    """The project's definition file, before it is loaded (none found: loading says so)."""
    try:
        return [project_file(shared_options(directory, file))]
    except KflowError:
        return []


def _run(
    plan: Plan,
    targets: list[str] | None,
    params: list[str] | None,
    jobs: int | None,
    keep_going: bool,
    no_wait: bool,
    executor: str | None,
    as_json: bool,
    junit: Path | None = None,
) -> int:
    """Run the plan's stale instances; the run's exit code."""
    from kflow.cli.run_view import make_view
    from kflow.executors import make_executor
    from kflow.run import RunMeta, Runner, RunOptions
    from kflow.run.attempts import default_kill_grace
    from kflow.run.ids import new_run_id
    from kflow.state import StateRecorder, StateStore

    graph = plan.graph
    project = graph.project
    storage = project_storage(project)
    run_id = new_run_id()
    jobs = jobs or project.profile.jobs or os.cpu_count() or 1
    # Locally, -j is also the CPU budget that tasks' `resources.cpu` count against.
    chosen = make_executor(executor or project.profile.executor, project, cpus=jobs)
    options = RunOptions(
        jobs=jobs,
        keep_going=keep_going,
        wait_for_others=not no_wait,
        kill_grace=default_kill_grace(),
    )
    view = make_view(as_json)
    if chosen.name == "local":  # no Secrets or ConfigMaps here: say once what tasks go without
        _say_unpassed_env(view, graph, plan.to_run)
    runner = Runner(
        graph,
        plan.to_run,
        {iid: plan.decisions[iid] for iid in plan.to_run},
        executor=chosen,
        storage=storage,
        # The plan's store knows the records it read, so new ones replace them.
        hooks=StateRecorder(plan.store or StateStore(storage, project.root), run_id),
        sink=view,
        options=options,
        meta=RunMeta(
            targets=list(targets or []) or [str(t) for t in graph.targets],
            params=parse_params(params),
            profile=project.profile.name,
        ),
        replan=_replanner(plan, storage),
        run_id=run_id,
    )
    from kflow.run.why import record_changes

    record_changes(runner.record, plan)  # old → new, kept: after the run plan --why cannot say
    try:
        with _interrupts(runner):
            result = runner.run()
    finally:
        view.close()
        chosen.close()
    if junit is not None:
        from kflow.cli.junit import write_junit

        write_junit(junit, result.record, storage, project.name, project.files)
    if result.exit_code == EXIT_INTERRUPTED:  # "interrupted", or "cancelled" by `kflow cancel`
        sys.stderr.write(f"kflow: {result.record.status}\n")
    return result.exit_code


def _say_unpassed_env(sink: EventSink, graph: Graph, to_run: list[InstanceId]) -> None:
    from kflow.executors.local_env import unpassed_env
    from kflow.run.events import EnvNotPassed

    tasks = {graph.instances[iid].task.name: graph.instances[iid].task for iid in to_run}
    missing = unpassed_env(tasks.values())
    if missing:
        sink(EnvNotPassed(executor="local", tasks=missing))


RUNNING_LOOKBACK = 500  # `kflow runs --running` looks at this many recent records

runs_app = typer.Typer(
    help="Recent runs (newest first), or one run in detail with `kflow runs show RUN`.",
    rich_markup_mode=None,
)
app.add_typer(runs_app, name="runs")


def _records_newest_first(storage: Storage, root: str, limit: int | None) -> list[RunRecord]:
    from kflow.report.salvage import read_record  # what a record of another shape says
    from kflow.run.records import list_run_ids, load_records, newest_first

    ids = list_run_ids(storage, root)
    if limit is not None:
        ids = ids[:limit]
    found = load_records(storage, root, ids, read_record)
    return newest_first([found[r] for r in ids if r in found])


def _find_run(storage: Storage, root: str, wanted: str) -> RunRecord:
    from kflow.report.salvage import read_record
    from kflow.run.records import find_run

    return find_run(storage, root, wanted, read_record)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _when(at: float) -> str:
    """A record's time (range-checked where it is read); 0: unknown."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "—"


def _took(record: RunRecord) -> float | None:
    return record.duration if record.started else None  # no start: no duration either


def _say(line: str) -> None:
    """A line made of a record's texts: control characters never reach the terminal raw."""
    from kflow.run.logtail import visible

    typer.echo(visible(line))


@runs_app.callback(invoke_without_command=True)
@reports_errors
def runs(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("-n", "--limit", help="How many runs to show.", metavar="N")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    running: Annotated[
        bool, typer.Option("--running", help="Only the runs going now, wherever they run.")
    ] = False,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """Recent runs, newest first: status, duration, counts, targets."""
    if ctx.invoked_subcommand is not None:
        # `kflow runs -C DIR show RUN` means the same as `kflow runs show RUN -C DIR`
        ctx.obj = {"directory": directory, "file": file, "profile": profile}
        return
    project = open_project(directory, file, profile)
    # --running: among many more recent runs (a long one started long ago)
    looked_at = max(limit, RUNNING_LOOKBACK) if running else limit
    records = _records_newest_first(project_storage(project), project.root, looked_at)
    from kflow.run.records import mark_died

    for record in records:
        mark_died(record)  # no kflow left to finish it: never "running" forever
    if running:
        records = [r for r in records if r.status == "running"][:limit]
    if as_json:
        typer.echo(json.dumps([json.loads(r.to_json()) for r in records], indent=1))
        return
    if not records:
        typer.echo("no run is going now" if running else "no runs yet")
        return
    for record in records:
        counts: dict[str, int] = {}
        for entry in record.instances.values():
            counts[entry.status] = counts.get(entry.status, 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        _say(
            f"{record.run_id}  {record.status:<11} {_when(record.started)}  "
            f"{_duration(_took(record)):>7}  {shown}  [{' '.join(record.targets)}]"
        )


@runs_app.command("show")
@reports_errors
def runs_show(
    ctx: typer.Context,
    run: Annotated[
        str, typer.Argument(help="A run id (or its unique prefix, or 'latest').", metavar="RUN")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """One run in detail: each instance's status, reason, attempts, exit codes and logs."""
    given = ctx.obj if isinstance(ctx.obj, dict) else {}
    project = open_project(
        directory or given.get("directory"),
        file or given.get("file"),
        profile or given.get("profile"),
    )
    record = _find_run(project_storage(project), project.root, run)
    from kflow.run.records import DIED_ELSEWHERE, mark_died

    mark_died(record)
    if as_json:
        typer.echo(record.to_json().decode())
        return
    exit_code = "—" if record.exit_code is None else record.exit_code
    _say(
        f"run {record.run_id}: {record.status} (exit {exit_code}), "
        f"started {_when(record.started)}, took {_duration(_took(record))}"
    )
    _say(
        f"targets: {' '.join(record.targets)}  profile: {record.profile}  "
        f"executor: {record.executor}  -j {record.jobs}  on {record.host}"
    )
    if record.status == DIED_ELSEWHERE:
        _say(
            f"no heartbeat for {record.silence():.0f} s from kflow on {record.host} "
            f"(pid {record.pid}): it died with its host or pod, or lost the storage"
        )
    if record.params:
        _say("params: " + " ".join(f"{k}={v}" for k, v in record.params.items()))
    for name, entry in record.instances.items():
        _say(f"{entry.status:<11} {name}  ({entry.reason})")
        if entry.detail:
            _say(f"            {entry.detail}")
        for attempt in entry.attempts:
            code = "-" if attempt.exit_code is None else str(attempt.exit_code)
            where = f" {attempt.where}" if attempt.where else ""
            said = ("", f"exit code {code}")  # no need to say the exit code twice
            why = "" if attempt.reason in said else f" ({attempt.reason})"
            _say(
                f"            attempt {attempt.number}: {attempt.status}{why}, exit {code}, "
                f"{_duration(attempt.duration)}{where}  log: {attempt.log or '-'}"
            )


def _pick_instance(record: RunRecord, wanted: str) -> str | None:
    if wanted in record.instances:
        return wanted
    try:
        parsed = parse_instance_id(wanted)
    except ValueError:
        return None
    matches = []
    for name in record.instances:
        try:
            iid = parse_instance_id(name)
        except ValueError:
            continue
        if iid.task == parsed.task and set(parsed.params) <= set(iid.params):
            matches.append(name)
    if len(matches) > 1:
        raise UsageError(
            f"{wanted!r} matches {len(matches)} instances of run {record.run_id}",
            hint="name one: " + ", ".join(matches[:5]),
        )
    return matches[0] if matches else None


@app.command()
@reports_errors
def logs(
    what: Annotated[
        list[str],
        typer.Argument(
            help="A run id (default: the latest run with a log of it) and an instance or task.",
            metavar="[RUN] INSTANCE",
        ),
    ],
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", help="Which attempt (default: the last).", metavar="N"),
    ] = None,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """Print an instance's log from a run (stored on the project's storage)."""
    from kflow.run.records import local_log, log_location, mark_died

    if len(what) not in (1, 2):
        raise UsageError("expected [RUN] INSTANCE")
    project = open_project(directory, file, profile)
    storage = project_storage(project)
    wanted = what[-1]
    if len(what) == 2:
        record = _find_run(storage, project.root, what[0])
        name = _pick_instance(record, wanted)
        if name is None:
            raise UsageError(f"run {record.run_id} has no instance {wanted!r}")
    else:
        for record in _records_newest_first(storage, project.root, None):
            name = _pick_instance(record, wanted)
            if name is not None and record.instances[name].attempts:
                break
        else:
            raise UsageError(f"no run has a log of {wanted!r}", hint="`kflow runs` lists runs")
    attempts = record.instances[name].attempts
    if not attempts:
        raise UsageError(f"{name} did not run in run {record.run_id}")
    chosen = (
        attempts[-1]
        if attempt is None
        else next((a for a in attempts if a.number == attempt), None)
    )
    if chosen is None:
        raise UsageError(f"{name} has no attempt {attempt} in run {record.run_id}")
    if not chosen.log:
        # a running attempt's log is stored when it ends; kflow may have died before that,
        # and then a local attempt's log is still where it wrote it, on that host
        mark_died(record)
        here = local_log(record, chosen)
        if here is not None:
            return _print_log(here)
        died = record.status in ("died", "died?")
        why = "kflow died while it ran" if died else "it has not ended yet"
        raise UsageError(
            f"{name} attempt {chosen.number} of run {record.run_id} has no stored log: {why}"
        )
    # where kflow stores it, from the run id, instance and attempt: never a path the record
    # names (a record on storage is untrusted input)
    location = log_location(project.root, record.run_id, name, chosen.number)
    data = storage.read_many([location])[location]
    if data is None:
        raise UsageError(f"the log {location} is gone")
    _print_log(data)


def _print_log(data: bytes) -> None:
    """Raw bytes into a file or a pipe; to a terminal, control characters and bytes that
    are not UTF-8 written out (``\\x1b``): a log can never move the cursor or retitle it."""
    if sys.stdout.isatty():
        from kflow.run.logtail import visible

        data = visible(data.decode("utf-8", "backslashreplace")).encode("utf-8")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
