"""Training with `execution: kubernetes` through the cncf-kubernetes provider's own code path, against
the Kubernetes API double (tests/k8s_double) reached through an ordinary kubeconfig.

The double runs the pod's container command with this repository's interpreter, so each test trains
a small XGBoost model for real and logs it to the per-test MLflow store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from include.errors import TrainingError
from operators.links import RUN_XCOM_KEY
from tests.conftest import task_context
from tests.k8s_double import KubeDouble, Node

ROOT = Path(__file__).resolve().parents[2]
DS = "2026-11-02"
DATES = ["2026-11-01", DS]
SECRET = "skylift-lake-credentials"
DIGEST = "sha256:" + "5" * 64
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
NODES = [
    Node("cpu-a", cpu="8", memory="32Gi"),
    Node("gpu-a", cpu="16", memory="64Gi", gpu=1, taints=(GPU_TAINT,),
         labels={"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}),
]
WAIT = 120  # seconds, an upper bound for one small training pod on a loaded 2-core machine


def _features(day: int, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(day)
    tickets, orders = rng.poisson(1, n), rng.poisson(3, n)
    churned = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * tickets - 0.8 * orders + 0.5)))).astype(np.int64)
    return pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "support_tickets": tickets,
                         "orders_30d": orders, "noise": rng.normal(size=n), "churned": churned})


@pytest.fixture
def lake(skylift_env):
    from include.lake import Lake

    lake = Lake(f"file://{skylift_env}/lake")
    for day, ds in enumerate(DATES):
        with lake.publish("features", "customer_features", ds) as writer:
            writer.write_table(pa.Table.from_pandas(_features(day), preserve_index=False))
    return lake


@pytest.fixture
def kube(tmp_path, monkeypatch, lake):
    with KubeDouble(NODES, secrets={SECRET: {"SKYLIFT_TEST_SECRET": "from-the-secret"}}) as double:
        monkeypatch.setenv(*double.connection_env(tmp_path))
        yield double


def pod_context(run_id: str = "scheduled__2026-11-02", try_number: int = 1) -> dict:
    """A task context with what the provider reads besides Skylift's slice: run id, map index, DAG."""
    context = task_context(DS, task_id="train", run_id=run_id)
    context["ti"].map_index, context["ti"].try_number = -1, try_number
    context.update(run_id=run_id, dag=SimpleNamespace(dag_id=context["ti"].dag_id))
    return context


def operator(kind=None, **overrides):
    from operators.train import TrainModelOperator

    arguments = dict(
        task_id="train", pipeline="churn", dataset="customer_features", framework="xgboost", target="churned",
        key=["customer_id"], model_params={"num_boost_round": 20, "max_depth": 3}, window_days=2,
        execution="kubernetes", namespace="ml", env_from_secret=SECRET, image=f"skylift-training@{DIGEST}",
        cpu="1", memory="2Gi", schedule_timeout=2, startup_timeout=30,
        pod_options={"startup_check_interval_seconds": 0.5, "poll_interval": 0.5},
    )
    return (kind or TrainModelOperator)(**{**arguments, **overrides})


def mlflow_run(skylift_env, run_id: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{skylift_env}/mlflow.db").get_run(run_id)


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def running_pod(kube: KubeDouble):
    pods = kube.cluster.list_pods("ml", None)
    return next((p for p in pods if p["status"]["phase"] == "Running"), None)


def test_a_night_trains_in_a_pod_registers_the_model_and_then_reuses_it(kube, skylift_env):
    from operators.register import RegisterModelOperator
    from operators.train_reuse import ATTEMPT_TAG, KEY_TAG

    context = pod_context()
    result = operator().execute(context)

    assert len(kube.cluster.created_pods) == 1
    assert kube.cluster.list_pods("ml", None) == []  # on_finish_action: delete_pod
    run = mlflow_run(skylift_env, result["run_id"])
    assert run.info.status == "FINISHED" and result["metrics"]["auc"] > 0.5
    assert run.data.tags[KEY_TAG] and run.data.tags[ATTEMPT_TAG]
    assert run.data.tags["skylift.image"] == f"skylift-training@{DIGEST}"
    assert context["ti"].xcoms[("train", "return_value")] == result
    assert context["ti"].xcoms[("train", RUN_XCOM_KEY)]["run_id"] == result["run_id"]

    register = RegisterModelOperator(model_name="churn", train_task_id="train", features_dataset="customer_features",
                                     task_id="register", pipeline="churn")
    registered = register.execute(task_context(DS, task_id="register", run_id=context["run_id"],
                                               xcoms=context["ti"].xcoms))
    assert registered["version"] == "1" and registered["run_id"] == result["run_id"]

    again = pod_context(run_id="manual__again")
    assert operator().execute(again)["run_id"] == result["run_id"]  # same image digest and inputs: reused
    assert len(kube.cluster.created_pods) == 1


@pytest.mark.parametrize(("overrides", "reason", "hint"), [
    ({"gpu": 4}, "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint "
                 "{nvidia.com/gpu: present}.", "train.resources.gpu"),
    ({"gpu": 4, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
     "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", "train.resources.gpu"),
    ({"node_selector": {"pool": "tpu"}}, "0/2 nodes are available: 1 node(s) didn't match Pod's node "
     "affinity/selector, 1 node(s) had untolerated taint {nvidia.com/gpu: present}.", "train.kubernetes.node_selector"),
    ({"gpu": 1, "tolerations": []}, "1 node(s) had untolerated taint {nvidia.com/gpu: present}",
     "train.kubernetes.tolerations"),
])
def test_a_pod_no_node_can_take_fails_after_schedule_timeout_with_the_reason(kube, overrides, reason, hint):
    with pytest.raises(TrainingError) as failed:
        operator(**overrides).execute(pod_context())
    message = str(failed.value)
    assert reason in message and hint in message and "schedule_timeout (2s" in message, message
    assert kube.cluster.list_pods("ml", None) == []  # the pending pod was deleted


def _worker(run_id: str) -> None:
    """Entry of the worker subprocess the re-attach test kills."""
    operator().execute(pod_context(run_id=run_id))


def test_a_retry_after_the_worker_died_reattaches_to_the_running_pod(kube, skylift_env):
    code = f"from tests.integration.test_k8s_training import _worker; _worker({'scheduled__reattach'!r})"
    worker = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: running_pod(kube), "the training pod to run")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker dies; the pod does not
        worker.wait()
    pod = running_pod(kube)
    assert pod is not None, "the pod finished before the worker was killed: nothing left to re-attach to"

    result = operator().execute(pod_context(run_id="scheduled__reattach", try_number=2))

    assert kube.cluster.created_pods == [pod["metadata"]["name"]]  # one pod, followed by both tries
    run = mlflow_run(skylift_env, result["run_id"])
    assert run.info.status == "FINISHED"  # the live run was not marked stale by the retry
    config = json.loads(pod["spec"]["containers"][0]["args"][1])
    assert run.data.tags["skylift.attempt_id"] == config["tags"]["skylift.attempt_id"]


def test_on_kill_deletes_the_pod_and_its_process_ends(kube):
    op = operator()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(pod_context(run_id="manual__killed"))
        except BaseException as exc:  # noqa: BLE001 - the killed task's error is expected; kept for the assert
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # the task holds its pod handle once create_pod has returned; the worker's kill comes after that
    pod = wait_for(lambda: op.pod is not None and running_pod(kube), "the training pod to run")
    op.on_kill()
    thread.join(WAIT)
    name = pod["metadata"]["name"]
    assert kube.cluster.list_pods("ml", None) == []
    wait_for(lambda: kube.cluster.processes[name].poll() is not None, "the container process to end", 30)
    assert failure, "execute returned normally although its pod was deleted"


def test_deferrable_post_processing_runs_after_the_trigger(kube, skylift_env):
    from airflow.sdk.exceptions import TaskDeferred

    from operators.train_reuse import KEY_TAG

    context = pod_context(run_id="manual__deferred")
    with pytest.raises(TaskDeferred) as deferred:
        operator(deferrable=True).execute(context)
    assert deferred.value.method_name == "trigger_reentry"

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success", event.payload
    # Airflow resumes on a fresh operator instance, in a new process
    result = operator(deferrable=True).trigger_reentry(context, event.payload)

    run = mlflow_run(skylift_env, result["run_id"])
    assert run.data.tags[KEY_TAG]  # the reuse tag: post-processing ran
    assert context["ti"].xcoms[("train", RUN_XCOM_KEY)]["run_id"] == result["run_id"]
    assert context["ti"].xcoms[("train", "return_value")] == result
    assert kube.cluster.list_pods("ml", None) == [] and len(kube.cluster.created_pods) == 1


def test_local_execution_collects_its_result_the_same_way(lake, skylift_env):
    from operators.train_reuse import ATTEMPT_TAG

    context = pod_context(run_id="manual__local")
    result = operator(execution="local").execute(context)
    run = mlflow_run(skylift_env, result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[ATTEMPT_TAG]
    assert context["ti"].xcoms[("train", "return_value")] == result


def test_a_search_trial_trains_its_point_in_a_pod_and_reports_it_to_the_study(kube, skylift_env, tmp_path):
    """`train.search` with `execution: kubernetes`: each trial is a pod, a child run of the search's
    parent run, and its metric goes back to the shared study."""
    from optuna.trial import TrialState

    from include.training import search
    from operators.hooks.mlflow import MlflowHook
    from operators.search import PARENT_TAG, PLAN_XCOM, TRIAL_TAG, TrialTrainOperator, ensure_experiment
    from operators.settings import Settings

    settings = Settings.resolve()
    client = MlflowHook(settings.mlflow_tracking_uri).client
    # the experiment as the search's plan task creates it: artifacts under the settings' root, not ./mlruns
    parent = client.create_run(ensure_experiment(client, "skylift/churn", settings.mlflow_artifact_root)).info.run_id
    plan = search.SearchPlan(study_name=search.study_name("churn_retrain", "manual__search"),
                             storage=f"file://{tmp_path}/optuna", parent_run_id=parent, experiment="skylift/churn",
                             framework="xgboost", space={"max_depth": {"type": "int", "low": 2, "high": 4}},
                             metric="auc", direction="maximize", trials=2, seed=7)
    context = pod_context(run_id="manual__search")
    context["ti"].task_id = "train_trial"
    context["ti"].xcoms[("search_plan", PLAN_XCOM)] = {"enabled": True, **plan.as_dict()}

    result = operator(TrialTrainOperator, task_id="train_trial", slot=0, plan_task_id="search_plan").execute(context)

    assert len(kube.cluster.created_pods) == 1 and kube.cluster.list_pods("ml", None) == []
    run = mlflow_run(skylift_env, result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[PARENT_TAG] == parent
    (trial,) = search.open_study(plan).get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and str(trial.number) == run.data.tags[TRIAL_TAG]
    assert trial.value == pytest.approx(result["metrics"]["auc"])
    assert int(run.data.params["max_depth"]) == trial.params["max_depth"]  # the study's point was trained
