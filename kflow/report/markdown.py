"""The page model as Markdown: for SSH sessions and CI step summaries (GitHub renders it)."""

from __future__ import annotations

import time
from typing import Any

from kflow.run.logtail import visible

SLOWEST = 10
NOT_RUN_SHOWN = 50


def _text(value: Any) -> str:
    """A cell: "—" when missing; pipes and markup characters escaped (names are data),
    control characters written out (``\\x1b``): never raw in a terminal or a CI summary."""
    if value is None or value == "":
        return "—"
    text = visible(str(value).replace("\n", " "))
    for char in "\\|`*_<>[]":
        text = text.replace(char, "\\" + char)
    return text


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}s"


def _when(at: float | None) -> str:
    return "—" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + "Z"


def render_markdown(model: dict[str, Any]) -> str:
    run = model["run"]
    lines = [
        f"# kflow run {_text(run['run_id'])}: {_text(run['status'])} "
        f"(exit {_text(run['exit_code'])})",
        "",
        f"- targets: {_text(' '.join(run['targets']))}",
        f"- params: {_text(' '.join(f'{k}={v}' for k, v in run['params'].items()))}",
        f"- profile: {_text(run['profile'])}, executor: {_text(run['executor'])}, "
        f"host: {_text(run['host'])}",
        f"- started {_when(run['started'])}, took {_seconds(run['duration'])}",
        "- counts: " + ", ".join(f"{n} {_text(s)}" for s, n in sorted(model["counts"].items())),
    ]
    if model["reasons"]:
        lines.append(
            "- reasons: " + ", ".join(f"{_text(k)} \u00d7{n}" for k, n in model["reasons"])
        )
    failure = model["first_failure"]
    if failure:
        lines += [
            "",
            f"## First failure: {_text(failure['id'])} (attempt {failure['attempt']}, "
            f"exit {_text(failure['exit_code'])}): {_text(failure['reason'])}",
            "",
            "```",
            visible(failure["log_tail"] or "(no log)").replace("```", "'''"),
            "```",
        ]
    lines += ["", "## Tasks", "", "| task | instances | status | time |", "|---|---|---|---|"]
    for task in model["tasks"]:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(task["counts"].items()))
        lines.append(
            f"| {_text(task['name'])} | {task['total']} | {_text(counts)} | "
            f"{_seconds(task['time'])} |"
        )
    timed = sorted(
        (i for i in model["instances"] if i["duration"] is not None),
        key=lambda i: -i["duration"],
    )[:SLOWEST]
    if timed:
        lines += ["", "## Slowest", "", "| instance | status | attempts | time |"]
        lines.append("|---|---|---|---|")
        for inst in timed:
            lines.append(
                f"| {_text(inst['id'])} | {_text(inst['status'])} | {len(inst['attempts'])} | "
                f"{_seconds(inst['duration'])} |"
            )
    if model["critical_path"]:
        lines += ["", "Critical path: " + " → ".join(_text(i) for i in model["critical_path"])]
    not_run = model["not_run"]
    if not_run:
        lines += ["", "## Did not run", "", "| instance | status | why |", "|---|---|---|"]
        for row in not_run[:NOT_RUN_SHOWN]:
            lines.append(f"| {_text(row['id'])} | {_text(row['status'])} | {_text(row['why'])} |")
        if len(not_run) > NOT_RUN_SHOWN:
            lines.append(f"\n… and {len(not_run) - NOT_RUN_SHOWN} more")
    return "\n".join(lines) + "\n"
