"""Fixtures for storage tests: a moto S3 server, buckets, and Storage objects on each backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kflow.storage import Storage
from tests.storage.s3server import S3Server, fake_aws_env, s3_bucket, s3_server

__all__ = ["fake_aws_env", "s3_bucket", "s3_server"]

# The three backends every behaviour test runs on: a root URL factory per name.
BACKENDS = ["local", "memory", "s3"]


@pytest.fixture(scope="session")
def shared_s3_storage(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """One Storage on the test server for the session: an s3fs session costs ~0.3 s to set up."""
    project = tmp_path_factory.mktemp("s3-project")
    return Storage(project, {"s3": {"endpoint_url": s3_server.endpoint_url}})


@pytest.fixture
def s3_storage(s3_server: S3Server, tmp_path: Path) -> Storage:
    """A new Storage pointed at the test server, its project folder in tmp_path."""
    return Storage(tmp_path, {"s3": {"endpoint_url": s3_server.endpoint_url}})


@pytest.fixture(params=BACKENDS)
def backend_root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, str]:
    """(storage, root URL) for a fresh, empty root on each backend in turn."""
    if request.param == "local":
        return Storage(tmp_path), "out"
    if request.param == "memory":
        return Storage(tmp_path), f"memory://kflow-test-{uuid.uuid4().hex[:12]}"
    server: S3Server = request.getfixturevalue("s3_server")
    storage: Storage = request.getfixturevalue("shared_s3_storage")
    return storage, f"s3://{server.create_bucket()}/root"


@pytest.fixture
def write_layout() -> Callable[[Storage, str, dict[str, bytes]], None]:
    """Write {relative name: bytes} under a root through the Storage under test."""

    def write(storage: Storage, root: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            storage.write_atomic(f"{root}/{name}", data)

    return write
