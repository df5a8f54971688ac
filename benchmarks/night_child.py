"""Child of bench_orchestration: one churn night, under Airflow or with its stages called directly.

    python -m benchmarks.night_child airflow|direct BASE DROPS_TEMPLATE DAY

Each run makes a fresh home under BASE and sets its embedded environment (`Project.environment()`,
this repository as the project) before anything imports Airflow, as `skylift run` does; the
day's drops are copied into it untimed (the home is removed afterwards); then:

- `airflow`: the nightly DAG through `dag.test()` (`operators.embedded.run_dag`: DB migration,
  DagBag, the run with Airflow's scheduling loop, task runner and SQLite state), what `skylift
  run` does in its child process.
- `direct`: the same DAG compiled from the spec, and each task's `execute` called in
  topological order in this process with a minimal context (params' defaults, the logical date,
  an in-memory XCom). A task that raises Airflow's skip marks itself and, under the default
  trigger rule, everything after it skipped, as Airflow would; the drop sensor is one `poke`.

Each reports the seconds from start to the night's end and the state of every task.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, report

DAG_ID = "churn_nightly"


def _project():
    from operators.project import Project

    return Project(root=ROOT, home=Path(os.environ["SKYLIFT_BENCH_HOME"]))


def _fresh_home(base: str, template: str):
    import tempfile

    os.environ["SKYLIFT_BENCH_HOME"] = tempfile.mkdtemp(prefix="night-", dir=base)
    project = _project()
    project.activate()
    shutil.copytree(template, project.state_dir / "drops", dirs_exist_ok=True)
    return project


def airflow_night(day: date) -> dict[str, str]:
    from operators.embedded import run_dag

    project = _project()
    project.write_dag_files()
    state = run_dag(DAG_ID, day, dag_file=project.dag_file(project.spec_file("churn")))
    if state != "success":
        raise SystemExit(f"{DAG_ID} for {day} ended {state}; log under {project.home}")
    return _task_states(project, day)


def _task_states(project, day: date) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(project.metadata_db) as db:
        rows = db.execute("SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run r ON r.run_id = ti.run_id "
                          "AND r.dag_id = ti.dag_id WHERE ti.dag_id = ? AND date(r.logical_date) = ?",
                          (DAG_ID, day.isoformat())).fetchall()
    return dict(sorted(rows))


@dataclass
class FakeTaskInstance:
    """What the stage operators read from `context["ti"]`: identity and XCom, in memory."""

    dag_id: str
    run_id: str
    task_id: str = ""
    try_number: int = 1
    map_index: int = -1
    store: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.store.get((task_ids or self.task_id, key))


@dataclass
class FakeDagRun:
    run_id: str
    logical_date: datetime
    run_after: datetime
    conf: dict[str, Any] = field(default_factory=dict)


def direct_night(day: date) -> dict[str, str]:
    from airflow.sdk.bases.sensor import BaseSensorOperator
    from airflow.sdk.exceptions import AirflowSkipException

    from operators.spec.compiler import dags_from_spec_file

    project = _project()
    dag = dags_from_spec_file(project.spec_file("churn"))[DAG_ID]
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run_id = f"direct__{day.isoformat()}"
    ti = FakeTaskInstance(dag_id=DAG_ID, run_id=run_id)
    params = {name: dag.params[name] for name in dag.params}
    states: dict[str, str] = {}
    for task in dag.topological_sort():
        upstream = [states[u] for u in task.upstream_task_ids]
        if any(s != "success" for s in upstream) and task.trigger_rule == "all_success":
            states[task.task_id] = "skipped" if "skipped" in upstream else "upstream_failed"
            continue
        ti.task_id = task.task_id
        context = {"ti": ti, "task_instance": ti, "task": task, "dag": dag, "params": params, "logical_date": logical,
                   "ds": day.isoformat(), "run_id": run_id,
                   "dag_run": FakeDagRun(run_id=run_id, logical_date=logical, run_after=logical)}
        try:
            if isinstance(task, BaseSensorOperator):
                if not task.poke(context):
                    raise SystemExit(f"{task.task_id}: the drop is not there for {day}")
            else:
                result = task.execute(context)
                if result is not None:
                    ti.xcom_push("return_value", result)
            states[task.task_id] = "success"
        except AirflowSkipException:
            states[task.task_id] = "skipped"
    return dict(sorted(states.items()))


def main(argv: list[str]) -> None:
    mode, base, template, day_text = argv
    project = _fresh_home(base, template)
    day = date.fromisoformat(day_text)
    start = time.perf_counter()
    states = {"airflow": airflow_night, "direct": direct_night}[mode](day)
    seconds = time.perf_counter() - start
    shutil.rmtree(project.home, ignore_errors=True)
    report(seconds=seconds, states=states)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
