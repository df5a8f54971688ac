"""The deploy stage's targets after the alias flip (`deploy.target`): build the one the spec names,
with its clients (the smoke sample it is tested on: include/deploy/targets.py).

`alias` has nothing to roll out. `local` smoke-tests a running `skylift serve`; `kubernetes` talks
to the cluster through the cncf-kubernetes provider's `KubernetesHook` (its Airflow connection:
a kubeconfig, in-cluster credentials, or a context), as every other Skylift pod does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.deploy.targets import KubernetesTarget, LocalTarget
    from include.rollback import Serving
    from operators.spec.models import DeploySpec


def build_target(deploy: DeploySpec, *, pipeline: str, model_name: str, version: str,
                 tracking_uri: str) -> LocalTarget | KubernetesTarget | None:
    """The target `deploy.target` names for rolling out `version` (None for `alias`)."""
    from include.deploy.manifests import Release

    if deploy.target == "alias":
        return None
    if deploy.target == "local":
        from include.deploy.targets import LocalTarget

        release = Release(pipeline=pipeline, model_name=model_name, version=version, tracking_uri=tracking_uri)
        return LocalTarget(deploy.local_target, release)
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from include.deploy.kube import KubeClients
    from include.deploy.targets import KubernetesTarget

    spec = deploy.kubernetes
    release = Release(pipeline=pipeline, model_name=model_name, version=version,
                      tracking_uri=spec.tracking_uri or tracking_uri)
    from kubernetes.client import AutoscalingV2Api

    hook = KubernetesHook(conn_id=spec.connection_id)
    clients = KubeClients(apps=hook.apps_v1_client, core=hook.core_v1_client,
                          autoscaling=AutoscalingV2Api(hook.api_client))  # the hook has no autoscaling client
    return KubernetesTarget(spec, release, clients, hook.api_client)


def serving_for(deploy: DeploySpec, *, pipeline: str, model_name: str, tracking_uri: str) -> Serving | None:
    """`deploy.target` as a rollback rolls it out to the version it returns to (None for `alias`,
    which serves through the alias alone): the rollback DAG and `skylift rollback` both use it."""
    from include.rollback import Serving

    if deploy.target == "alias":
        return None
    return Serving(kind=deploy.target, build=lambda version: build_target(
        deploy, pipeline=pipeline, model_name=model_name, version=version, tracking_uri=tracking_uri))
