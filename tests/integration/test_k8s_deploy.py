"""`deploy.target: kubernetes` through the real deploy operator and the cncf-kubernetes provider's hook,
against the Kubernetes API double (tests/k8s_double) reached through an ordinary kubeconfig.

The double runs each pod's command as a local process on a loopback address of its own, probes its
/ping, and proxies the Service to ready pods: the serving app really loads the champion from the
test's MLflow store and the smoke test really sends held-out rows through the Service.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from include import registry
from include.audit import AuditTrail
from include.deploy.manifests import VERSION_ANNOTATION
from include.deploy.smoke import ATOL, RTOL
from include.errors import RolloutFailed
from include.lake import Lake
from tests.k8s_double import KubeDouble, Node
from tests.k8s_double.stand_in_serving import stand_in_command
from tests.registry_models import column_model_store, features, register_versions

pytestmark = pytest.mark.integration

DS = "2026-11-24"
NAMESPACE = "serving"
NAME = "skylift-t"
# A serving image that answers /ping and /version like the serving app but scores every row 0.5.
WRONG_ANSWERS = stand_in_command("0.5")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store with two logged models: one scores the `weak` column, one the `good` column."""
    return column_model_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def world(skylift_env, monkeypatch, store, request, tmp_path):
    """A lake with one day of features, a model of this test's own with versions 1 (`weak`) and 2 (`good`),
    and a Kubernetes connection to a fresh API double."""
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", store["uri"])
    model = "k8s_" + request.node.name.removeprefix("test_")[:40]
    register_versions(store["client"], store["uri"], model, store["logged"])
    lake = Lake(f"file://{skylift_env}/lake")
    churned = (np.random.default_rng(1).random(400) < 0.3).astype(int)
    with lake.publish("features", "churn_features", DS) as writer:
        writer.write_table(pa.Table.from_pandas(features(churned), preserve_index=False))
    with KubeDouble([Node("cpu-a", cpu="8", memory="32Gi")]) as kube:
        monkeypatch.setenv(*kube.connection_env(tmp_path))
        yield {"client": store["client"], "model": model, "lake": lake, "kube": kube, "uri": store["uri"]}


def serving(**overrides):
    from operators.spec.models import DeploySpec

    kubernetes = {"image": "skylift-serving@sha256:" + "7" * 64, "namespace": NAMESPACE, "replicas": 1,
                  "autoscaling": {"min_replicas": 1, "max_replicas": 3, "target_cpu_percent": 60},
                  # a loaded test machine may take longer than the default 30 s to import and load the model
                  "readiness": {"period_seconds": 1}, "liveness": {"initial_delay_seconds": 120},
                  "rollout_timeout": 60, **overrides}
    return DeploySpec.model_validate({"gate": {"metric": "auc"}, "target": "kubernetes", "kubernetes": kubernetes})


def deploy(world, context_for, version: str, spec, run: str):
    from operators.deploy import DeployModelOperator

    op = DeployModelOperator(task_id="deploy", pipeline="t", model_name=world["model"], register_task_id="register",
                             features_dataset="churn_features", key=["customer_id"], target="churned",
                             task="classification", gate={"metric": "auc", "min": 0.5}, serving=spec)
    context = context_for(DS, task_id="deploy", run_id=run, xcoms={("register", "return_value"): {"version": version}})
    return op.execute(context)


def through_service(path: str, payload=None):
    """Ask the Service through the API server's proxy, with the hook's client, as the smoke test does."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    from include.deploy.endpoint import ServiceProxyEndpoint

    endpoint = ServiceProxyEndpoint(KubernetesHook(conn_id="kubernetes_default").api_client, NAMESPACE, NAME, 80)
    return endpoint.get(path) if payload is None else endpoint.post_json(path, payload)


def deployment(kube: KubeDouble) -> dict:
    return kube.cluster.read_object("deployments", NAMESPACE, NAME)


def test_the_champion_is_served_through_the_service_and_failed_rollouts_roll_back_alias_and_deployment(
        world, context_for):
    """v1 is deployed (the first Deployment) and answers through the Service like batch scoring; then
    v2 in pods that never get ready, then in pods that answer wrongly: each time the alias and the
    Deployment go back to v1, and the Service answers with v1 again. (One story, one test: each
    serving pod costs seconds of imports on a loaded machine.)"""
    from include import scoring
    from include.deploy.smoke import payload

    kube, model = world["kube"], world["model"]
    result = deploy(world, context_for, "1", serving(), run="manual__first")
    assert result["promoted"] is True and result["champion"] == "1", result
    assert "revision 1" in result["serving"] and "equal batch scoring" in result["serving"]
    good = deployment(kube)
    container = good["spec"]["template"]["spec"]["containers"][0]
    assert good["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] == "1"
    assert container["command"][:6] == ["python", "-m", "include.serving.server", model, "--version", "1"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    pods = kube.cluster.list_pods(NAMESPACE, "app.kubernetes.io/instance=" + NAME)
    assert len(pods) == 1 and pods[0]["metadata"]["annotations"][VERSION_ANNOTATION] == "1"
    autoscaler = kube.cluster.read_object("horizontalpodautoscalers", NAMESPACE, NAME)
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (1, 3)
    assert kube.cluster.read_object("services", NAMESPACE, NAME)["spec"]["type"] == "LoadBalancer"
    rows = features(np.ones(6))[["good", "weak"]]
    answer = through_service("/invocations", payload(rows))
    assert answer.status == 200 and answer.headers["x-skylift-model-version"] == "1"
    batch = scoring.load(f"models:/{model}/1").predict(rows)
    # the serving app writes scores with 10 significant digits (MLflow's JSON): the smoke test's tolerance
    assert np.allclose(answer.json()["predictions"], batch, rtol=RTOL, atol=ATOL)

    never_ready = serving(command=["python", "-c", "import time; time.sleep(120)"], rollout_timeout=5)
    wrong_answers = serving(command=WRONG_ANSWERS)
    for attempt, (bad, why) in enumerate([
            (never_ready, ["exceeded its progress deadline (5s)", "Readiness probe failed"]),
            (wrong_answers, ["does not answer like batch scoring of version 2"])]):
        with pytest.raises(RolloutFailed) as failed:
            deploy(world, context_for, "2", bad, run=f"manual__bad_{attempt}")

        message = str(failed.value)
        assert f"promoting {model} v2 failed after alias champion moved; the alias was rolled back to 1" in message
        assert f"deployment {NAMESPACE}/{NAME} goes back to its previous spec (version 1)" in message
        assert all(part in message for part in why), message
        assert registry.champion_version(world["client"], model) == "1"
        events = AuditTrail(world["lake"]).events(model)
        assert [(e.action, e.before, e.after) for e in events][-2:] == [("promote", "1", "2"),
                                                                       ("smoke_test_rollback", "2", "1")]
        assert "deploy target kubernetes" in events[-1].reason
        restored = deployment(kube)
        assert restored["spec"] == good["spec"]  # the previous spec, template and all
        assert restored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == str(3 + 2 * attempt)
        assert through_service("/version").json()["version"] == "1"


def test_the_rollback_task_rolls_the_target_back_to_the_version_it_returns_to(world, context_for):
    """The `<pipeline>_rollback` DAG's task with a kubernetes target: the version returned to is rolled out
    and smoke-tested too. The pods run the stand-in server answering like each version (v1 scores the
    `weak` input, v2 the `good` one), so no serving app has to start here."""
    from operators.rollback import RollbackModelOperator

    client, model, trail = world["client"], world["model"], AuditTrail(world["lake"])
    smoke = {"smoke": {"dataset": "churn_features", "ds": DS}}
    registry.promote(client, trail, model, "1", expected=None, actor="test", reason="first", details=smoke)
    registry.promote(client, trail, model, "2", expected="1", actor="test", reason="second", details=smoke)
    stand_in = stand_in_command("min(max(row[0 if os.environ['SKYLIFT_MODEL_VERSION'] == '2' else 1], 0.0), 1.0)")
    op = RollbackModelOperator(task_id="rollback", pipeline="t", model_name=model, smoke_rows=5,
                               serving=serving(command=stand_in))
    result = op.execute(context_for(DS, task_id="rollback", params={"reason": "v2 drifts"}))

    assert (result["from"], result["to"]) == ("2", "1") and registry.champion_version(client, model) == "1"
    assert "serves version 1; 5 smoke-test rows" in result["serving"]
    assert deployment(world["kube"])["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION] == "1"
