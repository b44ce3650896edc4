"""The runs list model: recent runs, newest first, and each task's duration across them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kflow.report.model import task_of
from kflow.report.salvage import PartialRecord, read_record
from kflow.run.records import (
    RunRecord,
    list_run_ids,
    load_records,
    mark_died,
    newest_first,
)
from kflow.storage import Storage

RECENT = 20


def task_times(record: RunRecord) -> dict[str, float]:
    """Each task's time in a run: the sum of its attempts' durations."""
    out: dict[str, float] = {}
    for name, entry in record.instances.items():
        spent = [a.duration for a in entry.attempts if a.duration is not None]
        if spent:
            task = task_of(name)[0]
            out[task] = out.get(task, 0.0) + sum(spent)
    return out


def _unknown(record: RunRecord, *fields: str) -> bool:
    return isinstance(record, PartialRecord) and any(f in record.unknown for f in fields)


def runs_model(records: list[RunRecord]) -> dict[str, Any]:
    """``records`` newest first → the list, and per task its times oldest → newest
    (``None`` where a run did not run it), so a slow-down shows as a rising line."""
    times = [task_times(r) for r in reversed(records)]
    tasks = sorted({t for per_run in times for t in per_run})
    return {
        "mode": "runs",
        "runs": [
            {
                "run_id": r.run_id,
                "status": r.status,
                "exit_code": r.exit_code,
                "started": None if _unknown(r, "started") else r.started,
                "duration": None if _unknown(r, "started", "ended") else r.duration,
                "counts": dict(Counter(e.status for e in r.instances.values())),
                "targets": list(r.targets),
            }
            for r in records
        ],
        "trend": {t: [per_run.get(t) for per_run in times] for t in tasks},
    }


def recent_records(storage: Storage, root: str, limit: int = RECENT) -> list[RunRecord]:
    """The newest ``limit`` readable records; those whose kflow died marked as
    ``kflow runs`` marks them (``mark_died``)."""
    ids = list_run_ids(storage, root)[:limit]
    found = load_records(storage, root, ids, read_record)
    records = newest_first([found[r] for r in ids if r in found])
    for record in records:
        mark_died(record)
    return records
