"""The nightly and retrain DAGs under the real scheduler: PostgreSQL metadata DB, an S3 lake,
the MLflow server with S3 artifacts, and a Spark standalone cluster; triggered through REST.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.lake import Lake
from tests.conftest import STACK_CUSTOMERS as CUSTOMERS
from tests.conftest import STACK_END as END

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3_lake(stack):
    return Lake("s3://skylift-lake", storage_options=stack.s3_storage_options())


@pytest.fixture(scope="module")
def nightly(stack, api, landed):
    api.wait_for_dag("churn_nightly")
    # The nights before END ran when the drops landed (tests/conftest.py `landed`); this is END's,
    # scheduled-style, with a logical date (the browser suite's nightly is the same run).
    run_id = api.trigger_or_join("churn_nightly", f"{END.isoformat()}T00:00:00Z")
    return {END.isoformat(): (run_id, api.wait_for_run("churn_nightly", run_id))}


def test_nightly_succeeds_under_the_scheduler(api, nightly):
    for run_id, state in nightly.values():
        assert state == "success", _failure(api, "churn_nightly", run_id)


def test_lake_in_s3_holds_every_zone(nightly, s3_lake):
    for ds in ((END - timedelta(days=1)).isoformat(), *nightly):
        for zone, dataset in [("raw", "customer_activity"), ("validated", "customer_activity"),
                              ("features", "churn_features"), ("predictions", "churn_predictions")]:
            assert s3_lake.require(zone, dataset, ds).row_count == CUSTOMERS, (zone, ds)
        report = s3_lake.read_bytes("reports", "customer_activity", ds, "validation.html")
        assert b"customer_activity" in report
    predictions = s3_lake.require("predictions", "churn_predictions", END.isoformat())
    assert predictions.extra["engine"] == "spark"  # a cluster is configured: scoring ran on it
    raw = s3_lake.require("raw", "customer_activity", END.isoformat())
    assert raw.inputs[0]["source"].startswith("s3://skylift-landing/activity/2026-11-24/")


def test_registry_lives_in_the_mlflow_server(nightly, stack, s3_lake):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    assert len(client.search_model_versions("name = 'churn'")) >= 2
    run = client.get_run(champion.run_id)
    assert run.data.metrics["auc"] > 0.7
    # artifacts were proxied by the server into the S3 store
    keys = [o["Key"] for o in stack.s3_client().list_objects_v2(Bucket="mlflow-artifacts").get("Contents", [])]
    assert any(k.endswith("MLmodel") for k in keys)
    scored = s3_lake.read_table("predictions", "churn_predictions", END.isoformat()).to_pandas()
    assert set(scored["model_version"]) <= {str(v.version) for v in client.search_model_versions("name='churn'")}
    assert scored["customer_id"].is_unique and scored["prediction"].between(0, 1).all()


def test_retrain_from_rest_with_a_conf(api, nightly, stack):
    import mlflow

    api.wait_for_dag("churn_retrain")
    # outcomes land 3 days late: the range's label-complete days (11-18 .. 11-21) train and gate
    conf = {"train_start": "2026-11-18", "train_end": "2026-11-24", "max_depth": 3, "num_boost_round": 40}
    run_id = api.trigger("churn_retrain", None, conf)  # a UI-style trigger: no logical date
    state = api.wait_for_run("churn_retrain", run_id)
    assert state == "success", _failure(api, "churn_retrain", run_id)
    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    newest = max(client.search_model_versions("name = 'churn'"), key=lambda v: int(v.version))
    params = client.get_run(newest.run_id).data.params
    assert params["max_depth"] == "3"
    assert newest.tags["skylift.dag_id"] == "churn_retrain"


def test_a_bad_conf_is_rejected_by_the_api(api, nightly):
    with pytest.raises(AssertionError, match="400"):
        api.trigger("churn_retrain", None, {"max_depth": 99})


def _failure(api, dag_id, run_id) -> str:
    """Task states and the log of every failed task, for the assertion message."""
    states = api.task_states(dag_id, run_id)
    logs = [f"--- {task} log:\n{api.task_log(dag_id, run_id, task)[-3000:]}"
            for task, state in states.items() if state == "failed"]
    return "\n".join([f"{dag_id} {run_id}: {states}", *logs])
