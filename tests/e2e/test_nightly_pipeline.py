"""The nightly pipeline end to end through Airflow (`dag.test()`, SQLite), for consecutive dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from include.datagen.churn import generate
from include.lake import Lake

pytestmark = pytest.mark.e2e
END = date(2026, 11, 24)
CUSTOMERS = 1500


@pytest.fixture(scope="module")
def pipeline_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e")
    env = {
        "AIRFLOW_VAR_SKYLIFT_LAKE_ROOT": f"file://{home}/lake",
        "AIRFLOW_VAR_SKYLIFT_DROPS_ROOT": f"file://{home}/drops",
        "AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "AIRFLOW_VAR_SKYLIFT_MLFLOW_ARTIFACT_ROOT": f"file://{home}/mlartifacts",
        "AIRFLOW_VAR_SKYLIFT_SPARK_MASTER": "local[2]",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        generate(home / "drops" / "activity", END, days=5, n_customers=CUSTOMERS)
        yield home


def run(dag_id, day, conf=None):
    from operators.embedded import run_dag

    return run_dag(dag_id, day, conf)


def snapshot(lake, zone, dataset, ds):
    table = lake.read_table(zone, dataset, ds)
    files = lake.fs.ls(lake.partition_path(zone, dataset, ds), detail=False)
    return table.sort_by([("customer_id", "ascending")]), len(files)


def client(home):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db", registry_uri=f"sqlite:///{home}/mlflow.db")


def test_two_nights_then_a_rerun(pipeline_env):
    home = pipeline_env
    lake = Lake(f"file://{home}/lake")
    day1, day2 = END - timedelta(days=1), END
    assert run("churn_nightly", day1) == "success"
    assert run("churn_nightly", day2) == "success"

    for ds in (day1.isoformat(), day2.isoformat()):
        for zone, dataset in [("raw", "customer_activity"), ("validated", "customer_activity"),
                              ("features", "churn_features"), ("predictions", "churn_predictions")]:
            assert lake.require(zone, dataset, ds).row_count == CUSTOMERS, (zone, ds)
        assert lake.require("reports", "customer_activity", ds).extra["status"] == "passed"
    assert lake.require("features", "churn_features", day2.isoformat()).extra["window"][-2:] == [
        day1.isoformat(), day2.isoformat()]

    registry = client(home)
    versions = registry.search_model_versions("name = 'churn'")
    assert len(versions) == 2
    champion = registry.get_model_version_by_alias("churn", "champion")
    assert str(registry.get_model_version_by_alias("churn", "challenger").version) == "2"
    assert float(registry.get_run(champion.run_id).data.metrics["auc"]) >= 0.70
    assert champion.tags["skylift.features"].startswith("churn_features@")
    assert "activity.csv#" in champion.tags["skylift.raw_sources"]

    features = lake.read_table("features", "churn_features", day2.isoformat()).to_pandas()
    predictions = lake.read_table("predictions", "churn_predictions", day2.isoformat()).to_pandas()
    joined = features.merge(predictions, on="customer_id", how="inner", validate="one_to_one")
    assert len(joined) == CUSTOMERS
    assert predictions["prediction"].between(0, 1).all()
    assert set(predictions["model_version"]) == {str(champion.version)}
    # the model has learnt something: churners score higher on average
    assert joined.groupby("churned")["prediction"].mean().diff().iloc[-1] > 0.1

    kept = [("raw", "customer_activity"), ("validated", "customer_activity"), ("features", "churn_features"),
            ("predictions", "churn_predictions")]
    before = {part: snapshot(lake, *part, day2.isoformat()) for part in kept}
    assert run("churn_nightly", day2) == "success"
    for (zone, dataset), (table, n_files) in before.items():
        again, files_again = snapshot(lake, zone, dataset, day2.isoformat())
        assert again.equals(table), zone
        assert files_again == n_files == 2, zone  # one data file and the manifest, nothing left over
    # the same inputs: training was reused, so the re-run added no model version
    assert len(registry.search_model_versions("name = 'churn'")) == 2
    assert str(registry.get_model_version_by_alias("churn", "champion").version) == str(champion.version)

    built = lake.require("features", "churn_features", day2.isoformat())
    assert run("churn_nightly", day2, {"rebuild": True}) == "success"
    assert len(registry.search_model_versions("name = 'churn'")) == 3  # rebuild trains again
    assert lake.require("features", "churn_features", day2.isoformat()).attempt != built.attempt
    again, _ = snapshot(lake, "features", "churn_features", day2.isoformat())
    assert again.num_rows == CUSTOMERS and again.column("customer_id").equals(before[kept[2]][0].column("customer_id"))


def test_retrain_with_a_trigger_form_conf(pipeline_env):
    home = pipeline_env
    conf = {"train_start": "2026-11-23", "train_end": "2026-11-24", "max_depth": 2, "num_boost_round": 30,
            "force_deploy": True}
    assert run("churn_retrain", END, conf) == "success"
    registry = client(home)
    newest = max(registry.search_model_versions("name = 'churn'"), key=lambda v: int(v.version))
    run_data = registry.get_run(newest.run_id).data
    assert run_data.params["max_depth"] == "2"
    assert "2026-11-23" in run_data.params["dates"] and "2026-11-24" in run_data.params["dates"]
    assert str(registry.get_model_version_by_alias("churn", "champion").version) == str(newest.version)
