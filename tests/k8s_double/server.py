"""The REST surface: the core/v1, apps/v1 and autoscaling/v2 paths the kubernetes clients call,
and the API server's proxy to a Service (proxy.py)."""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.k8s_double.cluster import ApiError, Cluster
from tests.k8s_double.proxy import forward

OBJECT_KINDS = {  # path group -> (kind, apiVersion)
    ("apps/v1", "deployments"): ("Deployment", "apps/v1"),
    ("v1", "services"): ("Service", "v1"),
    ("autoscaling/v2", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", "autoscaling/v2"),
}
ROUTE = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[a-z0-9.]+/v[0-9a-z]+))"
    r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<resource>[a-z]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$"
)
PROXY = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/services/(?P<service>[^/]+)/proxy(?P<path>/.*)?$")


def status_body(error: ApiError) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": error.message,
            "reason": error.reason, "code": error.code}


class Handler(BaseHTTPRequestHandler):
    server: KubeServer
    protocol_version = "HTTP/1.0"  # one request per connection; a streamed body ends when it closes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: tests read the pod logs, not the access log

    # ---- plumbing --------------------------------------------------------------------------
    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped following

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        match = ROUTE.match(url.path)
        try:
            if url.path in ("/version", "/version/"):
                self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-skylift-double"})
                return
            proxied = PROXY.match(url.path)
            if proxied is not None:
                self._proxy(method, unquote(proxied["namespace"]), unquote(proxied["service"]),
                            (proxied["path"] or "/") + (f"?{url.query}" if url.query else ""))
                return
            if match is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({url.path})")
            self._route(method, match.groupdict(), query)
        except ApiError as exc:
            self._send(exc.code, status_body(exc))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _proxy(self, method: str, namespace: str, service: str, path: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = forward(self.server.cluster, namespace, service, method, path, body, dict(self.headers.items()))
        self.send_response(answer.status)
        for name, value in answer.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    # ---- routes ----------------------------------------------------------------------------
    def _route(self, method: str, route: dict[str, str | None], query: dict[str, str]) -> None:
        group, resource = route["core"] or route["group"], route["resource"]
        namespace, name, sub = route["namespace"], route["name"], route["sub"]
        cluster = self.server.cluster
        if (group, resource) == ("v1", "nodes") and method == "GET":
            self._send(200, _list("NodeList", "v1", [n.manifest() for n in cluster.nodes]))
        elif (group, resource) == ("v1", "pods"):
            self._pods(method, namespace, name, sub, query)
        elif (group, resource) == ("v1", "events") and method == "GET" and namespace:
            if _flag(query.get("watch")):
                timeout = min(float(query.get("timeoutSeconds") or 30), 30)
                watched = cluster.watch_events(namespace, query.get("fieldSelector"), timeout)
                self._stream((json.dumps(e).encode() + b"\n" for e in watched), "application/json")
            else:
                self._send(200, _list("EventList", "v1", cluster.list_events(namespace, query.get("fieldSelector"))))
        elif (group, resource) in OBJECT_KINDS and namespace:
            self._objects(method, group, resource, namespace, name, query)
        else:
            raise ApiError(404, "NotFound", f"the double does not serve {method} {group}/{resource}")

    def _pods(self, method: str, namespace: str | None, name: str | None, sub: str | None,
              query: dict[str, str]) -> None:
        cluster = self.server.cluster
        if name is None and method == "GET":
            self._send(200, _list("PodList", "v1", cluster.list_pods(namespace, query.get("labelSelector"))))
        elif name is None and method == "POST" and namespace:
            self._send(201, cluster.create_pod(namespace, self._body()))
        elif namespace and name and sub == "log" and method == "GET":
            lines = cluster.pod_log(namespace, name, follow=_flag(query.get("follow")),
                                    timestamps=_flag(query.get("timestamps")),
                                    since_seconds=int(query["sinceSeconds"]) if "sinceSeconds" in query else None)
            first = next(lines, None)  # errors (a waiting container) before the headers go out
            self._stream(_prepend(first, lines), "text/plain")
        elif namespace and name and sub in (None, "status") and method == "GET":
            self._send(200, cluster.read_pod(namespace, name))
        elif namespace and name and sub is None and method == "PATCH":
            self._send(200, cluster.patch_pod(namespace, name, self._body()))
        elif namespace and name and sub is None and method == "DELETE":
            self._send(200, cluster.delete_pod(namespace, name))
        else:
            raise ApiError(405, "MethodNotAllowed", f"the double does not serve {method} on pods/{sub or ''}")

    def _objects(self, method: str, group: str, resource: str, namespace: str, name: str | None,
                 query: dict[str, str]) -> None:
        cluster = self.server.cluster
        kind, api_version = OBJECT_KINDS[(group, resource)]
        if name is None and method == "GET":
            items = cluster.list_objects(resource, namespace, query.get("labelSelector"))
            self._send(200, _list(f"{kind}List", api_version, items))
        elif name is None and method == "POST":
            self._send(201, cluster.create_object(resource, namespace, {"kind": kind, "apiVersion": api_version,
                                                                        **self._body()}))
        elif name and method == "GET":
            self._send(200, cluster.read_object(resource, namespace, name))
        elif name and method in ("PUT", "PATCH"):
            body = self._body()
            if isinstance(body, list):
                raise ApiError(415, "UnsupportedMediaType", "the double takes merge patches, not JSON patches")
            self._send(200, cluster.update_object(resource, namespace, name, body, patch=method == "PATCH"))
        elif name and method == "DELETE":
            cluster.delete_object(resource, namespace, name)
            self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
        else:
            raise ApiError(405, "MethodNotAllowed", f"the double does not serve {method} on {resource}")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _list(kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": "1"}, "items": items}


def _prepend(first, rest):
    if first is not None:
        yield first
        yield from rest


class KubeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.cluster = cluster
