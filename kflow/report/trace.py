"""Chrome Trace Event JSON (chrome://tracing, ui.perfetto.dev): one complete event per attempt.

Records do not say which worker slot ran an attempt, so attempts are packed greedily
into lanes (threads) that never overlap, as ninjatracing does.
"""

from __future__ import annotations

import json
from typing import Any


def trace_events(model: dict[str, Any]) -> dict[str, Any]:
    started = model["run"]["started"] or 0.0
    attempts = [
        (a["started"], a["ended"], inst, a)
        for inst in model["instances"]
        for a in inst["attempts"]
        if a["started"] is not None
    ]
    attempts.sort(key=lambda item: item[0])
    lanes: list[float] = []  # when each lane is free again
    events: list[dict[str, Any]] = []
    for begin, end, inst, attempt in attempts:
        end = begin if end is None else end
        lane = next((n for n, free in enumerate(lanes) if free <= begin), len(lanes))
        if lane == len(lanes):
            lanes.append(end)
        lanes[lane] = end
        events.append(
            {
                "name": inst["id"],
                "cat": attempt["status"] or "unknown",
                "ph": "X",
                "ts": round((begin - started) * 1e6),
                "dur": round((end - begin) * 1e6),
                "pid": 1,
                "tid": lane + 1,
                "args": {
                    "attempt": attempt["number"],
                    "status": attempt["status"],
                    "exit_code": attempt["exit_code"],
                    "reason": attempt["reason"],
                    "critical": inst["critical"],
                },
            }
        )
    meta = {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": model["run"]["run_id"]}}
    return {"traceEvents": [meta, *events], "displayTimeUnit": "ms"}


def render_trace(model: dict[str, Any]) -> str:
    return json.dumps(trace_events(model))
