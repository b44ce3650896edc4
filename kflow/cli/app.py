"""The ``kflow`` command line: typer commands that load, plan and render.

Heavy modules (storage backends, executors, rich) are imported inside the
commands that need them, and each command module is imported only when one of
its commands runs (see ``LazyGroup``), so that ``kflow plan`` and ``kflow
--help`` start fast.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup
from typer.main import get_group

from kflow import __version__
from kflow.cli import words
from kflow.cli.common import (
    DirectoryOption,
    FileOption,
    ParamOption,
    ProfileOption,
    SharedOptions,
    TargetsArgument,
    base_directory,
    open_project,
    parse_params,
    reports_errors,
    set_options_before_command,
    shared_options,
)
from kflow.errors import KflowError, UsageError
from kflow.graph import Graph, build_graph
from kflow.model import Instance, Project
from kflow.templates import task_param_names

if TYPE_CHECKING:
    from typer._click import Command, Context  # typer's own copy of click

# Which module defines each command. A command runs after importing only its own module;
# a name not listed here, and anything listing commands (--help, completion), imports all.
COMMAND_MODULES = {
    "plan": "kflow.cli.plan_commands",
    "accept": "kflow.cli.plan_commands",
    "clean": "kflow.cli.plan_commands",
    "build": "kflow.cli.run_commands",
    "runs": "kflow.cli.run_commands",
    "logs": "kflow.cli.run_commands",
    "doctor": "kflow.cli.doctor_command",
    "report": "kflow.cli.report_commands",
    "ui": "kflow.cli.report_commands",
    "cancel": "kflow.cli.deploy_commands",
    "deploy": "kflow.cli.deploy_commands",
    "run-bundle": "kflow.cli.deploy_commands",
}


class LazyGroup(TyperGroup):
    """The ``kflow`` group: commands of other modules are registered when first asked for."""

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands:
            self._load(COMMAND_MODULES.get(cmd_name))
        if cmd_name not in self.commands:
            self._load(None)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Context) -> list[str]:
        self._load(None)
        return super().list_commands(ctx)

    def _load(self, module: str | None) -> None:
        for name in [module] if module else sorted(set(COMMAND_MODULES.values())):
            importlib.import_module(name)  # its @app.command decorators register on `app`
        # Typer builds click commands from what is registered now; keep the ones we lack.
        for name, command in get_group(app).commands.items():
            self.commands.setdefault(name, command)


def _coerce_plain_values_without_pydantic() -> None:
    """Let typer's parameters skip pydantic where a value needs no conversion.

    typer (0.2x) coerces every parameter of the command it runs through a pydantic
    TypeAdapter, even one left at its default: importing pydantic and building those takes
    about 0.25 s, as long as the rest of a 1,000-instance plan. A default (None) and command
    line strings for ``str`` / ``list[str]`` parameters come out of pydantic unchanged, and
    a ``Path`` parameter's string as ``Path(value)``, so those are passed through here;
    anything else still goes to typer's own coercion. typer
    has no hook for this: parameters build their coercion in ``get_runtime_param``.
    """
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:  # a typer without these internals (and without pydantic coercion)
        return

    class PlainCoercion(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = self.parameter_info.parser is None
            if plain and self.annotation is str and isinstance(value, str):
                return value
            if plain and self.annotation is Path and isinstance(value, (str, Path)):
                return Path(value)  # as pydantic makes it: `-C DIR` and `-f FILE` are common
            if (
                plain
                and self.annotation == list[str]
                and isinstance(value, (list, tuple))
                and all(isinstance(item, str) for item in value)
            ):
                return list(value)
            return build_runtime_param(param.type_descriptor).coerce(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> RuntimeParam:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            if descriptor.file_annotation is None:  # files are opened by typer's coercion
                self._runtime_param = PlainCoercion(
                    descriptor.parameter_info, descriptor.annotation
                )
            else:
                self._runtime_param = build_runtime_param(descriptor)
        return self._runtime_param  # type: ignore[no-any-return]

    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]


_coerce_plain_values_without_pydantic()


def _arguments_named_as_users_type_them() -> None:
    """Show arguments in ``--help`` as click does: ``[TARGETS]...``, or the metavar as written
    (``[RUN] INSTANCE``), never typer's ``{what}...`` and ``what... <list[str]>``.

    typer (0.2x) renders arguments itself and offers no setting for it.
    """
    try:
        from typer.core import TyperArgument
    except ImportError:  # a typer without its own argument rendering: click's is right
        return

    def shown(self: Any) -> str:
        if self.metavar is not None:
            return str(self.metavar)
        name = str(self.name).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    TyperArgument._usage_display_name = shown  # type: ignore[method-assign]
    TyperArgument._rich_display_name = shown  # type: ignore[method-assign]
    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


_arguments_named_as_users_type_them()

app = typer.Typer(
    name="kflow",
    cls=LazyGroup,
    help="The Make of Kubernetes workflows: build only what is stale, as pods or local processes.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kflow {__version__}")
        raise typer.Exit()


# The shared options a command may take, by parameter name, as the user spells them.
SHARED_OPTION_NAMES = {
    "directory": "-C",
    "file": "-f",
    "profile": "--profile",
    "params": "--param",
}


@app.callback()
@reports_errors
def main_options(
    ctx: typer.Context,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """kflow: tasks declare outputs and requirements; `kflow build TARGET` runs what is stale.

    -C, -f, --profile and --param go before the command (as in git -C DIR) or after it;
    given both, the one after the command wins, and --param items join.
    """
    given = {"directory": directory, "file": file, "profile": profile, "params": params}
    _check_the_command_takes(ctx, [name for name, value in given.items() if value])
    forget = set_options_before_command(
        SharedOptions(directory, file, profile, tuple(params or ()))
    )
    ctx.call_on_close(forget)


def _check_the_command_takes(ctx: typer.Context, names: list[str]) -> None:
    """An option before a command that has no such option is refused, as it is after it."""
    name = ctx.invoked_subcommand or ""
    command = ctx.command.get_command(ctx, name)  # type: ignore[attr-defined]
    if not names or command is None:
        return
    takes = {param.name for param in command.params}
    for option in names:
        if option not in takes:
            raise UsageError(
                f"{SHARED_OPTION_NAMES[option]} does not apply to 'kflow {name}'",
                hint=f"`kflow {name} --help` lists its options",
            )


@app.command("list")
@reports_errors
def list_tasks(
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the tasks, their parameters, outputs and descriptions, and the project's parameters."""
    from rich.console import Console
    from rich.table import Table

    project = open_project(directory, file, profile)
    tasks: list[dict[str, Any]] = []
    for task in project.tasks.values():
        tasks.append(
            {
                "name": task.name,
                "description": task.description,
                "params": list(task_param_names(task, project.params)),
                "requires": [r.task for r in task.requires],
                "outputs": [t for _, t in task.outputs],
            }
        )
    params = [
        {"name": p.name, "type": p.type.value, "default": p.default, "description": p.description}
        for p in project.params.values()
    ]
    if as_json:
        typer.echo(
            json.dumps({"project": project.name, "tasks": tasks, "params": params}, indent=2)
        )
        return
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        _print_plain_listing(tasks, params)
        return
    table = Table(title=f"tasks of {project.name}", title_justify="left")
    for column in ("task", "params", "requires", "outputs", "description"):
        table.add_column(column, overflow="fold")
    for entry in tasks:
        table.add_row(
            str(entry["name"]),
            ", ".join(entry["params"]),
            ", ".join(entry["requires"]),
            "\n".join(entry["outputs"]),
            str(entry["description"]),
        )
    console.print(table)
    if params:
        ptable = Table(title="parameters", title_justify="left")
        for column in ("param", "type", "default", "description"):
            ptable.add_column(column, overflow="fold")
        for p in params:
            ptable.add_row(
                str(p["name"]), str(p["type"]), str(p["default"] or "-"), str(p["description"])
            )
        console.print(ptable)


def _print_plain_listing(tasks: list[dict[str, Any]], params: list[dict[str, Any]]) -> None:
    """Not in a terminal: one block per task, nothing cut to a screen width."""
    for entry in tasks:
        bound = f"[{', '.join(entry['params'])}]" if entry["params"] else ""
        typer.echo(f"{entry['name']}{bound}  {entry['description']}".rstrip())
        if entry["requires"]:
            typer.echo(f"  requires: {', '.join(entry['requires'])}")
        for output in entry["outputs"]:
            typer.echo(f"  output:   {output}")
    for p in params:
        default = "(no default)" if p["default"] is None else f"= {p['default']}"
        typer.echo(f"param {p['name']}: {p['type']} {default}  {p['description']}".rstrip())


@app.command()
@reports_errors
def graph(
    targets: TargetsArgument = None,
    output_format: Annotated[
        str, typer.Option("--format", help="text, dot, mermaid or json.", metavar="FORMAT")
    ] = "text",
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Show the instance graph of the targets (default: the project's default targets)."""
    from kflow.cli.graph_formats import FORMATS

    if output_format not in FORMATS:
        raise UsageError(
            f"unknown format {output_format!r}", hint=f"use one of {', '.join(FORMATS)}"
        )
    project = open_project(directory, file, profile)
    built = build_graph(project, targets or [], parse_params(params), base_directory(directory))
    typer.echo(FORMATS[output_format](built))


@app.command()
@reports_errors
def check(
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    params: ParamOption = None,
) -> None:
    """Validate the definitions under every profile, expand every task and build the pod of
    each task for Kubernetes profiles, without running or touching anything."""
    project = open_project(directory, file, profile)
    overrides = parse_params(params)
    missing = [
        name
        for name, spec in project.params.items()
        if spec.default is None and name not in overrides
    ]
    built = _check_expansion(project, overrides, missing)
    count = len(built.instances) if built else 0
    notes = [_check_profile(project, built)]
    # Every profile, not only the selected one: a profile is checked where it is written,
    # before a build that selects it (or a cron job) meets its mistakes.
    for name in project.profile_names:
        if name != project.profile.name:
            other = open_project(directory, file, name)
            notes.append(_check_profile(other, _check_expansion(other, overrides, missing)))
    typer.echo(
        f"ok: {project.name}: {words.count(len(project.tasks), 'task')}, "
        f"{words.count(count, 'instance')}"
    )
    for line in dict.fromkeys(line for lines in notes for line in lines):
        typer.echo(line)
    for name in missing:
        typer.echo(
            f"note: parameter {name!r} has no default; tasks using it need --param {name}=..."
        )


def _check_expansion(
    project: Project, overrides: dict[str, str], missing: list[str]
) -> Graph | None:
    """Every task's instances (those whose parameters all have values), or None."""
    expandable = [
        name
        for name, task in project.tasks.items()
        if not set(task_param_names(task, project.params)) & set(missing)
    ]
    try:
        built = build_graph(project, expandable, overrides) if expandable else None
        # storage schemes and source inputs: exit 2 here, not at build time
        from kflow.cli.plan_commands import check_backends, check_sources_exist

        check_backends(project, built.instances.values() if built else ())
        if built is not None:
            check_sources_exist(built)
        from kflow.graph.expand import Expander

        Expander(project, overrides)  # validates --param values even when nothing expands
    except KflowError as exc:
        raise _in_profile(project, exc) from None
    return built


def _check_profile(project: Project, built: Graph | None) -> list[str]:
    """A profile's pods (Kubernetes) or what it ignores (local): lines for check's output."""
    profile = project.profile
    label = f"profile {profile.name!r} ({profile.executor})"
    if profile.executor != "kubernetes":
        from kflow.executors.local import ignored_locally

        return [f"{label}: note: {line}" for line in ignored_locally(project.tasks.values())]
    from kflow.executors.base import AttemptSpec
    from kflow.executors.kubernetes.manifest import pod_manifest
    from kflow.executors.kubernetes.validation import check_pod
    from kflow.run.attempts import task_environment
    from kflow.state import fingerprint, fingerprint_parts, instance_key

    first: dict[str, Instance] = {}
    for instance in built.instances.values() if built else ():
        first.setdefault(instance.task.name, instance)
    notes: list[str] = []
    for instance in first.values():
        spec = AttemptSpec(
            "check",
            instance,
            1,
            instance.argv,
            task_environment(instance, "check"),
            instance_key(instance.id),
            fingerprint(fingerprint_parts(instance)),
        )
        try:
            pod = pod_manifest(spec, project.name, profile.namespace)
            notes.extend(check_pod(pod, instance.task))
        except KflowError as exc:
            raise _in_profile(project, exc, instance.task.name) from None
    lines = [f"{label}: {len(first)} pod manifest{'' if len(first) == 1 else 's'} valid"]
    return lines + [f"{label}: note: {note}" for note in dict.fromkeys(notes)]


def _in_profile(project: Project, exc: KflowError, task: str | None = None) -> KflowError:
    """The same error, saying which profile (and task) it was found under."""
    if project.profile.name == "default" and "default" not in project.profile_names:
        return exc  # the built-in profile: nothing to name
    named = task is None or exc.message.startswith(f"task {task!r}")
    where = f"profile {project.profile.name!r}" + ("" if named else f", task {task!r}")
    return type(exc)(f"{where}: {exc.message}", exc.location, exc.hint)


@app.command()
@reports_errors
def init(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder for the new project (default: .).")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Project name (default: the folder's).", metavar="NAME"),
    ] = None,
) -> None:
    """Create a small project (kflow.toml and a script) that `kflow build` runs locally."""
    from kflow.cli.scaffold import write_project

    # `kflow -C d init [DIR]` works in d, as `make -C d`: the project goes to d (or d/DIR).
    within = shared_options().directory
    if within is not None and not within.is_dir():
        raise UsageError(f"-C {within}: no such directory")
    directory = (within or Path(".")) / (directory or Path("."))
    for path in write_project(directory, name):
        typer.echo(f"wrote {path}")
    typer.echo("next: kflow build" + (f" -C {directory}" if str(directory) != "." else ""))


def main() -> None:
    app()
