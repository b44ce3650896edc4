"""Which cluster and namespace: kubeconfig as kubectl reads it, the profile's choices first."""

from __future__ import annotations

from pathlib import Path

import pytest

from kflow.errors import ClusterError
from kflow.executors.kubernetes.config import load_cluster
from kflow.model import Profile

CONFIG = """apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster: {{server: "http://127.0.0.1:{port}"}}
users:
- name: u
  user: {{token: "t"}}
contexts:
- name: {context}
  context: {{cluster: {cluster}, user: u{namespace}}}
current-context: {context}
"""


def _write(path: Path, context: str, port: int, namespace: str | None = None) -> Path:
    ns = f", namespace: {namespace}" if namespace else ""
    path.write_text(CONFIG.format(cluster=f"c-{context}", context=context, port=port, namespace=ns))
    return path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_the_namespace_comes_from_the_profile_then_the_context_then_default(
    tmp_path: Path,
) -> None:
    with_ns = _write(tmp_path / "a", "ctx", 1001, namespace="team-a")
    without = _write(tmp_path / "b", "ctx", 1001)
    assert load_cluster(Profile(kubeconfig=str(with_ns)), tmp_path).namespace == "team-a"
    profile = Profile(kubeconfig=str(with_ns), namespace="mine")
    assert load_cluster(profile, tmp_path).namespace == "mine"
    assert load_cluster(Profile(kubeconfig=str(without)), tmp_path).namespace == "default"


def test_kubeconfig_lists_merge_and_the_profile_context_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write(tmp_path / "first", "one", 1001, namespace="ns-one")
    second = _write(tmp_path / "second", "two", 1002, namespace="ns-two")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    current = load_cluster(Profile(), tmp_path)
    assert (current.context, current.server, current.namespace) == (
        "one",
        "http://127.0.0.1:1001",
        "ns-one",
    )
    other = load_cluster(Profile(context="two"), tmp_path)
    assert (other.context, other.server, other.namespace) == (
        "two",
        "http://127.0.0.1:1002",
        "ns-two",
    )


def test_a_relative_profile_kubeconfig_is_relative_to_the_project(tmp_path: Path) -> None:
    _write(tmp_path / "kc", "ctx", 1003)
    assert load_cluster(Profile(kubeconfig="kc"), tmp_path).server == "http://127.0.0.1:1003"


def test_an_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "kc", "ctx", 1001)
    with pytest.raises(ClusterError, match=r"no context 'prod'.*contexts: ctx"):
        load_cluster(Profile(kubeconfig=str(path), context="prod"), tmp_path)


def test_no_kubeconfig_at_all_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no kubeconfig found"):
        load_cluster(Profile(), tmp_path)


def test_in_a_pod_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # No token file here: the in-cluster loader is used, and says what is missing.
    with pytest.raises(ClusterError, match="in-cluster configuration"):
        load_cluster(Profile(), tmp_path)
