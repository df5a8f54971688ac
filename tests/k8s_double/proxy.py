"""The API server's proxy to a Service: `/api/v1/namespaces/<ns>/services/[scheme:]<name>[:<port>]/proxy/<path>`
forwards the request to a ready pod behind the Service (round robin), at the pod IP and the
Service port's target port, and answers with the pod's response."""

from __future__ import annotations

import http.client
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.k8s_double.kubelet import container_port

if TYPE_CHECKING:
    from tests.k8s_double.cluster import ApiError, Cluster

FORWARDED_HEADERS = ("content-type", "accept")
_TURNS = itertools.count()


@dataclass(frozen=True)
class Forwarded:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _service_port(service: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    from tests.k8s_double.cluster import ApiError

    ports = service["spec"].get("ports") or []
    for port in ports:
        if wanted is None and len(ports) == 1 or wanted in (str(port.get("port")), port.get("name")):
            return port
    raise ApiError(503, "ServiceUnavailable", f'no service port {wanted!r} found for service '
                                              f'"{service["metadata"]["name"]}"')


def _endpoints(cluster: Cluster, namespace: str, service: dict[str, Any]) -> list[dict[str, Any]]:
    wanted = ",".join(f"{k}={v}" for k, v in (service["spec"].get("selector") or {}).items())
    return [p for p in cluster.list_pods(namespace, wanted) if p["status"].get("podIP")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def forward(cluster: Cluster, namespace: str, target: str, method: str, path: str, body: bytes,
            headers: dict[str, str]) -> Forwarded:
    """Send the request to one ready endpoint of Service `target` (`name` or `name:port`)."""
    from tests.k8s_double.cluster import ApiError

    parts = target.split(":")
    if len(parts) == 3:  # scheme:name:port
        parts = parts[1:]
    name, port_name = parts[0], (parts[1] if len(parts) > 1 else None)
    service = cluster.read_object("services", namespace, name)
    port = _service_port(service, port_name)
    pods = _endpoints(cluster, namespace, service)
    if not pods:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    pod = pods[next(_TURNS) % len(pods)]
    container = pod["spec"]["containers"][0]
    target_port = container_port(container, port.get("targetPort", port["port"]))
    address = pod["status"]["podIP"]
    connection = http.client.HTTPConnection(address, target_port, timeout=60)
    try:
        connection.request(method, path or "/", body=body or None,
                           headers={k: v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS})
        response = connection.getresponse()
        return Forwarded(response.status, response.getheaders(), response.read())
    except OSError as exc:
        raise _unreachable(address, target_port, exc) from exc
    finally:
        connection.close()


def _unreachable(address: str, port: int, exc: OSError) -> ApiError:
    from tests.k8s_double.cluster import ApiError

    return ApiError(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {address}:{port}: {exc}")
