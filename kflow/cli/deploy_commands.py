"""`kflow deploy` and `kflow run-bundle` (a build on a schedule in the cluster) and `kflow
cancel` (stop a run from anywhere): control from outside a run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kflow.cli.app import app
from kflow.cli.common import (
    DirectoryOption,
    FileOption,
    ProfileOption,
    TargetsArgument,
    open_project,
    reports_errors,
)
from kflow.cli.plan_commands import load_graph, project_storage
from kflow.cli.run_commands import _find_run as find_run
from kflow.errors import UsageError
from kflow.model import Project

if TYPE_CHECKING:
    from kflow.deploy.manifests import Deployment


@app.command()
@reports_errors
def cancel(
    run: Annotated[
        str, typer.Argument(help="A run id (or its unique prefix, or 'latest').", metavar="RUN")
    ],
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """Stop a running build, wherever it runs: it notices within seconds and stops as on
    Ctrl-C (attempts ended, partial outputs removed, recorded as cancelled, exit 130)."""
    from kflow.run.cancel import request_cancel
    from kflow.run.records import DIED, DIED_ELSEWHERE

    project = open_project(directory, file, profile)
    storage = project_storage(project)
    record = find_run(storage, project.root, run)
    how = record.how_died()
    if how == DIED:
        raise UsageError(f"run {record.run_id} is not running: its kflow process is gone (died)")
    if record.status != "running":
        raise UsageError(
            f"run {record.run_id} is not running: it finished ({record.status})",
            hint="`kflow runs --running` lists the runs going now",
        )
    request_cancel(storage, project.root, record.run_id)
    if how == DIED_ELSEWHERE:  # silent, not provably gone: should it come back, it stops
        typer.echo(
            f"asked run {record.run_id} to stop; it has written no heartbeat for "
            f"{record.silence():.0f} s (died?): if it still goes, it stops when it next "
            "reaches the storage"
        )
        return
    typer.echo(f"asked run {record.run_id} to stop; it stops within a few seconds")


@app.command()
@reports_errors
def deploy(
    targets: TargetsArgument = None,
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule", help="Cron schedule, e.g. '0 2 * * *' or @hourly.", metavar="CRON"
        ),
    ] = "@daily",
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA time zone of the schedule.", metavar="TZ")
    ] = "Etc/UTC",
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="An image with kflow installed (runs the build).", metavar="IMG"
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The CronJob's name (default kflow-PROJECT).", metavar="NAME"),
    ] = None,
    storage_secret: Annotated[
        str,
        typer.Option(
            "--storage-secret",
            help="Secret with the storage credentials, given to the runner by envFrom.",
            metavar="SECRET",
        ),
    ] = "kflow-storage",
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write rbac.yaml and cronjob.yaml here.", metavar="DIR"
        ),
    ] = None,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """Upload the project's definitions and print the CronJob (and RBAC) that builds it on a
    schedule in the cluster, for `kubectl apply -f`."""
    from kflow.deploy import bundle
    from kflow.deploy.image import check_image
    from kflow.deploy.manifests import CRONJOB_NAME_MAX, Deployment, check_name, default_name
    from kflow.deploy.schedule import check_timezone, parse_schedule
    from kflow.deploy.sources import check_size

    parsed = parse_schedule(schedule)
    check_timezone(timezone)
    if not image:
        raise UsageError(
            "no image: --image IMG names an image with kflow installed",
            hint="examples/kind/Dockerfile builds one",
        )
    check_image(image)
    if output is not None and output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: not a folder")
    graph = load_graph(directory, file, profile, targets, None)
    project = graph.project
    _check_deployable(project)
    cron_name = check_name(name or default_name(project.name), "CronJob name", CRONJOB_NAME_MAX)
    if project.profile.namespace:
        check_name(project.profile.namespace, "namespace", 63)
    inputs = [
        (str(instance.id), location)
        for instance in graph.instances.values()
        for location in instance.source_inputs
    ]
    # project.files: the definition file first (given with -f, or found), then its includes
    definitions = bundle.definition_names(project.directory, project.files)
    names = bundle.project_files(project.directory, project.files, inputs)
    check_size(project.directory, names)
    data = bundle.pack(project.directory, names)
    location, sha = bundle.upload(project_storage(project), project.root, data)
    options, credentials = bundle.fetch_options(project.storage_options)
    deployment = Deployment(
        name=cron_name,
        project=project.name,
        namespace=project.profile.namespace,
        schedule=parsed.expression,
        timezone=timezone,
        interval=parsed.shortest_interval(),
        longest_interval=parsed.longest_interval(),
        image=image,
        profile=project.profile.name,
        targets=tuple(targets or ()),
        bundle=location,
        bundle_sha256=sha,
        storage_secret=storage_secret or None,
        definition=definitions[0],
        storage_options=options,
    )
    _emit(deployment, output)
    if credentials:
        sys.stderr.write(
            f"kflow: storage_options {', '.join(credentials)} not written into the CronJob: "
            "the pod fetches the bundle with the storage Secret's credentials\n"
        )
    sys.stderr.write(f"kflow: uploaded bundle {location} ({len(names)} files, {len(data)} bytes)\n")


def _check_deployable(project: Project) -> None:
    """What a pod in the cluster can use: remote storage, the kubernetes executor, and its
    ServiceAccount (not a kubeconfig file from this machine)."""
    where = f"profile {project.profile.name!r}"
    if "://" not in project.root or project.root.startswith("memory://"):
        raise UsageError(
            f"{where}: storage {project.storage!r} is not reachable from the cluster",
            hint="deploy a profile whose storage is remote (s3://, gs://, …): "
            "the pod fetches the bundle and keeps run records there",
        )
    if project.profile.executor != "kubernetes":
        raise UsageError(
            f"{where}: executor {project.profile.executor!r}; deploy needs a kubernetes profile",
            hint='--profile NAME of a profile with executor = "kubernetes"',
        )
    if project.profile.kubeconfig:
        raise UsageError(
            f"{where}: kubeconfig {project.profile.kubeconfig!r} would not exist in the pod",
            hint="in the cluster kflow uses its ServiceAccount: drop kubeconfig from the profile",
        )


def _emit(deployment: Deployment, output: Path | None) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]  # comes with kubernetes

    from kflow.deploy.manifests import cronjob, rbac_objects

    files = {
        "rbac.yaml": yaml.safe_dump_all(rbac_objects(deployment), sort_keys=False),
        "cronjob.yaml": yaml.safe_dump(cronjob(deployment), sort_keys=False),
    }
    if output is None:
        typer.echo("---\n".join(files.values()), nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (output / file_name).write_text(text)
        sys.stderr.write(f"kflow: wrote {output / file_name}\n")


@app.command("run-bundle")
@reports_errors
def run_bundle(
    bundle_url: Annotated[str, typer.Argument(help="The bundle's URL.", metavar="URL")],
    sha256: Annotated[
        str, typer.Option("--sha256", help="The bundle's expected sha256.", metavar="HEX")
    ],
    into: Annotated[
        Path, typer.Option("--into", help="Unpack here, then build.", metavar="DIR")
    ] = Path("project"),
    targets: TargetsArgument = None,
    profile: ProfileOption = None,
    file: Annotated[
        str | None,
        typer.Option(
            "-f",
            "--file",
            help="The definition file, in the bundle (kflow deploy -f).",
            metavar="FILE",
        ),
    ] = None,
    storage_options: Annotated[
        str | None,
        typer.Option(
            "--storage-options",
            help="The profile's storage_options as JSON, to fetch the bundle (kflow deploy "
            "writes it).",
            metavar="JSON",
        ),
    ] = None,
) -> None:
    """Fetch a project bundle (`kflow deploy`), check its hash, and build it: what the
    CronJob's pod runs."""
    from kflow.deploy import bundle
    from kflow.storage import Storage
    from kflow.storage.locations import scheme_of

    options = _json_options(storage_options)
    into = into.absolute()
    argv = [sys.executable, "-m", "kflow", "build", "-C", str(into)]
    if file:
        definition = (into / file).resolve()
        if not definition.is_relative_to(into.resolve()):
            raise UsageError(f"--file {file}: not a file in the bundle")
        argv += ["--file", str(definition)]
    # The build reads the profile's storage_options from the bundle; the fetch, before
    # there is a bundle, from the command (an endpoint_url for MinIO, say).
    bundle.fetch(Storage(into, {scheme_of(bundle_url): options}), bundle_url, sha256, into)
    if profile:
        argv += ["--profile", profile]
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: the build is this process, so the pod's SIGTERM reaches its clean-up directly
    os.execv(sys.executable, [*argv, *(targets or [])])


def _json_options(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--storage-options: not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise UsageError("--storage-options: not a JSON object")
    return options
