"""The double's Deployment controller: pods of the current template, a rolling update that keeps
the old pods until every new one is ready, revisions, and the status `kubectl rollout status` reads.

No ReplicaSet objects are served; pods carry `pod-template-hash` and an owner reference named as
the ReplicaSet would be. A template seen before (a rollback) takes over its existing pods. A new
pod whose container exits stays failed (the double does not restart containers), so the rollout
stalls until its progress deadline, as a crash-looping one would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.k8s_double.cluster import Cluster

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


@dataclass
class Rollout:
    current: str = ""
    revisions: dict[str, int] = field(default_factory=dict)
    started: float = 0.0


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


class DeploymentController:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.rollouts: dict[str, Rollout] = {}  # deployment uid -> its rollout

    def owned_pods(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        uid = deployment["metadata"]["uid"]
        return [r.manifest for r in self.cluster.pods.values() if not r.deleted and any(
            o.get("uid") == uid for o in r.manifest["metadata"].get("ownerReferences") or [])]

    def reconcile(self) -> None:
        """One pass over every Deployment (called by the cluster's loop, under its lock)."""
        for (kind, namespace, _), deployment in list(self.cluster.objects.items()):
            if kind == "deployments":
                self._reconcile(namespace, deployment)

    def _reconcile(self, namespace: str, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        template = spec.get("template") or {}
        current = template_hash(template)
        rollout = self.rollouts.setdefault(meta["uid"], Rollout())
        if rollout.current != current:
            rollout.current, rollout.started = current, time.monotonic()
            rollout.revisions[current] = max(rollout.revisions.values(), default=0) + 1
        meta.setdefault("annotations", {})[REVISION] = str(rollout.revisions[current])
        replicas = spec.get("replicas", 1)
        owned = self.owned_pods(deployment)
        new = [p for p in owned if p["metadata"]["labels"].get(HASH_LABEL) == current]
        old = [p for p in owned if p["metadata"]["labels"].get(HASH_LABEL) != current]
        replica_set = f"{meta['name']}-{current}"
        if len(new) != replicas:
            self.cluster.record_event(deployment, "ScalingReplicaSet", f"Scaled replica set {replica_set} from "
                                      f"{len(new)} to {replicas}", involved="Deployment")
        for _ in range(replicas - len(new)):
            new.append(self._create_pod(namespace, deployment, template, current))
        for extra in new[replicas:]:
            self.cluster.delete_pod(namespace, extra["metadata"]["name"])
        new = new[:replicas]
        ready_new = sum(_ready(p) for p in new)
        if ready_new >= replicas and old:
            for pod in old:
                self.cluster.delete_pod(namespace, pod["metadata"]["name"])
            self.cluster.record_event(deployment, "ScalingReplicaSet", "Scaled down the old replica sets to 0",
                                      involved="Deployment")
            old = []
        self._set_status(deployment, spec, replicas, new, old, replica_set, rollout)

    def _create_pod(self, namespace: str, deployment: dict[str, Any], template: dict[str, Any],
                    current: str) -> dict[str, Any]:
        meta = copy.deepcopy(template.get("metadata") or {})
        name = f"{deployment['metadata']['name']}-{current}-{uuid.uuid4().hex[:5]}"
        meta.update(name=name, labels={**(meta.get("labels") or {}), HASH_LABEL: current}, ownerReferences=[{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{deployment['metadata']['name']}-{current}",
            "uid": deployment["metadata"]["uid"], "controller": True}])
        return self.cluster.create_pod(namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                                   "spec": copy.deepcopy(template.get("spec") or {})})

    def _set_status(self, deployment: dict[str, Any], spec: dict[str, Any], replicas: int, new: list, old: list,
                    replica_set: str, rollout: Rollout) -> None:
        ready_new = sum(_ready(p) for p in new)
        ready = ready_new + sum(_ready(p) for p in old)
        total = len(new) + len(old)
        if ready_new >= replicas and not old:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{replica_set}" has successfully progressed.')
        elif time.monotonic() - rollout.started > spec.get("progressDeadlineSeconds", 600):
            progressing = ("False", "ProgressDeadlineExceeded",
                           f'ReplicaSet "{replica_set}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{replica_set}" is progressing.')
        available = ("True", "MinimumReplicasAvailable") if ready >= replicas else ("False",
                                                                                   "MinimumReplicasUnavailable")
        status = {"observedGeneration": deployment["metadata"]["generation"], "replicas": total,
                  "updatedReplicas": len(new), "readyReplicas": ready, "availableReplicas": ready,
                  "unavailableReplicas": max(0, total - ready), "conditions": [
                      {"type": "Available", "status": available[0], "reason": available[1]},
                      {"type": "Progressing", "status": progressing[0], "reason": progressing[1],
                       "message": progressing[2]}]}
        if deployment.get("status") != status:
            deployment["status"] = status
            deployment["metadata"]["resourceVersion"] = self.cluster._version()
            self.cluster.changed.notify_all()
