"""Small builders for pod manifests used by the emulator's tests (and handy for executor tests)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def pod_manifest(
    name: str,
    script: str = "echo hi",
    *,
    image: str = "busybox:1.36",
    labels: dict[str, str] | None = None,
    restart_policy: str = "Never",
    env: list[Obj] | None = None,
    container: str = "main",
    grace: int | None = None,
    deadline: int | None = None,
    message_policy: str | None = None,
    extra_spec: Obj | None = None,
) -> Obj:
    """A pod running ``sh -c script`` in one container."""
    main: Obj = {"name": container, "image": image, "command": ["sh", "-c", script]}
    if env:
        main["env"] = env
    if message_policy:
        main["terminationMessagePolicy"] = message_policy
    spec: Obj = {"restartPolicy": restart_policy, "containers": [main]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    spec.update(extra_spec or {})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": dict(labels or {})}, "spec": spec}
