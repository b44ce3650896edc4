"""Shared pieces of the executor tests (no tests here): a project whose pods run in its folder.

``cluster_project`` starts a ``KubeEmulator`` whose container processes run in the project
folder (as the local executor's would), writes a kubeconfig for it and a ``kube`` profile
using it. ``run_kflow`` runs the CLI in-process; ``start_kflow`` as a real subprocess.
"""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Result, kflow
from tests.kube.emulator import KubeEmulator
from tests.processes import start_build

# Fast grace periods for tests (production defaults are minutes).
FAST_ENV = {
    "KFLOW_KUBE_PULL_GRACE": "0.3",
    "KFLOW_KUBE_CONFIG_GRACE": "0.3",
    "KFLOW_KUBE_WAITING_GRACE": "0.3",
    "KFLOW_KUBE_RETRY_DEADLINE": "5",
    "KFLOW_KILL_GRACE": "1",
}

PROFILE = """
[profiles.kube]
executor = "kubernetes"
kubeconfig = "kubeconfig"
"""


def gate(name: str = "go") -> str:
    """Shell that waits for the file ``name`` in the project folder.

    A task that must still be running when the test injects a fault waits on this gate,
    which the test opens once the fault is in (``alongside(..., opens=...)`` always opens
    it): a fixed ``sleep`` window can close before a busy machine gets there.
    """
    return f"until [ -e {name} ]; do sleep 0.02; done"


@contextlib.contextmanager
def alongside(action: Callable[[], object], opens: Path | None = None) -> Iterator[None]:
    """Run ``action`` in a thread during the block; then open the gate file ``opens`` (even if
    the action failed, so no task waits on it for long), and fail if the action failed."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)
        finally:
            if opens is not None:
                opens.touch()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=90)
    assert not thread.is_alive(), "the action beside the build did not finish"
    if errors:
        raise errors[0]


def wide_project(name: str, n: int) -> str:
    """A project of ``n`` independent pods, ``cell[n=0]`` … each writing one output."""
    return f"""
[project]
name = "{name}"
storage = "file://./data"

[defaults]
image = "busybox:1.36"

[tasks.cell]
matrix = {{ n = {[str(i) for i in range(n)]} }}
command = ["sh", "-c", "echo {{n}} > {{output}}"]
outputs = ["{{root}}/cell-{{n}}.txt"]
"""


@dataclass
class ClusterProject:
    folder: Path
    emulator: KubeEmulator

    def write(self, toml: str, **files: str) -> None:
        (self.folder / "kflow.toml").write_text(textwrap.dedent(toml) + PROFILE)
        for name, text in files.items():
            (self.folder / name).write_text(textwrap.dedent(text))

    def build(self, *args: str) -> Result:
        return kflow("build", "-C", str(self.folder), "--profile", "kube", *args)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``kflow build`` as a real process (for signals)."""
        return start_build(self.folder, "--profile", "kube", *args, env=FAST_ENV)

    def pods(self, run: str | None = None) -> list[dict[str, object]]:
        selector = "app.kubernetes.io/managed-by=kflow" + (f",kflow.dev/run={run}" if run else "")
        return self.emulator.pods("kflow-test", selector)


@pytest.fixture
def cluster_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[ClusterProject]:
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "project"
    folder.mkdir()
    options: dict[str, object] = {"time_scale": 0.01, "schedule_delay": 0.05}
    marker = request.node.get_closest_marker("kube_emulator")
    if marker is not None:
        options.update(marker.kwargs)
    emulator = KubeEmulator(workdir=folder, **options).start()  # type: ignore[arg-type]
    emulator.write_kubeconfig(folder / "kubeconfig")
    try:
        yield ClusterProject(folder, emulator)
    finally:
        emulator.stop()
    assert not emulator.running_processes()
    assert not emulator.errors, "\n".join(emulator.errors)
