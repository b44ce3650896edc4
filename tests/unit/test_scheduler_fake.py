"""The scheduler over an in-process fake executor: ordering, -j, keep-going, retries and
leases decided by the real scheduler, without starting a process."""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

from kflow.graph import Graph, build_graph
from kflow.load import load_project
from kflow.plan import Decision, Reason
from kflow.run import NoState, Runner, RunOptions, RunResult
from kflow.run import events as ev
from kflow.run.leases import Leases
from kflow.storage import Storage
from tests.unit.fake_executor import FakeExecutor


def _graph(tmp_path: Path, tasks: str) -> Graph:
    text = '[project]\nname = "t"\nstorage = "file://./data"\n' + textwrap.dedent(tasks)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "kflow.toml").write_text(text)
    return build_graph(load_project(tmp_path, None, None), [])


def _runner(graph: Graph, fake: FakeExecutor, events: list[ev.Event], **options: object) -> Runner:
    order = list(graph.instances)
    return Runner(
        graph,
        order,
        {iid: Decision(iid, Reason.OUTPUT_MISSING, "its output") for iid in order},
        executor=fake,
        storage=Storage(graph.project.directory),
        hooks=NoState(),
        sink=events.append,
        options=RunOptions(**options),  # type: ignore[arg-type]
    )


def _run(tmp_path: Path, tasks: str, **options: object) -> tuple[RunResult, FakeExecutor]:
    graph = _graph(tmp_path, tasks)
    fake = FakeExecutor(tmp_path)
    return _runner(graph, fake, [], **options).run(), fake


DIAMOND = """
[tasks.a]
command = "ok"
outputs = ["{root}/a.txt"]
[tasks.b]
requires = ["a"]
command = "ok"
outputs = ["{root}/b.txt"]
[tasks.c]
requires = ["a"]
command = "ok"
outputs = ["{root}/c.txt"]
[tasks.d]
requires = ["b", "c"]
command = "ok"
outputs = ["{root}/d.txt"]
"""


def _in_thread(runner: Runner) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run()))
    thread.start()
    return thread, results


def test_an_instance_starts_only_after_its_requirements_finished(tmp_path: Path) -> None:
    fake = FakeExecutor(tmp_path)
    fake.hold("b")
    thread, results = _in_thread(_runner(_graph(tmp_path, DIAMOND), fake, [], jobs=4))
    try:
        fake.wait_started("c")  # while b still runs
        assert fake.finished[0] == "a" and "b" not in fake.finished
        assert "d" not in fake.started  # it waits for b
    finally:
        fake.let_go("b")
        thread.join(60)
    assert results[0].exit_code == 0
    assert fake.started[0] == "a" and fake.started[-1] == "d"
    assert sorted(fake.started) == ["a", "b", "c", "d"]
    # b and c ran side by side, once a was done; d only after both
    assert fake.max_running == 2
    assert fake.finished.index("a") == 0 and fake.finished[-1] == "d"
    assert (tmp_path / "data/d.txt").read_text() == "d attempt 1\n"


def test_no_more_than_jobs_attempts_run_at_once_and_slots_are_filled(tmp_path: Path) -> None:
    tasks = """
    [tasks.w]
    matrix = { n = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }
    command = "ok"
    outputs = ["{root}/w{n}.txt"]
    """
    fake = FakeExecutor(tmp_path)
    names = [f"w[n={n}]" for n in range(1, 11)]
    fake.hold_all(names)
    thread, results = _in_thread(_runner(_graph(tmp_path, tasks), fake, [], jobs=3))
    try:
        for done in range(8):  # each attempt that ends lets exactly one more start
            fake.wait_count(3 + done)
            assert len(fake.running()) == 3
            fake.let_go(fake.running()[0])
    finally:
        for name in names:
            fake.let_go(name)
        thread.join(60)
    assert results[0].exit_code == 0
    assert fake.max_running == 3
    assert sorted(fake.started) == sorted(names)


BRANCHES = """
[tasks.bad]
command = "fail 3"
[tasks.other]
command = "ok"
outputs = ["{root}/other.txt"]
[tasks.after_bad]
requires = ["bad"]
command = "ok"
outputs = ["{root}/after.txt"]
"""


def test_a_failure_stops_new_starts_unless_keep_going(tmp_path: Path) -> None:
    result, fake = _run(tmp_path / "stop", BRANCHES, jobs=1)
    assert result.exit_code == 1
    assert fake.started == ["bad"]
    assert result.record.instances["other"].status == "skipped"

    result, fake = _run(tmp_path / "going", BRANCHES, jobs=1, keep_going=True)
    assert result.exit_code == 1
    assert fake.started == ["bad", "other"]
    assert result.record.instances["other"].status == "succeeded"
    assert result.record.instances["after_bad"].status == "skipped"
    assert result.record.instances["bad"].attempts[0].exit_code == 3


def test_retries_start_the_instance_again_until_it_succeeds(tmp_path: Path) -> None:
    tasks = """
    [tasks.flaky]
    retries = 3
    retry_delay = 0
    command = "flaky 2"
    outputs = ["{root}/f.txt"]
    """
    result, fake = _run(tmp_path, tasks)
    assert result.exit_code == 0
    assert fake.started == ["flaky"] * 3
    assert [a.exit_code for a in result.record.instances["flaky"].attempts] == [1, 1, 0]
    assert (tmp_path / "data/f.txt").read_text() == "flaky attempt 3\n"


def test_exit_zero_without_outputs_fails_and_is_not_retried_into_success(tmp_path: Path) -> None:
    tasks = '[tasks.a]\ncommand = "silent"\noutputs = ["{root}/a.txt"]\n'
    result, _ = _run(tmp_path, tasks)
    assert result.exit_code == 1
    assert result.record.instances["a"].detail == "did not write data/a.txt"


def test_a_running_attempt_holds_its_lease_and_gives_it_back(tmp_path: Path) -> None:
    graph = _graph(tmp_path, DIAMOND)
    fake = FakeExecutor(tmp_path)
    fake.hold("a")
    runner = _runner(graph, fake, [], jobs=2)
    thread, results = _in_thread(runner)
    try:
        fake.wait_started("a")
        other = Leases(Storage(tmp_path), "data", "run-other", 30)
        held = other.try_acquire("a")
        assert held is not None and held.holder == runner.run_id
        assert fake.started == ["a"]  # its dependents wait for it
    finally:
        fake.let_go("a")
        thread.join(60)
    assert results and results[0].exit_code == 0
    assert other.try_acquire("a") is None  # given back at the end


def test_no_wait_gives_up_on_an_instance_another_run_holds(tmp_path: Path) -> None:
    graph = _graph(tmp_path, DIAMOND)
    other = Leases(Storage(tmp_path), "data", "run-other", 30)
    assert other.try_acquire("b") is None
    fake = FakeExecutor(tmp_path)
    events: list[ev.Event] = []
    result = _runner(graph, fake, events, jobs=2, wait_for_others=False).run()
    assert result.exit_code == 3
    assert "b" not in fake.started and "d" not in fake.started
    assert any(isinstance(e, ev.HeldByOtherRun) and e.instance == "b" for e in events)


def test_statuses_are_enums_in_memory_and_the_same_text_on_storage(tmp_path: Path) -> None:
    from kflow.run.records import RunRecord
    from kflow.run.statuses import AttemptStatus, InstanceStatus, RunStatus

    result, _ = _run(tmp_path, BRANCHES, jobs=1, keep_going=True)
    record = result.record
    assert record.status is RunStatus.FAILED
    assert record.instances["bad"].status is InstanceStatus.FAILED
    assert record.instances["after_bad"].status is InstanceStatus.SKIPPED
    assert record.instances["other"].attempts[0].status is AttemptStatus.SUCCEEDED
    assert f"{record.status} / {record.instances['other'].status}" == "failed / succeeded"

    text = (tmp_path / result.record_location).read_text()
    stored = json.loads(text)  # the JSON strings records always had
    assert stored["status"] == "failed"
    assert stored["instances"]["other"]["attempts"][0]["status"] == "succeeded"
    # A record written before (indented, plain strings) reads back as enums; a status this
    # kflow does not know stays text.
    stored["instances"]["other"]["status"] = "from-the-future"
    again = RunRecord.from_json(json.dumps(stored, indent=1).encode())
    assert again.status is RunStatus.FAILED
    assert again.instances["bad"].status is InstanceStatus.FAILED
    assert again.instances["other"].status == "from-the-future"
