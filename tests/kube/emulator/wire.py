"""Test helpers that look at the cluster through the real client (wire-level JSON), not through
the emulator's internals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]


def read_pod(core_v1: Any, name: str, namespace: str = "kflow-test") -> Obj | None:
    """The pod as JSON on the wire, or None on 404."""
    from kubernetes.client.exceptions import ApiException

    try:
        resp = core_v1.read_namespaced_pod(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(resp.data)  # type: ignore[no-any-return]


def wait_pod(core_v1: Any, name: str, predicate: Callable[[Obj], Any],
             namespace: str = "kflow-test", timeout: float = 60.0) -> Obj:
    """Poll ``GET pods/{name}`` until ``predicate(pod)`` holds; predicate errors count as no."""
    deadline = time.monotonic() + timeout
    while True:
        pod = read_pod(core_v1, name, namespace)
        try:
            if pod is not None and predicate(pod):
                return pod
        except (KeyError, IndexError, TypeError, StopIteration):
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"pod {name}: condition not met within {timeout}s: {pod}")
        time.sleep(0.02)


def wait_phase(core_v1: Any, name: str, *phases: str, namespace: str = "kflow-test",
               timeout: float = 60.0) -> Obj:
    return wait_pod(core_v1, name, lambda p: p["status"].get("phase") in phases, namespace,
                    timeout)


def wait_gone(core_v1: Any, name: str, namespace: str = "kflow-test",
              timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while read_pod(core_v1, name, namespace) is not None:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"pod {name} still exists after {timeout}s")
        time.sleep(0.02)


def pod_events(core_v1: Any, name: str, namespace: str = "kflow-test") -> list[Obj]:
    resp = core_v1.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Pod",
        _preload_content=False)
    return json.loads(resp.data)["items"]  # type: ignore[no-any-return]


def event_reasons(core_v1: Any, name: str, namespace: str = "kflow-test") -> list[str]:
    return [e["reason"] for e in pod_events(core_v1, name, namespace)]
