"""Render the serving app's Deployment, Service and HorizontalPodAutoscaler for one model version.

The pods run the serving app (`include.serving.server`) pinned to the version being rolled out
(`--version`), not following the alias: the old pods keep answering until the new ones are ready,
the smoke test reaches the new version only, and putting the previous Deployment back is what
rolls serving back. Every promotion is a new Deployment revision (the version is in the pod
template's annotations: `kubectl rollout history`). The server binds the pod's own IP (downward
API): the kubelet's probes and the Service's endpoints reach it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.spec.models import KubernetesServingSpec, ProbeSpec

MANAGED_BY = "skylift"
VERSION_ANNOTATION = "skylift.io/model-version"
MODEL_ANNOTATION = "skylift.io/model"
PORT_NAME = "http"
CONTAINER = "serving"


@dataclass(frozen=True)
class Release:
    """What one rollout serves: the model, the version promoted, the registry the pods read."""

    pipeline: str
    model_name: str
    version: str
    tracking_uri: str

    @property
    def default_name(self) -> str:
        return "skylift-" + self.pipeline.replace("_", "-")


@dataclass(frozen=True)
class ServingObjects:
    """The three objects of one rollout (kubernetes client models); `autoscaler` is None without autoscaling."""

    namespace: str
    deployment: Any  # V1Deployment
    service: Any  # V1Service
    autoscaler: Any | None  # V2HorizontalPodAutoscaler

    @property
    def name(self) -> str:
        return self.deployment.metadata.name


def object_name(spec: KubernetesServingSpec, release: Release) -> str:
    return spec.name or release.default_name


def labels(spec: KubernetesServingSpec, release: Release) -> dict[str, str]:
    """The labels every object carries; the first two also select the pods (they never change)."""
    return {"app.kubernetes.io/name": "skylift-serving", "app.kubernetes.io/instance": object_name(spec, release),
            "app.kubernetes.io/managed-by": MANAGED_BY, "skylift.io/pipeline": release.pipeline}


def selector(spec: KubernetesServingSpec, release: Release) -> dict[str, str]:
    return {k: v for k, v in labels(spec, release).items()
            if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


def serving_command(spec: KubernetesServingSpec, release: Release) -> list[str]:
    """The container's command: the spec's own, or the serving app on the pod IP and the spec's port."""
    if spec.command:
        return list(spec.command)
    return ["python", "-m", "include.serving.server", release.model_name, "--version", release.version,
            "--tracking-uri", release.tracking_uri, "--host", "$(POD_IP)", "--port", str(spec.port)]


def _probe(probe: ProbeSpec) -> Any:
    from kubernetes.client import models as k8s

    return k8s.V1Probe(http_get=k8s.V1HTTPGetAction(path=probe.path, port=PORT_NAME),
                       initial_delay_seconds=probe.initial_delay_seconds, period_seconds=probe.period_seconds,
                       timeout_seconds=probe.timeout_seconds, failure_threshold=probe.failure_threshold)


def _resources(spec: KubernetesServingSpec) -> Any:
    from kubernetes.client import models as k8s

    r = spec.resources
    limits = {"memory": r.memory_limit or r.memory}
    if r.cpu_limit:
        limits["cpu"] = r.cpu_limit
    return k8s.V1ResourceRequirements(requests={"cpu": r.cpu, "memory": r.memory}, limits=limits)


def _container(spec: KubernetesServingSpec, release: Release) -> Any:
    from kubernetes.client import models as k8s

    env = [k8s.V1EnvVar(name="POD_IP", value_from=k8s.V1EnvVarSource(
               field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP"))),
           k8s.V1EnvVar(name="SKYLIFT_MODEL_NAME", value=release.model_name),
           k8s.V1EnvVar(name="SKYLIFT_MODEL_VERSION", value=release.version)]
    return k8s.V1Container(
        name=CONTAINER, image=spec.image, command=serving_command(spec, release), env=env,
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=s)) for s in spec.env_from_secret]
        or None,
        ports=[k8s.V1ContainerPort(name=PORT_NAME, container_port=spec.port, protocol="TCP")],
        resources=_resources(spec), readiness_probe=_probe(spec.readiness), liveness_probe=_probe(spec.liveness),
        security_context=k8s.V1SecurityContext(allow_privilege_escalation=False))


def render_deployment(spec: KubernetesServingSpec, release: Release, replicas: int | None = None) -> Any:
    """The Deployment; `replicas` overrides the spec's (an autoscaled Deployment keeps what the HPA chose)."""
    from kubernetes.client import models as k8s

    name = object_name(spec, release)
    annotations = {VERSION_ANNOTATION: release.version, MODEL_ANNOTATION: release.model_name}
    template = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels(spec, release), annotations=annotations),
        spec=k8s.V1PodSpec(
            containers=[_container(spec, release)], service_account_name=spec.service_account,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in spec.image_pull_secrets] or None,
            termination_grace_period_seconds=30))
    if replicas is None:
        replicas = spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas
    return k8s.V1Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=k8s.V1ObjectMeta(name=name, namespace=spec.namespace, labels=labels(spec, release),
                                  annotations=dict(annotations)),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas, selector=k8s.V1LabelSelector(match_labels=selector(spec, release)),
            template=template, progress_deadline_seconds=spec.rollout_timeout, revision_history_limit=10,
            # the old pods keep answering until every new one is ready
            strategy=k8s.V1DeploymentStrategy(type="RollingUpdate", rolling_update=k8s.V1RollingUpdateDeployment(
                max_surge="25%", max_unavailable=0))))


def render_service(spec: KubernetesServingSpec, release: Release) -> Any:
    from kubernetes.client import models as k8s

    return k8s.V1Service(
        api_version="v1", kind="Service",
        metadata=k8s.V1ObjectMeta(name=object_name(spec, release), namespace=spec.namespace,
                                  labels=labels(spec, release)),
        spec=k8s.V1ServiceSpec(type=spec.service.type, selector=selector(spec, release), ports=[
            k8s.V1ServicePort(name=PORT_NAME, port=spec.service.port, target_port=PORT_NAME, protocol="TCP")]))


def render_autoscaler(spec: KubernetesServingSpec, release: Release) -> Any | None:
    from kubernetes.client import models as k8s

    scaling = spec.autoscaling
    if scaling is None:
        return None
    name = object_name(spec, release)
    return k8s.V2HorizontalPodAutoscaler(
        api_version="autoscaling/v2", kind="HorizontalPodAutoscaler",
        metadata=k8s.V1ObjectMeta(name=name, namespace=spec.namespace, labels=labels(spec, release)),
        spec=k8s.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=k8s.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name=name),
            min_replicas=scaling.min_replicas, max_replicas=scaling.max_replicas,
            metrics=[k8s.V2MetricSpec(type="Resource", resource=k8s.V2ResourceMetricSource(
                name="cpu", target=k8s.V2MetricTarget(type="Utilization",
                                                      average_utilization=scaling.target_cpu_percent)))]))


def render(spec: KubernetesServingSpec, release: Release, replicas: int | None = None) -> ServingObjects:
    return ServingObjects(namespace=spec.namespace, deployment=render_deployment(spec, release, replicas),
                          service=render_service(spec, release), autoscaler=render_autoscaler(spec, release))
