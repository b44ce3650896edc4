"""A real S3 endpoint for tests: moto's server in a thread, with request counting.

Reuse from any test folder by importing the fixtures into its conftest.py::

    from tests.storage.s3server import fake_aws_env, s3_bucket, s3_server  # noqa: F401

``s3_server`` (session-scoped) starts moto on 127.0.0.1 with a free port and sets
fake AWS credentials in the environment. On it:
- ``requests``: every request received (method, path, query); ``counts()`` per
  (method, path); ``max_in_flight``: the most served at once; ``reset_counts()``;
- ``deny(prefix)`` / ``allow_all()``: answer 403 AccessDenied to requests whose
  path starts with ``prefix``;
- ``create_bucket()``, ``put_objects(bucket, {key: bytes})`` (fast, uncounted),
  ``client()`` (boto3), ``env()`` (variables for a subprocess such as the CLI).
``s3_bucket`` is a fresh bucket per test; ``fake_aws_env`` sets fake credentials
for a test that needs no server.

Two departures from plain moto, both to behave like real S3:
- moto checks a conditional PUT's precondition and stores the object in two
  steps, so two racing PUTs could both pass; writes (PUT/POST/DELETE) are
  therefore serialised here, as S3 itself makes conditional writes atomic.
- moto's S3 state is process-global: every server in one test process sees the
  same buckets, hence unique bucket names.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

WRITE_METHODS = {"PUT", "POST", "DELETE"}
DENIED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>kflow-test</RequestId></Error>"
)
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never read a developer's real profile or ask an instance metadata service.
    "AWS_CONFIG_FILE": "/nonexistent/kflow-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/kflow-test-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
)


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def bucket(self) -> str:
        return self.path.lstrip("/").split("/", 1)[0]


StartResponse = Callable[..., Any]


class S3Server:
    """moto's S3 behind a counting (and fault-injecting) WSGI middleware."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._requests: list[Request] = []
        self._denied: list[str] = []
        self._in_flight = 0
        self.max_in_flight = 0  # most requests served at once since reset_counts()
        self._server = make_server(
            host, port, self, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- WSGI -------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self._app(environ, start_response)  # type: ignore[no-any-return]
        request = Request(method, path, parse_qs(environ.get("QUERY_STRING", "")))
        with self._lock:
            self._requests.append(request)
            denied = any(path.startswith(prefix) for prefix in self._denied)
        if denied:
            start_response("403 Forbidden", [("Content-Type", "application/xml")])
            return [] if method == "HEAD" else [DENIED_BODY]
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if method in WRITE_METHODS:
                with self._write_lock:
                    return self._serve(environ, start_response)
            return self._serve(environ, start_response)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """The whole response, produced now: counted and locked spans cover all of moto's work."""
        response = self._app(environ, start_response)
        try:
            return list(response)
        finally:
            if hasattr(response, "close"):
                response.close()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> S3Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should use this server."""
        return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def fill(self, definitions: str, bucket: str) -> str:
        """Project text with its BUCKET and ENDPOINT placeholders made this server's."""
        return definitions.replace("BUCKET", bucket).replace("ENDPOINT", self.endpoint_url)

    # -- counting and faults ------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()
            self.max_in_flight = self._in_flight

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests per (method, path)."""
        return Counter((r.method, r.path) for r in self.requests)

    def count(self, method: str | None = None, bucket: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (bucket is None or r.bucket == bucket)
        )

    def deny(self, path_prefix: str) -> None:
        """Answer 403 AccessDenied to every request whose path starts with ``path_prefix``."""
        with self._lock:
            self._denied.append(path_prefix)

    def allow_all(self) -> None:
        with self._lock:
            self._denied.clear()

    # -- helpers --------------------------------------------------------------------

    def client(self) -> Any:
        """A boto3 client for arranging test data (not counted separately: reset after)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def put_objects(self, bucket: str, objects: dict[str, bytes]) -> None:
        """Store objects straight into moto's in-process backend: fast, and not counted."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        with self._write_lock:
            for key, data in objects.items():
                backend.put_object(bucket, key, data)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"kflow-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def use_fake_aws_env(mp: pytest.MonkeyPatch) -> None:
    """Fake credentials, and nothing of the developer's real AWS setup."""
    for name in UNSET_AWS_ENV:
        mp.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        mp.setenv(name, value)


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials for one test that needs no server."""
    use_fake_aws_env(monkeypatch)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server for the whole session, with fake AWS credentials in the environment."""
    with pytest.MonkeyPatch.context() as mp:
        use_fake_aws_env(mp)
        server = S3Server().start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the test server."""
    return s3_server.create_bucket()


def free_port() -> int:
    """A TCP port nothing listens on (bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


__all__ = ["S3Server", "fake_aws_env", "free_port", "s3_bucket", "s3_server"]
