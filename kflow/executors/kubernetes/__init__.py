"""The Kubernetes executor: one pod per attempt, tracked by one watch per run.

Modules, one job each: ``manifest`` (attempt → pod), ``config`` (kubeconfig,
context, namespace), ``api`` (retries, rate limits, errors), ``watch`` (the
run's LIST + WATCH), ``status`` (pod status → named outcome), ``executor``
(the Executor protocol and attempt tracking), ``pods`` (pod operations),
``logs`` (following running pods' logs), ``core`` (the pod calls, without the
slow generated ``CoreV1Api``), ``doctor`` (`kflow doctor`'s cluster checks),
``cleanup`` (leftover pods). The ``kubernetes`` package is imported only
inside this package, and only when used.

Tuning through the environment (seconds unless said):
``KFLOW_KUBE_PULL_GRACE`` (180; ErrImagePull/ImagePullBackOff before failing),
``KFLOW_KUBE_CONFIG_GRACE`` (30; CreateContainerConfigError),
``KFLOW_KUBE_WAITING_GRACE`` (180; unknown waiting reasons, a node not answering),
``KFLOW_KUBE_QPS``/``KFLOW_KUBE_BURST`` (20/30 creates+deletes per second),
``KFLOW_KUBE_CREATES`` (8 pod creates in flight at once, within QPS/BURST),
``KFLOW_KUBE_MAX_PODS`` (0 = no cap beyond ``-j`` on pods in flight),
``KFLOW_KUBE_LOG_STREAMS`` (8 logs followed at once),
``KFLOW_KUBE_RETRY_DEADLINE`` (30; retrying 429/5xx/connection errors),
``KFLOW_KUBE_QUOTA_WAIT`` (600; retrying a create refused with 403 "exceeded quota"),
``KFLOW_KUBE_WATCH_SECONDS`` (50; one watch request's length).
A 401 reloads the kubeconfig (or the in-cluster token) once and repeats the request.
"""

from __future__ import annotations

from kflow.executors.kubernetes.executor import KubernetesExecutor, graces_from_env
from kflow.model import Project


def make_kubernetes_executor(project: Project) -> KubernetesExecutor:
    """The executor for ``project``'s selected profile (context, namespace, kubeconfig)."""
    from kflow.executors.kubernetes.api import Api, env_float
    from kflow.executors.kubernetes.config import load_cluster

    cluster = load_cluster(project.profile, project.directory)
    max_in_flight = int(env_float("KFLOW_KUBE_MAX_PODS", 0))
    return KubernetesExecutor(Api(cluster), project.name, graces_from_env(), max_in_flight)


__all__ = ["KubernetesExecutor", "make_kubernetes_executor"]
