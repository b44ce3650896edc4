"""An emulated Kubernetes API server, scheduler and kubelet for kflow's tests.

See ``tests/kube/README.md``. Entry point: ``KubeEmulator`` (``emulator.py``); fault injection:
``KubeEmulator.faults`` (``faults.py``); RBAC table: ``KubeEmulator.rbac`` (``rbac.py``).
"""

from .emulator import DEFAULT_TOKEN, DEFAULT_USER, KubeEmulator
from .http import RequestRecord

__all__ = ["DEFAULT_TOKEN", "DEFAULT_USER", "KubeEmulator", "RequestRecord"]
