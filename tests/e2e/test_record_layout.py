"""Where records live: one flat folder, listed once per plan whatever the number of tasks,
and the per-task layout of earlier versions still read and moved by `kflow build`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import kflow, write_project
from tests.storage.s3server import S3Server


def tasks_toml(storage: str, names: list[str], options: str = "", echo: str = "v1") -> str:
    head = f'[project]\nname = "t"\nstorage = "{storage}"\n{options}\n'
    return head + "".join(
        f"""
[tasks.{name}]
command = ["sh", "-c", "echo {echo} >> {{output}}"]
outputs = ["{{root}}/{name}.txt"]
"""
        for name in names
    )


def to_old_layout(data: Path) -> int:
    """Move every record into ``.kflow/state/TASK/`` as kflow wrote them before: how many."""
    moved = 0
    for record in sorted((data / ".kflow/records").iterdir()):
        task = json.loads(record.read_text())["instance"].split("[", 1)[0]
        (data / ".kflow/state" / task).mkdir(parents=True, exist_ok=True)
        record.rename(data / ".kflow/state" / task / record.name)
        moved += 1
    return moved


def test_records_of_the_old_per_task_layout_stay_up_to_date_and_move_on_build(
    tmp_path: Path,
) -> None:
    names = ["a", "b", "c"]
    write_project(tmp_path, tasks_toml("file://./data", names))
    assert kflow("build", "-C", tmp_path).exit_code == 0
    data = tmp_path / "data"
    assert to_old_layout(data) == 3  # as an older kflow left them

    plan = kflow("plan", "-C", tmp_path)
    assert plan.exit_code == 0, plan.output
    assert plan.stdout.startswith("up to date"), plan.stdout
    assert len(list((data / ".kflow/state").rglob("*.json"))) == 3  # plan stays read-only

    built = kflow("build", "-C", tmp_path)
    assert built.exit_code == 0, built.output
    assert all((data / f"{n}.txt").read_text() == "v1\n" for n in names)  # nothing ran
    assert list((data / ".kflow/state").rglob("*.json")) == []  # moved to the flat folder
    assert len(list((data / ".kflow/records").glob("*.json"))) == 3

    write_project(tmp_path, tasks_toml("file://./data", names).replace("echo v1 >>", "echo v1>>"))
    plan = kflow("plan", "-C", tmp_path)
    assert "fingerprint changed" in plan.stdout and "3 of 3" in plan.stdout, plan.stdout


def test_an_old_layout_record_is_replaced_when_its_instance_reruns(tmp_path: Path) -> None:
    write_project(tmp_path, tasks_toml("file://./data", ["a"]))
    assert kflow("build", "-C", tmp_path).exit_code == 0
    data = tmp_path / "data"
    to_old_layout(data)
    assert kflow("build", "-C", tmp_path, "-B").exit_code == 0
    assert (data / "a.txt").read_text() == "v1\nv1\n"
    assert list((data / ".kflow/state").rglob("*.json")) == []
    assert len(list((data / ".kflow/records").glob("*.json"))) == 1  # the new one only
    assert kflow("plan", "-C", tmp_path).stdout.startswith("up to date")


def record_listings(server: S3Server) -> list[str]:
    return [
        r.query.get("prefix", [""])[0]
        for r in server.requests
        if r.method == "GET"
        and "list-type" in r.query
        and ".kflow" in r.query.get("prefix", [""])[0]
    ]


def test_s3_plan_lists_the_records_once_whatever_the_number_of_tasks(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket()
    options = f'storage_options = {{ endpoint_url = "{s3_server.endpoint_url}" }}'
    names = [f"t{n:02d}" for n in range(20)]
    write_project(tmp_path, tasks_toml(f"s3://{bucket}/r", names, options))
    s3_server.put_objects(bucket, {f"r/{n}.txt": b"v1" for n in names})
    assert kflow("build", "-C", tmp_path).exit_code == 0  # records them (adopted outputs)

    s3_server.reset_counts()
    plan = kflow("plan", "-C", tmp_path)
    assert plan.stdout.startswith("up to date"), plan.output
    # the old layout's root (empty), then the flat folder: not one listing per task
    assert len(record_listings(s3_server)) <= 2, record_listings(s3_server)

    # Tasks no longer defined: their records are names in the same listing, nothing more.
    write_project(tmp_path, tasks_toml(f"s3://{bucket}/r", names[:1], options))
    s3_server.reset_counts()
    assert kflow("plan", "-C", tmp_path).stdout.startswith("up to date")
    assert len(record_listings(s3_server)) <= 2, record_listings(s3_server)


def test_s3_records_of_the_old_layout_are_read_then_moved(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket()
    options = f'storage_options = {{ endpoint_url = "{s3_server.endpoint_url}" }}'
    write_project(tmp_path, tasks_toml(f"s3://{bucket}/r", ["a", "b"], options))
    s3_server.put_objects(bucket, {f"r/{n}.txt": b"v1" for n in ("a", "b")})
    assert kflow("build", "-C", tmp_path).exit_code == 0  # records them (adopted outputs)
    client = s3_server.client()

    def keys(prefix: str) -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    for key in keys("r/.kflow/records/"):  # back to the old layout, as an older kflow wrote
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        task = json.loads(body)["instance"]
        client.put_object(
            Bucket=bucket, Key=f"r/.kflow/state/{task}/{key.rsplit('/')[-1]}", Body=body
        )
        client.delete_object(Bucket=bucket, Key=key)
    assert len(keys("r/.kflow/state/")) == 2

    assert kflow("plan", "-C", tmp_path).stdout.startswith("up to date")
    built = kflow("build", "-C", tmp_path)
    assert built.exit_code == 0 and built.stdout.startswith("up to date"), built.output
    assert keys("r/.kflow/state/") == []
    assert len(keys("r/.kflow/records/")) == 2
    assert kflow("plan", "-C", tmp_path).stdout.startswith("up to date")


def test_s3_an_instance_decided_again_before_it_starts_lists_only_its_records(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket()
    options = f'storage_options = {{ endpoint_url = "{s3_server.endpoint_url}" }}'
    names = [f"t{n:02d}" for n in range(20)]
    toml = tasks_toml(f"s3://{bucket}/r", names, options)
    write_project(tmp_path, toml + '\n[tasks.check]\ncommand = ["true"]\n')
    s3_server.put_objects(bucket, {f"r/{n}.txt": b"v1" for n in names})
    assert kflow("build", "-C", tmp_path).exit_code == 0  # records the 20, runs check

    s3_server.reset_counts()
    built = kflow("build", "-C", tmp_path, "check")  # no outputs: it runs, decided again
    assert built.exit_code == 0, built.output
    prefixes = record_listings(s3_server)
    assert prefixes.count("r/.kflow/records/") <= 1, prefixes  # the plan's one listing
    assert any(p.startswith("r/.kflow/records/") and p.endswith("~") for p in prefixes), prefixes
