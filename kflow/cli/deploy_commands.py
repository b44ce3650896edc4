"""`kflow cancel` (and, with the deploy package, `kflow deploy`): control from outside a run."""

from __future__ import annotations

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
from kflow.cli.plan_commands import project_storage
from kflow.cli.run_commands import _find_run as find_run
from kflow.errors import UsageError


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

    project = open_project(directory, file, profile)
    storage = project_storage(project)
    record = find_run(storage, project.root, run)
    if record.died():
        raise UsageError(f"run {record.run_id} is not running: its kflow process is gone (died)")
    if record.status != "running":
        raise UsageError(
            f"run {record.run_id} is not running: it finished ({record.status})",
            hint="`kflow runs --running` lists the runs going now",
        )
    request_cancel(storage, project.root, record.run_id)
    typer.echo(f"asked run {record.run_id} to stop; it stops within a few seconds")
