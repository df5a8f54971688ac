"""One source that carries the features and, a day later, their outcome (`labels.feeds_features`),
through a project's nightly DAG (`dag.test()`, SQLite).

Each day's shipments drop holds that day's parcels with `late` still empty and the previous day's
parcels again with `late` filled in. The feature job takes the day's parcels and leaves `late`
out; training takes each outcome from the drops landed by the run's date; every parcel of the day
is scored; the day before's predictions are evaluated once its outcomes land.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from include.lake import Lake
from tests.e2e.in_process import activate_project
from tests.e2e.own_project import days, write_project

pytestmark = pytest.mark.e2e
NIGHTS = days(4)
PARCELS = 60

SPEC = """\
pipeline: arrivals
description: Predict which parcels arrive late; each day's drop brings the day before's outcomes.
owner: logistics
start_date: 2026-03-01
retries: 0
sources:
  shipments:
    uri: "shipments/{ds}/"
    format: csv
    schema: contracts/arrivals.yaml
    validate: {suite: suites/shipments.yaml, on_failure: fail}
labels: {source: shipments, column: late, key: [shipment_id], as_of: shipped_on, delay_days: 1,
         feeds_features: true}
features: {job: "parcel_jobs.arrivals:build", lookback_days: 1}
train:
  framework: xgboost
  target: late
  key: [shipment_id]
  params: {max_depth: 3, eta: 0.3, num_boost_round: 20}
  window_days: 3
  holdout_days: 1
register: {model_name: arrivals}
deploy:
  gate: {metric: auc, min: 0.0, beat_champion: false, min_holdout_rows: 10}
dags:
  nightly: {schedule: "0 3 * * *", stages: all}
"""
CONTRACT = """\
key: [shipment_id]
columns:
  shipment_id: {type: string, nullable: false}
  shipped_on: {type: date, nullable: false}
  weight_kg: {type: float64, nullable: false}
  distance_km: {type: float64, nullable: false}
  priority: {type: int32, nullable: false}
  late: {type: int32, nullable: true}
"""
JOB = '''\
"""The day's parcels (the drop also repeats the day before's, with their outcome): no outcome column."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def build(shipments: DataFrame, ds: str) -> DataFrame:
    today = shipments.where(F.col("shipped_on") == F.to_date(F.lit(ds)))
    return today.select("shipment_id", "weight_kg", "distance_km", "priority",
                        (F.col("distance_km") / F.col("weight_kg")).alias("km_per_kg"))
'''


def parcels(day: date) -> list[tuple[str, float, float, int, int]]:
    """The day's parcels and whether each arrives late (long trips of light parcels tend to)."""
    rng = random.Random(day.toordinal())
    out = []
    for n in range(PARCELS):
        weight, distance, priority = round(rng.uniform(0.5, 30), 2), round(rng.uniform(5, 900), 1), rng.randint(0, 1)
        late = int(distance / 900 - 0.3 * priority + rng.uniform(-0.3, 0.3) > 0.4)
        out.append((f"S{day:%m%d}{n:04d}", weight, distance, priority, late))
    return out


def write_drop(drops: Path, day: date) -> None:
    """The day's parcels with `late` empty, then the day before's with it filled in."""
    lines = ["shipment_id,shipped_on,weight_kg,distance_km,priority,late"]
    lines += [f"{i},{day},{w},{d},{p}," for i, w, d, p, _ in parcels(day)]
    before = day - timedelta(days=1)
    lines += [f"{i},{before},{w},{d},{p},{late}" for i, w, d, p, late in parcels(before)]
    folder = drops / "shipments" / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "shipments.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def dag_file(tmp_path, skylift_env, monkeypatch):
    root = write_project(tmp_path / "project")
    (root / "dags" / "pipelines" / "parcels.yaml").unlink()
    (root / "dags" / "pipelines" / "arrivals.yaml").write_text(SPEC)
    (root / "contracts" / "arrivals.yaml").write_text(CONTRACT)
    (root / "parcel_jobs" / "arrivals.py").write_text(JOB)
    for day in NIGHTS:
        write_drop(skylift_env / "drops", day)
    return activate_project(monkeypatch, root, tmp_path / "home", packages=("parcel_jobs",))


def test_one_source_feeds_the_features_and_a_day_later_their_outcomes(dag_file, skylift_env):
    import mlflow

    from operators.embedded import load_dag, run_dag

    dag = load_dag("arrivals_nightly", dag_file)
    assert "validate_shipments" in dag.get_task("features").upstream_task_ids
    lake = Lake(f"file://{skylift_env}/lake")
    for day in NIGHTS:
        assert run_dag("arrivals_nightly", day, dag_file=dag_file) == "success"
        features = lake.read_table("features", "arrivals_features", day.isoformat())
        assert features.num_rows == PARCELS and "late" not in features.column_names  # the day's parcels only

    # nights 1-2: no two label-complete days yet, nothing trained; nights 3 and 4 train
    client = mlflow.MlflowClient(f"sqlite:///{skylift_env}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("skylift/arrivals").experiment_id],
                              order_by=["attributes.start_time ASC"])
    trained = [run.data.tags["skylift.ds"] for run in runs]
    assert trained == [NIGHTS[2].isoformat(), NIGHTS[3].isoformat()]
    params = runs[-1].data.params
    # night 4 learns days 1-3 (day 3 held out), each outcome from the drop after it; the drops' empty
    # outcomes of the same rows count for nothing, and no drop after the night is read
    assert params["dates"] == ",".join(d.isoformat() for d in NIGHTS[:3])
    assert params["holdout_dates"] == NIGHTS[2].isoformat()
    assert params["label_dates"] == ",".join(d.isoformat() for d in NIGHTS)
    assert params["labels_dataset"] == "shipments"

    # every parcel of the last day is scored, though none of its outcomes is known
    predictions = lake.read_table("predictions", "arrivals_predictions", NIGHTS[3].isoformat())
    assert predictions.num_rows == PARCELS
    # the day before's predictions are evaluated once its outcomes land (the drop of the last night)
    evaluated = lake.read_table("evaluations", "arrivals_evaluations", NIGHTS[2].isoformat()).to_pylist()
    assert evaluated and evaluated[0]["labelled_rows"] == PARCELS
