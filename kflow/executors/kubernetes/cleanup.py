"""Leftover pods: what `kflow clean --pods` removes."""

from __future__ import annotations

from kflow.errors import ClusterError
from kflow.executors.kubernetes import manifest as mf
from kflow.executors.kubernetes.api import Api, ApiFailure
from kflow.model import Project


def delete_leftover_pods(project: Project, run_id: str | None = None) -> int:
    """Delete the project's kflow pods (only ``run_id``'s if given); returns how many went.

    Deletes are immediate (grace 0) and conditional on each pod's uid, so a pod
    created meanwhile under the same name is left alone.
    """
    from kflow.executors.kubernetes.config import load_cluster

    api = Api(load_cluster(project.profile, project.directory))
    selector = f"{mf.MANAGED_BY}=kflow,{mf.PROJECT_LABEL}={mf.label_value(project.name)}"
    if run_id:
        selector += f",{mf.RUN_LABEL}={mf.label_value(run_id)}"
    try:
        resp = api.json(
            "list pods", api.core.list_namespaced_pod, api.namespace, label_selector=selector
        )
        deleted = 0
        for pod in resp.get("items") or []:
            meta = pod["metadata"]
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            try:
                api.request(
                    f"delete pod {meta['name']}",
                    api.core.delete_namespaced_pod,
                    meta["name"],
                    api.namespace,
                    body=body,
                )
                deleted += 1
            except ApiFailure as exc:
                if exc.status not in (404, 409):
                    raise
        return deleted
    except ApiFailure as exc:
        raise ClusterError(f"cannot delete leftover pods: {exc.message}") from None
    finally:
        api.cluster.api_client.close()
