"""Pod status → named outcome, on the status shapes research §3.6 lists (pure, no cluster)."""

from __future__ import annotations

from typing import Any

from kflow.executors.base import AttemptState
from kflow.executors.kubernetes.status import Graces, Tracking, classify

GRACES = Graces(pull=10, config=5, other=20)


def _pod(
    phase: str, state: dict[str, Any] | None = None, limit: str | None = "1Gi", **status: Any
) -> dict[str, Any]:
    resources = {"limits": {"memory": limit}} if limit else {}
    containers = [{"name": "main", "image": "img:1", "state": state or {}}]
    return {
        "metadata": {"name": "p"},
        "spec": {
            "activeDeadlineSeconds": 60,
            "containers": [{"name": "main", "image": "img:1", "resources": resources}],
        },
        "status": {"phase": phase, "containerStatuses": containers, **status},
    }


def _classify(
    pod: dict[str, Any],
    now: float = 0.0,
    tracking: Tracking | None = None,
    pending_timeout: float = 100.0,
) -> Any:
    return classify(pod, tracking or Tracking(first_seen=0.0), now, pending_timeout, GRACES)


def test_oom_is_named_with_the_limit_even_when_the_pod_says_succeeded() -> None:
    term = {"terminated": {"exitCode": 0, "reason": "OOMKilled"}}
    verdict = _classify(_pod("Succeeded", term))
    assert verdict.state is AttemptState.FAILED
    assert verdict.reason == "OOMKilled: out of memory (memory limit 1Gi)"


def test_exit_137_with_a_memory_limit_counts_as_oom() -> None:
    term = {"terminated": {"exitCode": 137, "reason": "Killed"}}
    assert "OOMKilled" in _classify(_pod("Failed", term)).reason


def test_non_zero_exit_and_success() -> None:
    failed = _classify(_pod("Failed", {"terminated": {"exitCode": 3, "reason": "Error"}}))
    assert (failed.state, failed.reason, failed.exit_code) == (
        AttemptState.FAILED,
        "exit code 3",
        3,
    )
    ok = _classify(_pod("Succeeded", {"terminated": {"exitCode": 0, "reason": "Completed"}}))
    assert ok.state is AttemptState.SUCCEEDED


def test_infrastructure_failures_do_not_count_as_attempts() -> None:
    unknown = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}
    for pod in (
        _pod("Failed", unknown, reason="Evicted", message="The node was low on resource: memory."),
        _pod(
            "Failed",
            {"terminated": {"exitCode": 143}},
            reason="Terminated",
            message="Pod was terminated in response to imminent node shutdown.",
        ),
        _pod(
            "Failed",
            {"terminated": {"exitCode": 143, "reason": "Error"}},
            conditions=[
                {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}
            ],
        ),
    ):
        verdict = _classify(pod)
        assert verdict.state is AttemptState.FAILED and verdict.counts is False, verdict


def test_deadline_is_a_timeout() -> None:
    pod = _pod("Failed", reason="DeadlineExceeded", message="Pod was active too long")
    assert _classify(pod).reason == "timed out after 60s (DeadlineExceeded)"


def test_image_pull_errors_fail_after_the_grace_counted_from_the_first_error() -> None:
    tracking = Tracking(first_seen=0.0)
    pulling = _pod("Pending", {"waiting": {"reason": "ErrImagePull", "message": "not found"}})
    backoff = _pod("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}})
    creating = _pod("Pending", {"waiting": {"reason": "ContainerCreating"}})
    assert _classify(pulling, 0, tracking).state is AttemptState.PENDING
    assert _classify(creating, 4, tracking).state is AttemptState.PENDING
    assert _classify(backoff, 9, tracking).state is AttemptState.PENDING
    verdict = _classify(backoff, 10, tracking)
    assert verdict.state is AttemptState.FAILED
    assert verdict.reason == "ImagePullBackOff: cannot pull image 'img:1': Back-off"


def test_invalid_image_fails_at_once_and_a_missing_secret_after_its_grace() -> None:
    invalid = _pod("Pending", {"waiting": {"reason": "InvalidImageName", "message": "bad"}})
    assert _classify(invalid).state is AttemptState.FAILED
    secret = _pod(
        "Pending",
        {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3" not found'}},
    )
    tracking = Tracking(first_seen=0.0)
    assert _classify(secret, 0, tracking).state is AttemptState.PENDING
    assert _classify(secret, 5, tracking).reason == (
        'CreateContainerConfigError: secret "s3" not found'
    )


def test_unschedulable_waits_for_pending_timeout_with_the_scheduler_message() -> None:
    cond = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu.",
        }
    ]
    pod = _pod("Pending", conditions=cond)
    pod["status"]["containerStatuses"] = []
    waiting = _classify(pod, now=50)
    assert waiting.state is AttemptState.PENDING and "Insufficient cpu" in waiting.reason
    failed = _classify(pod, now=100)
    assert failed.state is AttemptState.FAILED
    assert failed.reason.startswith("Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.")


def test_a_pod_being_deleted_by_someone_else_is_not_the_tasks_fault() -> None:
    pod = _pod("Running", {"running": {}})
    pod["metadata"]["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    verdict = _classify(pod)
    assert verdict.state is AttemptState.FAILED and verdict.counts is False
