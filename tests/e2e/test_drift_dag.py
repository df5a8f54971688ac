"""Drift through Airflow (`dag.test()`, SQLite): `score -> monitor -> retrain_on_drift` of a small
spec of its own triggers a real run of its retrain DAG for a shifted day, once per cooldown.

The operators' own logic is covered without a scheduler in tests/component/test_drift_monitor.py; this
module checks only what needs Airflow: the compiled DAG runs, the trigger goes through Airflow's
task runner and execution API, and the retrain DAG run exists with the date in its conf.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import embedded_environment
from tests.registry_models import log_column_models, register_versions

pytestmark = pytest.mark.e2e
COLUMNS = ["good", "weak"]

SPEC = """\
pipeline: drifty
description: A tiny scorer whose drift check triggers its retrain DAG.
start_date: 2026-03-01
retries: 0
features: {job: "include.features.churn:build"}
train:
  framework: xgboost
  target: churned
  key: [customer_id]
register: {model_name: drifty}
deploy: {gate: {metric: auc, min: 0.5}}
monitor:
  drift: {retrain: true, cooldown_days: 7}
dags:
  score: {schedule: null, stages: [score, monitor]}
  retrain: {schedule: null, stages: [train, register, deploy]}
"""

DAG_FILE = """\
# The airflow DAG file of the spec (the DAG processor reads only files that name both words).
from pathlib import Path

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path(__file__).parent / "pipelines" / "drifty.yaml"))
"""


def rows(seed: int, shift: float = 0.0, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    churned = rng.random(n) < 0.3
    return pd.DataFrame({"customer_id": [f"c{i:05d}" for i in range(n)],
                         "good": 0.3 + 0.5 * churned + rng.normal(0, 0.15, n) + shift,
                         "weak": 0.3 + 0.1 * churned + rng.normal(0, 0.15, n)})


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The spec and its DAG file as the DAGs folder; a champion with its training reference."""
    import airflow.settings

    from include import registry
    from include.drift import REFERENCE_ARTIFACT, build_reference
    from include.lake import Lake

    home = tmp_path / "skylift"
    home.mkdir()
    for key, value in embedded_environment(home).items():
        monkeypatch.setenv(key, value)
    (tmp_path / "dags" / "pipelines").mkdir(parents=True)
    (tmp_path / "dags" / "pipelines" / "drifty.yaml").write_text(SPEC)
    (tmp_path / "dags" / "drifty_pipeline.py").write_text(DAG_FILE)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(tmp_path / "dags"))  # read once at import
    uri, artifacts = f"sqlite:///{home}/mlflow.db", f"file://{home}/mlartifacts"
    client = registry.client_for(uri)
    logged = log_column_models(client, uri, artifacts, columns=("good",))
    register_versions(client, uri, "drifty", logged, pipeline="drifty")
    registry.set_alias(client, "drifty", "champion", "1")
    training = rows(seed=100, n=3000)
    client.log_dict(logged[0][0], build_reference(COLUMNS, training[COLUMNS].to_numpy()).to_dict(),
                    REFERENCE_ARTIFACT)
    lake = Lake(f"file://{home}/lake")
    for ds, shift in (("2026-03-10", 0.5), ("2026-03-12", 0.5)):
        with lake.publish("features", "drifty_features", ds, run_id="planted") as writer:
            writer.write_table(pa.Table.from_pandas(rows(seed=int(ds[-2:]), shift=shift), preserve_index=False))
    return tmp_path / "dags" / "drifty_pipeline.py"


def run_score_dag(dag_file, ds: str) -> dict[str, str]:
    from operators.embedded import load_dag, migrate

    migrate()
    dag = load_dag("drifty_score", dag_file)
    day = datetime.fromisoformat(ds).replace(tzinfo=UTC)
    run = dag.test(logical_date=day, run_conf={"ds": ds})
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_a_shifted_day_triggers_one_retrain_dag_run_within_the_cooldown(project):
    from airflow.models.dagrun import DagRun

    assert run_score_dag(project, "2026-03-10") == {"score": "success", "monitor": "success",
                                                    "retrain_on_drift": "success"}
    # Two days later, drifted as well: inside the cooldown, so no second retrain.
    assert run_score_dag(project, "2026-03-12") == {"score": "success", "monitor": "success",
                                                    "retrain_on_drift": "skipped"}
    retrains = DagRun.find(dag_id="drifty_retrain")
    assert [(r.run_id, r.conf) for r in retrains] == [("skylift_drift__2026-03-10", {"ds": "2026-03-10"})]
    assert str(retrains[0].run_type) in ("DagRunType.OPERATOR_TRIGGERED", "operator_triggered")
