"""The Kubernetes executor: one pod per attempt, tracked by one watch per run.

Modules, one job each: ``manifest`` (attempt → pod), ``config`` (kubeconfig,
context, namespace), ``api`` (retries, rate limits, errors), ``watch`` (the
run's LIST + WATCH), ``status`` (pod status → named outcome), ``executor``
(the Executor protocol), ``cleanup`` (leftover pods). The ``kubernetes``
package is imported only inside this package, and only when used.
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
