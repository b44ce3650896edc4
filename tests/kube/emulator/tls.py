"""An HTTPS listener for the emulator, and the files a pod's ServiceAccount gives it.

The kubernetes client's in-cluster configuration always speaks ``https://HOST:PORT`` and
checks the server against the ServiceAccount's ``ca.crt``; so a test that runs a command
"as in a pod" needs this: a throwaway CA (``trustme``) signs a certificate for 127.0.0.1,
and a second listener serves the same cluster over TLS. ``pod_identity`` writes the token,
CA and namespace files where ``KFLOW_SERVICEACCOUNT_DIR`` points, and returns the
environment such a pod has (``KUBERNETES_SERVICE_HOST``/``PORT``).
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trustme

from .http import EmulatorServer

if TYPE_CHECKING:
    from .cluster import Cluster
    from .emulator import KubeEmulator


class TlsEmulatorServer(EmulatorServer):
    """The emulator's server behind TLS; the handshake happens on the connection's thread."""

    def __init__(self, cluster: Cluster, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(cluster)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(30)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError):
            self.shutdown_request(request)
            with self._conn_lock:
                self._conn_threads.discard(threading.current_thread())
            return
        super().process_request_thread(request, client_address)


class TlsListener:
    """``https://127.0.0.1:PORT`` for ``emulator``'s cluster, with a CA of its own."""

    def __init__(self, emulator: KubeEmulator) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", "kubernetes.default.svc")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.server = TlsEmulatorServer(emulator.cluster, context)
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="kube-emulator-https",
        )

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> TlsListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_all()
        self.server.server_close()
        self._thread.join(timeout=5)

    def write_ca(self, path: Path) -> Path:
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def pod_identity(self, folder: Path, token: str, namespace: str) -> dict[str, str]:
        """The ServiceAccount files in ``folder`` and the environment of a pod using them."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(token)
        (folder / "namespace").write_text(namespace)
        self.write_ca(folder / "ca.crt")
        return {
            "KUBERNETES_SERVICE_HOST": str(self.host),
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KFLOW_SERVICEACCOUNT_DIR": os.fspath(folder),
        }

    def write_kubeconfig(self, path: Path, token: str, namespace: str) -> Path:
        """A kubeconfig for kubectl: this listener, its CA, a bearer token."""
        ca = self.write_ca(path.with_suffix(".ca.crt"))
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f'clusters:\n- name: emulator\n  cluster: {{server: "{self.url}", '
            f'certificate-authority: "{ca}"}}\n'
            f'users:\n- name: tester\n  user: {{token: "{token}"}}\n'
            "contexts:\n- name: emulator\n"
            f"  context: {{cluster: emulator, user: tester, namespace: {namespace}}}\n"
            "current-context: emulator\n"
        )
        return path
