"""`kflow deploy`: RBAC and a CronJob that pass the Kubernetes schemas, the project bundle
on S3 (content-addressed), `kflow run-bundle` (the pod's command), and bad input."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helpers import kflow, write_project
from tests.storage.s3server import S3Server

VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

PROJECT = """
[project]
name = "sales"
storage = "s3://BUCKET/demo"

[tasks.count]
inputs = ["inputs/raw.csv", "count.py"]
command = ["python", "count.py", "inputs/raw.csv", "{output}"]
outputs = ["{root}/count.txt"]

[profiles.cluster]
executor = "kubernetes"
namespace = "kflow"
image = "python:3.12-slim"
"""

COUNT = """
import sys

import fsspec

with open(sys.argv[1]) as lines, fsspec.open(sys.argv[2], "w") as out:
    out.write(str(len(lines.readlines())))
"""


@pytest.fixture
def project(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    folder = tmp_path / "project"
    write_project(
        folder,
        PROJECT.replace("BUCKET", s3_bucket),
        **{
            "inputs__raw.csv": "a\nb\nc\n",
            "count.py": COUNT,
            "notes.txt": "not part of the project\n",
        },
    )
    return folder


def _objects(text: str) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in yaml.safe_load_all(text) if o}


def _bundle(s3: S3Server, url: str) -> bytes:
    bucket, key = url.removeprefix("s3://").split("/", 1)
    data: bytes = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_deploy_prints_least_rbac_and_a_cronjob_valid_for_1_30_and_the_newest(
    project: Path, s3_server: S3Server
) -> None:
    result = kflow(
        "deploy", "-C", project, "--profile", "cluster", "--schedule", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--image", "ghcr.io/example/kflow:1", "count",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    objects = _objects(result.stdout)
    assert set(objects) == {
        "ServiceAccount/kflow-runner",
        "ServiceAccount/kflow-task",
        "Role/kflow-runner",
        "RoleBinding/kflow-runner",
        "CronJob/kflow-sales",
    }
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "kflow"
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)

    typo = {**objects["CronJob/kflow-sales"]}
    typo["spec"] = {**typo["spec"], "startingDeadlineSecond": 60}
    with pytest.raises(kubernetes_validate.ValidationError):  # strict: the check is real
        kubernetes_validate.validate(typo, VERSIONS[0], strict=True)

    rules = objects["Role/kflow-runner"]["rules"]
    granted = {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert {r for _, r, _ in granted} == {"pods", "pods/log"}  # nothing on Secrets
    assert ("", "pods/log", "get") in granted and ("", "pods", "create") in granted
    assert objects["ServiceAccount/kflow-task"]["automountServiceAccountToken"] is False
    binding = objects["RoleBinding/kflow-runner"]
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kflow-runner", "namespace": "kflow"}
    ]

    spec = objects["CronJob/kflow-sales"]["spec"]
    assert spec["schedule"] == "30 2 * * *" and spec["timeZone"] == "Europe/Berlin"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1 and job["activeDeadlineSeconds"] > 0
    policy = job["podFailurePolicy"]["rules"]
    rules_by_action = [(r["action"], r.get("onExitCodes", {}).get("values")) for r in policy]
    assert ("FailJob", [1, 2, 3]) in rules_by_action and ("Count", [4]) in rules_by_action
    assert job["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "kflow-runner"
    assert pod["terminationGracePeriodSeconds"] >= 60
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/example/kflow:1"
    assert container["envFrom"] == [{"secretRef": {"name": "kflow-storage"}}]
    assert "env" not in container or all("AWS" not in e["name"] for e in container["env"])

    command = container["command"]
    assert command[:2] == ["kflow", "run-bundle"]
    url, sha = command[2], command[command.index("--sha256") + 1]
    assert command[-3:] == ["--profile", "cluster", "count"]
    data = _bundle(s3_server, url)
    assert hashlib.sha256(data).hexdigest() == sha and sha in url
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["count.py", "inputs/raw.csv", "kflow.toml"]


def test_the_bundle_is_content_addressed(project: Path) -> None:
    def deploy() -> str:
        result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1")
        assert result.exit_code == 0, result.output
        (cron,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "CronJob"]
        return _command(cron)[2]

    first = deploy()
    assert deploy() == first  # same definitions, same bundle
    (project / "inputs/raw.csv").write_text("a\n")
    assert deploy() != first


def test_deploy_writes_files_with_o(project: Path) -> None:
    out = project.parent / "manifests"
    result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["cronjob.yaml", "rbac.yaml"]
    assert "CronJob" in (out / "cronjob.yaml").read_text()


def _command(cron: dict[str, Any]) -> list[str]:
    command: list[str] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    return command


def _run_bundle(url: str, sha: str, into: Path) -> subprocess.CompletedProcess[str]:
    argv = ["run-bundle", url, "--sha256", sha, "--into", str(into), "count"]
    return subprocess.run(
        [sys.executable, "-m", "kflow", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_run_bundle_fetches_checks_the_hash_and_builds(
    project: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1")
    (cron,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "CronJob"]
    command = _command(cron)
    url, sha = command[2], command[command.index("--sha256") + 1]

    tampered = _run_bundle(url, "0" * 64, project.parent / "bad")
    assert tampered.returncode == 2
    assert "expected " + "0" * 64 in tampered.stderr
    assert not (project.parent / "bad").exists()

    built = _run_bundle(url, sha, project.parent / "work")
    assert built.returncode == 0, built.stderr
    count = s3_server.client().get_object(Bucket=s3_bucket, Key="demo/count.txt")
    assert count["Body"].read() == b"3"
    assert (project.parent / "work/kflow.toml").exists()
    assert not (project.parent / "work/notes.txt").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--schedule", "61 * * * *"], "minute: 61 is out of range"),
        (["--schedule", "* * *"], "3 fields, expected 5"),
        (["--schedule", "CRON_TZ=UTC 0 0 * * *"], "give it with --timezone"),
        (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus'"),
        (["--timezone", "localtime"], "--timezone 'localtime': names the host's zone"),
        (["--timezone", "posixrules"], "--timezone 'posixrules': names the host's zone"),
        (["--timezone", "right/UTC"], "not an IANA time zone (the API server refuses it)"),
        (["--timezone", "posix/Europe/Berlin"], "not an IANA time zone"),
        (["--timezone", "zone1970.tab"], "not a time zone the IANA database knows"),
        (["--image", "host:99999999/k"], "registry port 99999999 is out of range 1-65535"),
        (["--image", "host:0/k:1"], "registry port 0 is out of range"),
        (["--name", "k" * 53], "is 53 characters, Kubernetes allows 52"),
        (["--name", "Bad_Name"], "not a valid Kubernetes name"),
        (["--no-image"], "no image"),
        (["--image", "img:1 --x"], "--image 'img:1 --x': not an image reference"),
        (["--image", "ghcr.io/Example/kflow:1"], "the repository must be lower-case"),
        (["--image", "kflow:"], "--image 'kflow:': not an image reference (empty tag)"),
        (["--schedule", "0 2 30 2 *"], "'0 2 30 2 *' never fires"),  # February 30
        (["--schedule", "0 0 31 4,6,9,11 *"], "never fires"),
        (["--profile", "local"], "not reachable from the cluster"),
        (["--profile", "memory"], "could never see it"),  # refused for any command
    ],
)
def test_bad_deploy_input_is_exit_2_and_uploads_nothing(
    project: Path, s3_server: S3Server, s3_bucket: str, args: list[str], says: str
) -> None:
    with (project / "kflow.toml").open("a") as toml:
        toml.write('\n[profiles.local]\nexecutor = "kubernetes"\nstorage = "file://./data"\n')
        if "memory" in args:
            toml.write('\n[profiles.memory]\nexecutor = "kubernetes"\nstorage = "memory://x"\n')
    image = [] if "--no-image" in args or "--image" in args else ["--image", "k:1"]
    given = [a for a in args if a != "--no-image"]
    profile = [] if "--profile" in given else ["--profile", "cluster"]
    out = project.parent / "out"
    result = kflow("deploy", "-C", project, *profile, *image, *given, "-o", out)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert len(result.stderr.strip().splitlines()) <= 2
    assert not out.exists()
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)
    assert listed.get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("image", "schedule"),
    [
        ("localhost:5000/kflow", "0 0 29 2 *"),  # a leap day: fires every four years
        ("ghcr.io/example/kflow:1.2-rc_1", "0 0 30 2 1"),  # or on February's Mondays
        ("MyRegistry.example:443/team/kflow@sha256:" + "a" * 64, "@weekly"),
    ],
)
def test_image_references_and_schedules_the_cluster_accepts_are_deployed(
    project: Path, image: str, schedule: str
) -> None:
    result = kflow(
        "deploy", "-C", project, "--profile", "cluster", "--image", image, "--schedule", schedule
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (cron,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "CronJob"]
    assert cron["spec"]["schedule"] == schedule
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == image


def test_a_long_project_name_needs_a_shorter_cronjob_name(project: Path) -> None:
    toml = project / "kflow.toml"
    toml.write_text(toml.read_text().replace('name = "sales"', f'name = "{"s" * 50}"'))
    result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1")
    assert result.exit_code == 2
    assert "Kubernetes allows 52" in result.output and "--name" in result.output


def _with_inputs(project: Path, inputs: str) -> None:
    toml = project / "kflow.toml"
    old = 'inputs = ["inputs/raw.csv", "count.py"]'
    new = f'inputs = ["inputs/raw.csv", "count.py", {inputs}]'
    toml.write_text(toml.read_text().replace(old, new))


def test_folder_and_glob_inputs_ship_with_their_files(project: Path, s3_server: S3Server) -> None:
    write_project(
        project,
        None,
        **{
            "libdir__a.py": "A = 1\n",
            "libdir__deep__b.py": "B = 2\n",
            "libdir__deep__more__c.txt": "c\n",
            "libdir____pycache____a.cpython-311.pyc": "x",
            "sql__one.sql": "select 1;\n",
            "sql__more__two.sql": "select 2;\n",
            "sql__more__readme.md": "not matched\n",
            "data__big.bin": "not an input\n",
        },
    )
    (project / "linked.txt").symlink_to("libdir/a.py")  # inside: its content ships
    _with_inputs(project, '"libdir", "sql/**/*.sql", "linked.txt"')
    result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1")
    assert result.exit_code == 0, result.output
    assert "(9 files," in result.stderr
    (cron,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "CronJob"]
    with tarfile.open(fileobj=io.BytesIO(_bundle(s3_server, _command(cron)[2]))) as tar:
        names = sorted(tar.getnames())
        linked = tar.extractfile("linked.txt")
        assert linked is not None and linked.read() == b"A = 1\n"
    assert names == [
        "count.py",
        "inputs/raw.csv",
        "kflow.toml",
        "libdir/a.py",
        "libdir/deep/b.py",
        "libdir/deep/more/c.txt",
        "linked.txt",
        "sql/more/two.sql",
        "sql/one.sql",
    ]


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        ('"libdir"', "count: source input 'libdir' does not exist"),
        ('"empty"', "count: source input 'empty' does not exist (an empty folder"),
        ('"sql/**/*.sql"', "count: source input 'sql/**/*.sql' matches no file"),
        ('"../outside/o.py"', "source input '../outside/o.py' lies outside the project folder"),
        ('"OUTSIDE/o.py"', "lies outside the project folder"),
        ('"host.txt"', "source input 'host.txt' is a link to"),
        ('"withlink"', "source input 'withlink' is a link to"),
        ('"linkdir/*.py"', "source input 'linkdir/*.py' is a link to"),
        ('"big"', "MiB of definitions and source inputs (at most 64 MiB)"),
    ],
)
def test_a_source_input_the_bundle_cannot_ship_is_exit_2_and_uploads_nothing(
    project: Path, s3_server: S3Server, s3_bucket: str, inputs: str, says: str
) -> None:
    outside = write_project(project.parent / "outside", None, **{"o.py": "o\n"})
    (project / "empty").mkdir()
    (project / "host.txt").symlink_to(outside / "o.py")
    (project / "withlink").mkdir()
    (project / "withlink/ok.txt").write_text("ok\n")
    (project / "withlink/out.txt").symlink_to(outside / "o.py")
    (project / "linkdir").symlink_to(outside)
    (project / "big").mkdir()
    with (project / "big/data.bin").open("wb") as big:
        big.truncate(65 * 2**20)  # sparse: no 65 MiB written
    _with_inputs(project, inputs.replace("OUTSIDE", str(outside)))
    out = project.parent / "out"
    result = kflow("deploy", "-C", project, "--profile", "cluster", "--image", "k:1", "-o", out)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
    assert not out.exists()
    assert s3_server.client().list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


@pytest.mark.parametrize(
    ("schedule", "deadline"),
    [
        ("*/15 * * * *", 9000),  # ten intervals
        ("0,1 2 * * *", 23 * 3600),  # daily, twice a minute apart: a day's deadline, not 10 min
        ("* * * * *", 600),  # at least 10 min
    ],
)
def test_the_job_deadline_follows_the_longest_gap_between_ticks(
    project: Path, schedule: str, deadline: int
) -> None:
    result = kflow(
        "deploy", "-C", project, "--profile", "cluster", "--image", "k:1", "--schedule", schedule
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (cron,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "CronJob"]
    assert cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == deadline


@pytest.mark.parametrize("options", ["{not json", "[1]"])
def test_run_bundle_with_bad_storage_options_is_exit_2(tmp_path: Path, options: str) -> None:
    result = kflow(
        "run-bundle", "s3://b/x.tar.gz", "--sha256", "0" * 64, "--into", tmp_path / "w",
        "--storage-options", options,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--storage-options: not a JSON object" in result.stderr or "not JSON" in result.stderr
    assert not (tmp_path / "w").exists()
