"""examples/kind: every manifest passes the real schemas; the project loads and builds locally."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kflow.load import load_project
from tests.helpers import kflow

KIND = Path(__file__).resolve().parents[2] / "examples" / "kind"
MANIFESTS = sorted(p for p in KIND.glob("*.yaml") if p.name != "kind-cluster.yaml")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_kubernetes(path: Path, version: str) -> None:
    for doc in _documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_kind_config_publishes_minio_where_the_cli_expects_it() -> None:
    (cluster,) = _documents(KIND / "kind-cluster.yaml")
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (mapping,) = cluster["nodes"][0]["extraPortMappings"]
    service = next(d for d in _documents(KIND / "minio.yaml") if d["kind"] == "Service")
    assert mapping["containerPort"] == service["spec"]["ports"][0]["nodePort"]
    assert mapping["hostPort"] == 9000
    secret = _documents(KIND / "storage-secret.yaml")[0]
    assert secret["stringData"]["AWS_ENDPOINT_URL"] == "http://minio.kflow.svc.cluster.local:9000"


def test_the_role_grants_what_doctor_checks() -> None:
    from kflow.executors.kubernetes.doctor import PERMISSIONS

    role = next(d for d in _documents(KIND / "rbac.yaml") if d["kind"] == "Role")
    granted = {
        (verb, group, resource)
        for rule in role["rules"]
        for verb in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for verb, group, resource, sub in PERMISSIONS:
        assert (verb, group, resource + (f"/{sub}" if sub else "")) in granted


def test_the_kind_profile_uses_the_cluster_objects() -> None:
    project = load_project(KIND, profile="kind")
    assert project.profile.executor == "kubernetes"
    assert project.profile.context == "kind-kflow" and project.profile.namespace == "kflow"
    assert project.storage == "s3://kflow/demo"
    assert all(task.env_from == ("kflow-storage",) for task in project.tasks.values())


def test_the_same_project_builds_locally(tmp_path: Path) -> None:
    folder = tmp_path / "kind"
    shutil.copytree(KIND, folder)
    result = kflow("build", "-C", str(folder))
    assert result.exit_code == 0, result.output
    assert (folder / "data/shout-2.txt").read_text() == "HELLO FROM GREET\n"
