"""The training operator's pod, rendered offline from the spec's train.resources and train.kubernetes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from include.errors import TrainingError

DIGEST = "sha256:" + "ab" * 32


def _render(resources: dict, kubernetes: dict, gpu: int):
    from operators.spec.models import KubernetesSpec, ResourcesSpec
    from operators.train import PodRun, TrainModelOperator, pod_arguments

    task = TrainModelOperator(task_id="train", pipeline="churn", dataset="churn_features", framework="pytorch",
                              target="churned", execution="kubernetes",
                              **pod_arguments(ResourcesSpec(**resources), KubernetesSpec(**kubernetes)))
    # what prepare() adds per run (the run's gpu param may differ from the spec's)
    run = PodRun(image=task.image or "skylift-training:dev", arguments=("--config", "{}"), gpu=gpu)
    ti = SimpleNamespace(dag_id="churn_nightly", task_id="train", run_id="scheduled__x", map_index=-1, try_number=1)
    context = {"ti": ti, "run_id": ti.run_id, "dag": SimpleNamespace(dag_id=ti.dag_id)}
    pod = task.render_pod(context, run)
    return task.pod_operator(run), pod


def test_every_pod_key_of_the_spec_is_rendered_as_the_kubernetes_models_say():
    from kubernetes.client import models as k8s

    op, pod = _render(
        {"gpu": 2, "gpu_type": "NVIDIA-A100-SXM4-80GB", "cpu": "4", "cpu_limit": "8", "memory": "16Gi",
         "memory_limit": "24Gi"},
        {"namespace": "ml", "image": f"registry.example/skylift-training@{DIGEST}", "image_pull_secrets": ["regcred"],
         "node_selector": {"pool": "gpu"}, "service_account": "trainer", "priority_class": "batch-high",
         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
         "env_from_secret": ["lake-credentials", "tracking-credentials"], "shm_size": "8Gi",
         "schedule_timeout": 300, "startup_timeout": 900, "deferrable": True},
        gpu=2)

    assert isinstance(pod, k8s.V1Pod) and pod.metadata.namespace == "ml"
    (container,) = pod.spec.containers  # no XCom sidecar: the result comes from MLflow
    assert container.image == f"registry.example/skylift-training@{DIGEST}"
    assert container.command == ["python", "-m", "include.training.entrypoint"]
    assert pod.spec.image_pull_secrets == [k8s.V1LocalObjectReference(name="regcred")]
    assert container.resources == k8s.V1ResourceRequirements(
        requests={"cpu": "4", "memory": "16Gi"}, limits={"cpu": "8", "memory": "24Gi", "nvidia.com/gpu": "2"})
    assert pod.spec.node_selector == {"pool": "gpu"}
    assert pod.spec.affinity == k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[
            k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
                key="nvidia.com/gpu.product", operator="In", values=["NVIDIA-A100-SXM4-80GB"])])])))
    assert pod.spec.tolerations == [k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    assert pod.spec.service_account_name == "trainer"
    assert pod.spec.priority_class_name == "batch-high"
    assert container.env_from == [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name))
                                  for name in ("lake-credentials", "tracking-credentials")]
    assert pod.spec.volumes == [k8s.V1Volume(name="dshm", empty_dir=k8s.V1EmptyDirVolumeSource(
        medium="Memory", size_limit="8Gi"))]
    assert container.volume_mounts == [k8s.V1VolumeMount(name="dshm", mount_path="/dev/shm")]
    assert (op.schedule_timeout_seconds, op.startup_timeout_seconds, op.deferrable) == (300, 900, True)
    assert op.reattach_on_restart and op.do_xcom_push is False
    assert {"dag_id", "task_id", "run_id"} <= set(pod.metadata.labels)  # what a retry re-attaches by


def test_a_run_without_gpus_gets_no_gpu_limit_nor_gpu_affinity_and_no_shm_by_default():
    _, pod = _render({"gpu": 1, "gpu_type": "NVIDIA-A100-SXM4-80GB"}, {}, gpu=0)
    container = pod.spec.containers[0]
    assert "nvidia.com/gpu" not in container.resources.limits
    assert container.resources.limits == {"cpu": "2", "memory": "4Gi"}  # limits default to the requests
    assert not pod.spec.affinity and not pod.spec.volumes and not container.env_from


def test_reuse_is_keyed_on_the_image_digest_and_on_the_tag_only_without_one():
    from operators.train_reuse import image_identity, training_key

    assert image_identity(f"a.example/train@{DIGEST}") == (DIGEST, True)
    assert image_identity(f"b.example/train:v2@{DIGEST}") == (DIGEST, True)  # same content, same key
    assert image_identity("a.example/train:latest") == ("a.example/train:latest", False)
    config = {"dataset": "d", "params": {}}
    assert training_key(config, ["fp"], DIGEST) != training_key(config, ["fp"], "sha256:" + "cd" * 32)


def test_a_pod_that_is_not_a_skylift_training_pod_is_named():
    from kubernetes.client import models as k8s

    from operators.train import TrainingAttempt

    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="someone-else"), spec=k8s.V1PodSpec(containers=[
        k8s.V1Container(name="base", args=["--config", "{}"])]))
    with pytest.raises(TrainingError, match="pod someone-else is not a Skylift training pod"):
        TrainingAttempt.of_pod(pod)
