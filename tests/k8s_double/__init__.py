"""A Kubernetes API test double, in the spirit of moto for S3.

A threaded HTTP server on 127.0.0.1 that answers the REST calls the `kubernetes` client and
`kubernetes_asyncio` make for pods (create, read, status, patch, delete, list by labels, logs with
`follow`), events (list and watch by `involvedObject.name`), nodes, apps/v1 deployments, v1
services, autoscaling/v2 horizontal pod autoscalers, and the API server's proxy to a Service. It
schedules pods onto a given node inventory (resources incl. `nvidia.com/gpu`, node selector and
required node affinity, taints) and runs a bound pod's container command as a local process on a
loopback address of its own, with HTTP readiness probes (kubelet.py). Deployments roll out pods
of their template (controllers.py); a Service's proxy forwards to its ready pods (proxy.py).
Product code reaches it through an ordinary kubeconfig, as it would a cluster:

    with KubeDouble([Node("gpu-a", gpu=1, labels={...})], secrets={...}) as kube:
        monkeypatch.setenv(*kube.connection_env(tmp_path))
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import yaml

from tests.k8s_double.cluster import ApiError, Cluster
from tests.k8s_double.scheduling import Node
from tests.k8s_double.server import KubeServer

__all__ = ["ApiError", "KubeDouble", "Node"]


class KubeDouble:
    def __init__(self, nodes: list[Node], secrets: dict[str, dict[str, str]] | None = None, **cluster: Any) -> None:
        self.cluster = Cluster(nodes, secrets, **cluster)
        self.server = KubeServer(self.cluster)
        self._thread = threading.Thread(target=self.server.serve_forever, name="k8s-double", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> KubeDouble:
        self.cluster.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.cluster.stop()

    def __enter__(self) -> KubeDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self) -> dict[str, Any]:
        """An ordinary kubeconfig: one cluster, one context, no credentials."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "double", "user": {}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "double"}}],
        }

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig()))
        return path

    def connection_env(self, folder: Path, conn_id: str = "kubernetes_default") -> tuple[str, str]:
        """(name, value) of the environment variable defining an Airflow kubernetes connection to this double."""
        path = self.write_kubeconfig(folder / "kubeconfig.yaml")
        value = json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(path)}})
        return f"AIRFLOW_CONN_{conn_id.upper()}", value
