"""The pod of one training attempt, run by the cncf-kubernetes provider's own code.

`TrainingPodOperator` is a `KubernetesPodOperator` that `TrainModelOperator` builds when a task
runs, never when a DAG is parsed: importing the provider's operator module is most of the cost
of building a Skylift DAG, and only the training task needs it. The provider creates, re-attaches
to (after a lost worker), follows and deletes the pod, synchronously or from the triggerer; this
class adds what Skylift needs on that path: the attempt id riding in the trigger's event, and the
scheduler's reason when no node could take the pod.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from include.errors import TrainingError

if TYPE_CHECKING:
    from operators.train import PodRun, TrainModelOperator

ENTRYPOINT = ["python", "-m", "include.training.entrypoint"]
ATTEMPT_EVENT_KEY = "skylift_attempt"  # the attempt rides along in the trigger's event
SHM_VOLUME = "dshm"
# What a FailedScheduling message says -> the spec key that changes it.
UNSCHEDULABLE_HINTS = (
    ("Insufficient nvidia.com/gpu", "train.resources.gpu (or the run's gpu param)"),
    ("Insufficient cpu", "train.resources.cpu"),
    ("Insufficient memory", "train.resources.memory"),
    ("node affinity/selector", "train.kubernetes.node_selector (or train.resources.gpu_type)"),
    ("untolerated taint", "train.kubernetes.tolerations"),
)


class TrainingPodOperator(KubernetesPodOperator):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launch_failure: TrainingError | None = None

    def invoke_defer_method(self, last_log_time: Any = None, context: Any = None) -> None:
        from operators.train import TrainingAttempt

        if self.pod is not None:
            self.trigger_kwargs = {**(self.trigger_kwargs or {}),
                                   ATTEMPT_EVENT_KEY: TrainingAttempt.of_pod(self.pod).as_dict()}
        super().invoke_defer_method(last_log_time=last_log_time, context=context)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> Any:
        """The provider's log and clean-up; a timeout while pending becomes the scheduler's reason."""
        from kubernetes.client import models as k8s

        try:
            return super().trigger_reentry(context, event)
        except Exception as exc:
            if event.get("status") == "timeout":
                pod = self.pod or k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=event["name"],
                                                                      namespace=event["namespace"]))
                failure = self.scheduling_failure(pod)
                if failure is not None:
                    raise failure from exc
            raise

    def await_pod_start(self, pod: Any) -> None:
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchTimeoutException

        try:
            super().await_pod_start(pod)
        except PodLaunchTimeoutException:
            # The provider's clean-up raises its own error after this; the training task re-raises this one.
            self.launch_failure = self.scheduling_failure(pod)
            raise

    def scheduling_failure(self, pod: Any) -> TrainingError | None:
        """The scheduler's reason a pod found no node, with the spec key to change; None when it was not
        a scheduling problem. Events outlive the pod, so this works after its deletion too."""
        events = [e for e in self.pod_manager.read_pod_events(pod).items if e.reason == "FailedScheduling"]
        if not events:
            return None
        message = events[-1].message.strip()
        keys = [key for needle, key in UNSCHEDULABLE_HINTS if needle in message]
        change = " and ".join(keys) if keys else "the pod's resources or placement"
        return TrainingError(
            f"training pod {pod.metadata.namespace}/{pod.metadata.name} found no node within schedule_timeout "
            f"({self.schedule_timeout_seconds}s, train.kubernetes.schedule_timeout): {message} Change {change}, "
            "or add nodes that fit.")


def training_pod_operator(task: TrainModelOperator, run: PodRun | None) -> TrainingPodOperator:
    """The pod operator of `task` for one run (`run` None: re-entering from the triggerer, where only the
    pod's name, namespace and connection matter)."""
    from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import convert_env_vars
    from kubernetes.client import models as k8s

    from operators.train import PodRun

    run = run or PodRun(image=task.image, arguments=(), gpu=task.gpu)

    # Each model otherwise builds its own client Configuration (logger set-up included).
    config = {"local_vars_configuration": _models_configuration()}
    resources = task.pod_resources(run.gpu)
    shm = task.shm_size
    return TrainingPodOperator(
        task_id=task.task_id,
        name=f"{task.pipeline}-train".replace("_", "-"),
        namespace=task.namespace,
        image=run.image,
        image_pull_secrets=[k8s.V1LocalObjectReference(name=n, **config) for n in task.image_pull_secrets],
        cmds=list(ENTRYPOINT),
        arguments=list(run.arguments),
        env_vars=convert_env_vars(dict(run.environment)),
        annotations=dict(run.annotations),
        container_resources=k8s.V1ResourceRequirements(**resources, **config),
        affinity=_gpu_affinity(task, run.gpu, config),
        node_selector=dict(task.node_selector),
        tolerations=[k8s.V1Toleration(**t, **config) for t in task.tolerations],
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=n, **config), **config)
                  for n in task.env_from_secret],
        service_account_name=task.service_account,
        priority_class_name=task.priority_class,
        volumes=[k8s.V1Volume(name=SHM_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(
            medium="Memory", size_limit=shm, **config), **config)] if shm else [],
        volume_mounts=[k8s.V1VolumeMount(name=SHM_VOLUME, mount_path="/dev/shm", **config)] if shm else [],
        schedule_timeout_seconds=task.schedule_timeout,
        startup_timeout_seconds=task.startup_timeout,
        deferrable=task.deferrable,
        durable=True,  # a retry after a lost worker re-attaches to the pod (labels: dag, task, run)
        # No XCom sidecar (it needs exec into the pod): the result comes from MLflow, pushed by the task.
        do_xcom_push=False,
        get_logs=True,
        log_events_on_failure=True,
        on_finish_action="delete_pod",
        **task.pod_options,
    )


def _gpu_affinity(task: TrainModelOperator, gpu: int, config: dict[str, Any]) -> Any:
    """Required node affinity to the GPU model, when the spec names one and the run asks for GPUs."""
    from kubernetes.client import models as k8s

    if not (gpu and task.gpu_type):
        return None
    term = k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
        key=task.gpu_type_label, operator="In", values=[task.gpu_type], **config)], **config)
    return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term], **config),
        **config), **config)


@functools.cache
def _models_configuration() -> Any:
    """The client configuration the pod's Kubernetes models check their fields with (one per process)."""
    from kubernetes.client import Configuration

    return Configuration.get_default_copy()
