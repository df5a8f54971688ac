"""Apply the serving objects, wait for the Deployment's rollout, and put the previous ones back.

Takes the kubernetes clients (`AppsV1Api`, `CoreV1Api`, `AutoscalingV2Api`) of one API client;
the operator gets them from the cncf-kubernetes provider's hook. Every write is a create or a
replace carrying the resourceVersion just read: two deploys racing on one Deployment cannot
silently overwrite each other (the loser gets 409 Conflict).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from include.deploy.manifests import ServingObjects
from include.errors import RolloutFailed

ROLLOUT_POLL_SECONDS = 1.0
CONFLICT_RETRIES = 5
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class KubeClients:
    apps: Any  # AppsV1Api
    core: Any  # CoreV1Api
    autoscaling: Any  # AutoscalingV2Api


@dataclass(frozen=True)
class Before:
    """The objects as they were before a rollout (None: absent), to put back if it fails."""

    namespace: str
    name: str
    deployment: Any | None
    service: Any | None
    autoscaler: Any | None

    @property
    def version(self) -> str | None:
        from include.deploy.manifests import VERSION_ANNOTATION

        if self.deployment is None:
            return None
        return (self.deployment.spec.template.metadata.annotations or {}).get(VERSION_ANNOTATION)


def _kinds(clients: KubeClients) -> dict[str, tuple[Any, str]]:
    """kind -> (API, method suffix)."""
    return {"deployment": (clients.apps, "namespaced_deployment"), "service": (clients.core, "namespaced_service"),
            "autoscaler": (clients.autoscaling, "namespaced_horizontal_pod_autoscaler")}


def _read(clients: KubeClients, kind: str, name: str, namespace: str) -> Any | None:
    from kubernetes.client.exceptions import ApiException

    api, suffix = _kinds(clients)[kind]
    try:
        return getattr(api, f"read_{suffix}")(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise _api_failed(f"reading {kind} {namespace}/{name}", exc) from exc


def _api_failed(action: str, exc: Any) -> RolloutFailed:
    import json

    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    return RolloutFailed(f"the Kubernetes API refused {action}: {exc.status} {message}")


def snapshot(clients: KubeClients, namespace: str, name: str) -> Before:
    return Before(namespace=namespace, name=name, deployment=_read(clients, "deployment", name, namespace),
                  service=_read(clients, "service", name, namespace),
                  autoscaler=_read(clients, "autoscaler", name, namespace))


def _write(clients: KubeClients, kind: str, namespace: str, body: Any, current: Any | None) -> Any:
    """Create `body`, or replace `current` with it (keeping what the cluster owns).

    A replace carries `current`'s resourceVersion. The controllers bump it with every status
    update, so a conflict is retried with a fresh read as long as the spec is still the one
    `current` had; a spec changed meanwhile (another deploy) fails instead of being overwritten.
    """
    from kubernetes.client.exceptions import ApiException

    api, suffix = _kinds(clients)[kind]
    name = body.metadata.name
    for _ in range(CONFLICT_RETRIES):
        try:
            if current is None:
                return getattr(api, f"create_{suffix}")(namespace, body)
            return getattr(api, f"replace_{suffix}")(name, namespace, _replacing(kind, body, current))
        except ApiException as exc:
            if exc.status != 409 or current is None:
                raise _api_failed(f"{'creating' if current is None else 'replacing'} {kind} {namespace}/{name}",
                                  exc) from exc
            fresh = _read(clients, kind, name, namespace)
            if fresh is None or _plain(fresh.spec) != _plain(current.spec):
                raise RolloutFailed(f"{kind} {namespace}/{name} was changed by someone else during this deploy "
                                    "(another deploy of the same pipeline?); nothing of it was overwritten") from exc
            current = fresh
    raise RolloutFailed(f"replacing {kind} {namespace}/{name} kept conflicting with status updates "
                        f"({CONFLICT_RETRIES} tries)")


def _replacing(kind: str, body: Any, current: Any) -> Any:
    body = copy.deepcopy(body)
    body.metadata.resource_version = current.metadata.resource_version
    if kind == "service":  # the cluster assigned the IP; a replace must keep it
        body.spec.cluster_ip = current.spec.cluster_ip
    revision = (current.metadata.annotations or {}).get(DEPLOYMENT_REVISION)
    if kind == "deployment" and revision:  # the controller's; it moves on by itself when the template changes
        body.metadata.annotations = {**(body.metadata.annotations or {}), DEPLOYMENT_REVISION: revision}
    return body


def _plain(spec: Any) -> Any:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(spec)


def _delete(clients: KubeClients, kind: str, namespace: str, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    api, suffix = _kinds(clients)[kind]
    try:
        getattr(api, f"delete_{suffix}")(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise _api_failed(f"deleting {kind} {namespace}/{name}", exc) from exc


def apply(clients: KubeClients, objects: ServingObjects, before: Before) -> Any:
    """Create or replace the Service, the Deployment and the autoscaler (removing one no longer
    wanted); returns the Deployment as the API server stored it."""
    _write(clients, "service", objects.namespace, objects.service, before.service)
    deployment = _write(clients, "deployment", objects.namespace, objects.deployment, before.deployment)
    if objects.autoscaler is not None:
        _write(clients, "autoscaler", objects.namespace, objects.autoscaler, before.autoscaler)
    elif before.autoscaler is not None:
        _delete(clients, "autoscaler", objects.namespace, objects.name)
    return deployment


def _restorable(obj: Any) -> Any:
    """`obj` as it can be written back: its spec, name, labels and annotations, nothing the cluster set."""
    from kubernetes.client import models as k8s

    annotations = {k: v for k, v in (obj.metadata.annotations or {}).items() if k != DEPLOYMENT_REVISION}
    spec = copy.deepcopy(obj.spec)
    return type(obj)(api_version=obj.api_version, kind=obj.kind, spec=spec, metadata=k8s.V1ObjectMeta(
        name=obj.metadata.name, namespace=obj.metadata.namespace, labels=obj.metadata.labels,
        annotations=annotations or None))


def restore(clients: KubeClients, before: Before) -> str:
    """Put every object back as `before` found it (deleting what it did not find); says what was done."""
    done = []
    for kind in ("deployment", "service", "autoscaler"):
        previous = getattr(before, kind)
        current = _read(clients, kind, before.name, before.namespace)
        if previous is None and current is not None:
            _delete(clients, kind, before.namespace, before.name)
            done.append(f"{kind} deleted")
        elif previous is not None:
            _write(clients, kind, before.namespace, _restorable(previous), current)
            done.append(f"{kind} restored")
    return f"{before.namespace}/{before.name}: " + ", ".join(done)


def rollout_state(deployment: Any) -> tuple[bool, str]:
    """(done, what it waits for), as `kubectl rollout status` reads a Deployment's status."""
    status, spec = deployment.status, deployment.spec
    if status is None or (status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return False, "the controller has not seen the new spec yet"
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            raise RolloutFailed(f"deployment {deployment.metadata.namespace}/{deployment.metadata.name} exceeded its "
                                f"progress deadline ({spec.progress_deadline_seconds}s): {condition.message or ''}")
    wanted, updated = spec.replicas or 0, status.updated_replicas or 0
    if updated < wanted:
        return False, f"{updated} of {wanted} new replicas have been updated"
    if (status.replicas or 0) > updated:
        return False, f"{(status.replicas or 0) - updated} old replicas are pending termination"
    if (status.available_replicas or 0) < updated:
        return False, f"{status.available_replicas or 0} of {updated} updated replicas are available"
    return True, "rolled out"


def wait_for_rollout(clients: KubeClients, namespace: str, name: str, timeout: float) -> Any:
    """Wait until every replica of the Deployment's newest revision is ready; raises `RolloutFailed`
    naming the pods that are not, with their last events, when it takes longer than `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        deployment = _read(clients, "deployment", name, namespace)
        if deployment is None:
            raise RolloutFailed(f"deployment {namespace}/{name} disappeared during its rollout")
        try:
            done, waiting = rollout_state(deployment)
        except RolloutFailed as exc:
            raise RolloutFailed(f"{exc}; {why_not_ready(clients, deployment)}") from None
        if done:
            return deployment
        if time.monotonic() > deadline:
            raise RolloutFailed(f"deployment {namespace}/{name} did not roll out within {timeout:.0f}s ({waiting}); "
                                f"{why_not_ready(clients, deployment)}")
        time.sleep(ROLLOUT_POLL_SECONDS)


def why_not_ready(clients: KubeClients, deployment: Any) -> str:
    """The pods of the Deployment's template that are not ready, with their state and newest warning."""
    from include.deploy.manifests import VERSION_ANNOTATION

    namespace = deployment.metadata.namespace
    wanted = (deployment.spec.template.metadata.annotations or {}).get(VERSION_ANNOTATION)
    match = ",".join(f"{k}={v}" for k, v in sorted(deployment.spec.selector.match_labels.items()))
    pods = clients.core.list_namespaced_pod(namespace, label_selector=match).items
    lines = []
    for pod in pods:
        if (pod.metadata.annotations or {}).get(VERSION_ANNOTATION) != wanted:
            continue
        ready = next((c.status for c in (pod.status.conditions or []) if c.type == "Ready"), "False")
        if ready == "True":
            continue
        events = clients.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod.metadata.name}").items
        warning = next((e for e in reversed(events) if e.type == "Warning"), None)
        said = f": {warning.reason}: {warning.message}" if warning else ""
        lines.append(f"pod {pod.metadata.name} is {pod.status.phase}, not ready{said}")
    return "; ".join(lines) or "no pod of the new revision is listed yet"
