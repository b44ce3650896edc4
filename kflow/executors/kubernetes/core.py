"""The few CoreV1 calls kflow makes, sent through the official client's ``ApiClient``.

Authentication, TLS, proxies, serialisation, the error exceptions and the
urllib3 pool are the client's own; only the generated ``CoreV1Api`` is left
out, because importing it takes seconds (kubernetes 37 builds a pydantic
validator for each of its ~600 methods) and kflow needs eight of them.
Method names and keyword arguments match ``CoreV1Api``, so the two are
interchangeable (``Api`` falls back to ``CoreV1Api`` on clients without
``param_serialize``, i.e. before version 37). Every call returns the raw
urllib3 response, as ``CoreV1Api`` does with ``_preload_content=False``.
"""

from __future__ import annotations

from typing import Any

_QUERY = {
    "label_selector": "labelSelector",
    "watch": "watch",
    "resource_version": "resourceVersion",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "timeout_seconds": "timeoutSeconds",
    "dry_run": "dryRun",
    "grace_period_seconds": "gracePeriodSeconds",
    "container": "container",
    "follow": "follow",
}
_PODS = "/api/v1/namespaces/{namespace}/pods"
_POD = "/api/v1/namespaces/{namespace}/pods/{name}"


class Core:
    def __init__(self, api_client: Any):
        self.api_client = api_client

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: Any = None,
        accept: str = "application/json",
        **options: Any,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        timeout = options.pop("_request_timeout", None)
        options.pop("_preload_content", None)
        query = [(_QUERY[k], v) for k, v in options.items() if v is not None]
        headers = {"Accept": accept}
        if method == "PATCH":
            headers["Content-Type"] = "application/strategic-merge-patch+json"
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            path_params=params,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api_client.call_api(*request, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        return resp.response

    def list_namespaced_pod(self, namespace: str, **options: Any) -> Any:
        return self._send("GET", _PODS, {"namespace": namespace}, **options)

    def create_namespaced_pod(self, namespace: str, body: Any, **options: Any) -> Any:
        return self._send("POST", _PODS, {"namespace": namespace}, body, **options)

    def read_namespaced_pod(self, name: str, namespace: str, **options: Any) -> Any:
        return self._send("GET", _POD, {"namespace": namespace, "name": name}, **options)

    def patch_namespaced_pod(self, name: str, namespace: str, body: Any, **options: Any) -> Any:
        return self._send("PATCH", _POD, {"namespace": namespace, "name": name}, body, **options)

    def delete_namespaced_pod(
        self, name: str, namespace: str, body: Any = None, **options: Any
    ) -> Any:
        return self._send("DELETE", _POD, {"namespace": namespace, "name": name}, body, **options)

    def delete_collection_namespaced_pod(self, namespace: str, **options: Any) -> Any:
        return self._send("DELETE", _PODS, {"namespace": namespace}, **options)

    def read_namespaced_pod_log(self, name: str, namespace: str, **options: Any) -> Any:
        path = _POD + "/log"
        params = {"namespace": namespace, "name": name}
        return self._send("GET", path, params, accept="text/plain", **options)

    def read_namespace(self, name: str, **options: Any) -> Any:
        return self._send("GET", "/api/v1/namespaces/{name}", {"name": name}, **options)
