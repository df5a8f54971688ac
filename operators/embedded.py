"""Run a DAG through Airflow itself on the embedded default (`dag.test()`, SQLite metadata DB).

The caller sets AIRFLOW_HOME and friends before anything imports Airflow (see `operators.project`).
`skylift run` starts this module as its own process (`python -m operators.embedded ...`) with its
output going to a log file, and follows the run's task states from the metadata DB; each failed
task's own error is written to a JSON file for it to print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
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


def load_dag(dag_id: str, dag_file: str | Path | None = None) -> Any:
    """The DAG `dag_id` from the dags folder (or only `dag_file`). Other files' import errors do not
    matter; when the DAG is missing, the errors that may be the reason are the message."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file or os.environ["AIRFLOW__CORE__DAGS_FOLDER"]))
    if dag_id in bag.dags:
        return bag.dags[dag_id]
    if bag.import_errors:
        problems = "\n".join(f"{path}: {error.strip()}" for path, error in bag.import_errors.items())
        raise RuntimeError(f"no DAG {dag_id!r}: DAG files failed to import:\n{problems}")
    raise KeyError(f"no DAG {dag_id!r}; known: {sorted(bag.dags)}")


def run_dag(dag_id: str, day: date, conf: dict[str, Any] | None = None, dag_file: str | Path | None = None) -> str:
    """Run one DAG run for `day` in this process; returns the run's final state."""
    migrate()
    dag = load_dag(dag_id, dag_file)
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run = dag.test(logical_date=logical, run_conf=conf)
    return str(run.state)


@dataclass(frozen=True)
class TaskFailure:
    """A failed try of a task, as the task itself raised it."""

    task_id: str
    try_number: int
    error: str


def record_failure(path: Path, task_instance: Any, error: Any) -> None:
    """Append a failed task's exception to the JSON-lines file `path`."""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "")
    failure = TaskFailure(task_instance.task_id, int(getattr(task_instance, "try_number", 0) or 0), text)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(failure)) + "\n")


def read_failures(path: Path) -> list[TaskFailure]:
    if not path.is_file():
        return []
    return [TaskFailure(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _listen_for_failures(path: Path) -> None:
    """Register an Airflow listener (tasks run in this process under dag.test()) that records failures."""
    from airflow.sdk._shared.listeners import hookimpl
    from airflow.sdk.listener import get_listener_manager

    class FailureListener:
        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
            record_failure(path, task_instance, error)

    get_listener_manager().add_listener(FailureListener())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one DAG run through dag.test() (started by `skylift run`)")
    parser.add_argument("--dag", required=True)
    parser.add_argument("--date", type=date.fromisoformat, required=True)
    parser.add_argument("--conf", type=json.loads, default=None)
    parser.add_argument("--dag-file", type=Path, default=None)
    parser.add_argument("--failures", type=Path, required=True, help="JSON-lines file for failed tasks' errors")
    args = parser.parse_args(argv)
    _listen_for_failures(args.failures)
    state = run_dag(args.dag, args.date, args.conf, args.dag_file)
    print(f"skylift: {args.dag} for {args.date} ended in state {state}", flush=True)
    return 0 if state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
