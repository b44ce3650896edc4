"""``KubernetesExecutor``: one pod per attempt, every pod of the run followed by one watch.

``submit`` returns at once: the pod is created by a small pool of threads
(``KFLOW_KUBE_CREATES`` at once, 8; every create still passes the client-side
rate limit, see ``api``), so ready tasks do not wait for one another's round
trips. A create the server refuses fails its attempt through ``wait``, like
any other failure; one that shows the cluster unusable (RBAC, a missing
namespace, unreachable) ends the run from ``wait``. The watch thread turns pod
changes into ``AttemptUpdate``s on a queue that ``wait`` drains. Pending pods
are also looked at on a timer, since a pod stuck in ImagePullBackOff may not
change for minutes.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from kflow.errors import ClusterError, KflowError
from kflow.executors.base import AttemptHandle, AttemptSpec, AttemptState, AttemptUpdate
from kflow.executors.kubernetes import manifest as mf
from kflow.executors.kubernetes.api import Api, ApiFailure, env_float
from kflow.executors.kubernetes.logs import LogStreams
from kflow.executors.kubernetes.pods import Pods, QuotaExceeded
from kflow.executors.kubernetes.status import Graces, Tracking, Verdict, classify, next_deadline
from kflow.executors.kubernetes.watch import WATCH_SECONDS, Pod, RunWatch
from kflow.model import PodCleanup

CANCEL_SLACK = 10.0  # after a cancel's grace, give up waiting for the pod to go


@dataclass
class _Attempt:
    handle: AttemptHandle
    name: str
    uid: str  # "" while the pod is being created
    tracking: Tracking
    created: float
    pending_timeout: float
    state: AttemptState = AttemptState.PENDING
    cancelled: bool = False
    cancel_grace: float = 0.0
    cancel_deadline: float | None = None
    finished: bool = False
    last: Pod = field(default_factory=dict)
    succeeded: bool = False
    stop: threading.Event = field(default_factory=threading.Event)  # abandon the create


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(
        self, api: Api, project: str, graces: Graces | None = None, max_in_flight: int = 0
    ):
        self.api = api
        self.pods = Pods(api)
        self.project = project
        self.namespace = api.namespace
        self.graces = graces or Graces()
        self._updates: queue.Queue[AttemptUpdate] = queue.Queue()
        self._attempts: dict[str, _Attempt] = {}
        # Watch news of a pod that arrived before its create call returned: kept so that
        # _bind does not miss a change the watch will not repeat (the newest per name).
        self._early: dict[str, tuple[str, Pod]] = {}
        self._known_uids: set[str] = set()
        self._lock = threading.RLock()
        self._watch: RunWatch | None = None
        self._run_id: str | None = None
        self._fatal: Exception | None = None
        self._adoptable: dict[str, list[Pod]] | None = None
        self._interrupted = False
        self._slots = threading.BoundedSemaphore(max_in_flight) if max_in_flight > 0 else None
        self._streams = LogStreams(api, int(env_float("KFLOW_KUBE_LOG_STREAMS", 8)))
        self._deleter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kflow-pod-delete")
        self._deletes: list[Future[None]] = []
        creates = max(1, int(env_float("KFLOW_KUBE_CREATES", 8)))
        self._creator = ThreadPoolExecutor(max_workers=creates, thread_name_prefix="kflow-create")

    # -- starting ------------------------------------------------------------------

    def submit(self, spec: AttemptSpec) -> AttemptHandle:
        self._raise_fatal()
        pod = mf.pod_manifest(spec, self.project, self.namespace)
        name = pod["metadata"]["name"]
        self._ensure_watch(spec.run_id)
        if self._slots is not None:
            self._slots.acquire()
        attempt = self._new_attempt(spec, name)
        self._creator.submit(self._create, attempt, pod)
        return attempt.handle

    def _new_attempt(self, spec: AttemptSpec, name: str, pod: Pod | None = None) -> _Attempt:
        """Register an attempt of pod ``name``; with ``pod`` (it exists already), follow it."""
        now = time.monotonic()
        attempt = _Attempt(
            AttemptHandle(name, spec),
            name,
            "",
            Tracking(first_seen=now),
            now,
            spec.instance.task.pending_timeout or math.inf,
        )
        with self._lock:
            self._attempts[attempt.handle.key] = attempt
            if pod is not None:
                self._bind(attempt, pod)
        return attempt

    def _create(self, attempt: _Attempt, pod: Pod) -> None:
        """(A create thread.) Create the attempt's pod and start tracking it."""
        try:
            if attempt.stop.is_set() or self._fatal is not None:
                created = None
            else:
                created = self.pods.create(
                    pod, lambda existing: self._ours(existing, pod), attempt.stop
                )
        except QuotaExceeded as exc:
            reason = (
                f"pod not created: the namespace's quota stayed exceeded for "
                f"{exc.waited:.0f}s (KFLOW_KUBE_QUOTA_WAIT): {exc.message}"
            )
            self._not_created(attempt, Verdict(AttemptState.FAILED, reason))
            return
        except ApiFailure as exc:  # 422 Invalid, a webhook's denial…: the server's word
            reason = f"pod rejected by the API server ({exc.status} {exc.reason}): {exc.message}"
            self._not_created(attempt, Verdict(AttemptState.FAILED, reason))
            return
        except Exception as exc:  # the cluster cannot be used (or a bug): wait raises it
            with self._lock:
                if self._fatal is None:
                    self._fatal = exc
            self._not_created(attempt, Verdict(AttemptState.FAILED, str(exc), counts=False))
            return
        if created is None:
            reason = "cancelled" if attempt.cancelled else "not started"
            self._not_created(attempt, Verdict(AttemptState.FAILED, reason, counts=False))
            return
        with self._lock:
            self._bind(attempt, created)
            cancelled = attempt.cancelled
        if cancelled:  # cancelled while its create was on the way
            with contextlib.suppress(KflowError):
                self.pods.delete(attempt.name, attempt.uid, math.ceil(attempt.cancel_grace))

    def _not_created(self, attempt: _Attempt, verdict: Verdict) -> None:
        with self._lock:
            self._finish(attempt, verdict)

    def _ours(self, existing: Pod, wanted: Pod) -> bool:
        """A lost create response left our pod there, or an earlier run's twin can be adopted."""
        meta, want = existing.get("metadata") or {}, wanted["metadata"]
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        if meta.get("uid") in self._known_uids or meta.get("deletionTimestamp"):
            return False  # an attempt we have already seen finish, or one going away
        same = (
            labels.get(mf.INSTANCE_HASH_LABEL) == want["labels"][mf.INSTANCE_HASH_LABEL]
            and notes.get(mf.FINGERPRINT_ANNOTATION)
            == want["annotations"][mf.FINGERPRINT_ANNOTATION]
        )
        if not same:
            return False
        if labels.get(mf.RUN_LABEL) == want["labels"][mf.RUN_LABEL]:
            return True
        phase = (existing.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return False
        self.pods.relabel(existing, want["labels"][mf.RUN_LABEL])
        return True

    def _track(self, spec: AttemptSpec, pod: Pod) -> AttemptHandle:
        """Follow an adopted pod."""
        return self._new_attempt(spec, pod["metadata"]["name"], pod).handle

    def _bind(self, attempt: _Attempt, pod: Pod) -> None:
        """(Lock held.) The attempt's pod exists: follow it, with any watch news already here."""
        meta = pod["metadata"]
        attempt.uid = meta["uid"]
        attempt.created = time.monotonic()
        attempt.tracking = Tracking(first_seen=attempt.created)  # pending since it exists
        self._known_uids.add(meta["uid"])
        self._observe(attempt, pod)
        kind, early = self._early.pop(meta["name"], ("", pod))
        if early["metadata"].get("uid") == meta["uid"] and _version(early) > _version(pod):
            self._apply(attempt, kind, early)

    def adopt(self, spec: AttemptSpec) -> AttemptHandle | None:
        self._raise_fatal()
        wanted = mf.pod_manifest(spec, self.project, self.namespace)
        if self._adoptable is None:
            self._adoptable = self.pods.adoptable_in_project(self.project)
        candidates = self._adoptable.get(wanted["metadata"]["labels"][mf.INSTANCE_HASH_LABEL], [])
        fp = wanted["metadata"]["annotations"][mf.FINGERPRINT_ANNOTATION]
        for pod in sorted(candidates, key=_attempt_number, reverse=True):
            if (pod["metadata"].get("annotations") or {}).get(mf.FINGERPRINT_ANNOTATION) != fp:
                continue
            self._ensure_watch(spec.run_id)
            candidates.remove(pod)
            adopted = self.pods.relabel(pod, wanted["metadata"]["labels"][mf.RUN_LABEL])
            if adopted is None:
                continue
            if self._slots is not None:
                self._slots.acquire()
            return self._track(spec, adopted)
        return None

    # -- following -------------------------------------------------------------------

    def _ensure_watch(self, run_id: str) -> None:
        if self._watch is not None:
            return
        self._run_id = run_id
        self._watch = RunWatch(
            self.api,
            mf.run_selector(run_id),
            self._on_list,
            self._on_event,
            self._on_fatal,
            int(env_float("KFLOW_KUBE_WATCH_SECONDS", WATCH_SECONDS)),
        )
        self._watch.start()

    def _on_list(self, pods: list[Pod], started: float) -> None:
        with self._lock:
            seen = set()
            for pod in pods:
                seen.add(pod["metadata"]["name"])
                attempt = self._attempts.get(pod["metadata"]["name"])
                if attempt is None or not attempt.uid:
                    self._remember_early("MODIFIED", pod)
                elif attempt.uid == pod["metadata"].get("uid"):
                    self._observe(attempt, pod)
            for attempt in list(self._attempts.values()):
                if attempt.uid and attempt.name not in seen and attempt.created < started:
                    self._gone(attempt)

    def _on_event(self, kind: str, pod: Pod) -> None:
        with self._lock:
            name = pod["metadata"]["name"]
            attempt = self._attempts.get(name)
            if attempt is None or not attempt.uid:  # its create has not returned yet
                self._remember_early(kind, pod)
            elif attempt.uid == pod["metadata"].get("uid"):
                self._apply(attempt, kind, pod)

    def _remember_early(self, kind: str, pod: Pod) -> None:
        """(Lock held.) News of a pod not tracked yet: keep the newest, for ``_bind``."""
        if pod["metadata"].get("uid") in self._known_uids:
            return
        name = pod["metadata"]["name"]
        earlier = self._early.get(name)
        if earlier is None or _version(earlier[1]) <= _version(pod):
            self._early[name] = (kind, pod)

    def _apply(self, attempt: _Attempt, kind: str, pod: Pod) -> None:
        """(Lock held.) One watch event for a tracked attempt."""
        self._observe(attempt, pod)
        if kind == "DELETED":
            self._gone(attempt)

    def _on_fatal(self, error: Exception) -> None:
        if isinstance(error, KflowError):
            self._fatal = error
        else:
            message = getattr(error, "message", str(error))
            self._fatal = ClusterError(f"cannot watch pods: {message}")
        self._updates.put(_WAKE)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _observe(self, attempt: _Attempt, pod: Pod) -> None:
        """(Lock held.) Classify the pod's latest state; queue an update when it changed."""
        if attempt.finished:
            return
        attempt.last = pod
        verdict = classify(
            pod, attempt.tracking, time.monotonic(), attempt.pending_timeout, self.graces
        )
        if attempt.cancelled and verdict.finished:
            verdict = Verdict(AttemptState.FAILED, "cancelled", verdict.exit_code)
        if verdict.finished:
            self._finish(attempt, verdict)
        elif verdict.state is not attempt.state:
            attempt.state = verdict.state
            if verdict.state is AttemptState.RUNNING:
                self._streams.follow(attempt.name)
            self._updates.put(
                AttemptUpdate(
                    attempt.handle, verdict.state, reason=verdict.reason, where=attempt.name
                )
            )

    def _gone(self, attempt: _Attempt) -> None:
        """(Lock held.) The pod no longer exists."""
        if attempt.cancelled:
            verdict = Verdict(AttemptState.FAILED, "cancelled")
        else:
            verdict = Verdict(AttemptState.FAILED, "pod deleted by someone else", counts=False)
        self._finish(attempt, verdict)

    def _finish(self, attempt: _Attempt, verdict: Verdict) -> None:
        if attempt.finished:
            return
        attempt.finished = True
        attempt.state = verdict.state
        attempt.succeeded = verdict.state is AttemptState.SUCCEEDED
        if self._slots is not None:
            self._slots.release()
        self._updates.put(
            AttemptUpdate(
                attempt.handle,
                verdict.state,
                verdict.exit_code,
                verdict.reason,
                counts_as_attempt=verdict.counts,
                where=attempt.name,
            )
        )

    def wait(self, timeout: float) -> list[AttemptUpdate]:
        self._raise_fatal()
        timeout = min(timeout, self._check_timers())
        try:
            first = self._updates.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return []
        updates = [first]
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                break
        self._raise_fatal()
        return [u for u in updates if u is not _WAKE]

    def _check_timers(self) -> float:
        """Re-classify Pending pods whose grace ran out; seconds until the next such moment."""
        now = time.monotonic()
        soonest = math.inf
        with self._lock:
            for attempt in list(self._attempts.values()):
                if attempt.finished:
                    continue
                if attempt.cancel_deadline is not None:
                    if now >= attempt.cancel_deadline:
                        self._finish(attempt, Verdict(AttemptState.FAILED, "cancelled"))
                        continue
                    soonest = min(soonest, attempt.cancel_deadline)
                pending = attempt.state is AttemptState.PENDING
                if attempt.last and (pending or attempt.tracking.waiting_since):
                    due = next_deadline(
                        attempt.tracking, attempt.pending_timeout, self.graces, pending
                    )
                    if now >= due:
                        self._observe(attempt, attempt.last)
                    else:
                        soonest = min(soonest, due)
        return max(0.0, soonest - now)

    # -- after the end -----------------------------------------------------------------

    def logs(self, handle: AttemptHandle) -> bytes:
        attempt = self._attempts.get(handle.key)
        if attempt is None or not attempt.uid:
            return b""  # no pod was made: the attempt's reason says why
        full, partial = self._streams.finished_log(attempt.name)
        if full is not None:
            return full  # followed to the end while it ran: no need to ask again
        try:
            return self.api.request(
                f"get log of pod {attempt.name}",
                self.api.core.read_namespaced_pod_log,
                attempt.name,
                self.namespace,
                container=mf.CONTAINER,
            )
        except (ApiFailure, KflowError) as exc:
            message = getattr(exc, "message", str(exc))
            note = f"kflow: the pod's log is no longer available ({message})"
            if partial:
                return partial + f"\n{note}; above: what was streamed while it ran\n".encode()
            return (note + "\n" + _termination_message(attempt.last)).encode()

    def release(self, handle: AttemptHandle) -> None:
        with self._lock:
            attempt = self._attempts.pop(handle.key, None)
        if attempt is None or not attempt.finished or not attempt.uid:
            return
        policy = handle.spec.instance.task.pod_cleanup
        keep = policy is PodCleanup.NEVER or (
            policy is PodCleanup.ON_SUCCESS and not attempt.succeeded
        )
        # Only a pod that ran to its end is kept for debugging: one still pending or running
        # (a lost node, a pending timeout) could start or go on with the task beside its retry.
        ended = ((attempt.last or {}).get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if keep and ended and not attempt.cancelled:
            # Kept for debugging: marked, so that no later run adopts its result as its own.
            if attempt.succeeded:
                self._deletes.append(self._deleter.submit(self.pods.mark_collected, attempt.name))
            return
        # Off the runner's thread: the log is saved already, nothing waits for the delete.
        self._deletes.append(self._deleter.submit(self.pods.delete, attempt.name, attempt.uid, 0))

    def cancel(self, handle: AttemptHandle, grace: float) -> None:
        with self._lock:
            attempt = self._attempts.get(handle.key)
            if attempt is None or attempt.finished:
                return
            if attempt.cancelled and grace > 0:
                return
            attempt.cancelled = True
            attempt.cancel_grace = grace
            self._interrupted = True
            attempt.cancel_deadline = time.monotonic() + grace + CANCEL_SLACK
            attempt.stop.set()
            uid = attempt.uid
        if not uid:
            return  # its create thread deletes the pod if the create goes through
        # On failure close() tries again by label; the deadline above ends the attempt.
        with contextlib.suppress(KflowError):
            self.pods.delete(attempt.name, uid, math.ceil(grace))

    def suspend(self) -> None:
        return None  # a pod cannot be frozen: a run that takes the lease over adopts it

    def resume(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            for attempt in self._attempts.values():
                attempt.stop.set()  # creates waiting for quota give up
        self._creator.shutdown(wait=True, cancel_futures=True)
        self._streams.close()
        self._deleter.shutdown(wait=True)
        errors = [f.exception() for f in self._deletes if f.exception() is not None]
        try:
            if self._interrupted and self._run_id is not None:
                self.pods.delete_run(self._run_id)
        except KflowError:
            pass
        finally:
            if self._watch is not None:
                self._watch.stop()
            self.api.cluster.api_client.close()
        if errors and isinstance(errors[0], KflowError):
            raise errors[0]  # a succeeded pod could not be deleted: say so (exit 4)


_WAKE = AttemptUpdate(
    AttemptHandle("", None),  # type: ignore[arg-type]
    AttemptState.PENDING,
)


def _attempt_number(pod: Pod) -> int:
    try:
        return int((pod["metadata"].get("labels") or {}).get(mf.ATTEMPT_LABEL, "0"))
    except ValueError:
        return 0


def _termination_message(pod: Pod) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (status.get("state") or {}).get("terminated") or {}
        if term.get("message"):
            return str(term["message"])
    return ""


def graces_from_env() -> Graces:
    """Grace periods, overridable (``KFLOW_KUBE_PULL_GRACE``… in seconds) for tests and tuning."""
    default = Graces()
    return Graces(
        pull=env_float("KFLOW_KUBE_PULL_GRACE", default.pull),
        config=env_float("KFLOW_KUBE_CONFIG_GRACE", default.config),
        other=env_float("KFLOW_KUBE_WAITING_GRACE", default.other),
    )


def _version(pod: Pod) -> int:
    """A pod's resourceVersion as a number (0 when absent), to tell which view is newer."""
    text = str(pod["metadata"].get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0
