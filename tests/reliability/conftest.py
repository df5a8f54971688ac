"""Helpers for the reliability suite: run a whole DAG through Airflow and see what each task did.

`tests/conftest.py` has already pointed AIRFLOW_HOME at a temporary folder; the Skylift settings
(lake, drops, MLflow) come from `skylift_settings`, set as AIRFLOW_VAR_* by each module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

# Where each zone's partition lives for the churn pipeline (dataset per zone).
DATASETS = {
    "raw": "customer_activity",
    "reports": "customer_activity",
    "validated": "customer_activity",
    "quarantine": "customer_activity",
    "features": "churn_features",
    "predictions": "churn_predictions",
}
# The stages of `churn_nightly` in order; a failure must stop everything after it.
# The label source's own tasks (ingest_churn_labels, validate_churn_labels) run beside these.
NIGHTLY = ["wait_for_drop_activity", "ingest_activity", "validate_activity", "features", "train", "register",
           "deploy", "score", "evaluate"]


def skylift_settings(home: Path) -> dict[str, str]:
    """The embedded Skylift settings under `home`, as Airflow Variables in the environment."""
    from operators.settings import as_environment, embedded_values

    return as_environment(embedded_values(home, spark_master="local[2]"))


@dataclass
class DagRunResult:
    """What one `dag.test()` run did: its state, each task's state, and each failed task's exception."""

    state: str
    run_id: str
    task_states: dict[str, str | None]
    errors: dict[str, BaseException | None] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [task for task, state in self.task_states.items() if state == "failed"]


def run_dag_once(dag_id: str, day: date, conf: dict[str, Any] | None = None,
                 sensor_timeout: float | None = None) -> DagRunResult:
    """Run one DAG run for `day` in this process, as `operators.embedded.run_dag` does, but:

    - retries are switched off. The spec asks for `retries: 1` with a 30 s `retry_delay`, and
      `dag.test()` would sit out that delay for every broken drop; one attempt is what we judge.
    - every task gets an `on_failure_callback` that keeps the exception it failed with (Airflow
      passes it in the callback's context), so a test can check the exact message. `dag.test()`
      runs tasks in this process and writes no per-task log files to read it back from.
    - `sensor_timeout` shortens the wait for a drop that never lands (the spec waits 2 hours).
    """
    from operators.embedded import load_dag, migrate

    migrate()
    dag = load_dag(dag_id)
    errors: dict[str, BaseException | None] = {}

    def keep_exception(context: Any) -> None:
        errors[context["ti"].task_id] = context.get("exception")

    for task in dag.tasks:
        task.retries = 0
        task.on_failure_callback = [keep_exception]
        if sensor_timeout is not None and task.task_id.startswith("wait_for_drop"):
            task.timeout = sensor_timeout
            task.poke_interval = 1
    run = dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf=conf)
    return DagRunResult(state=str(run.state), run_id=run.run_id, task_states=task_states(dag_id, run.run_id),
                        errors=errors)


def task_states(dag_id: str, run_id: str) -> dict[str, str | None]:
    """Each task instance's final state, read back from the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
    return {task_id: (str(state.value) if hasattr(state, "value") else state) for task_id, state in rows}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its checksum (relative paths)."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def champion_version(home: Path, model: str = "churn") -> str | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{home}/mlflow.db", registry_uri=f"sqlite:///{home}/mlflow.db")
    try:
        return str(client.get_model_version_by_alias(model, "champion").version)
    except MlflowException:
        return None


def assert_no_partition(lake: Any, zone: str, ds: str) -> None:
    """No manifest and no file at all: not even part files an aborted attempt left behind (a
    withdrawn partition on local disk may leave its empty folder)."""
    dataset = DATASETS[zone]
    assert lake.manifest(zone, dataset, ds) is None, f"{zone}/{dataset}/ds={ds} was published"
    folder = lake.partition_path(zone, dataset, ds)
    leftovers = lake.fs.ls(folder, detail=False) if lake.fs.exists(folder) else []
    assert not leftovers, f"{zone}/{dataset}/ds={ds} holds files without a manifest: {leftovers}"


def assert_clean_partition(lake: Any, zone: str, ds: str) -> Any:
    """The partition is published and its folder holds exactly the files its manifest lists."""
    from include.lake.manifest import MANIFEST_NAME

    dataset = DATASETS[zone]
    manifest = lake.require(zone, dataset, ds)
    folder = lake.partition_path(zone, dataset, ds)
    present = sorted(p.rsplit("/", 1)[-1] for p in lake.fs.ls(folder, detail=False))
    assert present == sorted([MANIFEST_NAME, *(f.path for f in manifest.files)]), (zone, present)
    return manifest
