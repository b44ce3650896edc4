"""The staleness decisions of SPEC §2, made by ``decide`` from hand-built observations.

No storage is read: each test states what storage and the records would say, and checks
the decision and its reason (ninja's PlanTest, doit's test_dependency).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kflow.graph import Graph, build_graph
from kflow.load import load_project
from kflow.model import Instance, InstanceId
from kflow.plan import QUIET, Explainer, MissingSourceInput, Observations, Reason, decide
from kflow.state import (
    INCOMPLETE,
    RecordRef,
    fingerprint_parts,
    fingerprints,
    inputs_digests,
    stamp_json,
)
from kflow.storage import Stamp
from tests.helpers import write_project

PROJECT = """\
[project]
storage = "file://./data"

[tasks.fetch]
command = "fetch > {output}"
inputs = ["src/list.txt"]
outputs = ["{root}/raw.txt"]

[tasks.clean]
command = "clean {input} > {output}"
requires = ["fetch"]
outputs = ["{root}/clean.txt"]
"""

OLD, NEW = 100.0, 200.0


@pytest.fixture
def graph(tmp_path: Path) -> Graph:
    write_project(tmp_path, PROJECT, **{"src__list.txt": "a\n"})
    return build_graph(load_project(tmp_path, None, None), ["clean"])


def _by_task(graph: Graph) -> dict[str, Instance]:
    return {i.task.name: i for i in graph.instances.values()}


def _stamps(
    graph: Graph, changes: Mapping[str, Stamp | None] | None = None, mtime: float = NEW
) -> dict[str, Stamp | None]:
    """Every output and input exists, written at ``mtime``, the source before; ``changes``
    by location."""
    stamps: dict[str, Stamp | None] = {}
    for instance in graph.instances.values():
        for loc in (*instance.outputs.values(), *instance.inputs):
            stamps[loc] = Stamp(2, mtime, None)
    stamps["src/list.txt"] = Stamp(2, OLD, None)
    stamps.update(changes or {})
    return stamps


def _observed(
    graph: Graph,
    stamps: Mapping[str, Stamp | None],
    recorded: Mapping[str, Mapping[str, Stamp | None]] | None = None,
    fingerprint_of: Mapping[str, str] | None = None,
    bodies: Mapping[str, Mapping[str, Any]] | None = None,
) -> Observations:
    """Observations as ``observe`` would make them; ``recorded``: per task, the input stamps
    its record holds (no entry: no record); ``fingerprint_of``: a record's own fingerprint."""
    instances = list(graph.instances.values())
    now = fingerprints(instances)
    refs: dict[InstanceId, RecordRef] = {}
    for instance in instances:
        if recorded is None or instance.task.name not in recorded:
            continue
        digest = inputs_digests([instance], recorded[instance.task.name])[instance.id]
        fp = (fingerprint_of or {}).get(instance.task.name, now[instance.id])
        refs[instance.id] = RecordRef(f"rec/{instance.task.name}.json", fp, digest, 1)
    return Observations(
        stamps=stamps,
        records={},
        bodies=bodies or {},
        hashes={},
        fingerprints=now,
        digests=inputs_digests(instances, stamps),
        refs=refs,
    )


def _decisions(graph: Graph, observed: Observations, **kw: Any) -> dict[str, tuple[Any, str]]:
    plan = decide(graph, observed, **kw)
    return {iid.task: (d.reason, d.detail) for iid, d in plan.decisions.items()}


def test_everything_recorded_as_it_is_now_is_up_to_date(graph: Graph) -> None:
    stamps = _stamps(graph)
    observed = _observed(graph, stamps, recorded={"fetch": stamps, "clean": stamps})
    plan = decide(graph, observed)
    assert plan.to_run == [] and plan.adopted == []
    assert all(not d.runs for d in plan.decisions.values())


def test_forcing_a_task_runs_it_and_what_requires_it(graph: Graph) -> None:
    stamps = _stamps(graph)
    observed = _observed(graph, stamps, recorded={"fetch": stamps, "clean": stamps})
    decided = _decisions(graph, observed, force=["fetch"])
    assert decided["fetch"][0] is Reason.FORCED
    assert decided["clean"] == (Reason.UPSTREAM, "fetch will run")


def test_a_missing_output_runs_its_task_before_any_record_is_looked_at(graph: Graph) -> None:
    stamps = _stamps(graph, {"data/clean.txt": None})
    observed = _observed(graph, stamps, recorded={"fetch": stamps})
    decided = _decisions(graph, observed)
    assert decided["fetch"][0] is None
    assert decided["clean"][0] is Reason.OUTPUT_MISSING
    assert decided["clean"][1].endswith("clean.txt")


def test_an_attempt_that_never_finished_is_not_trusted(graph: Graph) -> None:
    stamps = _stamps(graph)
    recorded = {"fetch": stamps, "clean": stamps}
    observed = _observed(graph, stamps, recorded, fingerprint_of={"clean": INCOMPLETE})
    assert _decisions(graph, observed)["clean"][0] is Reason.INCOMPLETE


def test_without_a_record_outputs_newer_than_inputs_are_adopted(graph: Graph) -> None:
    stamps = _stamps(graph)
    plan = decide(graph, _observed(graph, stamps))
    assert plan.to_run == []
    assert [i.task for i in plan.adopted] == ["fetch", "clean"]


def test_without_a_record_an_input_newer_than_the_outputs_runs_the_task(graph: Graph) -> None:
    stamps = _stamps(graph, {"src/list.txt": Stamp(2, NEW + 1, None)})
    decided = _decisions(graph, _observed(graph, stamps))
    assert decided["fetch"][0] is Reason.INPUT_CHANGED
    assert "src/list.txt is newer" in decided["fetch"][1]
    assert decided["clean"][0] is Reason.UPSTREAM


def test_a_changed_command_is_named_from_the_recorded_parts(graph: Graph) -> None:
    stamps = _stamps(graph)
    fetch = _by_task(graph)["fetch"]
    before = {**fingerprint_parts(fetch), "command": ["sh", "-c", "old fetch"]}
    observed = _observed(
        graph,
        stamps,
        recorded={"fetch": stamps, "clean": stamps},
        fingerprint_of={"fetch": "0ld"},
        bodies={"rec/fetch.json": {"fingerprint": before, "inputs": {}}},
    )
    reason, detail = _decisions(graph, observed)["fetch"]
    assert reason is Reason.FINGERPRINT_CHANGED and "command" in detail


def test_a_changed_source_input_changes_the_fingerprint(graph: Graph) -> None:
    before = _stamps(graph)
    stamps = _stamps(graph, {"src/list.txt": Stamp(3, OLD, None)})
    fetch = _by_task(graph)["fetch"]
    body = {
        "fingerprint": fingerprint_parts(fetch),
        "inputs": {"src/list.txt": stamp_json(before["src/list.txt"])},
    }
    recorded = {"fetch": before, "clean": stamps}
    observed = _observed(graph, stamps, recorded, bodies={"rec/fetch.json": body})
    decided = _decisions(graph, observed)
    assert decided["fetch"] == (Reason.FINGERPRINT_CHANGED, "source input src/list.txt changed")
    assert decided["clean"][0] is Reason.UPSTREAM


def test_a_changed_upstream_output_is_an_input_change(graph: Graph) -> None:
    stamps = _stamps(graph)
    raw = next(loc for loc in stamps if loc.endswith("raw.txt"))
    before = {**stamps, raw: Stamp(5, OLD, None)}
    observed = _observed(
        graph,
        stamps,
        recorded={"fetch": stamps, "clean": before},
        bodies={"rec/clean.json": {"inputs": {raw: stamp_json(before[raw])}}},
    )
    assert _decisions(graph, observed)["clean"] == (Reason.INPUT_CHANGED, f"{raw} changed")


def test_a_missing_source_input_is_an_error_not_a_decision(graph: Graph) -> None:
    stamps = _stamps(graph, {"src/list.txt": None})
    with pytest.raises(MissingSourceInput, match=r"src/list\.txt"):
        decide(graph, _observed(graph, stamps))


def test_why_lists_every_step_and_planning_keeps_none(graph: Graph) -> None:
    stamps = _stamps(graph)
    plan = decide(graph, _observed(graph, stamps, recorded={"fetch": stamps, "clean": stamps}))
    clean = next(iid for iid in plan.decisions if iid.task == "clean")
    steps = [(c.name, c.stale) for c in plan.checks(clean)]
    assert steps == [
        ("forced", False),
        ("outputs exist", False),
        ("fingerprint", False),
        ("inputs unchanged", False),
        ("upstream up to date", False),
    ]
    assert QUIET.checks == []
    why = Explainer(keep=True)
    assert why.record("x", True, lambda: "computed when kept") is True
    assert why.checks[0].detail == "computed when kept"
    assert QUIET.record("x", True, lambda: pytest.fail("never called")) is True
