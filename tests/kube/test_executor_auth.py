"""401 Unauthorized: credentials expire (exec-plugin tokens, rotated service-account tokens), so
kflow reads its kubeconfig again once and repeats the request; a second 401 ends the run (exit 4)
with a message naming the context."""

from __future__ import annotations

import sys
import threading

from tests.kube.emulator.emulator import DEFAULT_TOKEN, DEFAULT_USER
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

PROJECT = """
[project]
name = "auth"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.first]
command = ["sh", "-c", "touch started; until [ -f gate ]; do sleep 0.02; done; echo 1 > {output}"]
outputs = ["{root}/first.txt"]

[tasks.second]
requires = ["first"]
command = ["sh", "-c", "cat {input} > {output}"]
outputs = ["{root}/second.txt"]
"""

# An exec credential plugin whose first token has expired by the time it is used.
PLUGIN = """
import json, pathlib
runs = pathlib.Path(__file__).with_name("plugin-runs")
count = len(runs.read_text().splitlines()) if runs.exists() else 0
runs.write_text("run\\n" * (count + 1))
token = "expired-token" if count == 0 else "fresh-token"
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def _retried_after_401(project: ClusterProject) -> None:
    """Every request refused with 401 was made again, and then accepted."""
    records = project.emulator.requests()
    refused = [r for r in records if r.status == 401]
    assert refused, "no request was refused"
    for rec in refused:
        later = [r for r in records if r.t >= rec.t and r.status not in (401, -1)]
        assert any(r.method == rec.method and r.path == rec.path for r in later), rec


def test_a_rotated_token_file_is_read_again_after_a_401(cluster_project: ClusterProject) -> None:
    emulator, folder = cluster_project.emulator, cluster_project.folder
    token_file = folder / "token"
    token_file.write_text(DEFAULT_TOKEN)
    emulator.write_kubeconfig(folder / "kubeconfig", token_file=token_file)
    cluster_project.write(PROJECT)

    def rotate() -> None:
        emulator.wait_for(lambda: (folder / "started").exists(), 30)
        emulator.rbac.revoke_token(DEFAULT_TOKEN)  # the token kflow holds expires...
        emulator.rbac.add_token("rotated-token", DEFAULT_USER)
        token_file.write_text("rotated-token")  # ...and its successor is in the file
        rotated.set()
        (folder / "gate").touch()

    rotated = threading.Event()
    thread = threading.Thread(target=rotate, daemon=True)
    thread.start()
    result = cluster_project.build()
    thread.join(timeout=5)
    assert rotated.is_set()
    assert result.exit_code == 0, result.output
    assert (folder / "data/second.txt").read_text() == "1\n"
    _retried_after_401(cluster_project)
    # the second pod was created with the new token, and nothing was left behind
    (create,) = emulator.requests("POST", r"/pods$", status=201)[1:]
    assert create.headers["authorization"] == "Bearer rotated-token"
    assert cluster_project.pods() == []


def test_an_exec_plugin_is_run_again_after_a_401(cluster_project: ClusterProject) -> None:
    emulator, folder = cluster_project.emulator, cluster_project.folder
    (folder / "plugin.py").write_text(PLUGIN)
    emulator.rbac.add_token("fresh-token", DEFAULT_USER)
    emulator.write_kubeconfig(
        folder / "kubeconfig", exec_command=[sys.executable, str(folder / "plugin.py")]
    )
    cluster_project.write(PROJECT)
    (folder / "gate").touch()
    result = cluster_project.build()
    assert result.exit_code == 0, result.output
    assert (folder / "plugin-runs").read_text() == "run\nrun\n"  # at start, after the 401
    assert emulator.count(status=401) == 1
    _retried_after_401(cluster_project)
    assert cluster_project.pods() == []


def test_a_second_401_ends_the_run_naming_the_context(cluster_project: ClusterProject) -> None:
    emulator = cluster_project.emulator
    emulator.rbac.revoke_token(DEFAULT_TOKEN)  # expired, and the kubeconfig has no other
    cluster_project.write(PROJECT)
    result = cluster_project.build()
    assert result.exit_code == 4, result.output
    assert "unauthorized by context 'kube-emulator'" in result.output
    assert "again after reloading the credentials" in result.output
    # one request, made twice (before and after reading the kubeconfig again), then nothing
    refused = emulator.requests(status=401)
    assert len(refused) == 2 and emulator.count() == 2
    assert refused[0].method == refused[1].method and refused[0].path == refused[1].path
    assert cluster_project.pods() == []
