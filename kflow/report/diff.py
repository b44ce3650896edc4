"""Two runs compared (``kflow report RUN --against RUN2``): what ran in one only, new
failures, changed reasons, and each task's time before and after."""

from __future__ import annotations

from typing import Any

from kflow.report.markdown import _seconds, _text


def _task_times(model: dict[str, Any]) -> dict[str, float | None]:
    return {t["name"]: t["time"] for t in model["tasks"]}


def diff_models(this: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``this`` run compared with ``other`` (the older one, usually)."""
    mine = {i["id"]: i for i in this["instances"]}
    theirs = {i["id"]: i for i in other["instances"]}
    ran = [n for n, i in mine.items() if i["attempts"]]
    ran_before = {n for n, i in theirs.items() if i["attempts"]}
    times, before = _task_times(this), _task_times(other)
    return {
        "run_id": other["run"]["run_id"],
        "only_here": [n for n in ran if n not in ran_before],
        "only_there": sorted(ran_before - set(ran)),
        "new_failures": [
            n
            for n, i in mine.items()
            if i["status"] == "failed" and (theirs.get(n) or {}).get("status") != "failed"
        ],
        "changed_reasons": [
            {"id": n, "before": theirs[n]["reason"], "now": i["reason"]}
            for n, i in mine.items()
            if n in theirs and i["reason"] != theirs[n]["reason"]
        ],
        "task_times": [
            {"task": t, "before": before.get(t), "now": times.get(t)}
            for t in sorted(set(times) | set(before))
        ],
    }


def render_diff_markdown(diff: dict[str, Any]) -> str:
    lines = [f"## Compared with run {_text(diff['run_id'])}", ""]
    for key, title in (
        ("new_failures", "New failures"),
        ("only_here", "Ran in this run only"),
        ("only_there", "Ran in the other run only"),
    ):
        names = diff[key]
        shown = ", ".join(_text(n) for n in names[:50]) or "—"
        lines.append(f"- {title} ({len(names)}): {shown}")
    for change in diff["changed_reasons"][:50]:
        lines.append(f"- {_text(change['id'])}: {_text(change['before'])} → {_text(change['now'])}")
    lines += ["", "| task | before | now |", "|---|---|---|"]
    for row in diff["task_times"]:
        lines.append(
            f"| {_text(row['task'])} | {_seconds(row['before'])} | {_seconds(row['now'])} |"
        )
    return "\n".join(lines) + "\n"
