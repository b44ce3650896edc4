"""A scheduled tick without a cluster: the CronJob's pod command, run as in a pod.

`kflow deploy` uploads the bundle to S3 (moto) and prints the manifests. A "tick" runs
the CronJob container's command as a real process with what a pod has and nothing
more: in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT, a ServiceAccount token
and CA in the folder KFLOW_SERVICEACCOUNT_DIR names), the emulated API server over
HTTPS, the storage Secret's variables (envFrom), no kubeconfig. The emulator lets the
runner's ServiceAccount do only what the generated Role grants (403 otherwise).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Result, kflow, write_project
from tests.kube.emulator import KubeEmulator
from tests.kube.emulator.tls import TlsListener
from tests.kube.test_executor_support import FAST_ENV
from tests.storage.s3server import S3Server, s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]

NAMESPACE = "kflow-test"
RUNNER_USER = f"system:serviceaccount:{NAMESPACE}:kflow-runner"
RUNNER_TOKEN = "runner-token"

# Task pods run as local processes in the emulator's folder: they note each start in
# runs.log, fail while `fail` exists, wait while `hold` exists, then write to S3.
TASK = """
import os, sys, time
import fsspec

n = os.environ["KFLOW_PARAM_N"]
with open("runs.log", "a") as log:
    log.write(n + "\\n")
if os.path.exists("fail"):
    sys.exit(1)
open("started-" + n, "w").close()
while os.path.exists("hold"):
    time.sleep(0.05)
with fsspec.open(sys.argv[1], "w") as out:
    out.write("part " + n)
"""

# The profile every deploy here uses: the tick's pods, in the emulated cluster.
PROFILE = """
[profiles.cluster]
executor = "kubernetes"
namespace = "kflow-test"
jobs = 4
image = "busybox:1.36"
env_from = ["kflow-storage"]
"""

PROJECT = (
    """
[project]
name = "tick"
storage = "s3://BUCKET/demo"

[tasks.part]
matrix = { n = ["1", "2", "3"] }
inputs = ["config.txt"]
command = ["python", "TASK", "{output}"]
outputs = ["{root}/part-{n}.txt"]
"""
    + PROFILE
)


@dataclass
class Cluster:
    """The emulated cluster, its HTTPS listener, the deployed manifests, the pods' folder."""

    kube: KubeEmulator
    tls: TlsListener
    project: Path
    pods: Path
    tmp: Path
    storage_env: dict[str, str]
    bucket: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    ticks: int = 0

    @property
    def container(self) -> dict[str, Any]:
        cron = self.objects["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container: dict[str, Any] = cron["containers"][0]
        return container

    def fill(self, definitions: str) -> str:
        """Definitions with their BUCKET and TASK placeholders filled in."""
        return definitions.replace("BUCKET", self.bucket).replace(
            "TASK", str(self.pods / "task.py")
        )

    def granted(self) -> set[tuple[str, str, str]]:
        return {
            (verb, group, resource)
            for rule in self.objects["Role"]["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    def tick(self) -> subprocess.Popen[str]:
        """The CronJob container's command, as its pod would run it."""
        self.ticks += 1
        command = list(self.container["command"])
        assert command[0] == "kflow"
        into = command.index("--into") + 1
        command[into] = str(self.tmp / f"work-{self.ticks}")  # the pod's emptyDir
        home = self.tmp / "home"  # no ~/.kube/config: only the ServiceAccount
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "LANG": "C.UTF-8",
            **{e["name"]: e["value"] for e in self.container.get("env", [])},
            **self.storage_env,  # envFrom: the Secret's variables
            **self.tls.pod_identity(self.tmp / "serviceaccount", RUNNER_TOKEN, NAMESPACE),
            **FAST_ENV,
            "KFLOW_CANCEL_POLL": "0.2",
        }
        return subprocess.Popen(
            [sys.executable, "-m", "kflow", *command[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(self.tmp),
        )

    def runner_requests(self) -> list[tuple[str, str, str, int]]:
        """(verb, group, resource, status) of every API request the runner made."""
        found = []
        for record in self.kube.requests():
            if record.user != RUNNER_USER or not record.verb:
                continue
            found.append((record.verb, *_resource_of(record.path), record.status))
        return found

    def shipped(self) -> list[str]:
        """The project files the last tick unpacked into its pod's folder (not .kflow/)."""
        work = self.tmp / f"work-{self.ticks}"
        files = (p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file())
        return sorted(p for p in files if not p.startswith(".kflow/"))

    def runs_log(self) -> list[str]:
        log = self.pods / "runs.log"
        return log.read_text().split() if log.exists() else []


def _resource_of(path: str) -> tuple[str, str]:
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest and rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    return group, resource


@pytest.fixture
def cluster(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)  # the laptop's view
    pods = tmp_path / "pods"
    pods.mkdir()
    (pods / "task.py").write_text(TASK)
    project = write_project(
        tmp_path / "project",
        PROJECT.replace("BUCKET", s3_bucket).replace("TASK", str(pods / "task.py")),
        **{"config.txt": "v1\n"},
    )
    kube = KubeEmulator(workdir=pods, time_scale=0.01, schedule_delay=0.05).start()
    tls = TlsListener(kube).start()
    storage_env = s3_server.env()
    kube.create_secret("kflow-storage", storage_env, namespace=NAMESPACE)
    kube.rbac.add_token(RUNNER_TOKEN, RUNNER_USER)
    setup = Cluster(kube, tls, project, pods, tmp_path, storage_env, s3_bucket)
    try:
        deploy(setup, "-C", project, "part")
        # The runner may do what the generated Role grants, and nothing else (real 403s).
        triples = [(v, g, r) for v, g, r in setup.granted()]
        kube.rbac.deny_all_except(triples, user=RUNNER_USER)
        yield setup
    finally:
        tls.stop()
        kube.stop()


def _wait(predicate: Any, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out; the tick said {proc.communicate()}")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _objects(s3: S3Server, bucket: str, prefix: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def deploy(cluster: Cluster, *where: str | Path) -> Result:
    """`kflow deploy WHERE… --profile cluster` on a schedule; it must succeed, and its
    manifests become the cluster's (the next tick runs their command)."""
    deployed = kflow(
        "deploy", *where, "--profile", "cluster", "--image", "kflow:test",
        "--schedule", "*/15 * * * *",
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    cluster.objects = {o["kind"]: o for o in yaml.safe_load_all(deployed.stdout)}
    return deployed


def tick_ok(cluster: Cluster) -> None:
    """One tick, which must succeed."""
    code, out, err = _finish(cluster.tick())
    assert code == 0, err + out


def deploy_and_tick(
    cluster: Cluster, s3: S3Server, bucket: str, *where: str | Path
) -> tuple[Result, list[str]]:
    """Deploy (see ``deploy``), tick once; what the deploy said and the objects the tick
    built under "flows/" (not kflow's own)."""
    deployed = deploy(cluster, *where)
    tick_ok(cluster)
    built = [k for k in _objects(s3, bucket, "flows/") if "/.kflow/" not in k]
    return deployed, built


def test_a_tick_builds_the_project_from_its_bundle_with_pods(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str
) -> None:
    tick_ok(cluster)
    assert _objects(s3_server, s3_bucket, "demo/part-") == [
        "demo/part-1.txt",
        "demo/part-2.txt",
        "demo/part-3.txt",
    ]
    assert sorted(cluster.runs_log()) == ["1", "2", "3"]
    assert cluster.kube.pods(NAMESPACE, "app.kubernetes.io/managed-by=kflow") == []
    requests = cluster.runner_requests()  # the token from the ServiceAccount folder, over TLS
    assert ("create", "", "pods", 201) in requests
    denied = [r for r in requests if r[3] == 403]
    assert denied == []
    runs = kflow("runs", "-C", cluster.project, "--profile", "cluster")  # from the laptop
    assert "succeeded" in runs.stdout and "3 succeeded" in runs.stdout
    # A second tick finds everything up to date.
    tick_ok(cluster)
    assert sorted(cluster.runs_log()) == ["1", "2", "3"]


def test_two_overlapping_ticks_run_each_instance_once(cluster: Cluster) -> None:
    (cluster.pods / "hold").touch()
    first = cluster.tick()
    _wait(lambda: len(list(cluster.pods.glob("started-*"))) == 3, first)
    second = cluster.tick()  # "about once": Forbid may still overlap; leases make it right
    assert second.stdout is not None
    waiting = [second.stdout.readline() for _ in range(4)]  # the run line, then 3 waiting lines
    assert all(" waiting part[n=" in line for line in waiting[1:]), waiting
    (cluster.pods / "hold").unlink()
    for proc in (first, second):
        code, out, err = _finish(proc)
        assert code == 0, err + out
    assert sorted(cluster.runs_log()) == ["1", "2", "3"]


def test_cancel_from_the_laptop_stops_a_tick(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str
) -> None:
    (cluster.pods / "hold").touch()
    proc = cluster.tick()
    _wait(lambda: len(list(cluster.pods.glob("started-*"))) == 3, proc)
    going = kflow("runs", "--running", "-C", cluster.project, "--profile", "cluster")
    assert "running" in going.stdout, going.output
    asked = kflow("cancel", "latest", "-C", cluster.project, "--profile", "cluster")
    assert asked.exit_code == 0, asked.output
    code, out, err = _finish(proc)
    assert code == 130, err + out
    assert "cancelled" in err
    assert cluster.kube.pods(NAMESPACE, "app.kubernetes.io/managed-by=kflow") == []
    assert cluster.kube.running_processes() == []
    assert _objects(s3_server, s3_bucket, "demo/part-") == []
    runs = kflow("runs", "-C", cluster.project, "--profile", "cluster")
    assert "cancelled" in runs.stdout


def test_the_runner_needs_exactly_what_its_role_grants(cluster: Cluster) -> None:
    # 1. Every task fails: its pods are kept for debugging (pod_cleanup = on-success).
    (cluster.pods / "fail").touch()
    code, _, err = _finish(cluster.tick())
    assert code == 1, err
    # 2. Fixed: the next tick meets the kept pods' names (409), looks at them and replaces
    #    them; the tasks are held running, and the tick is killed outright (kill -9).
    (cluster.pods / "fail").unlink()
    (cluster.pods / "hold").touch()
    killed = cluster.tick()
    _wait(lambda: len(list(cluster.pods.glob("started-*"))) == 3, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    # 3. The next tick adopts the running pods; it is cancelled from the laptop.
    adopting = cluster.tick()
    _wait(lambda: cluster.kube.count(method="PATCH") >= 3, adopting)
    assert kflow("cancel", "latest", "-C", cluster.project, "--profile", "cluster").exit_code == 0
    code, _, err = _finish(adopting)
    assert code == 130, err

    requests = cluster.runner_requests()
    assert [r for r in requests if r[3] == 403] == [], "the runner needed more than its Role"
    used = {(verb, group, resource) for verb, group, resource, _ in requests}
    assert used - cluster.granted() == set()
    assert cluster.granted() - used == set(), "the Role grants what the runner never uses"


# A definition file of another name, which includes a Python file from a folder below.
FLOWS = (
    """
[project]
name = "flows"
storage = "s3://BUCKET/flows"
include = ["pipelines/*.py"]

[tasks.part]
matrix = { n = ["1", "2"] }
command = ["python", "TASK", "{output}"]
outputs = ["{root}/part-{n}.txt"]
"""
    + PROFILE
)

EXTRA = """
from kflow import task

task(
    "extra",
    requires=["part"],
    command=["python", "TASK", "{output}"],
    env={"KFLOW_PARAM_N": "extra"},
    outputs=["{root}/extra.txt"],
)
"""


def test_a_definition_file_of_another_name_and_its_includes_build_in_a_tick(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str
) -> None:
    folder = write_project(
        cluster.tmp / "flows",
        None,
        **{"flows.toml": cluster.fill(FLOWS), "pipelines__extra.py": cluster.fill(EXTRA)},
    )
    _, built = deploy_and_tick(cluster, s3_server, s3_bucket, "-f", folder / "flows.toml")
    command = cluster.container["command"]
    assert command[command.index("--file") + 1] == "flows.toml"
    bundle = _objects(s3_server, s3_bucket, "flows/.kflow/deploy/")
    assert len(bundle) == 1, bundle
    assert built == ["flows/extra.txt", "flows/part-1.txt", "flows/part-2.txt"]
    assert sorted(cluster.runs_log()) == ["1", "2", "extra"]
    assert cluster.shipped() == ["flows.toml", "pipelines/extra.py"]  # not the load cache
    runs = kflow("runs", "-f", folder / "flows.toml", "--profile", "cluster")
    assert "3 succeeded" in runs.stdout, runs.output


def test_a_definition_file_outside_the_project_folder_is_exit_2(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str
) -> None:
    outside = cluster.fill(FLOWS).replace("pipelines/*.py", "../shared/*.py")
    folder = write_project(cluster.tmp / "flows", None, **{"flows.toml": outside})
    write_project(cluster.tmp / "shared", None, **{"extra.py": cluster.fill(EXTRA)})
    deployed = kflow(
        "deploy", "-f", folder / "flows.toml", "--profile", "cluster", "--image", "kflow:test"
    )
    assert deployed.exit_code == 2, deployed.output
    assert "extra.py is outside the project folder" in deployed.output
    assert _objects(s3_server, s3_bucket, "flows/") == []


# Source inputs of every kind: a file, a folder (files below it, at any depth), a glob.
SOURCES = FLOWS.replace('include = ["pipelines/*.py"]\n', "").replace(
    'matrix = { n = ["1", "2"] }',
    'matrix = { n = ["1", "2"] }\ninputs = ["config.txt", "libdir", "sql/**/*.sql"]',
)


def test_folder_and_glob_source_inputs_ship_in_the_bundle_and_build_in_a_tick(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str
) -> None:
    folder = write_project(
        cluster.tmp / "sources",
        cluster.fill(SOURCES),
        **{
            "config.txt": "v1\n",
            "libdir__helpers.py": "X = 1\n",
            "libdir__deep__more.py": "Y = 2\n",
            "sql__a.sql": "select 1;\n",
            "sql__daily__b.sql": "select 2;\n",
            "sql__daily__notes.md": "not matched\n",
        },
    )
    _, built = deploy_and_tick(cluster, s3_server, s3_bucket, "-C", folder)
    assert built == ["flows/part-1.txt", "flows/part-2.txt"]
    assert cluster.shipped() == [
        "config.txt",
        "kflow.toml",
        "libdir/deep/more.py",
        "libdir/helpers.py",
        "sql/a.sql",
        "sql/daily/b.sql",
    ]
    # The next tick unpacks the same inputs again: nothing changed, nothing runs.
    tick_ok(cluster)
    assert sorted(cluster.runs_log()) == ["1", "2"]


def test_the_bundle_is_fetched_with_the_profiles_storage_options(
    cluster: Cluster, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MinIO-style: the endpoint is in the profile only, not in the environment (nor in the
    # storage Secret); inline credentials are not copied into the manifests.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    cluster.storage_env = {k: v for k, v in cluster.storage_env.items() if k != "AWS_ENDPOINT_URL"}
    endpoint = s3_server.endpoint_url
    options = (
        f'storage_options = {{ endpoint_url = "{endpoint}", key = "inline-key", '
        'secret = "inline-secret" }'
    )
    toml = FLOWS.replace('include = ["pipelines/*.py"]\n', "").replace(
        'env_from = ["kflow-storage"]', f'env_from = ["kflow-storage"]\n{options}'
    )
    folder = write_project(cluster.tmp / "minio", cluster.fill(toml))
    deployed, built = deploy_and_tick(cluster, s3_server, s3_bucket, "-C", folder)
    assert "inline-" not in deployed.stdout
    assert "storage_options key, secret not written into the CronJob" in deployed.stderr
    command = cluster.container["command"]
    assert command[command.index("--storage-options") + 1] == f'{{"endpoint_url":"{endpoint}"}}'
    assert built == ["flows/part-1.txt", "flows/part-2.txt"]
