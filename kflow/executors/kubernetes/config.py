"""Which cluster, as whom, in which namespace: kubeconfig as kubectl reads it, or in-cluster.

Order: the profile's ``kubeconfig`` (relative to the project folder), else
``$KUBECONFIG`` (a list, merged), else ``~/.kube/config``; when none of those
exists and ``KUBERNETES_SERVICE_HOST`` is set, the pod's service account
(in-cluster). The context is the profile's ``context``, else the current one.
The namespace is the profile's, else the context's, else ``default`` (the
client does not apply a context's namespace by itself).

``ClusterConfig.reload`` reads the same source again into a fresh client
``Configuration`` (a rewritten token file or kubeconfig, an exec plugin run
again, the pod's rotated service-account token): ``Api`` calls it on a 401.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kflow.errors import ClusterError
from kflow.model import Profile

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Connections kept for reuse: the watch, the log streams, concurrent creates and deletes
# (the client's default, 5 per CPU, would make it open and drop connections on small hosts).
POOL_SIZE = 32


@dataclass
class ClusterConfig:
    """An isolated ``ApiClient`` (the global default configuration is never touched)."""

    api_client: Any
    namespace: str
    context: str  # "in-cluster" when running in a pod
    server: str
    # A fresh client Configuration read from the same source (None: nothing to re-read).
    reload: Callable[[], Any] | None = field(default=None, repr=False)

    def describe(self) -> str:
        return f"context {self.context!r} ({self.server})"


def kubeconfig_paths(profile: Profile, directory: Path) -> str | None:
    """The kubeconfig file(s) to read, as ``os.pathsep``-separated text, or None for none."""
    if profile.kubeconfig:
        path = Path(os.path.expanduser(profile.kubeconfig))
        return str(path if path.is_absolute() else directory / path)
    env = os.environ.get("KUBECONFIG", "")
    paths = [p for p in env.split(os.pathsep) if p and Path(os.path.expanduser(p)).exists()]
    if paths:
        return os.pathsep.join(os.path.expanduser(p) for p in paths)
    default = Path(os.path.expanduser("~/.kube/config"))
    return str(default) if default.exists() else None


def load_cluster(profile: Profile, directory: Path) -> ClusterConfig:
    """Connect settings for ``profile``; raises ClusterError when there are none usable."""
    import kubernetes.client
    import kubernetes.config

    client: Any = kubernetes.client
    config: Any = kubernetes.config
    paths = kubeconfig_paths(profile, directory)
    if paths is None and os.environ.get("KUBERNETES_SERVICE_HOST"):

        def in_cluster() -> Any:
            configuration = type.__call__(client.Configuration)
            folder = Path(service_account_dir())
            try:
                config.incluster_config.InClusterConfigLoader(
                    token_filename=str(folder / "token"), cert_filename=str(folder / "ca.crt")
                ).load_and_set(configuration)
            except config.ConfigException as exc:
                raise ClusterError(f"in-cluster configuration: {exc}") from None
            return configuration

        configuration = in_cluster()
        configuration.connection_pool_maxsize = POOL_SIZE
        namespace = profile.namespace or _service_account_namespace() or "default"
        api_client = client.ApiClient(configuration)
        return ClusterConfig(api_client, namespace, "in-cluster", configuration.host, in_cluster)
    if paths is None:
        raise ClusterError(
            "no kubeconfig found",
            hint="set KUBECONFIG, the profile's kubeconfig, or create ~/.kube/config",
        )
    if profile.kubeconfig and not Path(paths).exists():
        raise ClusterError(f"kubeconfig {paths} does not exist")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=paths)
        chosen = profile.context or _first_current_context(paths) or (current or {}).get("name")
        entry = next((c for c in contexts if c.get("name") == chosen), None)
        if entry is None:
            names = ", ".join(c.get("name", "?") for c in contexts) or "none"
            raise ClusterError(f"no context {chosen!r} in {paths}", hint=f"contexts: {names}")
    except config.ConfigException as exc:
        raise ClusterError(f"cannot use kubeconfig {paths}: {exc}") from None

    def from_kubeconfig() -> Any:
        configuration = type.__call__(client.Configuration)
        try:
            config.load_kube_config(
                config_file=paths, context=chosen, client_configuration=configuration
            )
        except (config.ConfigException, OSError) as exc:
            raise ClusterError(f"cannot use kubeconfig {paths}: {exc}") from None
        return configuration

    configuration = from_kubeconfig()
    configuration.connection_pool_maxsize = POOL_SIZE
    api_client = client.ApiClient(configuration)
    context_ns = (entry.get("context") or {}).get("namespace")
    namespace = profile.namespace or context_ns or "default"
    return ClusterConfig(api_client, namespace, str(chosen), configuration.host, from_kubeconfig)


def service_account_dir() -> str:
    """Where the pod's token, CA and namespace files are: ``KFLOW_SERVICEACCOUNT_DIR`` if set
    (a sidecar-mounted or projected token elsewhere; tests), else Kubernetes' own place."""
    return os.environ.get("KFLOW_SERVICEACCOUNT_DIR") or SERVICE_ACCOUNT_DIR


def _service_account_namespace() -> str | None:
    try:
        return (Path(service_account_dir()) / "namespace").read_text().strip() or None
    except OSError:
        return None


def _first_current_context(paths: str) -> str | None:
    """kubectl's rule for a ``KUBECONFIG`` list: the first file that sets current-context wins
    (the Python client's merge lets a later file win)."""
    import yaml  # type: ignore[import-untyped]

    for path in paths.split(os.pathsep):
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("current-context"):
            return str(data["current-context"])
    return None
