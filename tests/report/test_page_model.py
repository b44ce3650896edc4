"""The run page model, pure: collapse by task, critical path, ordering, old records."""

from __future__ import annotations

import itertools
import json

from kflow.report.markdown import render_markdown
from kflow.report.model import page_model
from kflow.report.trace import trace_events
from kflow.run.records import AttemptRecord, InstanceRecord, RunRecord


def _attempt(n: int, start: float, end: float | None, status: str = "succeeded") -> AttemptRecord:
    return AttemptRecord(number=n, started=start, ended=end, status=status, exit_code=0)


def _record() -> RunRecord:
    """a[x=1..3] → b[x=1..3] → c: b[x=2] fails after a retry, c is skipped."""
    instances = {}
    for n in (1, 2, 3):
        instances[f"a[x={n}]"] = InstanceRecord(
            "succeeded", "output missing: a.txt", attempts=[_attempt(1, 100, 100 + n)], ready=100
        )
    instances["b[x=1]"] = InstanceRecord(
        "succeeded",
        "input changed: a",
        attempts=[_attempt(1, 102, 110)],
        requires=["a[x=1]"],
        ready=101,
    )
    instances["b[x=2]"] = InstanceRecord(
        "failed",
        "output missing: b.txt",
        "exit code 3",
        [_attempt(1, 103, 104, "failed"), _attempt(2, 105, 106, "failed")],
        ["a[x=2]"],
        102,
    )
    instances["b[x=3]"] = InstanceRecord(
        "succeeded", "output missing: b.txt", attempts=[_attempt(1, 104, 105)], requires=["a[x=3]"]
    )
    instances["c"] = InstanceRecord(
        "skipped",
        "output missing: c",
        "requires b[x=2], which failed",
        requires=["b[x=1]", "b[x=2]", "b[x=3]"],
    )
    return RunRecord(
        "r1",
        "p",
        ["c"],
        {"who": "<b>"},
        "default",
        "local",
        2,
        started=100,
        ended=111,
        status="failed",
        exit_code=1,
        instances=instances,
        up_to_date=["z"],
    )


def test_instances_collapse_into_one_node_per_task_with_counts_and_pins() -> None:
    model = page_model(_record(), {"b[x=2]": "boom"})
    tasks = {t["name"]: t for t in model["tasks"]}
    assert list(tasks) == ["a", "b", "c"]  # plan order
    assert tasks["b"]["counts"] == {"succeeded": 2, "failed": 1} and tasks["b"]["total"] == 3
    assert tasks["b"]["failed"] == ["b[x=2]"] and tasks["b"]["slowest"][0] == "b[x=1]"
    assert [tasks[t]["layer"] for t in "abc"] == [0, 1, 2]
    assert model["task_edges"] == [["a", "b"], ["b", "c"]]
    assert model["counts"] == {"succeeded": 5, "failed": 1, "skipped": 1}
    assert model["reasons"] == [("output missing", 6), ("input changed", 1)]


def test_first_failure_comes_with_its_log_tail() -> None:
    failure = page_model(_record(), {"b[x=2]": "boom"})["first_failure"]
    assert failure["id"] == "b[x=2]" and failure["attempt"] == 2 and failure["log_tail"] == "boom"


def test_critical_path_follows_the_requirement_that_ended_last() -> None:
    model = page_model(_record())
    assert model["critical_path"] == ["a[x=1]", "b[x=1]"]
    assert [i["id"] for i in model["instances"] if i["critical"]] == ["a[x=1]", "b[x=1]"]


def test_a_free_retry_is_marked_on_its_attempt() -> None:
    record = _record()
    record.instances["b[x=2]"].attempts[0].free = True  # evicted: did not count
    (inst,) = [i for i in page_model(record)["instances"] if i["id"] == "b[x=2]"]
    assert [a["free"] for a in inst["attempts"]] == [True, False]
    assert json.loads(record.to_json())["instances"]["b[x=2]"]["attempts"][0]["free"] is True


def test_what_did_not_run_lists_skipped_and_up_to_date() -> None:
    rows = page_model(_record())["not_run"]
    assert rows == [
        {"id": "c", "status": "skipped", "why": "requires b[x=2], which failed", "run": None},
        {"id": "z", "status": "up to date", "why": None, "run": None},
    ]


def test_an_instance_reused_from_another_run_names_that_run() -> None:
    record = _record()
    record.instances["c"] = InstanceRecord("reused", detail="built by run 20261130T1200Z-ab on h1")
    (row,) = [r for r in page_model(record)["not_run"] if r["id"] == "c"]
    assert row["status"] == "reused" and row["run"] == "20261130T1200Z-ab"


def test_a_record_without_the_new_fields_still_renders() -> None:
    old = json.loads(_record().to_json())
    for key in ("revision", "up_to_date", "host"):
        old.pop(key)
    for entry in old["instances"].values():
        for key in ("requires", "ready", "why", "reason"):
            entry.pop(key)
        for attempt in entry["attempts"]:
            attempt.pop("ended")
    record = RunRecord.from_json(json.dumps(old).encode())
    model = page_model(record)
    assert model["run"]["host"] is None and model["run"]["revision"] == 0
    assert model["critical_path"] == [] and all(i["ready"] is None for i in model["instances"])
    assert "—" in render_markdown(model)
    assert len(trace_events(model)["traceEvents"]) == 1 + 7  # meta + one per attempt


def test_trace_has_one_event_per_attempt_in_lanes_that_never_overlap() -> None:
    events = trace_events(page_model(_record()))["traceEvents"][1:]
    assert len(events) == 7 and all(e["ph"] == "X" for e in events)
    lanes: dict[int, list[tuple[int, int]]] = {}
    for e in events:
        lanes.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in lanes.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_markdown_escapes_markup_from_records() -> None:
    text = render_markdown(page_model(_record()))
    assert "<b>" not in text and "\\<b\\>" in text
