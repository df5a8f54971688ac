"""Reach a serving app: at a URL, or through a Kubernetes Service by the API server's proxy.

The proxy (`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/...`) routes to a ready pod
behind the Service exactly as in-cluster clients are routed, and needs nothing but the
kubeconfig the deploy already uses: no DNS, ingress or port-forward from the Airflow worker.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]  # names in lower case

    @classmethod
    def of(cls, status: int, body: bytes, headers: Any) -> Answer:
        return cls(status, body, {str(k).lower(): str(v) for k, v in dict(headers or {}).items()})

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def text(self, limit: int = 300) -> str:
        return self.body.decode("utf-8", "replace")[:limit]


class Endpoint(Protocol):
    where: str

    def get(self, path: str) -> Answer: ...

    def post_json(self, path: str, payload: Any) -> Answer: ...


@dataclass(frozen=True)
class UrlEndpoint:
    """A serving app at a base URL (a local `skylift serve`, a load balancer, an in-cluster name)."""

    url: str

    @property
    def where(self) -> str:
        return self.url

    def _call(self, request: urllib.request.Request) -> Answer:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
                return Answer.of(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as exc:
            return Answer.of(exc.code, exc.read(), exc.headers)

    def get(self, path: str) -> Answer:
        return self._call(urllib.request.Request(self.url.rstrip("/") + path, method="GET"))

    def post_json(self, path: str, payload: Any) -> Answer:
        return self._call(urllib.request.Request(self.url.rstrip("/") + path, method="POST",
                                                 data=json.dumps(payload).encode(),
                                                 headers={"Content-Type": "application/json"}))


@dataclass(frozen=True)
class ServiceProxyEndpoint:
    """A Service's port reached through the Kubernetes API server (the same credentials as the deploy)."""

    api_client: Any  # kubernetes.client.ApiClient
    namespace: str
    service: str
    port: int

    @property
    def where(self) -> str:
        return f"service {self.namespace}/{self.service}:{self.port} (through the API server's proxy)"

    def _call(self, method: str, path: str, body: Any = None) -> Answer:
        from kubernetes.client.exceptions import ApiException

        resource = f"/api/v1/namespaces/{self.namespace}/services/{self.service}:{self.port}/proxy{path}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.api_client.call_api(resource, method, header_params=headers, body=body,
                                                auth_settings=["BearerToken"], _preload_content=False,
                                                _return_http_data_only=True, _request_timeout=TIMEOUT_SECONDS)
        except ApiException as exc:
            body = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            return Answer.of(exc.status, body, exc.headers)
        return Answer.of(response.status, response.data, response.headers)

    def get(self, path: str) -> Answer:
        return self._call("GET", path)

    def post_json(self, path: str, payload: Any) -> Answer:
        return self._call("POST", path, payload)
