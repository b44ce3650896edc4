"""Pod manifests: names, labels, settings from the task, validity against the real schemas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from kflow.errors import DefinitionError
from kflow.executors.base import AttemptSpec
from kflow.executors.kubernetes.manifest import deep_merge, label_value, pod_manifest, pod_name
from kflow.graph import build_graph
from kflow.load import load_project
from kflow.model import Instance
from kflow.run.attempts import task_environment
from kflow.state import fingerprint, fingerprint_parts, instance_key
from tests.helpers import write_project

FULL = """
[project]
name = "My_Project.Analytics"
storage = "s3://bucket/root"

[params.date]
type = "date"
default = "2026-11-24"

[tasks.train_model-v2]
command = ["python", "train.py", "--date", "{date}", "--price", "$(HOME) $5"]
outputs = ["{root}/model-{date}.bin"]
image = "registry.example.com/ml/train:1.2"
env.MODE = "fast"
env.TOKEN = { secret = "api-creds", key = "token" }
env.LEVEL = { config_map = "settings", key = "level" }
env_from = ["s3-creds", "configmap:common"]
resources = { cpu = "2", memory = "4Gi", gpu = 1, limits = { cpu = "4" } }
timeout = "30m"
node_selector = { "node.kubernetes.io/instance-type" = "g5.xlarge" }
tolerations = [
  { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule", toleration_seconds = 60 },
]
service_account = "trainer"
image_pull_policy = "IfNotPresent"
image_pull_secrets = ["regcred"]
volumes = [
  { name = "data", mount_path = "/data", persistent_volume_claim = "datasets", read_only = true },
  { name = "scratch", mount_path = "/scratch", empty_dir = { size_limit = "1Gi" } },
  { name = "conf", mount_path = "/etc/conf", config_map = "settings" },
  { name = "keys", mount_path = "/etc/keys", secret = "api-creds", sub_path = "token" },
]
pod_overrides.metadata = { labels = { team = "ml" } }
pod_overrides.spec = { priorityClassName = "batch", containers = [
  { name = "main", securityContext = { runAsNonRoot = true } },
] }

[tasks.plain]
command = "echo hi > {output}"
outputs = ["{root}/plain.txt"]
image = "busybox:1.36"
"""


def _instances(tmp_path: Path, toml: str = FULL) -> dict[str, Instance]:
    write_project(tmp_path, toml)
    project = load_project(tmp_path)
    graph = build_graph(project, list(project.tasks))
    return {i.task.name: i for i in graph.instances.values()}


RUN = "20261125T031500Z-ab12cd"


def _spec(instance: Instance, attempt: int = 1, run_id: str = RUN) -> AttemptSpec:
    return AttemptSpec(
        run_id=run_id,
        instance=instance,
        attempt=attempt,
        argv=instance.argv,
        env=task_environment(instance, run_id),
        instance_key=instance_key(instance.id),
        fingerprint=fingerprint(fingerprint_parts(instance)),
        timeout=instance.task.timeout,
    )


def _validate(manifest: dict[str, Any]) -> None:
    for version in ("1.30", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.fixture
def full(tmp_path: Path) -> Instance:
    return _instances(tmp_path)["train_model-v2"]


def test_every_generated_manifest_passes_the_real_schemas(tmp_path: Path) -> None:
    for instance in _instances(tmp_path).values():
        for attempt in (1, 2):
            _validate(pod_manifest(_spec(instance, attempt), "My_Project.Analytics", "ns"))


def test_pod_name_is_dns_1123_deterministic_and_distinct_per_attempt(full: Instance) -> None:
    first = pod_manifest(_spec(full), "My_Project.Analytics")["metadata"]["name"]
    again = pod_manifest(_spec(full, run_id="other"), "My_Project.Analytics")["metadata"]["name"]
    second = pod_manifest(_spec(full, 2), "My_Project.Analytics")["metadata"]["name"]
    assert first == again != second
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", first)
    assert first.startswith("my-project-analytics-train-model-v2-")
    long = pod_name("p" * 80, "t" * 90 + "[x=1]", "t" * 90, 1)
    assert len(long) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", long)
    assert pod_name("p" * 80, "t" * 90 + "[x=2]", "t" * 90, 1) != long


def test_labels_select_the_run_and_annotations_carry_the_instance(full: Instance) -> None:
    meta = pod_manifest(_spec(full), "My_Project.Analytics")["metadata"]
    labels, notes = meta["labels"], meta["annotations"]
    assert labels["app.kubernetes.io/managed-by"] == "kflow"
    assert labels["kflow.dev/run"] == "20261125T031500Z-ab12cd"
    assert labels["kflow.dev/task"] == "train_model-v2"
    assert labels["kflow.dev/project"] == "My_Project.Analytics"
    assert labels["kflow.dev/attempt"] == "1"
    assert len(labels["kflow.dev/instance-hash"]) == 16
    assert labels["team"] == "ml"  # from pod_overrides
    assert notes["kflow.dev/instance"] == "train_model-v2[date=2026-11-24]"
    assert notes["kflow.dev/fingerprint"] == fingerprint(fingerprint_parts(full))


def test_label_values_are_made_valid() -> None:
    assert label_value("a b/c[d=1]") == "a-b-c-d-1"
    assert label_value("-_x_-") == "x"
    assert len(label_value("x" * 100)) == 63


def test_pod_settings_come_from_the_task(full: Instance) -> None:
    spec = pod_manifest(_spec(full), "p")["spec"]
    (container,) = spec["containers"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 1800
    assert spec["serviceAccountName"] == "trainer"
    assert spec["automountServiceAccountToken"] is True
    assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "g5.xlarge"}
    assert spec["tolerations"] == [
        {
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoSchedule",
            "tolerationSeconds": 60,
        }
    ]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["priorityClassName"] == "batch"
    assert container["image"] == "registry.example.com/ml/train:1.2"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert container["command"][-1] == "$$(HOME) $$5"  # not expanded by the kubelet
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }


def test_environment_literals_references_and_kflow_variables(full: Instance) -> None:
    container = pod_manifest(_spec(full), "p")["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "api-creds", "key": "token"}}
    assert env["LEVEL"]["valueFrom"] == {"configMapKeyRef": {"name": "settings", "key": "level"}}
    assert env["KFLOW_RUN"]["value"] == "20261125T031500Z-ab12cd"
    assert env["KFLOW_PARAM_DATE"]["value"] == "2026-11-24"
    assert "KFLOW_OUTPUTS" in env and "KFLOW_INPUTS" in env
    assert container["envFrom"] == [
        {"secretRef": {"name": "s3-creds"}},
        {"configMapRef": {"name": "common"}},
    ]


def test_volumes_and_mounts(full: Instance) -> None:
    pod = pod_manifest(_spec(full), "p")
    assert pod["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "conf", "configMap": {"name": "settings"}},
        {"name": "keys", "secret": {"secretName": "api-creds"}},
    ]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/data", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "conf", "mountPath": "/etc/conf"},
        {"name": "keys", "mountPath": "/etc/keys", "subPath": "token"},
    ]


def test_defaults_requests_no_token_and_a_deadline(tmp_path: Path) -> None:
    plain = _instances(tmp_path)["plain"]
    spec = pod_manifest(_spec(plain), "p")["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["activeDeadlineSeconds"] == 7 * 24 * 3600
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert spec["containers"][0]["command"][:2] == ["echo", "hi"]


def test_memory_limit_defaults_to_the_request(tmp_path: Path) -> None:
    memory = 'image = "busybox:1.36"\nresources = { memory = "64Mi" }'
    toml = FULL.replace('image = "busybox:1.36"', memory)
    spec = pod_manifest(_spec(_instances(tmp_path, toml)["plain"]), "p")["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"memory": "64Mi"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('volumes = [{ name = "v", mount_path = "/v" }]', "exactly one of"),
        ('volumes = [{ name = "v", secret = "s" }]', "mount_path"),
        ('env_from = ["vault:x"]', "secret:NAME or configmap:NAME"),
    ],
)
def test_bad_settings_are_definition_errors(tmp_path: Path, setting: str, message: str) -> None:
    toml = FULL.replace('image = "busybox:1.36"', f'image = "busybox:1.36"\n{setting}')
    with pytest.raises(DefinitionError, match=re.escape(message)):
        pod_manifest(_spec(_instances(tmp_path, toml)["plain"]), "p")


def test_a_task_without_image_is_a_definition_error(tmp_path: Path) -> None:
    toml = FULL.replace('image = "busybox:1.36"\n', "")
    with pytest.raises(DefinitionError, match="no image"):
        pod_manifest(_spec(_instances(tmp_path, toml)["plain"]), "p")


def test_deep_merge_merges_tables_and_named_lists_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "items": [{"name": "x", "v": 1}]}
    override = {"a": {"c": [3]}, "items": [{"name": "x", "w": 2}, {"name": "y"}]}
    assert deep_merge(base, override) == {
        "a": {"b": 1, "c": [3]},
        "items": [{"name": "x", "v": 1, "w": 2}, {"name": "y"}],
    }
    assert base["a"] == {"b": 1, "c": [1, 2]}
