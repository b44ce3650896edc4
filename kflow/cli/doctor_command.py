"""`kflow doctor`: is everything a kubernetes build needs in place, and if not, what to fix."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from kflow.cli.app import app
from kflow.cli.common import (
    DirectoryOption,
    FileOption,
    ProfileOption,
    open_project,
    reports_errors,
)
from kflow.errors import EXIT_INFRASTRUCTURE, KflowError
from kflow.model import Project


def _storage_check(project: Project) -> tuple[bool, str]:
    """Write, read back and delete a small object under ``{root}/.kflow/``."""
    from kflow.storage import Storage

    storage = Storage.for_root(project.directory, project.root, project.storage_options)
    probe = f"{project.root.rstrip('/')}/.kflow/doctor/probe-{time.time_ns()}"
    try:
        storage.write_atomic(probe, b"kflow doctor\n")
        ok = storage.read_bytes(probe) == b"kflow doctor\n"
        storage.delete_many([probe])
    except KflowError as exc:
        return False, str(exc)
    return ok, project.storage if ok else "read back something else than was written"


def _line(ok: bool, name: str, detail: str, fix: str = "") -> None:
    mark = "ok  " if ok else "FAIL"
    typer.echo(f"{mark} {name}" + (f": {detail}" if detail else ""))
    if fix and not ok:
        typer.echo(f"     fix: {fix}")


@app.command()
@reports_errors
def doctor(
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
    cluster: Annotated[
        bool | None,
        typer.Option(
            "--cluster/--no-cluster",
            help="Check the cluster too (default: when the profile's executor is kubernetes).",
        ),
    ] = None,
) -> None:
    """Check storage and (for kubernetes) context, permissions and admission; say what to fix."""
    project = open_project(directory, file, profile)
    failed = 0
    ok, detail = _storage_check(project)
    _line(ok, "storage", detail, "check the storage URL, credentials and endpoint")
    failed += not ok
    if cluster if cluster is not None else project.profile.executor == "kubernetes":
        failed += _cluster(project)
    if failed:
        typer.echo(f"{failed} problem{'s' if failed > 1 else ''} found")
        raise typer.Exit(EXIT_INFRASTRUCTURE)
    typer.echo("all checks passed")


def _cluster(project: Project) -> int:
    from kflow.executors.kubernetes.config import load_cluster
    from kflow.executors.kubernetes.doctor import cluster_checks

    try:
        config = load_cluster(project.profile, project.directory)
    except KflowError as exc:
        _line(False, "kubeconfig", str(exc), "set KUBECONFIG or the profile's kubeconfig/context")
        return 1
    image = next((t.image for t in project.tasks.values() if t.image), None)
    failed = 0
    try:
        for check in cluster_checks(config, image):
            _line(check.ok, check.name, check.detail, check.fix)
            failed += not check.ok
    finally:
        config.api_client.close()
    return failed
