"""The real kubectl against the emulator over HTTPS: the commands the kind walkthrough
tells users to type (get pods by label, logs, delete pod) on a pod kflow left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kube.emulator.tls import TlsListener
from tests.kube.test_executor_support import ClusterProject, cluster_project

__all__ = ["cluster_project"]

KUBECTL = shutil.which("kubectl")

FAILING = """
[project]
name = "kept"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.bad]
command = ["sh", "-c", "echo the log line kubectl shows; exit 3"]
outputs = ["{root}/bad.txt"]
"""


def _kubectl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(config), "--request-timeout", "30s", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on the PATH")
def test_kubectl_gets_logs_and_deletes_the_pod_kflow_kept(
    cluster_project: ClusterProject, tmp_path: Path
) -> None:
    cluster_project.write(FAILING)
    assert cluster_project.build().exit_code == 1
    (pod,) = cluster_project.pods()
    name = pod["metadata"]["name"]  # type: ignore[index]
    tls = TlsListener(cluster_project.emulator).start()
    try:
        config = tls.write_kubeconfig(tmp_path / "kubeconfig", "test-token", "kflow-test")
        listed = _kubectl(config, "get", "pods", "-l", "app.kubernetes.io/managed-by=kflow")
        assert listed.returncode == 0, listed.stderr
        assert name in listed.stdout and "NAME" in listed.stdout
        assert "Error" not in listed.stderr  # discovery answered for every group

        logs = _kubectl(config, "logs", name)
        assert logs.returncode == 0, logs.stderr
        assert "the log line kubectl shows" in logs.stdout

        deleted = _kubectl(config, "delete", "pod", name)
        assert deleted.returncode == 0, deleted.stderr
        assert f'pod "{name}" deleted' in deleted.stdout
        assert cluster_project.pods() == []
    finally:
        tls.stop()
