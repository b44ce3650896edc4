"""Fixtures for tests against the emulated Kubernetes cluster (``tests/kube/emulator``).

``kube_emulator``
    A started :class:`tests.kube.emulator.KubeEmulator`, one per test (isolation: fresh store,
    faults, request log; start-up costs ~2 ms). ``time_scale=0.01``: every built-in delay, grace
    period, back-off and ``activeDeadlineSeconds`` lasts 1/100 of its nominal value. Namespaces
    ``default`` and ``kflow-test``; one node ``node-1`` (8 CPU, 32Gi, 110 pods). Container
    processes run in ``kube_emulator.workdir`` (a temp dir; pass ``workdir=`` to
    ``KubeEmulator`` to use a project folder). Parametrise with
    ``@pytest.mark.kube_emulator(time_scale=..., nodes=..., workdir=..., ...)`` - the marker's
    keyword arguments go to ``KubeEmulator``. On teardown every container process is killed and
    the test fails if the emulator recorded an internal error.

``kube_emulator_factory``
    ``make(**options) -> KubeEmulator``: start more emulators (or one with options only known
    inside the test); all are stopped and checked at teardown. ``kube_emulator.workdir = path``
    also works on a running emulator (for processes started afterwards).

``kubeconfig``
    Path of a kubeconfig written for ``kube_emulator`` (token ``test-token``, context
    ``kube-emulator``, namespace ``kflow-test``).

``kube_api_client``
    A ``kubernetes.client.ApiClient`` built with ``config.new_client_from_config(config_file=
    kubeconfig)`` - isolated from the global default configuration. Wrap it:
    ``CoreV1Api(kube_api_client)``.

``core_v1``
    ``kubernetes.client.CoreV1Api(kube_api_client)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.emulator import KubeEmulator

DEFAULT_OPTIONS: dict[str, Any] = {"time_scale": 0.01}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kube_emulator(**options): keyword arguments for the KubeEmulator fixture"
    )


def _stop_and_check(emulator: KubeEmulator) -> None:
    emulator.stop()
    leftovers = emulator.running_processes()
    assert not leftovers, f"container processes survived stop(): {leftovers}"
    assert not emulator.errors, "emulator internal errors:\n" + "\n".join(emulator.errors)


@pytest.fixture
def kube_emulator_factory() -> Iterator[Callable[..., KubeEmulator]]:
    started: list[KubeEmulator] = []

    def make(**options: Any) -> KubeEmulator:
        emulator = KubeEmulator(**{**DEFAULT_OPTIONS, **options}).start()
        started.append(emulator)
        return emulator

    try:
        yield make
    finally:
        for emulator in started:
            _stop_and_check(emulator)


@pytest.fixture
def kube_emulator(request: pytest.FixtureRequest) -> Iterator[KubeEmulator]:
    options = dict(DEFAULT_OPTIONS)
    marker = request.node.get_closest_marker("kube_emulator")
    if marker is not None:
        options.update(marker.kwargs)
    emulator = KubeEmulator(**options).start()
    try:
        yield emulator
    finally:
        _stop_and_check(emulator)


@pytest.fixture
def kubeconfig(kube_emulator: KubeEmulator, tmp_path: Path) -> str:
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_api_client(kubeconfig: str) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=kubeconfig)
    try:
        yield api_client
    finally:
        api_client.close()


@pytest.fixture
def core_v1(kube_api_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_api_client)
