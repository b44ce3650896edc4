"""`kflow plan`, `kflow accept` and `kflow clean`: staleness, shown and acted on without running."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kflow.cli.app import app
from kflow.cli.common import (
    DirectoryOption,
    FileOption,
    ParamOption,
    ProfileOption,
    TargetsArgument,
    base_directory,
    open_project,
    parse_params,
    paused_gc,
    project_file,
    reports_errors,
    shared_options,
)
from kflow.cli.words import count
from kflow.errors import UsageError
from kflow.graph import Graph, build_graph
from kflow.model import Instance, InstanceId, Project, parse_instance_id
from kflow.plan import Plan, graph_hashes, graph_locations, make_plan
from kflow.storage import Stamp, Storage

if TYPE_CHECKING:
    from rich.console import Console

AlwaysOption = Annotated[
    bool,
    typer.Option("-B", "--always", help="Treat every instance in the targets' graph as stale."),
]
ForceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--force", help="Rerun TASK (and what depends on it).", metavar="TASK", show_default=False
    ),
]


def project_storage(project: Project) -> Storage:
    """The Storage for a project's root and storage options."""
    return Storage.for_root(project.directory, project.root, project.storage_options)


def load_graph(
    directory: Path | None,
    file: Path | None,
    profile: str | None,
    targets: list[str] | None,
    params: list[str] | None,
) -> Graph:
    with paused_gc():
        graph = _cached_graph(directory, file, profile, targets, params)
        if graph is None:
            project = open_project(directory, file, profile)
            graph = build_graph(
                project, targets or [], parse_params(params), base_directory(directory)
            )
        # Only a graph with URLs among its locations (kept with it) has schemes to check.
        remote = "://" in "\n".join(graph_locations(graph))
        check_backends(graph.project, graph.instances.values() if remote else ())
        return graph


def _cached_graph(
    directory: Path | None,
    file: Path | None,
    profile: str | None,
    targets: list[str] | None,
    params: list[str] | None,
) -> Graph | None:
    """The graph from the load cache (kflow.load.cache), or made and kept there; None for a
    command line the cache does not take (a malformed --param: reported as before)."""
    from kflow.load import read_definitions
    from kflow.load.cache import LoadCache

    try:
        overrides = parse_params(params)
    except UsageError:
        return None
    options = shared_options(directory, file, profile)
    path = project_file(options)
    base = base_directory(directory)
    inputs = (options.profile, tuple(overrides.items()), tuple(targets or ()), str(base))
    cache = LoadCache(path, inputs)
    graph = cache.by_stamps()
    if isinstance(graph, Graph):
        return graph
    definitions = read_definitions(path)
    graph = cache.by_declarations(definitions)
    if isinstance(graph, Graph):
        return graph
    from kflow.load.build import build_project  # only now: a cache hit needs no validation
    from kflow.params import watching_clock

    with watching_clock() as clock:
        project = build_project(definitions.doc, definitions.directory, options.profile)
        graph = build_graph(project, targets or [], overrides, base)
    # kept with the graph: a cache hit does not hash nor gather 10,000s of instances again
    graph_hashes(graph)
    graph_locations(graph)
    cache.store(definitions, graph, clock, project.timezone)
    return graph


def check_backends(project: Project, instances: Iterable[Instance] = ()) -> None:
    """Exit 2 (a definition error, not an outage) when no installed backend can serve the
    storage or an output's or input's URL scheme."""
    from kflow.errors import DefinitionError
    from kflow.storage.locations import backend_problem, scheme_of

    by_scheme = {scheme_of(project.storage): project.storage}
    for instance in instances:
        for location in (*instance.outputs.values(), *instance.inputs):
            if "://" in location:
                by_scheme.setdefault(scheme_of(location), location)
    for location in by_scheme.values():
        problem = backend_problem(location)
        if problem is not None:
            where = project.storage_where if location == project.storage else None
            raise DefinitionError(f"cannot use {location}: {problem[0]}", where, problem[1])


def check_sources_exist(graph: Graph) -> None:
    """Exit 2 when a local source input of any instance is missing (one batched stat).

    Remote source inputs are left to plan and build, so that check needs no credentials.
    """
    from kflow.plan import MissingSourceInput
    from kflow.storage.locations import LOCAL, scheme_of

    users: dict[str, Instance] = {}
    for instance in graph.instances.values():
        for location in instance.source_inputs:
            if scheme_of(location) == LOCAL:
                users.setdefault(location, instance)
    if not users:
        return
    stamps = Storage(graph.project.directory).stat_many(users)
    for location, stamp in stamps.items():
        if stamp is None:
            user = users[location]
            raise MissingSourceInput(
                f"{user.id}: source input {location!r} does not exist and no task makes it",
                user.task.location,
            )


def check_force(graph: Graph, force: list[str] | None) -> list[str]:
    from kflow.errors import did_you_mean

    for name in force or []:
        if name not in graph.project.tasks:
            tasks = graph.project.tasks
            raise UsageError(
                f"--force {name}: unknown task",
                hint=did_you_mean(name, tasks) or f"tasks: {', '.join(tasks)}",
            )
    return list(force or [])


def plan_as_json(plan: Plan) -> str:
    rows = [
        {
            "instance": str(d.instance),
            "runs": d.runs,
            "reason": d.reason.value if d.reason else None,
            "detail": d.detail,
        }
        for d in plan.decisions.values()
    ]
    return json.dumps({"to_run": [str(i) for i in plan.to_run], "instances": rows}, indent=2)


def print_plan(plan: Plan, as_json: bool = False) -> None:
    """The plan as a table in a terminal, plain lines otherwise, or JSON."""
    if as_json:
        typer.echo(plan_as_json(plan))
        return
    total = len(plan.decisions)
    if not plan.to_run:
        typer.echo(f"up to date: nothing to do ({count(total, 'instance')} checked)")
        return
    console = _terminal_console()
    if console is not None:
        from rich.table import Table

        table = Table(
            title=f"{len(plan.to_run)} of {count(total, 'instance')} would run",
            title_justify="left",
        )
        table.add_column("instance")
        table.add_column("reason")
        table.add_column("detail", overflow="fold")
        for iid in plan.to_run:
            decision = plan.decisions[iid]
            table.add_row(
                str(iid), decision.reason.value if decision.reason else "", decision.detail
            )
        console.print(table)
        return
    for iid in plan.to_run:
        typer.echo(f"{iid}  {plan.decisions[iid].line()}")
    typer.echo(f"{len(plan.to_run)} of {count(total, 'instance')} would run")


def _terminal_console() -> Console | None:
    """A rich console when stdout is a terminal (as rich decides), else None.

    rich takes longer to import than a plan of a thousand instances: it is imported only when
    stdout may be a terminal (a tty, or rich's environment overrides say so).
    """
    if not (sys.stdout.isatty() or {"TTY_COMPATIBLE", "FORCE_COLOR"} & set(os.environ)):
        return None
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    return console if console.is_terminal else None


def _why(plan: Plan, subject: str) -> None:
    graph = plan.graph
    if subject in graph.project.tasks:
        chosen = [iid for iid in plan.decisions if iid.task == subject]
    else:
        wanted = parse_instance_id(subject)  # checked by _why_target already
        chosen = [iid for iid in plan.decisions if _matches(iid, wanted)]
    if not chosen:
        raise UsageError(f"--why {subject}: no such task or instance in this plan")
    for iid in chosen:
        decision = plan.decisions[iid]
        verdict = f"RUNS ({decision.line()})" if decision.runs else "up to date"
        typer.echo(f"{iid}: {verdict}")
        for check in plan.checks(iid):
            mark = "stale" if check.stale else "ok"
            typer.echo(f"  {check.name:<26} {mark:<5} {check.detail}")
            for line in check.lines:  # the change in full: never cut to a width
                typer.echo(f"      {line}")


def _why_target(project: Project, subject: str) -> str:
    """The ``--why`` subject, checked: a task name or an instance id of a known task."""
    from kflow.errors import did_you_mean

    tasks = project.tasks
    if subject in tasks:
        return subject
    if "[" not in subject:
        raise UsageError(
            f"--why {subject}: unknown task",
            hint=did_you_mean(subject, tasks) or f"tasks: {', '.join(tasks)}",
        )
    try:
        wanted = parse_instance_id(subject)
    except ValueError as exc:
        raise UsageError(f"--why {subject}: {exc}") from None
    if wanted.task not in tasks:
        raise UsageError(
            f"--why {subject}: unknown task {wanted.task!r}",
            hint=did_you_mean(wanted.task, tasks) or f"tasks: {', '.join(tasks)}",
        )
    return subject


def _matches(iid: InstanceId, wanted: InstanceId) -> bool:
    return iid.task == wanted.task and set(wanted.params) <= set(iid.params)


@app.command()
@reports_errors
def plan(
    targets: TargetsArgument = None,
    why: Annotated[
        str | None,
        typer.Option(
            "--why",
            help="Explain the decision for a task or instance in full.",
            metavar="TASK_OR_ID",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    always: AlwaysOption = False,
    force: ForceOption = None,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Show what `kflow build` would run, and why."""
    # The collector stays off until the graph is gone: re-enabled while it lives, its first
    # pass would scan every one of its objects (a tenth of a 10,000-instance plan).
    with paused_gc():
        _plan(targets, why, as_json, always, force, directory, file, profile, params)


def _plan(
    targets: list[str] | None,
    why: str | None,
    as_json: bool,
    always: bool,
    force: list[str] | None,
    directory: Path | None,
    file: Path | None,
    profile: str | None,
    params: list[str] | None,
) -> None:
    if why:
        graph = _graph_with_why(directory, file, profile, targets, params, why)
    else:
        graph = load_graph(directory, file, profile, targets, params)
    result = make_plan(
        graph, project_storage(graph.project), always=always, force=check_force(graph, force)
    )
    if why:
        _why(result, why)
    else:
        print_plan(result, as_json)
        if result.adopted and not as_json:
            typer.echo(adopted_note(result))


def adopted_note(plan: Plan, done: bool = False) -> str:
    """What `kflow build` does (or did) with outputs that exist without a record."""
    n = len(plan.adopted)
    what = f"{n} up-to-date instance{'s' if n != 1 else ''} with outputs but no record"
    if done:
        return f"recorded {what} (as `kflow accept` would)"
    return f"{what}: `kflow build` will record {'them' if n != 1 else 'it'}"


def _graph_with_why(
    directory: Path | None,
    file: Path | None,
    profile: str | None,
    targets: list[str] | None,
    params: list[str] | None,
    why: str,
) -> Graph:
    """The targets' graph with the ``--why`` subject added to the targets: a task outside the
    default targets is planned as ``kflow plan TASK --why TASK`` would plan it."""
    from kflow.graph.targets import default_targets

    with paused_gc():
        project = open_project(directory, file, profile)
        wanted = list(targets or []) or list(project.default_targets) or default_targets(project)
        subject = _why_target(project, why)
        overrides = parse_params(params)
        return build_graph(project, [*wanted, subject], overrides, base_directory(directory))


@app.command()
@reports_errors
def accept(
    targets: Annotated[list[str], typer.Argument(help="Targets whose current outputs to accept.")],
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Record the targets' current outputs (and their requirements') as up to date; run nothing."""
    from kflow.run.holding import holding
    from kflow.state import StateStore

    graph = load_graph(directory, file, profile, targets, params)
    storage = project_storage(graph.project)
    instances = list(graph.instances.values())
    # Bad input writes nothing: the outputs are checked before any lease is taken.
    _accept_stamps(storage, instances)
    # Not while a run builds one: its outputs may be half written (exit 3 instead). They
    # are looked at again once the leases are ours: a run may have ended meanwhile.
    with holding(storage, graph.project.root, [str(i.id) for i in instances], "accept"):
        stamps = _accept_stamps(storage, instances)
        store = StateStore(storage, graph.project.root)
        store.index({i.id.task for i in instances})  # so that older records get replaced
        store.record_many(instances, "accepted", stamps)
    typer.echo(f"accepted {count(len(instances), 'instance')}")


def _accept_stamps(storage: Storage, instances: list[Instance]) -> dict[str, Stamp | None]:
    """The stamps of the instances' inputs and outputs (one stat serves both the check and
    the records); exit 2 when an output is missing."""
    stamps = storage.stat_many(
        sorted({loc for i in instances for loc in (*i.inputs, *i.outputs.values())})
    )
    missing = [
        f"{i.id} ({loc})" for i in instances for loc in i.outputs.values() if stamps[loc] is None
    ]
    if missing:
        raise UsageError(
            f"cannot accept: {len(missing)} output(s) missing, e.g. {missing[0]}",
            hint="build them, or name narrower targets; nothing was recorded",
        )
    return stamps


@app.command()
@reports_errors
def clean(
    targets: TargetsArgument = None,
    dry_run: Annotated[
        bool, typer.Option("-n", "--dry-run", help="Only show what would be deleted.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    pods: Annotated[
        bool,
        typer.Option("--pods", help="Instead: delete the project's leftover pods on the cluster."),
    ] = False,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Delete the outputs of the targets' instances (default: every instance) and their records."""
    from kflow.run.holding import holding
    from kflow.run.outputs import Protected
    from kflow.run.records import kflow_dir
    from kflow.state import StateStore

    if pods:
        from kflow.executors.kubernetes.cleanup import delete_leftover_pods

        deleted = delete_leftover_pods(open_project(directory, file, profile))
        typer.echo(f"deleted {count(deleted, 'leftover pod')}")
        return
    interactive = sys.stdin.isatty()
    if not (dry_run or yes or interactive):
        # cron or a script: nobody can answer the question, and a bare clean means everything
        raise UsageError(
            "kflow clean deletes outputs and there is no terminal to confirm it",
            hint="use --yes to delete without asking, or -n to see what would be deleted",
        )
    everything: list[str] = []
    if not targets:
        # As `make clean`: everything, not only `[project] default` (that names what to
        # build): every end product, with all it requires.
        from kflow.graph import default_targets

        everything = default_targets(open_project(directory, file, profile))
    graph = load_graph(directory, file, profile, targets or everything, params)
    chosen = [i for i in graph.instances.values() if not targets or i.id in graph.targets]
    storage = project_storage(graph.project)
    locations = [loc for i in chosen for loc in i.outputs.values()]
    present = [loc for loc, stamp in storage.stat_many(locations).items() if stamp is not None]
    # A second guard, whatever the definitions say: nothing outside the project's reach.
    guard = Protected(graph).guard(str(graph.project.directory), graph.project.root)
    present, refused = guard.split(present)
    if refused:
        location, problem = next(iter(refused.items()))
        raise UsageError(
            f"kflow clean refuses to delete {location}: it {problem}",
            hint=f"{len(refused)} location(s) refused; nothing was deleted",
        )
    for loc in present:
        typer.echo(f"{'would delete' if dry_run else 'delete'} {loc}")
    if dry_run:
        typer.echo(
            f"{count(len(present), 'output')} of {count(len(chosen), 'instance')} would be deleted"
        )
        return
    if present and interactive and not yes:
        typer.confirm(f"delete {count(len(present), 'output')}?", abort=True)
    # Not under a running build (exit 3): it would write them again, or record what is gone.
    with holding(storage, graph.project.root, [str(i.id) for i in chosen], "clean"):
        # Folder outputs go with everything in them; never the project folder or kflow's records.
        storage.delete_trees(present, keep=(".", kflow_dir(graph.project.root)))
        StateStore(storage, graph.project.root).forget(chosen)
    typer.echo(f"deleted {count(len(present), 'output')} of {count(len(chosen), 'instance')}")
