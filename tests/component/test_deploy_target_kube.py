"""The kubernetes target's rollout and undo (include/deploy/targets.py, kube.py) against the Kubernetes
API double, through the provider's hook and an ordinary kubeconfig. The pods run a few lines of
stdlib HTTP server that answers like the serving app (each row scores its first value / 10), so
these tests take seconds; tests/integration/test_k8s_deploy.py runs the real serving app."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.deploy.manifests import VERSION_ANNOTATION, Release
from include.errors import RolloutFailed
from tests.k8s_double import KubeDouble, Node
from tests.k8s_double.stand_in_serving import stand_in_command

NAME = "skylift-t"
SERVING = stand_in_command("row[0] / 10")
NEVER_READY = ["python", "-c", "import time; time.sleep(60)"]


@pytest.fixture
def kube(tmp_path, monkeypatch):
    with KubeDouble([Node("cpu-a", cpu="8", memory="32Gi")]) as double:
        monkeypatch.setenv(*double.connection_env(tmp_path))
        yield double


def target(version: str, command=None, **kubernetes):
    from operators.deploy_targets import build_target
    from operators.spec.models import DeploySpec

    block = {"image": "serve:1", "namespace": "ml", "command": command or SERVING,
             "readiness": {"period_seconds": 1}, "rollout_timeout": 5, **kubernetes}
    spec = DeploySpec.model_validate({"gate": {"metric": "auc"}, "target": "kubernetes", "kubernetes": block})
    return build_target(spec, pipeline="t", model_name="m", version=version, tracking_uri="sqlite:///unused.db")


def sample():
    from include.deploy.targets import SmokeSample

    rows = pd.DataFrame({"x": [1.0, 2.0, 5.0]})
    return SmokeSample(rows=rows, expected=rows["x"].to_numpy() / 10)


def objects(kube: KubeDouble) -> dict:
    return {kind: kube.cluster.objects.get((kind, "ml", NAME))
            for kind in ("deployments", "services", "horizontalpodautoscalers")}


def test_a_first_rollout_creates_all_three_and_its_undo_deletes_them(kube):
    first = target("1")
    said = first.roll_out(sample())
    assert said.startswith("deployment ml/skylift-t (revision 1, 2 ready) serves version 1; 3 smoke-test rows")
    assert all(objects(kube).values())
    assert first.undo() == "ml/skylift-t: deployment deleted, service deleted, autoscaler deleted"
    assert not any(objects(kube).values())


def test_a_failed_rollout_is_undone_to_the_previous_objects_keeping_the_autoscalers_replicas(kube):
    from kubernetes.client import AppsV1Api

    target("1").roll_out(sample())
    hook_client = target("1").api_client
    AppsV1Api(hook_client).patch_namespaced_deployment(NAME, "ml", {"spec": {"replicas": 3}})  # as the HPA would
    before = objects(kube)

    second = target("2", command=NEVER_READY, autoscaling={"min_replicas": 1, "max_replicas": 4})
    with pytest.raises(RolloutFailed) as failed:
        second.roll_out(sample())
    assert "deployment ml/skylift-t exceeded its progress deadline (5s)" in str(failed.value)
    assert "not ready: Unhealthy: Readiness probe failed" in str(failed.value)
    applied = objects(kube)
    assert applied["deployments"]["spec"]["replicas"] == 3  # the HPA's choice, not min_replicas
    assert applied["horizontalpodautoscalers"]["spec"]["maxReplicas"] == 4
    assert second.undo_plan() == ("deployment ml/skylift-t goes back to its previous spec (version 1), its service "
                                  "and autoscaler too")

    assert second.undo().endswith("(serving version 1 again)")
    restored = objects(kube)
    assert restored["deployments"]["spec"] == before["deployments"]["spec"]
    assert restored["deployments"]["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] == "1"
    assert restored["horizontalpodautoscalers"]["spec"] == before["horizontalpodautoscalers"]["spec"]
    assert restored["services"]["spec"] == before["services"]["spec"]
    pods = kube.cluster.list_pods("ml", f"app.kubernetes.io/instance={NAME}")
    assert {p["metadata"]["annotations"][VERSION_ANNOTATION] for p in pods} == {"1"} and len(pods) == 3
    assert target("1").roll_out(sample()).startswith("deployment ml/skylift-t (revision 3, 3 ready)")


def test_a_rollout_whose_pods_answer_wrongly_fails_the_smoke_test(kube):
    from include.deploy.targets import SmokeSample

    wrong = SmokeSample(rows=pd.DataFrame({"x": [1.0, 2.0]}), expected=np.array([0.1, 0.3]))
    with pytest.raises(RolloutFailed, match=r"service ml/skylift-t:80 \(through the API server's proxy\) does not "
                                            r"answer like batch scoring of version 1: 1 of 2 smoke-test rows differ "
                                            r"\(row 1: served 0.2, batch 0.3\)"):
        target("1", autoscaling=None, replicas=1).roll_out(wrong)


def test_a_release_names_its_objects_after_the_pipeline():
    assert Release("churn_eu", "churn", "3", "uri").default_name == "skylift-churn-eu"



def test_a_deployment_changed_by_someone_else_meanwhile_is_not_overwritten(kube):
    from include.deploy import kube as deploy_kube
    from include.deploy.manifests import render

    first = target("1", autoscaling=None, replicas=1)
    first.roll_out(sample())
    second = target("2", autoscaling=None, replicas=1)
    before = deploy_kube.snapshot(second.clients, "ml", NAME)
    # another deploy replaces the Deployment between this one's read and its write
    other = render(target("9", autoscaling=None, replicas=1).spec, target("9").release)
    second.clients.apps.replace_namespaced_deployment(NAME, "ml", other.deployment)
    with pytest.raises(RolloutFailed, match=r"deployment ml/skylift-t was changed by someone else during this deploy"):
        deploy_kube.apply(second.clients, render(second.spec, second.release), before)
    assert objects(kube)["deployments"]["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] == "9"
