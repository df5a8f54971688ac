"""The drift stage end to end without a scheduler: a real registered model scores each day
(BatchScoreOperator), `monitor` checks it against the model's training reference, and
`retrain_on_drift` (Airflow's TriggerDagRunOperator) triggers the retrain, or skips.

Must-show 3 of issue 12: a shifted day triggers exactly one retrain within the cooldown, an
unshifted day none, and the report names the drifted features.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from airflow.providers.common.compat.sdk import DagRunTriggerException
from airflow.sdk.exceptions import AirflowSkipException

from tests.conftest import task_context
from tests.registry_models import log_column_models, register_versions

MODEL, FEATURES, PREDICTIONS = "churn_drift", "churn_features", "churn_predictions"
COLUMNS = ["good", "weak"]


def day_rows(seed: int, n: int = 400, shift: float = 0.0) -> pd.DataFrame:
    """Feature rows like the training data's; `shift` moves the `good` column."""
    rng = np.random.default_rng(seed)
    churned = rng.random(n) < 0.3
    return pd.DataFrame({"customer_id": [f"c{i:05d}" for i in range(n)],
                         "good": 0.3 + 0.5 * churned + rng.normal(0, 0.15, n) + shift,
                         "weak": 0.3 + 0.1 * churned + rng.normal(0, 0.15, n)})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module: version 1 scores the `good` column and has the reference
    training logs beside it; version 2 (the `weak` column) was trained before references existed."""
    from include import registry
    from include.drift import REFERENCE_ARTIFACT, build_reference

    folder = tmp_path_factory.mktemp("drift-mlflow")
    uri, artifacts = f"sqlite:///{folder}/mlflow.db", f"file://{folder}/artifacts"
    client = registry.client_for(uri)
    logged = log_column_models(client, uri, artifacts, columns=("good", "weak"))
    register_versions(client, uri, MODEL, logged, pipeline="churn")
    registry.set_alias(client, MODEL, "champion", "1")
    training = day_rows(seed=100, n=3000)
    client.log_dict(logged[0][0], build_reference(COLUMNS, training[COLUMNS].to_numpy()).to_dict(),
                    REFERENCE_ARTIFACT)
    return uri, artifacts


@pytest.fixture
def world(skylift_env, store, monkeypatch):
    """A fresh lake per test, scored with the module's champion."""
    from include.lake import Lake
    from operators.settings import Settings

    uri, artifacts = store
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_ARTIFACT_ROOT", artifacts)
    return Lake(Settings.resolve().lake_root)


def monitor_task(**drift):
    """The monitor task as the stage builds it, with the spec's defaults but for `drift`."""
    from operators.monitor import DriftMonitorOperator
    from operators.spec.models import DriftSpec

    return DriftMonitorOperator(task_id="monitor", pipeline="churn", model_name=MODEL, features_dataset=FEATURES,
                                predictions_dataset=PREDICTIONS, drift=DriftSpec(**drift).model_dump(),
                                retrain_dag_id="churn_retrain" if drift.get("retrain") else None)


def night(lake, ds: str, shift: float = 0.0, publish: bool = True) -> dict:
    """One night's score -> monitor -> retrain_on_drift, as the DAG runs them; what each did."""
    from operators.monitor import RetrainOnDriftOperator
    from operators.score import BatchScoreOperator

    if publish:
        with lake.publish("features", FEATURES, ds, run_id="features") as writer:
            writer.write_table(pa.Table.from_pandas(day_rows(seed=int(ds[-2:]), shift=shift), preserve_index=False))
    xcoms: dict = {}
    score = BatchScoreOperator(task_id="score", pipeline="churn", model_name=MODEL, features_dataset=FEATURES,
                               dataset=PREDICTIONS, key=["customer_id"], engine="pandas")
    xcoms[("score", "return_value")] = score.execute(task_context(ds, task_id="score", xcoms=xcoms))
    monitor = monitor_task(retrain=True, cooldown_days=7)
    done = {"score": xcoms[("score", "return_value")]}
    try:
        done["monitor"] = xcoms[("monitor", "return_value")] = monitor.execute(
            task_context(ds, task_id="monitor", xcoms=xcoms))
    except AirflowSkipException as skip:
        done["monitor"] = skip
        return done
    trigger = RetrainOnDriftOperator(task_id="retrain_on_drift", retrain_dag_id="churn_retrain")
    try:
        trigger.execute(task_context(ds, task_id="retrain_on_drift", xcoms=xcoms))
    except (DagRunTriggerException, AirflowSkipException) as outcome:
        done["trigger"] = outcome
    return done


def report(lake, ds: str) -> tuple[dict, str]:
    body = json.loads(lake.read_bytes("reports", "churn_drift", ds, "drift.json"))
    return body, lake.read_bytes("reports", "churn_drift", ds, "drift.html").decode()


def test_a_shifted_day_triggers_one_retrain_per_cooldown_and_an_unshifted_day_none(world):
    lake = world
    calm = night(lake, "2026-11-10")
    assert calm["monitor"]["status"] == "no_drift" and calm["monitor"]["drifted_features"] == []
    assert isinstance(calm["trigger"], AirflowSkipException)
    assert "no retrain for ds=2026-11-10: the day did not drift" in str(calm["trigger"])

    shifted = night(lake, "2026-11-11", shift=0.5)
    assert shifted["monitor"]["drifted_features"] == ["good"]  # `weak` did not move
    trigger = shifted["trigger"]
    assert isinstance(trigger, DagRunTriggerException)
    assert (trigger.trigger_dag_id, trigger.dag_run_id, trigger.conf) == (
        "churn_retrain", "skylift_drift__2026-11-11", {"ds": "2026-11-11"})
    assert trigger.skip_when_already_exists  # a repeated trigger of that run is a skip, never a second run

    within = night(lake, "2026-11-13", shift=0.5)  # drifted too, inside the 7-day cooldown
    assert within["monitor"]["drifted"] and within["monitor"]["retrain"]["trigger"] is None
    assert isinstance(within["trigger"], AirflowSkipException)
    assert "ds=2026-11-11 triggered skylift_drift__2026-11-11 within the 7-day cooldown" in str(within["trigger"])

    triggered = [n["trigger"] for n in (calm, shifted, within) if isinstance(n["trigger"], DagRunTriggerException)]
    assert len(triggered) == 1

    body, page = report(lake, "2026-11-11")
    assert body["drifted_features"] == ["good"] and body["model_version"] == "1"
    assert body["thresholds"] == {"psi": 0.25, "ks_pvalue": 0.001, "min_rows": 100}
    assert body["prediction_baseline"] == ["2026-11-10"] and body["prediction_drifted"]
    assert "Drifted features: <span class='drift'>good</span>" in page
    assert "Retrain triggered: DAG churn_retrain, run skylift_drift__2026-11-11." in page
    _, within_page = report(lake, "2026-11-13")
    assert ("No retrain: ds=2026-11-11 triggered one (skylift_drift__2026-11-11) within the 7-day cooldown."
            in within_page)
    calm_body, calm_page = report(lake, "2026-11-10")
    assert calm_body["drifted_features"] == [] and "Drifted features: <span class='drift'>none</span>" in calm_page


def test_a_partition_only_kept_unchanged_is_not_checked_again(world):
    lake = world
    first = night(lake, "2026-11-11", shift=0.5)
    assert isinstance(first["trigger"], DagRunTriggerException)
    again = night(lake, "2026-11-11", publish=False)  # a re-run of the night: scoring keeps the predictions
    assert again["score"]["reused"]
    assert isinstance(again["monitor"], AirflowSkipException) and "trigger" not in again
    assert "were kept unchanged" in str(again["monitor"])


def test_a_retried_check_repeats_its_own_trigger_and_never_doubles_it(world):
    from include.retrain_ledger import RetrainLedger
    from operators.monitor import RetrainOnDriftOperator

    lake = world
    night(lake, "2026-11-11", shift=0.5)
    scored = {"ds": "2026-11-11", "model_version": "1", "rows": 400}  # as if the task failed after claiming
    xcoms = {("score", "return_value"): scored}
    monitor = monitor_task(retrain=True)
    xcoms[("monitor", "return_value")] = outcome = monitor.execute(
        task_context("2026-11-11", task_id="monitor", xcoms=xcoms))
    assert outcome["retrain"]["claim"]["repeated"]
    with pytest.raises(DagRunTriggerException) as trigger:
        RetrainOnDriftOperator(task_id="retrain_on_drift", retrain_dag_id="churn_retrain").execute(
            task_context("2026-11-11", task_id="retrain_on_drift", xcoms=xcoms))
    assert trigger.value.dag_run_id == "skylift_drift__2026-11-11" and trigger.value.skip_when_already_exists
    assert len(RetrainLedger(lake, "churn").records()) == 1


def test_a_version_without_a_reference_or_lineage_is_skipped_with_the_way_out(world):
    monitor = monitor_task()
    with pytest.raises(AirflowSkipException, match=r"v2 \(run \w+\) has no drift_reference.json: it was trained "
                                                   r"before .* retrain it to monitor drift"):
        monitor.reference("2")


def test_a_version_without_a_reference_gets_one_from_its_training_partitions(world, store):
    from include import registry

    lake = world
    for day in ("2026-11-01", "2026-11-02"):
        with lake.publish("features", FEATURES, day, run_id="features") as writer:
            writer.write_table(pa.Table.from_pandas(day_rows(seed=int(day[-2:])), preserve_index=False))
    client = registry.client_for(store[0])
    client.set_model_version_tag(MODEL, "2", "skylift.features",
                                 f"{FEATURES}@2026-11-01,{FEATURES}@2026-11-02,{FEATURES}@2026-10-01")
    try:
        reference = monitor_task().reference("2")
    finally:
        client.delete_model_version_tag(MODEL, "2", "skylift.features")
    assert reference.columns == COLUMNS and reference.rows == 800  # the partition that is gone is left out
