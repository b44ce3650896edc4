"""The objects `kflow deploy` prints: runner and task ServiceAccounts, the runner's Role and
RoleBinding, and the CronJob whose pod fetches the bundle and builds.

Pure: options in, plain dicts out (the CLI dumps them as YAML). Why each setting is what
it is: see README "Scheduling in the cluster" and research/in-cluster.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kflow.errors import UsageError

RUNNER_ACCOUNT = "kflow-runner"
TASK_ACCOUNT = "kflow-task"
CONTAINER = "kflow"
WORKDIR = "/work"
CRONJOB_NAME_MAX = 52  # the controller appends 11 characters for the Job's name (≤ 63)
# Exactly what the runner's kubernetes executor calls (executors/kubernetes): one pod per
# attempt (create), one watch per run (list, watch), re-attach (get, patch: re-label an
# adopted pod), clean-up (delete, deletecollection), logs. Nothing cluster-wide, no Secrets.
RUNNER_RULES: tuple[dict[str, Any], ...] = (
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete", "deletecollection", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
)
EXIT_RETRIED = 4  # infrastructure unreachable: the Job may try again
EXIT_FINAL = (1, 2, 3)  # a task failed, bad definition, held: another pod would not help
DEFAULT_DEFINITION = "kflow.toml"  # found without -f
GRACE_SECONDS = 120  # SIGTERM → SIGKILL: kflow deletes its pods and writes its record
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Deployment:
    name: str  # the CronJob's
    project: str
    namespace: str | None
    schedule: str
    timezone: str
    interval: int  # seconds between the two closest ticks
    image: str
    profile: str
    targets: tuple[str, ...]
    bundle: str  # its URL on the project's storage
    bundle_sha256: str
    storage_secret: str | None  # envFrom: the storage credentials, by reference
    # the definition file in the bundle (``-f``): what `kflow build` in the pod loads
    definition: str = DEFAULT_DEFINITION
    # seconds of the longest gap between two ticks (0: as ``interval``): the Job's deadline
    longest_interval: int = 0
    # the profile's storage options without credentials: run-bundle fetches with them
    storage_options: Mapping[str, Any] = field(default_factory=dict)


def check_name(name: str, what: str, limit: int) -> str:
    if len(name) > limit:
        raise UsageError(
            f"{what} {name!r} is {len(name)} characters, Kubernetes allows {limit}",
            hint="give a shorter one with --name",
        )
    if not _DNS_LABEL.match(name):
        raise UsageError(
            f"{what} {name!r} is not a valid Kubernetes name",
            hint="lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    return name


def default_name(project: str) -> str:
    """``kflow-PROJECT`` made a DNS-1123 label (checked for length by ``check_name``)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", project.lower()).strip("-")
    return f"kflow-{cleaned}" if cleaned else "kflow"


def label_value(text: str) -> str:
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return value if _LABEL_VALUE.match(value) else "kflow"


def starting_deadline(interval: int) -> int:
    """A tick not started within this is skipped: half the interval (a controller restart
    at tick time still starts it), at most an hour, at least 30 s (the controller syncs
    every 10 s; less may never fire)."""
    return max(30, min(interval // 2, 3600))


def active_deadline(interval: int) -> int:
    """How long one tick may build: ten times the longest gap between ticks, 10 min to
    23 h, so that a stuck runner (an image that never pulls) cannot block a Forbid schedule
    for ever. The longest gap, not the shortest: ``0,1 2 * * *`` is a daily schedule whose
    build has a day, not the minute between its two ticks (Forbid skips the second)."""
    return max(600, min(10 * interval, 23 * 3600))


def _meta(deploy: Deployment, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/managed-by": "kflow",
            "kflow.dev/project": label_value(deploy.project),
        },
    }
    if deploy.namespace:
        meta["namespace"] = deploy.namespace
    return meta


def runner_command(deploy: Deployment) -> list[str]:
    return [
        "kflow",
        "run-bundle",
        deploy.bundle,
        "--sha256",
        deploy.bundle_sha256,
        "--into",
        f"{WORKDIR}/project",
        "--profile",
        deploy.profile,
        *(["--file", deploy.definition] if deploy.definition != DEFAULT_DEFINITION else []),
        *(["--storage-options", _json(deploy.storage_options)] if deploy.storage_options else []),
        *deploy.targets,
    ]


def _json(options: Mapping[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)


def rbac_objects(deploy: Deployment) -> list[dict[str, Any]]:
    runner = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(deploy, RUNNER_ACCOUNT),
    }
    task = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(deploy, TASK_ACCOUNT),
        "automountServiceAccountToken": False,
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(deploy, RUNNER_ACCOUNT),
        "rules": [dict(rule) for rule in RUNNER_RULES],
    }
    subject: dict[str, Any] = {"kind": "ServiceAccount", "name": RUNNER_ACCOUNT}
    if deploy.namespace:
        subject["namespace"] = deploy.namespace
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(deploy, RUNNER_ACCOUNT),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": RUNNER_ACCOUNT,
        },
        "subjects": [subject],
    }
    return [runner, task, role, binding]


def _container(deploy: Deployment) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": deploy.image,
        "command": runner_command(deploy),
        "workingDir": WORKDIR,
        "env": [{"name": "KFLOW_KILL_GRACE", "value": "30"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "volumeMounts": [{"name": "work", "mountPath": WORKDIR}],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if deploy.storage_secret:
        container["envFrom"] = [{"secretRef": {"name": deploy.storage_secret}}]
    return container


def cronjob(deploy: Deployment) -> dict[str, Any]:
    pod_failure_policy = {
        "rules": [
            # an eviction or preemption is nobody's failure: start again, uncounted
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": list(EXIT_FINAL),
                },
            },
            {
                "action": "Count",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [EXIT_RETRIED],
                },
            },
            {  # anything else (killed, 130): do not build again in this tick
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "NotIn",
                    "values": [EXIT_RETRIED],
                },
            },
        ]
    }
    labels = _meta(deploy, deploy.name)["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(deploy, deploy.name),
        "spec": {
            "schedule": deploy.schedule,
            "timeZone": deploy.timezone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline(deploy.interval),
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": active_deadline(
                        deploy.longest_interval or deploy.interval
                    ),
                    "podFailurePolicy": pod_failure_policy,
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "serviceAccountName": RUNNER_ACCOUNT,
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": GRACE_SECONDS,
                            "containers": [_container(deploy)],
                            "volumes": [{"name": "work", "emptyDir": {}}],
                        },
                    },
                },
            },
        },
    }


def render(deploy: Deployment) -> list[dict[str, Any]]:
    """Every object, RBAC first (the CronJob's pod needs its ServiceAccount)."""
    return [*rbac_objects(deploy), cronjob(deploy)]
