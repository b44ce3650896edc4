"""A failed attempt leaves no output that a later run could trust: files and whole folders."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import kflow, write_project
from tests.storage.s3server import S3Server

LOCAL = """
[project]
name = "t"
storage = "file://./data"

[tasks.parts]
command = ["sh", "-c", "mkdir -p {output}/sub; echo x > {output}/sub/b; exit 3"]
outputs = ["{root}/parts"]
"""

# Writes two objects under the output prefix, then fails.
WRITER = """
import sys

import boto3

endpoint, url = sys.argv[1:]
bucket, _, prefix = url.removeprefix("s3://").partition("/")
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
for key in ("a.txt", "sub/b.txt"):
    client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=b"partial")
sys.exit(3)
"""

S3 = """
[project]
name = "t"
storage = "s3://BUCKET/sales"
storage_options = { endpoint_url = "ENDPOINT" }

[tasks.parts]
command = ["python", "writer.py", "ENDPOINT", "{output}"]
outputs = ["{root}/parts"]
"""


def test_failed_task_leaves_no_folder_output(tmp_path: Path) -> None:
    write_project(tmp_path, LOCAL)
    result = kflow("build", "-C", tmp_path)
    assert result.exit_code == 1, result.output
    assert "failed parts: exit code 3" in result.output
    assert not (tmp_path / "data/parts").exists()
    runs = kflow("runs", "-C", tmp_path)
    assert "failed" in runs.stdout and "1 failed" in runs.stdout


def test_failed_task_leaves_no_folder_output_on_s3(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    toml = s3_server.fill(S3, s3_bucket)
    write_project(tmp_path, toml, **{"writer.py": WRITER})
    s3_server.put_objects(s3_bucket, {"sales/parts-old/keep.txt": b"other task's"})
    result = kflow("build", "-C", tmp_path)
    assert result.exit_code == 1, result.output
    assert "failed parts: exit code 3" in result.output
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="sales/parts")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["sales/parts-old/keep.txt"]


def test_task_whose_output_is_the_root_is_refused_before_it_runs(tmp_path: Path) -> None:
    # A failed attempt would delete {root}, records and all: exit 2 before anything runs.
    write_project(tmp_path, LOCAL.replace('outputs = ["{root}/parts"]', 'outputs = ["{root}"]'))
    result = kflow("build", "-C", tmp_path)
    assert result.exit_code == 2, result.output
    assert "is {root} itself" in result.stderr
    assert not (tmp_path / "data").exists()
    assert (tmp_path / "kflow.toml").exists()
