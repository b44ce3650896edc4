"""The pod operations kflow performs, each with the API errors it can meet made kflow's.

Deletes are conditional on the pod's uid (a delete never removes a newer pod
of the same name) and "already gone" counts as done.

A create refused with 403 "exceeded quota" (a ResourceQuota: the namespace's
pods use up its limits) is tried again with capped exponential backoff, since
quota frees up as other pods end, for ``KFLOW_KUBE_QUOTA_WAIT`` seconds (600);
then ``QuotaExceeded``. Any other 403 (RBAC) fails at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kflow.errors import ClusterError
from kflow.executors.kubernetes import manifest as mf
from kflow.executors.kubernetes.api import Api, ApiFailure, env_float

Pod = dict[str, Any]
QUOTA_FIRST_PAUSE = 0.5
QUOTA_MAX_PAUSE = 15.0


class QuotaExceeded(ApiFailure):
    """The namespace's quota stayed exceeded for as long as kflow waits for it."""

    def __init__(self, failure: ApiFailure, waited: float):
        super().__init__(failure.status, failure.reason, failure.message)
        self.waited = waited


def is_quota_exceeded(exc: ApiFailure) -> bool:
    return exc.status == 403 and "exceeded quota" in exc.message


class Pods:
    def __init__(self, api: Api):
        self.api = api
        self.namespace = api.namespace
        self.quota_wait = env_float("KFLOW_KUBE_QUOTA_WAIT", 600.0)

    def create(
        self, pod: Pod, ours: Callable[[Pod], bool], stop: threading.Event | None = None
    ) -> Pod | None:
        """Create ``pod``; on AlreadyExists, take the pod that has its name if ``ours(it)``,
        else delete that one (by uid) and create again. While the quota is exceeded, wait
        and try again; None if ``stop`` is set meanwhile (nothing was created)."""
        name = pod["metadata"]["name"]
        conflicts = 0
        quota_since: float | None = None
        pause = QUOTA_FIRST_PAUSE
        while conflicts < 3:
            try:
                resp = self.api.json(
                    f"create pod {name}", self.api.core.create_namespaced_pod, self.namespace, pod
                )
                created: Pod = resp
                return created
            except ApiFailure as exc:
                if exc.status == 404:
                    raise ClusterError(
                        f"namespace {self.namespace!r} not found on {self.api.cluster.describe()}"
                    ) from None
                if is_quota_exceeded(exc):
                    now = time.monotonic()
                    quota_since = now if quota_since is None else quota_since
                    left = quota_since + self.quota_wait - now
                    if left <= 0:
                        raise QuotaExceeded(exc, now - quota_since) from None
                    wait = min(left, pause * (0.5 + random.random()))
                    if (stop or threading.Event()).wait(wait):
                        return None
                    pause = min(pause * 2, QUOTA_MAX_PAUSE)
                    continue
                if exc.status == 403:
                    raise ClusterError(f"create pod {name}: {exc.message}") from None
                if exc.status != 409:
                    raise
            conflicts += 1
            existing = self.get(name)
            if existing is None:
                continue  # deleted meanwhile: create again
            if ours(existing):
                return existing
            self.delete(name, existing["metadata"]["uid"], 0)
            self.wait_gone(name)
        raise ClusterError(f"create pod {name}: the name stays taken by another pod")

    def adoptable_in_project(self, project: str) -> dict[str, list[Pod]]:
        """kflow pods of this project from any run that a restart can adopt, by instance hash
        (one LIST): those not ended, and those that succeeded while no kflow looked (killed
        meanwhile), so not marked collected: their result is there to take, not to redo."""
        selector = f"{mf.MANAGED_BY}=kflow,{mf.PROJECT_LABEL}={mf.label_value(project)}"
        resp = self.api.json(
            "list pods", self.api.core.list_namespaced_pod, self.namespace, label_selector=selector
        )
        found: dict[str, list[Pod]] = {}
        for pod in resp.get("items") or []:
            meta = pod.get("metadata") or {}
            phase = (pod.get("status") or {}).get("phase")
            labels = meta.get("labels") or {}
            collected = phase == "Succeeded" and mf.COLLECTED_LABEL in labels
            if phase == "Failed" or collected or meta.get("deletionTimestamp"):
                continue
            key = labels.get(mf.INSTANCE_HASH_LABEL)
            if key:
                found.setdefault(key, []).append(pod)
        return found

    def relabel(self, pod: Pod, run_label: str) -> Pod | None:
        """Make an earlier run's pod this run's (its watch selects by the run label)."""
        meta = pod["metadata"]
        old = (meta.get("labels") or {}).get(mf.RUN_LABEL, "")
        if old == run_label:
            return pod
        patch = {
            "metadata": {
                "labels": {mf.RUN_LABEL: run_label},
                "annotations": {mf.ADOPTED_FROM_ANNOTATION: old},
            }
        }
        try:
            resp = self.api.json(
                f"patch pod {meta['name']}",
                self.api.core.patch_namespaced_pod,
                meta["name"],
                self.namespace,
                patch,
            )
        except ApiFailure as exc:
            if exc.status == 404:
                return None
            raise ClusterError(f"adopt pod {meta['name']}: {exc.message}") from None
        patched: Pod = resp
        return patched

    def mark_collected(self, name: str) -> None:
        """Mark a pod kept after its run took its result (gone already is fine)."""
        patch = {"metadata": {"labels": {mf.COLLECTED_LABEL: "true"}}}
        try:
            self.api.json(
                f"patch pod {name}", self.api.core.patch_namespaced_pod, name, self.namespace, patch
            )
        except ApiFailure as exc:
            if exc.status == 404:
                return
            raise ClusterError(f"mark pod {name} collected: {exc.message}") from None

    def get(self, name: str) -> Pod | None:
        try:
            resp = self.api.json(
                f"get pod {name}", self.api.core.read_namespaced_pod, name, self.namespace
            )
        except ApiFailure as exc:
            if exc.status == 404:
                return None
            raise ClusterError(f"get pod {name}: {exc.message}") from None
        pod: Pod = resp
        return pod

    def delete(self, name: str, uid: str, grace: int) -> None:
        """Delete pod ``name`` if it still is the one with ``uid``; gone already is fine."""
        body = {"gracePeriodSeconds": grace, "preconditions": {"uid": uid}}
        try:
            self.api.request(
                f"delete pod {name}",
                self.api.core.delete_namespaced_pod,
                name,
                self.namespace,
                body=body,
            )
        except ApiFailure as exc:
            if exc.status in (404, 409):
                return  # gone, or a newer pod now has the name: not ours to delete
            raise ClusterError(f"delete pod {name}: {exc.message}") from None

    def wait_gone(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get(name) is not None:
            if time.monotonic() > deadline:
                raise ClusterError(f"pod {name} was not deleted within {timeout:g}s")
            time.sleep(0.2)

    def delete_run(self, run_id: str) -> None:
        self.api.request(
            "delete pods",
            self.api.core.delete_collection_namespaced_pod,
            self.namespace,
            label_selector=mf.run_selector(run_id),
            grace_period_seconds=0,
        )
