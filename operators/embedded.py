"""Run a DAG through Airflow itself on the embedded default (`dag.test()`, SQLite metadata DB).

The caller sets AIRFLOW_HOME and friends before anything imports Airflow (see `operators.cli`).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any


@cache
def migrate() -> None:
    """Create or upgrade the metadata DB (SQLite under AIRFLOW_HOME); cheap when up to date."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    from airflow.utils.db import initdb

    initdb()


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        problems = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
        raise RuntimeError(f"DAG files failed to import:\n{problems}")
    if dag_id not in bag.dags:
        raise KeyError(f"no DAG {dag_id!r}; known: {sorted(bag.dags)}")
    return bag.dags[dag_id]


def run_dag(dag_id: str, day: date, conf: dict[str, Any] | None = None) -> str:
    """Run one DAG run for `day` in this process; returns the run's final state."""
    migrate()
    dag = load_dag(dag_id)
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run = dag.test(logical_date=logical, run_conf=conf)
    return str(run.state)
