"""How location strings are read, and what importing the package costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kflow.storage import Stamp, Storage
from kflow.storage.locations import local_path, scheme_of, split_parent
from tests.storage.s3server import S3Server

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("data/raw/2026-11-24.csv", "/proj/data/raw/2026-11-24.csv"),
        ("./data/../data/x", "/proj/data/x"),
        ("/tmp/x/out.csv", "/tmp/x/out.csv"),
        ("file:///abs/x", "/abs/x"),
        ("file://./data/x", "/proj/data/x"),
        ("file://data/x", "/proj/data/x"),
        ("local:///abs/y/", "/abs/y"),
    ],
)
def test_local_locations_resolve_against_the_project_folder(location: str, expected: str) -> None:
    assert scheme_of(location) == "file"
    assert local_path(location, "/proj") == expected


@pytest.mark.parametrize(
    ("location", "scheme"),
    [
        ("s3://bucket/prefix/x", "s3"),
        ("gs://b/x", "gs"),
        ("memory://x", "memory"),
        ("S3://b", "s3"),
    ],
)
def test_urls_route_by_scheme(location: str, scheme: str) -> None:
    assert scheme_of(location) == scheme


def test_split_parent() -> None:
    assert split_parent("bucket/a/b.csv") == ("bucket/a", "b.csv")
    assert split_parent("bucket/a/") == ("bucket", "a")
    assert split_parent("bucket") == ("", "bucket")


def test_project_folder_is_used_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    Storage(project).write_atomic("file://./data/x.csv", b"x")

    assert (project / "data/x.csv").read_bytes() == b"x"
    assert not (elsewhere / "data").exists()


def test_stamps_are_values() -> None:
    a = Stamp(size=3, mtime=1.5, etag="abc")
    assert len({a, Stamp(size=3, mtime=1.5, etag="abc")}) == 1
    assert a.same_content(Stamp(size=3, mtime=2.0, etag="abc")) is True  # a re-upload
    assert a.same_content(Stamp(size=3, mtime=1.5, etag="abd")) is False
    assert a.same_content(Stamp(size=4, mtime=1.5, etag=None)) is False
    assert a.same_content(Stamp(size=3, mtime=1.5, etag=None)) is None  # hash to decide
    assert Stamp(size=0, mtime=None, etag=None, is_dir=True).same_content(a) is False


def test_importing_storage_imports_no_remote_backend() -> None:
    code = (
        "import sys, kflow.storage; "
        "heavy = [m for m in ('s3fs', 'botocore', 'aiobotocore', 'gcsfs', 'fsspec') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


def test_local_only_use_never_imports_fsspec(tmp_path: Path) -> None:
    code = (
        "import sys; from kflow.storage import Storage; s = Storage(sys.argv[1]); "
        "s.write_atomic('a/b', b'1'); s.stat_many(['a/b', 'a/c']); s.content_hash('a/b'); "
        "print('fsspec' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == "False"


def test_for_root_gives_the_profile_options_to_the_roots_scheme(tmp_path: Path) -> None:
    storage = Storage.for_root(tmp_path, "s3://kflow/sales", {"endpoint_url": "http://minio:9000"})
    assert storage.storage_options == {"s3": {"endpoint_url": "http://minio:9000"}}
    assert Storage.for_root(tmp_path, "file://./data").storage_options == {"file": {}}


def test_endpoint_and_credentials_come_from_the_usual_aws_environment(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    storage = Storage(tmp_path)  # no storage_options at all

    storage.write_atomic(f"s3://{s3_bucket}/from-env.txt", b"ok")

    assert storage.read_bytes(f"s3://{s3_bucket}/from-env.txt") == b"ok"
