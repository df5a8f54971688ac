"""The double's cluster: objects, a scheduler loop, and pods whose container runs as a local process.

A bound pod's container command runs with the pod's `env` (values and the downward API's
`fieldRef`), its `envFrom` secrets (seeded when the double starts) and a bare base environment
(PATH, HOME, LANG), never the test's own environment; `$(VAR)` in the command is expanded as the
kubelet does. `python` as the command's first word means this interpreter: the pod's image is
ignored. Each pod gets a loopback address of its own as pod IP, and its probes run (kubelet.py);
Deployments roll out pods of their template (controllers.py).
"""

from __future__ import annotations

import copy
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.k8s_double.controllers import DeploymentController
from tests.k8s_double.kubelet import Prober, expand, field_value, next_pod_ip
from tests.k8s_double.scheduling import Node, choose_node, pod_requests

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = ("Succeeded", "Failed")


class ApiError(Exception):
    """An error the API server answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_timestamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}000Z"  # RFC 3339 with nanoseconds


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated (ANDed)."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386); also what a strategic merge does for the maps we patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


@dataclass
class PodRecord:
    manifest: dict[str, Any]
    node: str | None = None
    process: subprocess.Popen | None = None
    lines: list[tuple[datetime, bytes]] = field(default_factory=list)
    finished: bool = False
    deleted: bool = False
    restarts: int = 0
    killing: bool = False  # the kubelet is stopping the container to start it again (liveness)


class Cluster:
    def __init__(self, nodes: list[Node], secrets: dict[str, dict[str, str]] | None = None,
                 python: str = sys.executable, workdir: Path = ROOT, tick_seconds: float = 0.1) -> None:
        self.nodes = list(nodes)
        self.secrets = {name: dict(values) for name, values in (secrets or {}).items()}
        self.python, self.workdir, self.tick_seconds = python, workdir, tick_seconds
        self.changed = threading.Condition(threading.RLock())
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.events: list[dict[str, Any]] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.created_pods: list[str] = []  # every pod ever created, for tests
        self.processes: dict[str, subprocess.Popen] = {}  # pod name -> its process, kept after deletion
        self._versions = itertools.count(1)
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name="k8s-double-scheduler", daemon=True)
        self.deployments = DeploymentController(self)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._stop.set()
        self._loop.join(timeout=5)
        for process in self.processes.values():
            _terminate(process, grace=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.changed:
                for record in list(self.pods.values()):
                    if record.node is None and not record.deleted:
                        self._schedule(record)
                    elif record.process is None and not record.deleted and record.node:
                        self._start_container(record)
                self.deployments.reconcile()
            self._stop.wait(self.tick_seconds)

    def _version(self) -> str:
        return str(next(self._versions))

    # ---- events ----------------------------------------------------------------------------
    def record_event(self, pod: dict[str, Any], reason: str, message: str, kind: str = "Normal",
                     involved: str = "Pod") -> None:
        meta = pod["metadata"]
        with self.changed:
            for event in self.events:  # the scheduler updates its event rather than repeating it
                same = event["involvedObject"]["uid"] == meta["uid"] and event["reason"] == reason
                if same and reason == "FailedScheduling":
                    event.update(message=message, count=event["count"] + 1, lastTimestamp=now_text())
                    event["metadata"]["resourceVersion"] = self._version()
                    self.changed.notify_all()
                    return
            self.events.append({
                "apiVersion": "v1", "kind": "Event", "type": kind, "reason": reason, "message": message,
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"],
                             "uid": str(uuid.uuid4()), "resourceVersion": self._version()},
                "involvedObject": {"kind": involved, "name": meta["name"], "namespace": meta["namespace"],
                                   "uid": meta["uid"], "apiVersion": "v1" if involved == "Pod" else "apps/v1"},
                "source": {"component": "default-scheduler" if "Schedul" in reason
                           else "kubelet" if involved == "Pod" else "deployment-controller"},
                "firstTimestamp": now_text(), "lastTimestamp": now_text(), "count": 1,
            })
            self.changed.notify_all()

    def list_events(self, namespace: str, field_selector: str | None) -> list[dict[str, Any]]:
        wanted = dict(t.split("=", 1) for t in filter(None, (field_selector or "").split(",")))
        with self.changed:
            return [copy.deepcopy(e) for e in self.events if e["metadata"]["namespace"] == namespace
                    and all(_field(e, path) == value for path, value in wanted.items())]

    def watch_events(self, namespace: str, field_selector: str | None, timeout: float) -> Iterator[dict[str, Any]]:
        """ADDED/MODIFIED notifications until `timeout` seconds pass."""
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            for event in self.list_events(namespace, field_selector):
                uid, version = event["metadata"]["uid"], event["metadata"]["resourceVersion"]
                if seen.get(uid) != version:
                    yield {"type": "MODIFIED" if uid in seen else "ADDED", "object": event}
                    seen[uid] = version
            with self.changed:
                self.changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    # ---- pods ------------------------------------------------------------------------------
    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        pod = copy.deepcopy(body)
        meta = pod.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "Pod is invalid: metadata.name: Required value")
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        with self.changed:
            if (namespace, meta["name"]) in self.pods:
                raise ApiError(409, "AlreadyExists", f'pods "{meta["name"]}" already exists')
            meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now_text(),
                        resourceVersion=self._version())
            meta.setdefault("labels", {})
            pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
            self.pods[(namespace, meta["name"])] = PodRecord(manifest=pod)
            self.created_pods.append(meta["name"])
            self._schedule(self.pods[(namespace, meta["name"])])
            return copy.deepcopy(pod)

    def _record(self, namespace: str, name: str) -> PodRecord:
        record = self.pods.get((namespace, name))
        if record is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        return record

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self.changed:
            return copy.deepcopy(self._record(namespace, name).manifest)

    def list_pods(self, namespace: str | None, label_selector: str | None) -> list[dict[str, Any]]:
        with self.changed:
            return [copy.deepcopy(r.manifest) for (ns, _), r in sorted(self.pods.items())
                    if (namespace is None or ns == namespace)
                    and selector_matches(label_selector, r.manifest["metadata"].get("labels") or {})]

    def patch_pod(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self.changed:
            record = self._record(namespace, name)
            merge_patch(record.manifest, {k: v for k, v in patch.items() if k in ("metadata",)})
            record.manifest["metadata"]["resourceVersion"] = self._version()
            self.changed.notify_all()
            return copy.deepcopy(record.manifest)

    def delete_pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self.changed:
            record = self._record(namespace, name)
            record.deleted = True
            del self.pods[(namespace, name)]
            self.changed.notify_all()
            manifest = copy.deepcopy(record.manifest)
        if record.process is not None and record.process.poll() is None:
            self.record_event(manifest, "Killing", f"Stopping container {_container(manifest)['name']}")
            grace = (manifest.get("spec") or {}).get("terminationGracePeriodSeconds")
            threading.Thread(target=_terminate, args=(record.process, min(grace or 30, 10)), daemon=True).start()
        return manifest

    def _schedule(self, record: PodRecord) -> None:
        pod = record.manifest
        used: dict[str, dict[str, Fraction]] = {}
        for other in self.pods.values():
            if other.node and other.manifest["status"].get("phase") not in TERMINAL:
                bucket = used.setdefault(other.node, {})
                for name, amount in pod_requests(other.manifest).items():
                    bucket[name] = bucket.get(name, Fraction(0)) + amount
        node, message = choose_node(self.nodes, pod, used)
        condition = {"type": "PodScheduled", "lastTransitionTime": now_text()}
        if node is None:
            old = next((c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"), {})
            if old.get("message") != message:
                pod["status"]["conditions"] = [{**condition, "status": "False", "reason": "Unschedulable",
                                                "message": message}]
                self.record_event(pod, "FailedScheduling", message, kind="Warning")
            return
        record.node = node.name
        pod["spec"]["nodeName"] = node.name
        pod_ip = next_pod_ip()
        pod["status"].update(conditions=[{**condition, "status": "True"}], hostIP="127.0.0.1", podIP=pod_ip,
                             podIPs=[{"ip": pod_ip}])
        meta = pod["metadata"]
        self.record_event(pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {node.name}")
        self._start_container(record)

    def _container_env(self, pod: dict[str, Any]) -> dict[str, str]:
        container = _container(pod)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "LANG": "C.UTF-8", "HOSTNAME": pod["metadata"]["name"], "PYTHONUNBUFFERED": "1"}
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef") or {}
            if ref:
                if ref["name"] not in self.secrets and not ref.get("optional"):
                    raise ApiError(400, "CreateContainerConfigError", f'secret "{ref["name"]}" not found')
                prefix = source.get("prefix") or ""
                env.update({prefix + k: v for k, v in self.secrets.get(ref["name"], {}).items()})
        for variable in container.get("env") or []:
            reference = (variable.get("valueFrom") or {}).get("fieldRef")
            if reference:
                env[variable["name"]] = field_value(pod, reference["fieldPath"])
            else:
                env[variable["name"]] = expand(variable.get("value") or "", env)
        return env

    def _start_container(self, record: PodRecord) -> None:
        pod = record.manifest
        container = _container(pod)
        try:
            env = self._container_env(pod)
        except ApiError as exc:  # the kubelet keeps retrying; the container waits meanwhile
            pod["status"]["containerStatuses"] = [_status(container, {"waiting": {
                "reason": exc.reason, "message": exc.message}})]
            return
        command = [expand(part, env) for part in (*(container.get("command") or []), *(container.get("args") or []))]
        if command and command[0] in ("python", "python3"):
            command[0] = self.python
        record.process = subprocess.Popen(  # noqa: S603 - argv list from the pod spec, no shell
            command, env=env, cwd=str(self.workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes[pod["metadata"]["name"]] = record.process
        started = now_text()
        image = container.get("image") or ""
        ready = not container.get("readinessProbe")  # with a probe, ready once it first passes
        pod["status"].update(phase="Running", startTime=started, containerStatuses=[_status(
            container, {"running": {"startedAt": started}}, ready=ready, started=True,
            image_id=image if "@sha256:" in image else "", restarts=record.restarts)])
        pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        pod["status"]["conditions"] += [{"type": "Initialized", "status": "True", "lastTransitionTime": started}]
        pod["status"]["conditions"] += [{"type": t, "status": str(ready), "lastTransitionTime": started}
                                        for t in ("ContainersReady", "Ready")]
        self.record_event(pod, "Started", f"Started container {container['name']}")
        process = record.process
        threading.Thread(target=self._follow, args=(record, process), daemon=True).start()
        Prober(pod["status"]["podIP"], container, alive=lambda: process.poll() is None and not record.deleted,
               set_ready=lambda value: self._set_ready(record, value),
               warn=lambda reason, message: self.record_event(pod, reason, message, kind="Warning"),
               restart=lambda: self._restart(record, process)).start()

    def _restart(self, record: PodRecord, process: subprocess.Popen) -> None:
        """A failed liveness probe: stop the container; `_follow` then has the loop start it again."""
        with self.changed:
            if record.deleted or record.process is not process or record.killing:
                return
            record.killing = True
            name = _container(record.manifest)["name"]
            self.record_event(record.manifest, "Killing", f"Container {name} failed liveness probe, will be "
                                                          "restarted")
        grace = (record.manifest.get("spec") or {}).get("terminationGracePeriodSeconds")
        threading.Thread(target=_terminate, args=(process, min(grace or 30, 10)), daemon=True).start()

    def _set_ready(self, record: PodRecord, ready: bool) -> None:
        with self.changed:
            if record.finished or record.deleted:
                return
            status = record.manifest["status"]
            status["containerStatuses"][0]["ready"] = ready
            for condition in status["conditions"]:
                if condition["type"] in ("Ready", "ContainersReady"):
                    condition.update(status=str(ready), lastTransitionTime=now_text())
            record.manifest["metadata"]["resourceVersion"] = self._version()
            self.changed.notify_all()

    def _follow(self, record: PodRecord, process: subprocess.Popen) -> None:
        """Collect the process output as the pod log, then record how it ended (or have it restarted)."""
        assert process.stdout is not None
        for line in process.stdout:
            with self.changed:
                record.lines.append((datetime.now(UTC), line))
                self.changed.notify_all()
        code = process.wait()
        with self.changed:
            if record.killing and not record.deleted:  # the scheduler loop starts the container again
                record.killing, record.process = False, None
                record.restarts += 1
                return
            pod = record.manifest
            container = _container(pod)
            started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                          "startedAt": started, "finishedAt": now_text()}
            image_id = pod["status"]["containerStatuses"][0].get("imageID", "")
            pod["status"].update(phase="Succeeded" if code == 0 else "Failed",
                                 containerStatuses=[_status(container, {"terminated": terminated},
                                                            image_id=image_id)])
            for condition in pod["status"]["conditions"]:
                if condition["type"] in ("Ready", "ContainersReady"):
                    condition.update(status="False", reason="PodCompleted")
            pod["metadata"]["resourceVersion"] = self._version()
            record.finished = True
            self.changed.notify_all()

    def pod_log(self, namespace: str, name: str, follow: bool, timestamps: bool,
                since_seconds: int | None) -> Iterator[bytes]:
        with self.changed:
            record = self._record(namespace, name)
            if record.process is None:
                container = _container(record.manifest)["name"]
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                                                  "ContainerCreating")
        since = time.time() - since_seconds if since_seconds else None
        index = 0
        while True:
            with self.changed:
                batch, index = record.lines[index:], len(record.lines)
                done = record.finished or record.deleted or not follow
                if not batch and not done:
                    self.changed.wait(0.5)
                    continue
            for moment, line in batch:
                if since is None or moment.timestamp() >= since:
                    yield (log_timestamp(moment).encode() + b" " + line) if timestamps else line
            if done and not batch:
                return

    # ---- other objects (deployments, services, autoscalers) --------------------------------
    def create_object(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{kind} is invalid: metadata.name: Required value")
        with self.changed:
            if (kind, namespace, name) in self.objects:
                raise ApiError(409, "AlreadyExists", f'{kind} "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now_text(),
                                   generation=1)
            return self._store(kind, namespace, obj)

    def _store(self, kind: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = self._version()
        if kind == "deployments":  # the controller fills the status in once it has seen the spec
            obj.setdefault("status", {})
        elif kind == "services":
            obj.setdefault("spec", {}).setdefault("clusterIP", f"10.96.0.{len(self.objects) % 250 + 2}")
        elif kind == "horizontalpodautoscalers":  # reported, not acted on: the double does not scale on CPU
            spec = obj.get("spec") or {}
            target = self.objects.get(("deployments", namespace, (spec.get("scaleTargetRef") or {}).get("name")))
            replicas = ((target or {}).get("spec") or {}).get("replicas", spec.get("minReplicas", 1))
            replicas = max(spec.get("minReplicas", 1), min(spec.get("maxReplicas", replicas), replicas))
            obj["status"] = {"currentReplicas": replicas, "desiredReplicas": replicas}
        self.objects[(kind, namespace, obj["metadata"]["name"])] = obj
        self.changed.notify_all()
        return copy.deepcopy(obj)

    def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.changed:
            if (kind, namespace, name) not in self.objects:
                raise ApiError(404, "NotFound", f'{kind} "{name}" not found')
            return copy.deepcopy(self.objects[(kind, namespace, name)])

    def list_objects(self, kind: str, namespace: str, label_selector: str | None) -> list[dict[str, Any]]:
        with self.changed:
            return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items())
                    if k == kind and ns == namespace
                    and selector_matches(label_selector, o["metadata"].get("labels") or {})]

    def update_object(self, kind: str, namespace: str, name: str, body: dict[str, Any],
                      patch: bool) -> dict[str, Any]:
        with self.changed:
            old = self.read_object(kind, namespace, name)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind} "{name}": the object has '
                                                "been modified; please apply your changes to the latest version and "
                                                "try again")
            new = merge_patch(copy.deepcopy(old), body) if patch else {**copy.deepcopy(body), "metadata": {
                **old["metadata"], **{k: v for k, v in body.get("metadata", {}).items()
                                      if k in ("labels", "annotations")}}}
            new["status"] = old.get("status") or {}  # a write of the object never sets its status
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            return self._store(kind, namespace, new)

    def delete_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        with self.changed:
            obj = self.read_object(kind, namespace, name)
            del self.objects[(kind, namespace, name)]
            if kind == "deployments":  # the garbage collector removes what it owned
                for pod in self.deployments.owned_pods(obj):
                    self.delete_pod(namespace, pod["metadata"]["name"])
            return obj


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def _status(container: dict[str, Any], state: dict[str, Any], ready: bool = False, started: bool = False,
            image_id: str = "", restarts: int = 0) -> dict[str, Any]:
    return {"name": container["name"], "image": container.get("image") or "", "imageID": image_id,
            "ready": ready, "started": started, "restartCount": restarts, "state": state}


def _field(obj: dict[str, Any], path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _terminate(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the container's process group, SIGKILL after the grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
