"""Which node a pod fits, or why none does, in the kube-scheduler's own words.

Per node the first failing filter counts, in the default profile's order: taints, then node
selector/affinity, then resources (which lists every resource that is short). The reasons are
counted over the nodes and sorted, as `0/2 nodes are available: 2 Insufficient nvidia.com/gpu.`
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tests.k8s_double.quantity import parse_quantity

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class Node:
    name: str
    cpu: str = "8"
    memory: str = "32Gi"
    gpu: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()

    @property
    def allocatable(self) -> dict[str, Fraction]:
        out = {"cpu": parse_quantity(self.cpu), "memory": parse_quantity(self.memory), "pods": Fraction(110)}
        if self.gpu:
            out["nvidia.com/gpu"] = Fraction(self.gpu)
        return out

    def manifest(self) -> dict[str, Any]:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": "110"}
        if self.gpu:
            capacity["nvidia.com/gpu"] = str(self.gpu)
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name, **self.labels}},
            "spec": {"taints": [dict(t) for t in self.taints]} if self.taints else {},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
        }


def pod_requests(pod: dict[str, Any]) -> dict[str, Fraction]:
    """Summed container requests; a resource given only as a limit requests its limit."""
    total: dict[str, Fraction] = {"pods": Fraction(1)}
    for container in pod.get("spec", {}).get("containers", []):
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, quantity in merged.items():
            total[name] = total.get(name, Fraction(0)) + parse_quantity(quantity)
    return total


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if toleration.get("operator", "Equal") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"node selector operator {operator!r} is not supported by the double")


def _matches_node(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    # the terms are ORed, the expressions inside one term ANDed
    return not terms or any(all(_expression_matches(e, labels) for e in t.get("matchExpressions") or [])
                            for t in terms)


def node_rejections(node: Node, pod: dict[str, Any], used: dict[str, Fraction]) -> list[str]:
    """Why `node` cannot take `pod` (empty: it can), given what its bound pods already use."""
    spec = pod.get("spec", {})
    for taint in node.taints:
        if taint.get("effect") in BLOCKING_EFFECTS and not _tolerates(spec.get("tolerations") or [], taint):
            return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
    labels = node.manifest()["metadata"]["labels"]
    if not _matches_node(spec, labels):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = node.allocatable
    return [f"Insufficient {name}" for name, amount in sorted(pod_requests(pod).items())
            if amount > 0 and used.get(name, Fraction(0)) + amount > allocatable.get(name, Fraction(0))]


def choose_node(nodes: list[Node], pod: dict[str, Any],
                used: dict[str, dict[str, Fraction]]) -> tuple[Node | None, str]:
    """(the first node that fits, "") or (None, the FailedScheduling message)."""
    reasons: Counter[str] = Counter()
    for node in nodes:
        rejected = node_rejections(node, pod, used.get(node.name, {}))
        if not rejected:
            return node, ""
        reasons.update(rejected)
    listed = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return None, f"0/{len(nodes)} nodes are available: {', '.join(listed)}."
