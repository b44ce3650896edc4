"""`kflow report` (one run as HTML, Markdown, JSON or a trace) and `kflow ui` (live pages)."""

from __future__ import annotations

import json
import signal
import sys
from enum import Enum
from pathlib import Path
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


class ReportFormat(str, Enum):
    html = "html"
    md = "md"
    json = "json"
    trace = "trace"


@app.command()
@reports_errors
def report(
    run: Annotated[
        str | None, typer.Argument(help="A run id (or its unique prefix); default: the latest.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write here ('-': stdout). Default: "
            "kflow-report-RUN.html for html, stdout for the others.",
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="html, md (CI summaries), json, trace.")
    ] = ReportFormat.html,
    against: Annotated[
        str | None,
        typer.Option("--against", help="Compare with this run (html, md and json)."),
    ] = None,
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """One run as a self-contained HTML page (nothing fetched when opened), Markdown, the
    page model as JSON, or Chrome Trace Event JSON (one event per attempt; Perfetto opens it)."""
    from kflow.cli.outfile import check_output_path, write_output
    from kflow.errors import UsageError
    from kflow.report.html import render_html
    from kflow.report.markdown import render_markdown
    from kflow.report.model import page_model
    from kflow.report.source import find_run, output_stamps, read_tails
    from kflow.report.trace import render_trace

    if against is not None and fmt is ReportFormat.trace:
        raise UsageError("--against compares runs in html, md and json, not in a trace")
    project = open_project(directory, file, profile)
    if output is not None and str(output) != "-":  # before reading runs: a bad -o is exit 2
        check_output_path("-o", output, project.files)
    storage = project_storage(project)
    record = find_run(storage, project.root, run)
    other = find_run(storage, project.root, against) if against else None
    tails = read_tails(storage, project.root, record)
    model = page_model(record, tails, output_stamps(storage, record))
    if other is not None:
        from kflow.report.diff import diff_models, render_diff_markdown

        model["against"] = diff_models(model, page_model(other))
    if fmt is ReportFormat.html:
        text = render_html(model)
    elif fmt is ReportFormat.json:
        text = json.dumps(model, indent=1) + "\n"
    elif fmt is ReportFormat.trace:
        text = render_trace(model)
    else:
        text = render_markdown(model)
        if other is not None:
            text += "\n" + render_diff_markdown(model["against"])
    if output is None and fmt is ReportFormat.html:
        # the run id is its record's file name (records.is_run_id): a plain name, here
        output = Path(f"kflow-report-{record.run_id}.html")
    if output is None or str(output) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_output("-o", output, text.encode("utf-8"), project.files)
    typer.echo(f"wrote {output}", err=True)


@app.command()
@reports_errors
def ui(
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8765,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind (default: this machine only). No authentication: any other "
            "address makes every run's records and logs readable from the network.",
        ),
    ] = "127.0.0.1",
    directory: DirectoryOption = None,
    file: FileOption = None,
    profile: ProfileOption = None,
) -> None:
    """Serve the runs list and live run pages from the project's storage until Ctrl-C."""
    from kflow.errors import UsageError
    from kflow.report.server import is_loopback, make_server

    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is 0 (any free one) to 65535")
    project = open_project(directory, file, profile)
    storage = project_storage(project)
    try:
        server = make_server(storage, project.root, host, port)
    except OSError as exc:
        raise UsageError(f"--host {host} --port {port}: {exc.strerror or exc}") from None
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    # Ctrl-C stops it, as the line below says, even when it was started as a script's
    # background job, where the shell leaves SIGINT ignored (`kflow build` does the same):
    # installed before that line, which a caller may answer with SIGINT at once.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        typer.echo(f"kflow ui: http://{bound_host}:{bound_port}/  (Ctrl-C stops it)")
        sys.stdout.flush()
        if not is_loopback(bound_host):
            typer.echo(
                f"kflow ui: warning: --host {host} is reachable from the network and the pages "
                "have no authentication: anyone who can connect can read every run's records "
                "and logs",
                err=True,
            )
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        typer.echo("kflow ui: stopped")
    finally:
        server.server_close()
