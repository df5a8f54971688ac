"""A small pipeline of a new user's own, in a project folder outside this repository.

Parcels: each day a CSV drop of shipments (weight, distance, priority) with whether the parcel
arrived late. The spec, contract, suite and feature job (in the project's own package
`parcel_jobs`) are written here, as a user would, so the tests see only what the README shows.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

START = date(2026, 3, 1)
SHIPMENTS = 60

SPEC = """\
pipeline: parcels
description: Predict which parcels arrive late from the day's shipments.
owner: logistics
tags: [xgboost, classification]
start_date: 2026-03-01
retries: 0

source:
  uri: "shipments/{ds}/"
  format: csv
  schema: contracts/shipments.yaml
  dataset: shipments

validate:
  suite: suites/shipments.yaml
  on_failure: fail

features:
  job: parcel_jobs.features:build
  lookback_days: 2

train:
  framework: xgboost
  task: classification
  target: late
  key: [shipment_id]
  params: {max_depth: 3, eta: 0.3, num_boost_round: 20}
  window_days: 1

register:
  model_name: parcels

deploy:
  gate: {metric: auc, min: 0.5, beat_champion: false}

dags:
  daily:
    schedule: "0 3 * * *"
    stages: [ingest, validate]
  retrain:
    schedule: null
    stages: [features, train, register, deploy]
    params:
      max_depth: {type: integer, default: 3, minimum: 1, maximum: 8, description: Tree depth}
"""

CONTRACT = """\
key: [shipment_id]
columns:
  shipment_id: {type: string, nullable: false}
  weight_kg: {type: float64, nullable: false}
  distance_km: {type: float64, nullable: false}
  priority: {type: int32, nullable: false}
  late: {type: int32, nullable: false}
"""

SUITE = """\
name: shipments
description: Plausibility of one day of shipments.
expectations:
  - expect_table_row_count_to_be_between: {min_value: 10}
  - expect_column_values_to_be_between: {column: weight_kg, min_value: 0, max_value: 100}
  - expect_column_values_to_be_in_set: {column: priority, value_set: [0, 1]}
"""

JOB = '''\
"""Parcel features: the day's shipments with their distance per kilogram."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def build(shipments: DataFrame, ds: str) -> DataFrame:
    today = shipments.where(F.col("ds") == ds)
    return today.select("shipment_id", "weight_kg", "distance_km", "priority",
                        (F.col("distance_km") / F.col("weight_kg")).alias("km_per_kg"), "late")
'''


def write_project(root: Path) -> Path:
    files = {
        "dags/pipelines/parcels.yaml": SPEC,
        "contracts/shipments.yaml": CONTRACT,
        "suites/shipments.yaml": SUITE,
        "parcel_jobs/__init__.py": "",
        "parcel_jobs/features.py": JOB,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def write_drop(drops: Path, day: date, rows: int = SHIPMENTS) -> Path:
    """One day's shipments; long trips of light parcels tend to be late."""
    rng = random.Random(day.toordinal())
    lines = ["shipment_id,weight_kg,distance_km,priority,late"]
    for n in range(rows):
        weight, distance, priority = round(rng.uniform(0.5, 30), 2), round(rng.uniform(5, 900), 1), rng.randint(0, 1)
        late = int(distance / 900 - 0.3 * priority + rng.uniform(-0.3, 0.3) > 0.4)
        lines.append(f"S{day:%m%d}{n:04d},{weight},{distance},{priority},{late}")
    folder = drops / "shipments" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shipments.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def days(count: int, first: date = START) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]
