"""A run for a date before the spec's start_date, as the UI triggers it (a logical date, no `ds`):
it used to run no task at all and succeed, since Airflow creates no task instance before a DAG's
start_date. Now the DAG starts earlier and the first task fails, naming the date and the fix."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.in_process import activate_project
from tests.e2e.own_project import START, write_drop, write_project

pytestmark = pytest.mark.e2e


@pytest.fixture
def dag_file(tmp_path, skylift_env, monkeypatch):
    root = write_project(tmp_path / "project")
    return activate_project(monkeypatch, root, tmp_path / "home", packages=("parcel_jobs",))


def test_a_logical_date_before_start_date_fails_instead_of_running_nothing(dag_file, skylift_env):
    from airflow.models import DagRun
    from airflow.utils.state import TaskInstanceState

    from operators.embedded import load_dag, run_dag

    early = START - timedelta(days=3)
    write_drop(skylift_env / "drops", early)  # the data is there: only the date is wrong
    dag = load_dag("parcels_daily", dag_file)
    assert dag.start_date.date() < early  # so Airflow creates the run's task instances
    assert {task.pipeline_start for task in dag.tasks} == {START.isoformat()}

    assert run_dag("parcels_daily", early, dag_file=dag_file) == "failed"
    (dag_run,) = [r for r in DagRun.find(dag_id="parcels_daily") if r.logical_date.date() == early]
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {"ingest": TaskInstanceState.FAILED, "validate": TaskInstanceState.UPSTREAM_FAILED}
    assert not (skylift_env / "lake" / "raw").exists() or not any((skylift_env / "lake" / "raw").rglob("*.parquet"))
