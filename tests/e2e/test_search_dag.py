"""Hyper-parameter search from an on-demand DAG, through Airflow (`dag.test()`).

A small spec of its own (XGBoost, one features partition of 400 rows planted in the lake, at most 20
boosting rounds) keeps each trial at its process's start-up cost. The retrain DAG is triggered with
its form's `search` switched on and 8 trials, 2 at a time: every trial trains in its own process as a
child run of one MLflow parent run, an Optuna study picks the points, and the best trial by AUC is
the version that register creates and the gate promotes.

Cost: about 145 s of CPU (measured 2026-11-25), nearly all of it the eight training processes'
start-up (XGBoost, MLflow and torch imports) and model logging; `dag.test()` runs the trials one
after another, so `parallelism` is checked on the task, not timed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import embedded_environment

pytestmark = pytest.mark.e2e
DS = "2026-03-10"
TRIALS = 8

SPEC = """\
pipeline: tuning
description: Churn-like classifier tuned by a hyper-parameter search.
start_date: 2026-03-01
retries: 0
features: {job: "include.features.churn:build"}
train:
  framework: xgboost
  target: churned
  key: [customer_id]
  params: {max_depth: 3, eta: 0.3, num_boost_round: 10}
  search:
    params:
      max_depth: {type: int, low: 1, high: 6}
      eta: {type: log_float, low: 0.02, high: 0.5}
      num_boost_round: {type: int, low: 5, high: 20, step: 5}
      tree_method: {type: categorical, choices: [hist, approx]}
    trials: 20
    parallelism: 2
    metric: auc
    seed: 7
register: {model_name: tuning}
deploy: {gate: {metric: auc, min: 0.5, beat_champion: true}}
dags:
  retrain: {schedule: null, stages: [train, register, deploy]}
"""

DAG_FILE = """\
# The airflow DAG file of the spec (the DAG processor reads files that name both).
from pathlib import Path

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path(__file__).parent / "pipelines" / "tuning.yaml"))
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "skylift"
    home.mkdir()
    for key, value in embedded_environment(home).items():
        monkeypatch.setenv(key, value)
    (tmp_path / "dags" / "pipelines").mkdir(parents=True)
    (tmp_path / "dags" / "pipelines" / "tuning.yaml").write_text(SPEC)
    (tmp_path / "dags" / "tuning_pipeline.py").write_text(DAG_FILE)
    import airflow.settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path / "dags"))  # read once at import
    _plant_features(home)
    return home


def _plant_features(home: Path) -> None:
    from include.lake import Lake

    rng = np.random.default_rng(11)
    n = 400
    churned = (rng.random(n) < 0.35).astype("int64")
    frame = {
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "tenure": rng.normal(24, 6, n) - 6 * churned,
        "spend": rng.gamma(2.0, 20.0, n) * (1.0 - 0.3 * churned),
        "logins": rng.poisson(8, n) - rng.poisson(3 * churned),
        "churned": churned,
    }
    with Lake(f"file://{home}/lake").publish("features", "tuning_features", DS) as writer:
        writer.write_table(pa.table(frame))


def _run(dag_file: Path, conf: dict):
    from operators.embedded import load_dag, migrate

    migrate()
    dag = load_dag("tuning_retrain", dag_file)
    day = date.fromisoformat(DS)
    return dag, dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf=conf)


def test_a_search_of_eight_trials_registers_and_gates_the_best(home, tmp_path):
    from include import registry
    from include.training import search as hyper_search
    from operators import search

    dag, run = _run(tmp_path / "dags" / "tuning_pipeline.py", {"search": True, "search_trials": TRIALS})
    assert str(run.state) == "success"
    assert dag.get_task(search.TRIAL_TASK).max_active_tis_per_dagrun == 2

    client = registry.client_for(f"sqlite:///{home}/mlflow.db")
    experiment = client.get_experiment_by_name("skylift/tuning")
    parents = client.search_runs([experiment.experiment_id], f"tags.`{search.ROLE_TAG}` = 'parent'")
    assert len(parents) == 1
    parent = parents[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    # the parent lists every trial, each its own finished training run with its own point
    assert len(children) == TRIALS
    assert {c.info.status for c in children} == {"FINISHED"}
    assert sorted(int(c.data.tags[search.TRIAL_TAG]) for c in children) == list(range(TRIALS))
    points = {(c.data.params["max_depth"], c.data.params["eta"], c.data.params["num_boost_round"]) for c in children}
    assert len(points) > 1
    best = max(children, key=lambda c: (c.data.metrics["auc"], -int(c.data.tags[search.TRIAL_TAG])))

    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["skylift.search.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_auc"] == pytest.approx(best.data.metrics["auc"])
    assert parent.data.tags["skylift.search.finished_trials"] == str(TRIALS)

    # the best trial is the version registered, and the gate made it the champion
    versions = client.search_model_versions("name = 'tuning'")
    assert [v.run_id for v in versions] == [best.info.run_id]
    assert registry.champion_version(client, "tuning") == str(versions[0].version)

    # Optuna saw every trial's value (the study the trials shared across their processes)
    plan = hyper_search.SearchPlan.from_dict(_plan_xcom(run, dag))
    study = hyper_search.open_study(plan)
    values = sorted(t.value for t in study.trials if t.value is not None)
    assert len(values) == TRIALS
    assert values == sorted(c.data.metrics["auc"] for c in children)


def _plan_xcom(run, dag) -> dict:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from operators import search

    with create_session() as session:
        value = session.scalar(select(XComModel.value).where(
            XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id, XComModel.task_id == search.PLAN_TASK,
            XComModel.key == search.PLAN_XCOM))
    import json

    return json.loads(value) if isinstance(value, str) else value
