"""The scheduler over the real local executor and real local storage."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

from kflow.executors.local import LocalExecutor
from kflow.graph import Graph, build_graph
from kflow.load import load_project
from kflow.model import Instance
from kflow.plan import Decision, Reason
from kflow.run import Runner, RunOptions, RunResult
from kflow.run import events as ev
from kflow.storage import Storage


class Hooks:
    """A small real StateHooks: remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def before_attempt(self, instance: Instance) -> None:
        self.calls.append(("before", str(instance.id)))

    def after_success(self, instance: Instance) -> None:
        self.calls.append(("after", str(instance.id)))

    def not_started(self, instance: Instance) -> None:
        self.calls.append(("undo", str(instance.id)))


def _graph(tmp_path: Path, tasks: str, targets: list[str] | None = None) -> Graph:
    text = '[project]\nname = "t"\nstorage = "file://./data"\n' + textwrap.dedent(tasks)
    (tmp_path / "kflow.toml").write_text(text)
    return build_graph(load_project(tmp_path, None, None), targets or [])


def _run(graph: Graph, **options: object) -> tuple[RunResult, list[ev.Event], Hooks]:
    events: list[ev.Event] = []
    hooks = Hooks()
    executor = LocalExecutor(graph.project.directory)
    storage = Storage(graph.project.directory)
    order = list(graph.instances)
    runner = Runner(
        graph,
        order,
        {iid: Decision(iid, Reason.OUTPUT_MISSING, "its output") for iid in order},
        executor=executor,
        storage=storage,
        hooks=hooks,
        sink=events.append,
        options=RunOptions(**options),  # type: ignore[arg-type]
    )
    try:
        return runner.run(), events, hooks
    finally:
        executor.close()


def _kinds(events: list[ev.Event], instance: str) -> list[str]:
    return [e.kind for e in events if getattr(e, "instance", None) == instance]


CHAIN = """
[tasks.a]
command = "sh -c 'echo a > {output}'"
outputs = ["{root}/a.txt"]
[tasks.b]
requires = ["a"]
command = "sh -c 'cat {input} > {output}; echo b >> {output}'"
outputs = ["{root}/b.txt"]
"""


def test_requirements_finish_before_dependents_start(tmp_path: Path) -> None:
    result, events, hooks = _run(_graph(tmp_path, CHAIN), jobs=4)
    assert result.exit_code == 0
    order = [
        (e.kind, e.instance)
        for e in events
        if isinstance(e, ev.AttemptStarted | ev.InstanceSucceeded)
    ]
    assert order == [("started", "a"), ("succeeded", "a"), ("started", "b"), ("succeeded", "b")]
    assert (tmp_path / "data/b.txt").read_text() == "a\nb\n"
    calls = hooks.calls
    assert sorted(calls) == [("after", "a"), ("after", "b"), ("before", "a"), ("before", "b")]
    assert calls.index(("before", "a")) < calls.index(("after", "a"))
    assert calls.index(("before", "b")) < calls.index(("after", "b"))


def test_no_more_than_jobs_instances_run_at_once(tmp_path: Path) -> None:
    tasks = """
    [tasks.w]
    matrix = { n = ["1", "2", "3", "4", "5", "6"] }
    command = '''sh -c 'mkdir -p running; touch running/{n}; ls running | wc -l > {output};
                  sleep 0.1; rm running/{n}' '''
    outputs = ["{root}/w{n}.txt"]
    """
    graph = _graph(tmp_path, tasks)
    result, _, _ = _run(graph, jobs=2)
    assert result.exit_code == 0
    seen = [int((tmp_path / f"data/w{n}.txt").read_text()) for n in range(1, 7)]
    assert max(seen) <= 2


def test_task_exiting_zero_without_its_output_fails_naming_it(tmp_path: Path) -> None:
    graph = _graph(tmp_path, '[tasks.a]\ncommand = ["true"]\noutputs = ["{root}/a.txt"]\n')
    result, events, hooks = _run(graph)
    assert result.exit_code == 1
    failed = [e for e in events if isinstance(e, ev.InstanceFailed)]
    assert failed[0].reason == "did not write data/a.txt"
    assert ("after", "a") not in hooks.calls


def test_failed_task_leaves_no_output_and_dependents_are_skipped(tmp_path: Path) -> None:
    tasks = CHAIN.replace("echo a > {output}'", "echo partial > {output}; exit 3'")
    result, events, _ = _run(_graph(tmp_path, tasks))
    assert result.exit_code == 1
    assert not (tmp_path / "data/a.txt").exists()
    assert _kinds(events, "b") == ["skipped"]
    assert result.record.instances["a"].attempts[0].exit_code == 3


BRANCHES = """
[tasks.bad]
command = "sh -c 'sleep 0.2; exit 1'"
[tasks.slow]
command = "sh -c 'sleep 0.6; echo > {output}'"
outputs = ["{root}/slow.txt"]
[tasks.later]
command = "sh -c 'echo > {output}'"
outputs = ["{root}/later.txt"]
"""


def test_first_failure_stops_new_starts_but_running_ones_finish(tmp_path: Path) -> None:
    result, events, _ = _run(_graph(tmp_path, BRANCHES), jobs=2)
    assert result.exit_code == 1
    assert _kinds(events, "slow") == ["started", "succeeded"]
    assert _kinds(events, "later") == ["skipped"]
    assert result.record.instances["later"].status == "skipped"


def test_keep_going_runs_independent_branches_after_a_failure(tmp_path: Path) -> None:
    result, events, _ = _run(_graph(tmp_path, BRANCHES), jobs=2, keep_going=True)
    assert result.exit_code == 1
    assert _kinds(events, "later") == ["started", "succeeded"]
    assert result.record.status == "failed"


def test_flaky_task_succeeds_on_retry_after_backoff(tmp_path: Path) -> None:
    tasks = """
    [tasks.flaky]
    retries = 2
    retry_delay = 0.2
    command = "sh -c 'if [ -e seen ]; then echo ok > {output}; else touch seen; exit 5; fi'"
    outputs = ["{root}/f.txt"]
    """
    started = time.monotonic()
    result, events, _ = _run(_graph(tmp_path, tasks))
    assert result.exit_code == 0
    assert time.monotonic() - started >= 0.2
    assert _kinds(events, "flaky") == ["started", "retrying", "started", "succeeded"]
    retry = next(e for e in events if isinstance(e, ev.AttemptFailed))
    assert retry.reason == "exit code 5" and retry.retry_in == 0.2
    attempts = result.record.instances["flaky"].attempts
    assert [a.exit_code for a in attempts] == [5, 0]


def test_retries_back_off_exponentially(tmp_path: Path) -> None:
    tasks = """
    [tasks.never]
    retries = 2
    retry_delay = 0.05
    command = "sh -c 'exit 1'"
    """
    result, events, _ = _run(_graph(tmp_path, tasks))
    assert result.exit_code == 1
    assert [e.retry_in for e in events if isinstance(e, ev.AttemptFailed)] == [0.05, 0.1]
    assert len(result.record.instances["never"].attempts) == 3


def test_run_record_and_logs_are_written_to_storage(tmp_path: Path) -> None:
    result, _, _ = _run(_graph(tmp_path, CHAIN))
    record = json.loads((tmp_path / result.record_location).read_text())
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    attempt = record["instances"]["b"]["attempts"][0]
    assert attempt["exit_code"] == 0 and attempt["duration"] >= 0
    assert record["instances"]["b"]["reason"] == "output missing: its output"
    assert (tmp_path / attempt["log"]).exists()
    assert result.record_location.startswith("data/.kflow/runs/")


def test_exit_codes_follow_the_contract() -> None:
    from kflow.errors import StorageError
    from kflow.run.outcome import outcome

    assert outcome(["succeeded"], None, None, False) == ("succeeded", 0)
    assert outcome(["succeeded", "failed"], None, None, False) == ("failed", 1)
    assert outcome(["held"], None, None, False) == ("held", 3)
    assert outcome(["failed", "held"], None, None, False) == ("failed", 1)
    assert outcome(["succeeded"], StorageError("down"), None, False) == ("error", 4)
    assert outcome(["failed"], None, StorageError("down"), False) == ("failed", 1)
    assert outcome(["succeeded"], None, StorageError("down"), False) == ("error", 4)
    assert outcome(["failed"], None, None, True) == ("interrupted", 130)
