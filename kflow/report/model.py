"""The run page model: what every view of a run shows, built from its record alone.

Pure: a ``RunRecord`` (and the log tails already read) in, plain JSON-able data out.
HTML, Markdown, JSON and trace render this same model. Records written by older
kflow versions lack some fields: they come out as ``None`` (shown as "—").
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from kflow.model import parse_instance_id
from kflow.report.layout import critical_path, task_layers
from kflow.report.salvage import PartialRecord
from kflow.run.records import InstanceRecord, RunRecord, split_reason

MODEL_VERSION = 1
PINNED = 3  # failed and slowest instances pinned on each task node
NOT_RUN = ("skipped", "reused", "held", "interrupted", "queued")
RUN_NAMED = re.compile(r"\b(?:built|held) by run (\S+)")


def task_of(name: str) -> tuple[str, dict[str, str]]:
    """The task and parameters of an instance name (an odd name is its own task)."""
    try:
        iid = parse_instance_id(name)
    except ValueError:
        return name, {}
    return iid.task, dict(iid.params)


def _duration(entry: InstanceRecord) -> float | None:
    durations = [a.duration for a in entry.attempts if a.duration is not None]
    return sum(durations) if durations else None


def _instance(
    name: str, entry: InstanceRecord, tail: str | None, stamps: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    task, params = task_of(name)
    kind, detail = split_reason(entry.reason)
    return {
        "id": name,
        "task": task,
        "params": params,
        "status": entry.status or None,
        "reason": entry.reason or None,
        "why": {"kind": kind or None, "detail": detail or None},
        "detail": entry.detail or None,
        "changes": list(entry.changes) or None,  # plan --why, old → new (see kflow.run.why)
        "other_run": _run_named(entry.detail),  # reused from / held by that run
        "requires": list(entry.requires),
        "ready": entry.ready,
        "duration": _duration(entry),
        "attempts": [
            {
                "number": a.number,
                "started": a.started,
                "ended": a.ended,
                "duration": a.duration,
                "exit_code": a.exit_code,
                "status": a.status,
                "reason": a.reason or None,
                "where": a.where or None,
                "log": a.log or None,
                "free": a.free,
            }
            for a in entry.attempts
        ],
        "outputs": [
            {"location": o, **stamps.get(o, {"size": None, "mtime": None})} for o in entry.outputs
        ],
        "log_tail": tail,
        "critical": False,
    }


def _tasks(instances: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """One node per task (instances collapsed into counts), and the task-to-task edges."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for inst in instances:
        by_task.setdefault(inst["task"], []).append(inst)
    task_of_instance = {inst["id"]: inst["task"] for inst in instances}
    edges: set[tuple[str, str]] = set()
    for inst in instances:
        for req in inst["requires"]:
            source = task_of_instance.get(req) or task_of(req)[0]
            if source != inst["task"] and source in by_task:
                edges.add((source, inst["task"]))
    layers = task_layers(list(by_task), edges)
    tasks = []
    for name, members in by_task.items():
        failed = [i["id"] for i in members if i["status"] == "failed"][:PINNED]
        timed = sorted((i for i in members if i["duration"] is not None), key=_slowest)
        durations = [i["duration"] for i in timed]
        tasks.append(
            {
                "name": name,
                "total": len(members),
                "counts": dict(Counter(i["status"] or "unknown" for i in members)),
                "failed": failed,
                "slowest": [i["id"] for i in timed[:PINNED]],
                "time": sum(durations) if durations else None,
                "layer": layers[name][0],
                "row": layers[name][1],
            }
        )
    return tasks, sorted([a, b] for a, b in edges)


def _slowest(inst: dict[str, Any]) -> float:
    return -float(inst["duration"])


def _first_failure(instances: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The failed instance whose last attempt ended first: usually the cause of the rest."""
    failed = [i for i in instances if i["status"] == "failed" and i["attempts"]]
    if not failed:
        return None
    first = min(failed, key=lambda i: i["attempts"][-1]["ended"] or float("inf"))
    last = first["attempts"][-1]
    return {
        "id": first["id"],
        "attempt": last["number"],
        "reason": last["reason"] or first["detail"],
        "exit_code": last["exit_code"],
        "log_tail": first["log_tail"],
    }


def _not_run(record: RunRecord, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [
        {"id": i["id"], "status": i["status"], "why": i["detail"], "run": _run_named(i["detail"])}
        for i in instances
        if i["status"] in NOT_RUN
    ]
    rows += [
        {"id": name, "status": "up to date", "why": None, "run": None} for name in record.up_to_date
    ]
    return rows


def _run_named(detail: str | None) -> str | None:
    """The other run in "built by run ID on HOST" / "held by run ID …" (for a link)."""
    found = RUN_NAMED.search(detail or "")
    return found.group(1) if found else None


def _forget(instances: list[dict[str, Any]], unknown: frozenset[Any]) -> None:
    """Attempts a record gives no start time: none shown ("—"), nor a duration."""
    for inst in instances:
        for attempt in inst["attempts"]:
            if (inst["id"], attempt["number"]) in unknown:
                attempt["started"] = attempt["duration"] = None


def page_model(
    record: RunRecord,
    tails: dict[str, str] | None = None,
    stamps: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The model of one run's page. ``tails``: instance → the tail of its last attempt's
    log; ``stamps``: output location → its size and mtime (see ``source``)."""
    tails, stamps = tails or {}, stamps or {}
    instances = [
        _instance(name, entry, tails.get(name), stamps) for name, entry in record.instances.items()
    ]
    path = critical_path(instances)
    on_path = set(path)
    for inst in instances:
        inst["critical"] = inst["id"] in on_path
    tasks, edges = _tasks(instances)
    unknown = record.unknown if isinstance(record, PartialRecord) else frozenset()
    _forget(instances, unknown)
    reasons = Counter(i["why"]["kind"] for i in instances if i["why"]["kind"])
    return {
        "kflow_report": MODEL_VERSION,
        "run": {
            "run_id": record.run_id,
            "project": record.project or None,
            "status": record.status or None,
            "exit_code": record.exit_code,
            "targets": list(record.targets),
            "params": dict(record.params),
            "profile": record.profile or None,
            "executor": record.executor or None,
            "jobs": record.jobs,
            "host": record.host or None,
            "started": None if "started" in unknown else record.started,
            "ended": None if "ended" in unknown else record.ended,
            "duration": None if {"started", "ended"} & unknown else record.duration,
            "revision": record.revision,
        },
        "counts": dict(Counter(i["status"] or "unknown" for i in instances)),
        "reasons": sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])),
        "first_failure": _first_failure(instances),
        "tasks": tasks,
        "task_edges": edges,
        "instances": instances,
        "critical_path": path,
        "not_run": _not_run(record, instances),
    }
