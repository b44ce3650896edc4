"""API manners: every call kflow makes goes through ``Api.call``.

* Creates and deletes pass a client-side token bucket (the Python client has
  no QPS limit of its own).
* 429 waits for ``Retry-After`` (or backs off) on every verb, POST and DELETE
  included; 5xx and connection errors retry with exponential backoff until a
  deadline, then become ``ClusterError`` naming the context and the server.
* 401 reloads the credentials once (``ClusterConfig.reload``: the kubeconfig,
  its token file or exec plugin, the in-cluster token, read again) and repeats
  the request; a second 401 is a ``ClusterError`` naming the context.
* Other errors are raised at once as ``ApiFailure`` carrying the server's
  ``Status`` reason and message, for the caller to decide (404 on a delete is
  fine, 409 on a create means adopt, 403/422 fail fast).
"""

from __future__ import annotations

import copy
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kflow.errors import ClusterError, KflowError
from kflow.executors.kubernetes.config import ClusterConfig
from kflow.executors.kubernetes.core import Core

RETRYABLE = frozenset({429, 500, 502, 503, 504})
# What a reload takes from a fresh client Configuration: credentials and the TLS identity.
AUTH_SETTINGS = ("api_key", "api_key_prefix", "refresh_api_key_hook", "username", "password")
TLS_SETTINGS = ("cert_file", "key_file", "ssl_ca_cert")


class ApiFailure(Exception):
    """A non-retryable answer from the API server."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class TokenBucket:
    """``rate`` operations a second on average, ``burst`` at once; ``take`` blocks."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                pause = (1 - self.tokens) / self.rate
            time.sleep(pause)


def _status_of(exc: Any) -> tuple[str, str]:
    """The Kubernetes Status ``reason`` and ``message`` of an ApiException."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    reason = str(data.get("reason") or getattr(exc, "reason", "") or "")
    message = str(data.get("message") or body or reason)
    return reason, message


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class Api:
    """The cluster as kflow uses it: a CoreV1Api plus retries and client-side rate limits."""

    def __init__(self, cluster: ClusterConfig):
        self.cluster = cluster
        self.namespace = cluster.namespace
        self.core: Any
        if hasattr(cluster.api_client, "param_serialize"):
            self.core = Core(cluster.api_client)
        else:  # kubernetes < 37
            import kubernetes.client

            self.core = kubernetes.client.CoreV1Api(cluster.api_client)
        self.writes = TokenBucket(
            env_float("KFLOW_KUBE_QPS", 20.0), int(env_float("KFLOW_KUBE_BURST", 30))
        )
        self.deadline = env_float("KFLOW_KUBE_RETRY_DEADLINE", 30.0)
        self._auth_lock = threading.Lock()
        self.credentials = 0  # how many times the credentials were reloaded

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with retries; ``what`` names it in errors ("create pod x")."""
        from kubernetes.client.exceptions import ApiException

        write = what.split(" ", 1)[0] in ("create", "delete", "patch")
        give_up = time.monotonic() + self.deadline
        delay = 0.1
        reloaded = False
        while True:
            if write:
                self.writes.take()
            credentials = self.credentials
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                status = int(exc.status or 0)
                reason, message = _status_of(exc)
                if status == 401 and not reloaded and self.cluster.reload is not None:
                    self._reload_credentials(what, credentials)
                    reloaded = True
                    continue
                if status not in RETRYABLE or status == 0:
                    if status == 401:
                        raise self._unauthorized(what, message, reloaded) from None
                    raise ApiFailure(status, reason, message) from None
                wait = _retry_after(exc) if status == 429 else None
                problem = f"{status} {reason}: {message}"
            except Exception as exc:  # urllib3: refused, reset, timed out, protocol errors
                if not _is_connection_error(exc):
                    raise
                wait, problem = None, f"{type(exc).__name__}: {exc}"
            now = time.monotonic()
            pause = wait if wait is not None else delay * (0.5 + random.random())
            if now + pause > give_up:
                raise ClusterError(
                    f"{what}: cluster unreachable at {self.cluster.describe()}: {problem}"
                ) from None
            time.sleep(pause)
            delay = min(delay * 2, 5.0)

    def _unauthorized(self, what: str, message: str, reloaded: bool) -> ClusterError:
        again = " again after reloading the credentials" if reloaded else ""
        return ClusterError(
            f"{what}: unauthorized by {self.cluster.describe()}{again} ({message})",
            hint="check the credentials in your kubeconfig (an expired token? "
            "run the same command with kubectl to refresh it)",
        )

    def _reload_credentials(self, what: str, seen: int) -> None:
        """After a 401: read the credentials again, unless another thread has done so since
        the failed request was sent (then its fresh credentials are tried)."""
        assert self.cluster.reload is not None
        with self._auth_lock:
            if self.credentials != seen:
                return
            try:
                fresh = self.cluster.reload()
            except KflowError as exc:
                raise ClusterError(
                    f"{what}: unauthorized by {self.cluster.describe()}, and reloading the "
                    f"credentials failed: {exc.message}"
                ) from None
            client = self.cluster.api_client
            current = client.configuration
            for name in AUTH_SETTINGS:
                setattr(current, name, copy.copy(getattr(fresh, name, None)))
            changed = [n for n in TLS_SETTINGS if getattr(fresh, n, None) != getattr(current, n)]
            for name in changed:
                setattr(current, name, getattr(fresh, name, None))
            if changed:  # a new client certificate: new connections (in-flight ones finish)
                from kubernetes.client import rest

                old, client.rest_client = client.rest_client, rest.RESTClientObject(current)
                old.close()
            self.credentials += 1

    def request(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """``call`` for a plain request: the body as bytes, the connection back in the pool."""
        resp = self.call(what, fn, *args, _preload_content=False, **kwargs)
        try:
            data: bytes = resp.data
        finally:
            resp.release_conn()
        return data

    def json(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return json.loads(self.request(what, fn, *args, **kwargs))


def _is_connection_error(exc: BaseException) -> bool:
    import urllib3

    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))
