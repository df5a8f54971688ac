"""`skylift rollback` of a model whose pipeline deploys to `kubernetes` (operators/registry_cli.py ->
include/rollback.py, the rollback DAG's code): the alias and the serving Deployment return to the
earlier version together, or neither does. Against the Kubernetes API double through a kubeconfig;
the pods run the stand-in serving image answering like each version (v1 scores the `weak` input,
v2 the `good` one), so no serving app has to start."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pytest

from include import registry
from include.audit import AuditTrail
from include.deploy.manifests import VERSION_ANNOTATION
from include.lake import Lake
from tests.e2e.own_project import write_project
from tests.k8s_double import KubeDouble, Node
from tests.k8s_double.stand_in_serving import stand_in_command
from tests.registry_models import column_model_store, features, register_versions

DS = "2026-03-02"
NAMESPACE, NAME = "serving", "skylift-parcels"
# row = [good, weak], the model's inputs in order: a right answer for each version
LIKE_EACH_VERSION = "min(max(row[0 if os.environ['SKYLIFT_MODEL_VERSION'] == '2' else 1], 0.0), 1.0)"
LIKE_V2_ALWAYS = "min(max(row[0], 0.0), 1.0)"  # v1's pods answer with v2's scores


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store with two logged models: one scores the `weak` column, one the `good` column."""
    return column_model_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def deployed(skylift_env, store, tmp_path, monkeypatch, request):
    """The tutorial project, its spec deploying model <test's own> to kubernetes with the pod command
    the test names; v1 then v2 promoted by its deploys, and v2's Deployment serving."""
    from operators.deploy_targets import build_target
    from operators.hooks.mlflow import MlflowHook
    from operators.spec.loader import load_spec

    case = getattr(request.node, "callspec", None)
    model = "parcels_" + request.node.name.removeprefix("test_")[:24] + (f"_{case.id}" if case else "")
    pods = getattr(request, "param", {"prediction": LIKE_EACH_VERSION})
    command = stand_in_command(pods["prediction"])
    root = write_project(tmp_path / "project")
    spec_file = root / "dags" / "pipelines" / "parcels.yaml"
    kubernetes = {"image": "serve@sha256:" + "b" * 64, "namespace": NAMESPACE, "replicas": 1, "autoscaling": None,
                  "command": command, "readiness": {"period_seconds": 1}, "rollout_timeout": 5}
    gate = "  gate: {metric: auc, min: 0.5, beat_champion: false, min_holdout_rows: 10}\n"
    text = spec_file.read_text().replace("model_name: parcels", f"model_name: {model}")
    spec_file.write_text(text.replace(gate, f"{gate}  target: kubernetes\n  kubernetes: {json.dumps(kubernetes)}\n"))
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))  # what the CLI reads the specs with is put back
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the project
    client = MlflowHook(store["uri"]).client  # as the CLI's: models:/ URIs resolve in this store too
    register_versions(client, store["uri"], model, store["logged"], pipeline="parcels")
    lake = Lake(f"file://{skylift_env}/lake")
    with lake.publish("features", "parcels_features", DS) as writer:
        churned = (np.random.default_rng(2).random(60) < 0.3).astype(int)
        writer.write_table(pa.Table.from_pandas(features(churned), preserve_index=False))
    trail = AuditTrail(lake)
    smoke = {"smoke": {"dataset": "parcels_features", "ds": DS}}
    for version, previous in (("1", None), ("2", "1")):
        registry.promote(client, trail, model, version, expected=previous, actor=f"parcels_retrain/night{version}",
                         reason="clears the gate", details=smoke)
    with KubeDouble([Node("cpu-a", cpu="8", memory="32Gi")]) as kube:
        monkeypatch.setenv(*kube.connection_env(tmp_path))
        deploy = load_spec(spec_file).deploy
        serving_v2 = build_target(deploy, pipeline="parcels", model_name=model, version="2", tracking_uri=store["uri"])
        from include.deploy.targets import smoke_sample
        from include.rollback import smoke_rows

        serving_v2.roll_out(smoke_sample(model, "2", smoke_rows(trail, lake, model, 5)))
        yield {"model": model, "root": root, "client": client, "trail": trail, "kube": kube}


def served_version(kube: KubeDouble) -> str:
    deployment = kube.cluster.read_object("deployments", NAMESPACE, NAME)
    return deployment["spec"]["template"]["metadata"]["annotations"][VERSION_ANNOTATION]


def moves(world) -> list[tuple[str, str, str]]:
    return [(e.action, e.before, e.after) for e in world["trail"].events(world["model"])]


def test_the_cli_rolls_the_alias_and_the_deployment_back_together(deployed, capsys):
    from operators.cli import main

    model = deployed["model"]
    assert served_version(deployed["kube"]) == "2"
    code = main(["rollback", model, "--project", str(deployed["root"]), "--rows", "5", "--reason", "v2 drifts"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{model}: champion v2 -> v1 (audit event 3); smoke test passed" in out
    assert (f"deploy target kubernetes of pipeline parcels: deployment {NAMESPACE}/{NAME} (revision 2, 1 ready) "
            "serves version 1; 5 smoke-test rows") in out
    assert registry.champion_version(deployed["client"], model) == "1"
    assert served_version(deployed["kube"]) == "1"
    assert moves(deployed)[-1] == ("rollback", "2", "1")
    assert main(["history", model]) == 0
    history = capsys.readouterr().out.splitlines()
    assert " ".join(history[-2].split()[2:7]) == "rollback v1: v2 -> v1" and "v2 drifts" in history[-2]
    assert history[-1] == "champion now: v1"


# Pods that never get ready fail the same way (the target's rollout raises); test_deploy_target_kube.py
# covers that wait and its undo, at the price of the rollout timeout.
@pytest.mark.parametrize("deployed", [{"prediction": LIKE_V2_ALWAYS}], indirect=True)
def test_a_rollback_the_deployment_cannot_serve_puts_alias_and_deployment_back(deployed, capsys):
    from operators.cli import main

    model = deployed["model"]
    assert main(["rollback", model, "--project", str(deployed["root"]), "--rows", "5"]) == 1
    err = capsys.readouterr().err
    err = err[err.index(f"rolling model {model!r}"):]  # stderr may hold other tests' stray log lines before it
    assert err.startswith(f"rolling model {model!r} back to version 1 failed: deploy target kubernetes could not "
                          f"serve it (")
    assert "does not answer like batch scoring of version 1: 5 of 5 smoke-test rows differ" in err, err
    assert err.rstrip().endswith(f")). Champion: version 2 again (audit event 4). Target: {NAMESPACE}/{NAME}: "
                                 "deployment restored, service restored (serving version 2 again)"), err
    assert registry.champion_version(deployed["client"], model) == "2"
    assert served_version(deployed["kube"]) == "2"
    assert moves(deployed)[-2:] == [("rollback", "2", "1"), ("smoke_test_rollback", "1", "2")]
    assert deployed["trail"].events(model)[-1].reason.endswith(
        f"; deployment {NAMESPACE}/{NAME} goes back to its previous spec (version 2), its service and autoscaler too")

