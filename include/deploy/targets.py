"""The deploy targets after the alias flip: `local` (a running serving process that follows the
alias) and `kubernetes` (the serving Deployment, Service and autoscaler, its pods pinned to the
version rolled out). Each rolls out, then smoke-tests the live endpoint. `undo` puts back what the
rollout changed: nothing for `local` (the server follows the alias the caller moved back), the
previous Deployment, Service and autoscaler for `kubernetes`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from include.deploy import kube, smoke
from include.deploy.endpoint import Endpoint, ServiceProxyEndpoint, UrlEndpoint
from include.deploy.manifests import Release, object_name, render
from include.errors import RolloutFailed

if TYPE_CHECKING:
    import numpy as np

    from operators.spec.models import KubernetesServingSpec, LocalServingSpec

log = logging.getLogger(__name__)
RESTORE_WAIT_SECONDS = 120.0
ENDPOINTS_SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class SmokeSample:
    """Held-out rows (the model's input columns) and batch scoring's scores for them."""

    rows: Any  # pandas.DataFrame
    expected: np.ndarray


def smoke_sample(model_name: str, version: str, rows: Any) -> SmokeSample:
    """`rows` cut to the model's inputs, with batch scoring's scores for them (include/scoring.py,
    the path the score stage takes): what the live endpoint must answer."""
    from include import scoring

    model = scoring.load(f"models:/{model_name}/{version}")
    inputs = rows[model.columns].reset_index(drop=True)
    return SmokeSample(rows=inputs, expected=model.predict(inputs))


def put_back(target: LocalTarget | KubernetesTarget | None) -> str:
    """Undo `target`'s rollout and say how that went; a failed undo is reported, not raised, so the
    caller's message names both failures."""
    if target is None:
        return "nothing was applied"
    try:
        return target.undo()
    except Exception as exc:
        return f"putting it back failed too ({exc}): {target.undo_plan()} by hand"


@dataclass
class LocalTarget:
    spec: LocalServingSpec
    release: Release

    @property
    def endpoint(self) -> Endpoint:
        return UrlEndpoint(self.spec.url)

    def roll_out(self, sample: SmokeSample) -> str:
        endpoint = self.endpoint
        try:
            smoke.wait_for_version(endpoint, self.release.version, self.spec.wait_seconds)
        except RolloutFailed as exc:
            raise RolloutFailed(f"{exc} (is `skylift serve {self.release.pipeline}` running there?)") from exc
        checked = smoke.check_answers(endpoint, self.release.version, sample.rows, sample.expected)
        return f"{endpoint.where} serves version {self.release.version}; {checked} smoke-test rows equal batch scoring"

    def undo_plan(self) -> str:
        return f"the server at {self.spec.url} follows the alias back"

    def undo(self) -> str:
        return self.undo_plan()


@dataclass
class KubernetesTarget:
    spec: KubernetesServingSpec
    release: Release
    clients: kube.KubeClients
    api_client: Any  # kubernetes.client.ApiClient, for the Service proxy
    before: kube.Before | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        return object_name(self.spec, self.release)

    @property
    def endpoint(self) -> Endpoint:
        if self.spec.endpoint_url:
            return UrlEndpoint(self.spec.endpoint_url)
        return ServiceProxyEndpoint(self.api_client, self.spec.namespace, self.name, self.spec.service.port)

    def roll_out(self, sample: SmokeSample) -> str:
        namespace, name = self.spec.namespace, self.name
        self.before = kube.snapshot(self.clients, namespace, name)
        replicas = None
        if self.spec.autoscaling is not None and self.before.deployment is not None:
            # the autoscaler owns the replica count; a rollout must not reset it
            replicas = max(self.spec.autoscaling.min_replicas, self.before.deployment.spec.replicas or 0)
        objects = render(self.spec, self.release, replicas)
        stored = kube.apply(self.clients, objects, self.before)
        revision = (stored.metadata.annotations or {}).get(kube.DEPLOYMENT_REVISION, "?")
        log.info("applied deployment %s/%s (generation %s) serving %s v%s; waiting for its rollout", namespace, name,
                 stored.metadata.generation, self.release.model_name, self.release.version)
        deployment = kube.wait_for_rollout(self.clients, namespace, name, self.spec.rollout_timeout + 30)
        revision = (deployment.metadata.annotations or {}).get(kube.DEPLOYMENT_REVISION, revision)
        # a cluster's endpoints may name terminating old pods for a moment after the rollout
        smoke.wait_for_version(self.endpoint, self.release.version, ENDPOINTS_SETTLE_SECONDS)
        checked = smoke.check_answers(self.endpoint, self.release.version, sample.rows, sample.expected)
        return (f"deployment {namespace}/{name} (revision {revision}, {deployment.status.ready_replicas} ready) "
                f"serves version {self.release.version}; {checked} smoke-test rows through {self.endpoint.where} "
                "equal batch scoring")

    def undo_plan(self) -> str:
        where = f"{self.spec.namespace}/{self.name}"
        if self.before is None:
            return f"nothing was applied to {where}"
        if self.before.deployment is None:
            return f"the new deployment, service and autoscaler {where} are deleted (there were none before)"
        return (f"deployment {where} goes back to its previous spec (version {self.before.version or '?'}), "
                "its service and autoscaler too")

    def undo(self) -> str:
        """Put the Deployment, Service and autoscaler back as the rollout found them, and wait (bounded)
        for the restored Deployment to be ready again."""
        if self.before is None:
            return "nothing was applied"
        said = kube.restore(self.clients, self.before)
        if self.before.deployment is None:
            return said
        try:
            kube.wait_for_rollout(self.clients, self.before.namespace, self.before.name,
                                  min(RESTORE_WAIT_SECONDS, self.spec.rollout_timeout + 30))
        except RolloutFailed as exc:
            return f"{said}; the restored deployment is not ready yet: {exc}"
        return f"{said} (serving version {self.before.version or '?'} again)"
