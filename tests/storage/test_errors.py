"""Every storage failure reaches the user as one StorageError (exit code 4) naming the URL."""

from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest

from kflow.errors import EXIT_INFRASTRUCTURE, StorageError
from kflow.storage import Stamp, Storage
from tests.storage.s3server import S3Server, free_port

NO_RETRIES = {"config_kwargs": {"retries": {"max_attempts": 1}}}


@pytest.mark.usefixtures("fake_aws_env")
def test_connection_refused_names_the_url_and_the_endpoint(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    storage = Storage(tmp_path, {"s3": {"endpoint_url": endpoint, **NO_RETRIES}})
    started = time.monotonic()

    with pytest.raises(StorageError) as caught:
        storage.stat_many(["s3://bucket/out/a.csv", "s3://bucket/out/b.csv"])

    message = str(caught.value)
    assert "s3://bucket/out" in message and "cannot connect" in message
    assert endpoint in message
    assert "endpoint_url" in (caught.value.hint or "")
    assert caught.value.exit_code == EXIT_INFRASTRUCTURE
    assert time.monotonic() - started < 10


def test_missing_bucket_is_an_error_not_a_missing_output(
    s3_storage: Storage, s3_server: S3Server
) -> None:
    url = "s3://kflow-no-such-bucket/out/a.csv"

    with pytest.raises(StorageError, match="bucket does not exist") as caught:
        s3_storage.stat_many([url])
    assert "s3://kflow-no-such-bucket/out" in str(caught.value)

    with pytest.raises(StorageError, match="bucket does not exist"):
        s3_storage.write_atomic(url, b"x")
    with pytest.raises(StorageError, match="bucket does not exist"):
        s3_storage.read_many([url])
    with pytest.raises(StorageError, match="bucket does not exist"):
        s3_storage.create_exclusive(url, b"x")


def test_no_credentials(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    storage = Storage(tmp_path, {"s3": {"endpoint_url": s3_server.endpoint_url}})

    with pytest.raises(StorageError, match="no credentials") as caught:
        storage.stat("s3://bucket/out/a.csv")

    assert "s3://bucket/out" in str(caught.value)
    assert "AWS_PROFILE" in (caught.value.hint or "")


def test_access_denied(s3_storage: Storage, s3_bucket: str, s3_server: S3Server) -> None:
    # moto does not enforce policies by default: the test server answers 403 itself.
    s3_server.deny(f"/{s3_bucket}")
    try:
        with pytest.raises(StorageError, match="permission denied") as caught:
            s3_storage.stat(f"s3://{s3_bucket}/out/a.csv")
        assert f"s3://{s3_bucket}/out" in str(caught.value)
        with pytest.raises(StorageError, match="permission denied"):
            s3_storage.read_bytes(f"s3://{s3_bucket}/out/a.csv")
        # A refused conditional write is an error, never "someone else holds the lease".
        with pytest.raises(StorageError, match="permission denied"):
            s3_storage.create_exclusive(f"s3://{s3_bucket}/lease", b"me")
        with pytest.raises(StorageError, match="permission denied"):
            s3_storage.replace_if_unchanged(
                f"s3://{s3_bucket}/lease", b"me", Stamp(size=2, mtime=None, etag="abc")
            )
        with pytest.raises(StorageError, match="permission denied"):
            s3_storage.delete_many([f"s3://{s3_bucket}/out/a.csv"])
    finally:
        s3_server.allow_all()


def test_unknown_protocol(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unknown storage protocol") as caught:
        Storage(tmp_path).stat("nosuchproto://bucket/a.csv")
    assert "nosuchproto://bucket/a.csv" in str(caught.value)


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_gcs_without_gcsfs_says_which_extra_to_install(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not installed") as caught:
        Storage(tmp_path).stat_many(["gs://bucket/out/a.csv"])
    assert "gs://bucket/out/a.csv" in str(caught.value)
    assert caught.value.hint == "pip install 'kflow[gcs]'"


def test_local_write_under_a_file_is_an_error(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    storage.write_atomic("data", b"a file, not a folder")

    assert storage.stat("data/x.csv") is None  # nothing can exist below a file
    with pytest.raises(StorageError, match=re.escape(str(tmp_path / "data"))):
        storage.write_atomic("data/x.csv", b"x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_local_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(StorageError, match="permission denied"):
            Storage(tmp_path).stat("locked/x.csv")
    finally:
        locked.chmod(0o755)
