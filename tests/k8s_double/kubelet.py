"""What the double's kubelet does besides running the command: pod IPs, the downward API and
`$(VAR)` expansion in the command, and HTTP readiness/liveness probes.

Pods share this machine's network, so each gets its own loopback address (127.0.0.0/8 routes to
the host on Linux) as its pod IP: two replicas of one Deployment can listen on the same port
when they bind their pod IP, which the downward API (`fieldRef: status.podIP`) tells them.
A probe is an HTTP GET against the pod IP; a readiness probe's verdict is the pod's `Ready`
condition; a liveness probe failing `failureThreshold` times in a row has the container killed
and started again (`restartCount`, a `Killing` event).
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

# Each test process takes its own block of addresses: pytest-xdist workers run doubles side by side,
# and their pods all listen on the same container ports.
_ADDRESSES = itertools.count(os.getpid() % 100_000 * 100)
_ADDRESS_LOCK = threading.Lock()
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


def next_pod_ip() -> str:
    """A fresh loopback address above 127.1.0.0 (never 127.0.0.1, where the test's own servers listen)."""
    with _ADDRESS_LOCK:
        n = next(_ADDRESSES)
    return f"127.{1 + n // 65024 % 254}.{n // 254 % 256}.{n % 254 + 1}"  # 254 * 256 * 254 addresses


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward API's `fieldRef.fieldPath` for the fields serving pods ask for."""
    meta, status = pod["metadata"], pod.get("status") or {}
    values = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "status.podIP": status.get("podIP"),
              "status.hostIP": status.get("hostIP"), "spec.nodeName": pod["spec"].get("nodeName")}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    if path not in values:
        raise ValueError(f"the double's downward API does not serve fieldPath {path!r}")
    return values[path] or ""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command and args: unknown references stay as written, `$$` is `$`."""
    return _REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']!r} declares no port named {port!r}")


def probe_once(pod_ip: str, container: dict[str, Any], probe: dict[str, Any]) -> str | None:
    """None when the probe passes, else why it failed (in the kubelet's words)."""
    action = probe.get("httpGet")
    if action is None:
        return None  # exec/tcp probes are not run by the double: they pass
    port = container_port(container, action["port"])
    path = action.get("path") or "/"
    url = f"http://{pod_ip}:{port}{path}"
    connection = http.client.HTTPConnection(pod_ip, port, timeout=probe.get("timeoutSeconds") or 1)
    try:
        connection.request("GET", path)
        status = connection.getresponse().status
    except OSError as exc:
        return f'Get "{url}": {exc}'
    finally:
        connection.close()
    return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"


class Prober:
    """Runs a container's readiness and liveness probes until `alive()` turns false."""

    def __init__(self, pod_ip: str, container: dict[str, Any], alive: Callable[[], bool],
                 set_ready: Callable[[bool], None], warn: Callable[[str, str], None],
                 restart: Callable[[], None]) -> None:
        self.pod_ip, self.container, self.alive = pod_ip, container, alive
        self.set_ready, self.warn, self.restart = set_ready, warn, restart

    def start(self) -> None:
        for kind in ("readiness", "liveness"):
            probe = self.container.get(f"{kind}Probe")
            if probe:
                threading.Thread(target=self._run, args=(kind, probe), daemon=True,
                                 name=f"probe-{kind}-{self.pod_ip}").start()

    def _run(self, kind: str, probe: dict[str, Any]) -> None:
        time.sleep(probe.get("initialDelaySeconds") or 0)
        period, threshold = probe.get("periodSeconds") or 10, probe.get("failureThreshold") or 3
        failures, ready = 0, False
        while self.alive():
            problem = probe_once(self.pod_ip, self.container, probe)
            if problem is None:
                failures = 0
                if kind == "readiness" and not ready:
                    ready = True
                    self.set_ready(True)
            else:
                failures += 1
                self.warn("Unhealthy", f"{kind.capitalize()} probe failed: {problem}")
                if kind == "readiness" and ready and failures >= threshold:
                    ready = False
                    self.set_ready(False)
                if kind == "liveness" and failures >= threshold:
                    self.restart()  # this container's probes end with it; the next one gets its own
                    return
            # until the first success the kubelet probes each period; so does the double, a little faster
            time.sleep(period if ready or kind == "liveness" else min(period, 0.5))
