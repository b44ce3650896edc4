"""Pod status → what the runner needs to know: still waiting, running, or finished and why.

Kubernetes never fails a pod for a bad image, a missing Secret or an
unschedulable request; it stays Pending. ``classify`` names those situations
and fails them after a grace period (research §1.8), so nothing hangs.
Failures that are not the task's fault (eviction, node shutdown, deletion by
someone else) come back with ``counts=False``: the runner retries them for free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow.executors.base import AttemptState
from kflow.executors.kubernetes.manifest import CONTAINER

PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff")
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError")
NORMAL_WAITING = ("ContainerCreating", "PodInitializing", "")
NODE_LOST = "NodeLost"
INFRA_REASONS = ("Evicted", "Terminated", "Shutdown", "NodeShutdown", "NodeLost", "Preempting")


@dataclass(frozen=True)
class Graces:
    """How long a Pending pod may show each kind of trouble before the attempt fails."""

    pull: float = 180.0  # ErrImagePull / ImagePullBackOff (registries are flaky)
    config: float = 30.0  # CreateContainerConfigError (a Secret may be created late)
    other: float = 180.0  # waiting reasons kflow does not know


@dataclass
class Tracking:
    """What classification remembers between two looks at one pod (times are monotonic)."""

    first_seen: float
    waiting_since: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    state: AttemptState
    reason: str = ""
    exit_code: int | None = None
    counts: bool = True

    @property
    def finished(self) -> bool:
        return self.state.finished


def _main_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER:
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def _memory_limit(pod: Mapping[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER:
            value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            return str(value) if value else None
    return None


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _oom(pod: Mapping[str, Any], code: int | None) -> Verdict:
    limit = _memory_limit(pod)
    where = f"memory limit {limit}" if limit else "no memory limit set"
    return Verdict(AttemptState.FAILED, f"OOMKilled: out of memory ({where})", code or 137)


def classify(
    pod: Mapping[str, Any],
    tracking: Tracking,
    now: float,
    pending_timeout: float,
    graces: Graces,
) -> Verdict:
    """The attempt's state as this pod shows it at ``now`` (monotonic seconds)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    main = _main_status(pod)
    terminated = (main.get("state") or {}).get("terminated") or {}
    if phase in ("Succeeded", "Failed") or terminated:
        return _finished(pod, phase, terminated)
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return Verdict(AttemptState.FAILED, "pod deleted before it finished", counts=False)
    if phase in ("Running", "Unknown"):
        return _running(pod, phase, tracking, now, graces)
    return _pending(pod, main, tracking, now, pending_timeout, graces)


def _finished(pod: Mapping[str, Any], phase: str, term: Mapping[str, Any]) -> Verdict:
    status = pod.get("status") or {}
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    code = term.get("exitCode")
    code = int(code) if code is not None else None
    if term.get("reason") == "OOMKilled":
        return _oom(pod, code)
    if reason == "DeadlineExceeded":
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        return Verdict(AttemptState.FAILED, f"timed out after {deadline}s (DeadlineExceeded)", code)
    disruption = _condition(pod, "DisruptionTarget")
    if reason in INFRA_REASONS or (disruption and disruption.get("status") == "True"):
        why = f"{reason or (disruption and disruption.get('reason'))}: {message}".rstrip(": ")
        return Verdict(AttemptState.FAILED, f"pod lost to the cluster ({why})", code, False)
    if term.get("reason") == "ContainerStatusUnknown":
        return Verdict(AttemptState.FAILED, "container lost by the node", code, False)
    if phase == "Succeeded" or (code == 0 and phase != "Failed"):
        return Verdict(AttemptState.SUCCEEDED, "", 0)
    if code is None:
        return Verdict(AttemptState.FAILED, f"pod failed: {reason or 'unknown'} {message}".strip())
    if code == 137 and _memory_limit(pod) and term.get("reason") != "Error":
        return _oom(pod, code)
    extra = term.get("reason")
    suffix = f" ({extra})" if extra and extra not in ("Error", "Completed") else ""
    return Verdict(AttemptState.FAILED, f"exit code {code}{suffix}", code)


def _running(
    pod: Mapping[str, Any], phase: str, tracking: Tracking, now: float, graces: Graces
) -> Verdict:
    """A running pod whose node stopped answering: ``Unknown``, or not Ready (kflow's pods
    have no probes) — lost after the grace, and not the task's fault."""
    ready = _condition(pod, "Ready")
    if phase == "Running" and not (ready and ready.get("status") == "False"):
        tracking.waiting_since.pop(NODE_LOST, None)
        return Verdict(AttemptState.RUNNING)
    since = tracking.waiting_since.setdefault(NODE_LOST, now)
    if now - since >= graces.other:
        what = "phase Unknown" if phase == "Unknown" else "not Ready"
        why = f"node lost: the pod has been {what} for {now - since:.0f}s"
        return Verdict(AttemptState.FAILED, why, counts=False)
    return Verdict(AttemptState.RUNNING)


def _pending(
    pod: Mapping[str, Any],
    main: Mapping[str, Any],
    tracking: Tracking,
    now: float,
    pending_timeout: float,
    graces: Graces,
) -> Verdict:
    waiting = (main.get("state") or {}).get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    message = str(waiting.get("message") or "")
    image = main.get("image") or _image(pod)
    key = "pull" if reason in PULL_ERRORS else reason
    # Image pulls alternate between errors and retries: the grace runs from the first error.
    since = tracking.waiting_since.setdefault(key, now) if reason not in NORMAL_WAITING else now
    if reason == "InvalidImageName":
        return Verdict(AttemptState.FAILED, f"InvalidImageName: image {image!r}: {message}")
    if reason in PULL_ERRORS and now - since >= graces.pull:
        return Verdict(AttemptState.FAILED, f"{reason}: cannot pull image {image!r}: {message}")
    if reason in CONFIG_ERRORS and now - since >= graces.config:
        return Verdict(AttemptState.FAILED, f"{reason}: {message}")
    known = PULL_ERRORS + CONFIG_ERRORS + NORMAL_WAITING + ("InvalidImageName",)
    if reason not in known and now - since >= graces.other:
        return Verdict(AttemptState.FAILED, f"{reason}: {message}".rstrip(": "))
    scheduled = _condition(pod, "PodScheduled")
    pending_for = now - tracking.first_seen
    if scheduled and scheduled.get("status") == "False":
        why = f"Unschedulable: {scheduled.get('message') or scheduled.get('reason') or ''}"
        if pending_for >= pending_timeout:
            return Verdict(AttemptState.FAILED, f"{why} (pending for {pending_for:.0f}s)")
        return Verdict(AttemptState.PENDING, why)
    if pending_for >= pending_timeout:
        detail = f": {reason} {message}".rstrip() if reason else ""
        return Verdict(AttemptState.FAILED, f"pending for {pending_for:.0f}s{detail}")
    return Verdict(AttemptState.PENDING, f"{reason}: {message}".rstrip(": ") if reason else "")


def _image(pod: Mapping[str, Any]) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER:
            return str(container.get("image") or "")
    return ""


def next_deadline(
    tracking: Tracking, pending_timeout: float, graces: Graces, pending: bool = True
) -> float:
    """When a pod must be looked at again even if nothing about it changes."""
    times = [tracking.first_seen + pending_timeout] if pending else [math.inf]
    for key, since in tracking.waiting_since.items():
        grace = graces.pull if key == "pull" else graces.config if key in CONFIG_ERRORS else 0
        times.append(since + (grace or graces.other))
    return min(times)
