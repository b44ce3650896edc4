"""Builders for the status shapes of §3.6: container states, container statuses, conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .clock import rfc3339

Obj = dict[str, Any]
CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                   "PodScheduled", "DisruptionTarget")
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")
UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"


def waiting(reason: str, message: str | None = None) -> Obj:
    w: Obj = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def running(started_at: float) -> Obj:
    return {"running": {"startedAt": rfc3339(started_at)}}


def terminated(
    exit_code: int,
    reason: str,
    started_at: float | None,
    finished_at: float | None,
    container_id: str | None,
    message: str | None = None,
) -> Obj:
    t: Obj = {"exitCode": exit_code, "reason": reason}
    if message:
        t["message"] = message
    t["startedAt"] = rfc3339(started_at) if started_at else None
    t["finishedAt"] = rfc3339(finished_at) if finished_at else None
    if container_id:
        t["containerID"] = container_id
    return {"terminated": t}


@dataclass
class ContainerState:
    """The kubelet's view of one container, rendered by ``to_status``."""

    name: str
    image: str
    init: bool = False
    state: Obj = field(default_factory=lambda: waiting("ContainerCreating"))
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    container_id: str | None = None
    image_id: str = ""
    # scheduling of the kubelet loop
    phase: str = "pending"  # pending | running | backoff | done
    next_try: float = 0.0
    backoff: float = 10.0
    pull_failures: int = 0
    pull_failed_at: float | None = None
    started_at: float | None = None
    exit_code: int | None = None

    def is_running(self) -> bool:
        return "running" in self.state

    def to_status(self) -> Obj:
        ready = self.is_running() and not self.init
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": ready,
            "restartCount": self.restart_count,
            "started": self.is_running(),
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


class Conditions:
    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}

    def set(self, ctype: str, status: bool, now: float, reason: str | None = None,
            message: str | None = None) -> None:
        value = "True" if status else "False"
        old = self._items.get(ctype)
        cond: Obj = {"type": ctype, "status": value, "lastProbeTime": None,
                     "lastTransitionTime": rfc3339(now)}
        if old is not None and old["status"] == value:
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self._items[ctype] = cond

    def get(self, ctype: str) -> Obj | None:
        return self._items.get(ctype)

    def render(self, existing: list[Obj]) -> list[Obj]:
        """Ordered conditions; keeps conditions others wrote (DisruptionTarget)."""
        merged = {c["type"]: c for c in existing if c.get("type") not in KUBELET_CONDITIONS}
        merged.update(self._items)
        ordered = [merged.pop(t) for t in CONDITION_ORDER if t in merged]
        return ordered + list(merged.values())


def disruption_condition(reason: str, message: str, now: float) -> Obj:
    return {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": rfc3339(now), "reason": reason, "message": message}


def log_tail(data: bytes, max_lines: int = 80, max_bytes: int = 2048) -> str:
    """FallbackToLogsOnError: the last 80 lines, at most 2048 bytes (kubelet constants)."""
    lines = data.splitlines(keepends=True)[-max_lines:]
    text = b"".join(lines)[-max_bytes:]
    return text.decode(errors="replace")
