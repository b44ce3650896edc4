"""`kflow plan`: what would run and why, on local disk, memory and S3 over the wire.

Outputs are written here the way a task would write them, then recorded with
`kflow accept`, so each test isolates the planner's decision.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kflow.storage import Storage
from tests.helpers import kflow, write_project
from tests.storage.s3server import S3Server

PROJECT = """
# a comment
[project]
name = "planned"
storage = "{storage}"
{options}

[params]
day = {{ default = "d1" }}

[tasks.make]
command = ["python", "make.py", "{{output}}"]
inputs = ["make.py"]
outputs = ["{{root}}/made/{{day}}.txt"]

[tasks.use]
requires = ["make"]
matrix = {{ n = ["1", "2"] }}
command = ["python", "use.py", "{{input}}", "{{output}}", "{{n}}"]
outputs = ["{{root}}/used/{{n}}/{{day}}.txt"]
"""


def make_project(folder: Path, storage: str = "file://./data", options: str = "") -> Path:
    return write_project(
        folder,
        PROJECT.format(storage=storage, options=options),
        **{"make.py": "print('make')\n", "use.py": "print('use')\n"},
    )


def root_of(project: Path, storage: str) -> str:
    return "data" if storage.startswith("file://") else storage


def materialize(
    project: Path, storage: Storage, root: str, outputs: dict[str, bytes] | None = None
) -> None:
    """Write every output as a build would."""
    files = outputs or {
        "made/d1.txt": b"made",
        "used/1/d1.txt": b"used 1",
        "used/2/d1.txt": b"used 2",
    }
    for name, data in files.items():
        storage.write_atomic(f"{root}/{name}", data)


def plan(project: Path, *args: str) -> dict[str, str]:
    result = kflow("plan", "-C", project, "--json", *args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["instances"]
    return {row["instance"]: f"{row['reason']}: {row['detail']}" for row in rows if row["runs"]}


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A local project whose outputs exist and are recorded."""
    project = make_project(tmp_path / "p")
    materialize(project, Storage(project), "data")
    assert kflow("accept", "-C", project, "use").exit_code == 0
    assert plan(project) == {}
    return project


def test_fresh_project_runs_everything_because_outputs_are_missing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    assert plan(project) == {
        "make[day=d1]": "output missing: data/made/d1.txt",
        "use[day=d1,n=1]": "output missing: data/used/1/d1.txt",
        "use[day=d1,n=2]": "output missing: data/used/2/d1.txt",
    }


def test_touch_and_identical_rewrite_rerun_nothing(built: Path) -> None:
    later = time.time() + 5
    os.utime(built / "make.py", (later, later))
    os.utime(built / "data/made/d1.txt", (later + 1, later + 1))
    (built / "data/made/d1.txt").write_bytes(b"made")  # same bytes, new mtime
    assert plan(built) == {}


def test_changed_source_input_reruns_the_task_and_its_dependents(built: Path) -> None:
    (built / "make.py").write_text("print('make v2')\n")
    assert plan(built) == {
        "make[day=d1]": "fingerprint changed: source input make.py changed",
        "use[day=d1,n=1]": "upstream will run: make[day=d1] will run",
        "use[day=d1,n=2]": "upstream will run: make[day=d1] will run",
    }


def test_changed_upstream_output_reruns_only_its_consumers(built: Path) -> None:
    (built / "data/made/d1.txt").write_bytes(b"made differently")
    assert plan(built) == {
        "use[day=d1,n=1]": "input changed: data/made/d1.txt changed",
        "use[day=d1,n=2]": "input changed: data/made/d1.txt changed",
    }


def test_reformatting_the_definitions_reruns_nothing(built: Path) -> None:
    toml = (built / "kflow.toml").read_text()
    reformatted = "\n\n# reformatted\n" + toml.replace(" = ", "   =   ").replace(
        "# a comment", "# other"
    )
    # key order inside a table changes too
    reformatted = reformatted.replace(
        'requires = ["make"]\nmatrix = { n = ["1", "2"] }',
        'matrix = { n = ["1", "2"] }  # values\nrequires = ["make"]',
    )
    (built / "kflow.toml").write_text(reformatted)
    assert plan(built) == {}


def test_changed_command_reruns_that_task_and_says_what_changed(built: Path) -> None:
    toml = (built / "kflow.toml").read_text()
    (built / "kflow.toml").write_text(toml.replace('"{n}"]', '"{n}", "--loud"]'))
    changed = plan(built)
    assert set(changed) == {"use[day=d1,n=1]", "use[day=d1,n=2]"}  # make is untouched
    assert changed["use[day=d1,n=1]"].startswith("fingerprint changed: command: python use.py")
    assert "--loud" in changed["use[day=d1,n=1]"]


def test_losing_the_records_reruns_nothing(built: Path) -> None:
    import shutil

    shutil.rmtree(built / "data/.kflow")
    assert plan(built) == {}


def test_outputs_without_record_rerun_when_an_input_is_newer(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    materialize(project, Storage(project), "data")
    later = time.time() + 10
    os.utime(project / "data/made/d1.txt", (later, later))
    assert plan(project) == {
        "use[day=d1,n=1]": "input changed: data/made/d1.txt is newer than the outputs (no record)",
        "use[day=d1,n=2]": "input changed: data/made/d1.txt is newer than the outputs (no record)",
    }


def test_always_and_force(built: Path) -> None:
    assert set(plan(built, "-B")) == {"make[day=d1]", "use[day=d1,n=1]", "use[day=d1,n=2]"}
    forced = plan(built, "--force", "make")
    assert forced["make[day=d1]"].startswith("forced")
    assert forced["use[day=d1,n=2]"] == "upstream will run: make[day=d1] will run"
    assert plan(built, "--force", "use") == {
        "use[day=d1,n=1]": "forced: forced by -B/--always or --force",
        "use[day=d1,n=2]": "forced: forced by -B/--always or --force",
    }
    bad = kflow("plan", "-C", built, "--force", "mak")
    assert bad.exit_code == 2 and "did you mean 'make'" in bad.stderr


def test_why_explains_every_check(built: Path) -> None:
    (built / "data/made/d1.txt").write_bytes(b"other")
    result = kflow("plan", "-C", built, "--why", "use[n=1]")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "use[day=d1,n=1]: RUNS (input changed: data/made/d1.txt changed)"
    assert any(line.split()[:3] == ["fingerprint", "ok", "unchanged"] for line in lines)
    assert any("inputs unchanged" in line and "stale" in line for line in lines)


def test_plain_plan_output_is_one_line_per_instance(built: Path) -> None:
    (built / "data/used/2/d1.txt").unlink()
    result = kflow("plan", "-C", built)
    assert result.stdout.splitlines() == [
        "use[day=d1,n=2]  output missing: data/used/2/d1.txt",
        "1 of 3 instances would run",
    ]
    (built / "data/used/2/d1.txt").write_bytes(b"used 2")
    assert kflow("plan", "-C", built).stdout.startswith("up to date: nothing to do")


def test_partial_output_of_an_unfinished_attempt_is_not_trusted(built: Path) -> None:
    from kflow.graph import build_graph
    from kflow.load import load_project
    from kflow.state import StateStore

    project = load_project(built)
    graph = build_graph(project, ["make"])
    StateStore(Storage(built), "data").mark_incomplete(graph.instances[graph.targets[0]], "run-1")
    assert plan(built)["make[day=d1]"].startswith("incomplete")


def test_clean_deletes_outputs_and_records(built: Path) -> None:
    dry = kflow("clean", "-C", built, "use[n=1]", "-n")
    assert "would delete data/used/1/d1.txt" in dry.stdout
    assert (built / "data/used/1/d1.txt").exists()
    result = kflow("clean", "-C", built, "use[n=1]", "--yes")
    assert result.exit_code == 0
    assert not (built / "data/used/1/d1.txt").exists()
    assert (built / "data/used/2/d1.txt").exists()
    assert plan(built) == {"use[day=d1,n=1]": "output missing: data/used/1/d1.txt"}


def test_clean_deletes_folder_outputs_with_their_contents_and_keeps_the_records(
    tmp_path: Path,
) -> None:
    project = write_project(
        tmp_path / "p",
        """
[project]
name = "folders"
storage = "file://./data"

[tasks.parts]
command = ["true"]
outputs = ["{root}/parts"]
""",
    )
    parts = project / "data" / "parts"
    (parts / "deep").mkdir(parents=True)
    (parts / "deep" / "a.txt").write_text("a")
    (project / "data" / "other.txt").write_text("b")
    assert kflow("accept", "-C", project, "parts").exit_code == 0

    result = kflow("clean", "-C", project, "parts", "--yes")

    assert result.exit_code == 0, result.stderr
    assert not parts.exists()
    assert (project / "data" / "other.txt").exists()
    assert (project / "data" / ".kflow").is_dir()
    # An output of {root} itself (which holds kflow's records) is refused: see
    # tests/e2e/test_output_safety.py.


def test_accept_refuses_when_outputs_are_missing_and_records_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    result = kflow("accept", "-C", project, "use")
    assert result.exit_code == 2 and "output(s) missing" in result.stderr
    assert not (project / "data" / ".kflow").exists()


def test_memory_storage_plans_like_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFLOW_ALLOW_MEMORY_STORAGE", "1")  # refused for real projects
    project = make_project(tmp_path / "p", storage="memory://plan-test")
    assert set(plan(project)) == {"make[day=d1]", "use[day=d1,n=1]", "use[day=d1,n=2]"}
    materialize(project, Storage(project), "memory://plan-test")
    assert kflow("accept", "-C", project, "use").exit_code == 0
    assert plan(project) == {}


def s3_project(folder: Path, server: S3Server, bucket: str) -> tuple[Path, str]:
    root = f"s3://{bucket}/sales"
    options = f'storage_options = {{ endpoint_url = "{server.endpoint_url}" }}'
    return make_project(folder, storage=root, options=options), root


def s3_storage(project: Path, server: S3Server) -> Storage:
    return Storage(project, {"s3": {"endpoint_url": server.endpoint_url}})


def test_s3_plans_equal_local_plans(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    local = make_project(tmp_path / "local")
    remote, root = s3_project(tmp_path / "remote", s3_server, s3_bucket)

    def normalised(project: Path, prefix: str) -> dict[str, str]:
        return {k: v.replace(prefix, "ROOT") for k, v in plan(project).items()}

    assert normalised(local, "data") == normalised(remote, root)
    materialize(local, Storage(local), "data")
    materialize(remote, s3_storage(remote, s3_server), root)
    for project in (local, remote):
        assert kflow("accept", "-C", project, "use").exit_code == 0
    assert plan(local) == plan(remote) == {}
    # re-uploading identical bytes reruns nothing; a changed byte reruns the consumers
    s3_server.put_objects(s3_bucket, {"sales/made/d1.txt": b"made"})
    assert plan(remote) == {}
    s3_server.put_objects(s3_bucket, {"sales/made/d1.txt": b"mad3"})
    (local / "data/made/d1.txt").write_bytes(b"mad3")
    assert normalised(local, "data") == normalised(remote, root) != {}


def matrix_project(folder: Path, server: S3Server, bucket: str, per_prefix: int) -> Path:
    toml = f"""
    [project]
    storage = "s3://{bucket}/r"
    storage_options = {{ endpoint_url = "{server.endpoint_url}" }}
    [tasks.t]
    matrix = {{ p = {list(range(20))}, i = {list(range(per_prefix))} }}
    command = ["true"]
    outputs = ["{{root}}/p{{p}}/{{i}}.txt"]
    """
    server.put_objects(
        bucket, {f"r/p{p}/{i}.txt": b"x" for p in range(20) for i in range(per_prefix)}
    )
    return write_project(folder, toml)


def test_s3_plan_requests_grow_with_prefixes_not_outputs(
    tmp_path: Path, s3_server: S3Server
) -> None:
    counts = {}
    for per_prefix in (10, 100):  # 200 and 2,000 outputs in 20 prefixes
        project = matrix_project(
            tmp_path / f"n{per_prefix}", s3_server, s3_server.create_bucket(), per_prefix
        )
        s3_server.reset_counts()
        assert plan(project) == {}
        counts[per_prefix] = s3_server.count()
    # one listing per prefix, one of the (empty) record folder, and nothing per output
    assert counts[100] <= 20 + 1 + 3, counts
    assert counts[100] == counts[10], counts


def test_s3_no_op_plan_reads_no_record_bodies(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    project = matrix_project(tmp_path / "p", s3_server, bucket, 10)
    assert kflow("accept", "-C", project, "t").exit_code == 0
    s3_server.reset_counts()
    assert plan(project) == {}
    gets = [r for r in s3_server.requests if r.method == "GET" and "list-type" not in r.query]
    assert gets == []  # 200 records, judged by their names alone
    assert s3_server.count() <= 20 + 1 + 3


def test_unreachable_storage_exits_4_naming_the_url(tmp_path: Path) -> None:
    from tests.storage.s3server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    project = make_project(
        tmp_path / "p",
        storage="s3://nowhere/x",
        options=(
            f'storage_options = {{ endpoint_url = "{endpoint}", connect_timeout = 1, '
            "retries = { max_attempts = 1 } }"
        ),
    )
    result = kflow("plan", "-C", project)
    assert result.exit_code == 4, result.output
    assert "s3://nowhere/x" in result.stderr
    assert "Traceback" not in result.output


def test_missing_bucket_exits_4(tmp_path: Path, s3_server: S3Server) -> None:
    project, _ = s3_project(tmp_path / "p", s3_server, "no-such-bucket-kflow")
    result = kflow("plan", "-C", project)
    assert result.exit_code == 4, result.output
    assert "no-such-bucket-kflow" in result.stderr


def test_denied_storage_exits_4_and_writes_nothing(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket()
    project, root = s3_project(tmp_path / "p", s3_server, bucket)
    s3_server.reset_counts()
    s3_server.deny(f"/{bucket}")
    try:
        result = kflow("accept", "-C", project, "make")
        assert result.exit_code in (2, 4)  # the outputs cannot even be listed
        result = kflow("plan", "-C", project)
        assert result.exit_code == 4, result.output
        assert root.split("/")[2] in result.stderr and "Traceback" not in result.output
    finally:
        s3_server.allow_all()
    writes = [r for r in s3_server.requests if r.method in ("PUT", "POST", "DELETE")]
    assert [w for w in writes if w.bucket == bucket] == []
