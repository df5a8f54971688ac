"""`skylift run` and `skylift backfill`: run a project's pipeline on the embedded default.

The DAG runs through Airflow itself (`dag.test()` on SQLite) in a child process whose output
goes to a log file under the home folder. This process follows the run's task states in the
metadata DB and prints one line per change, then the failed tasks' own errors or a summary of
what the run wrote. Refused before anything runs: an unknown pipeline or DAG, a broken spec
(its file:line message), a date before the spec's `start_date`, a DAG paused in the UI.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from include.errors import SkyliftError, SpecError
from operators.embedded import TaskFailure, read_failures
from operators.project import Project, day_range

FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
LOG_LINES_ON_FAILURE = 15
DAG_TEST_TASK_START = "[DAG TEST] starting task_id="


@dataclass(frozen=True)
class RunRequest:
    """What to run: a pipeline's DAG for some dates, with an optional trigger conf."""

    pipeline: str
    dag_name: str | None
    days: tuple[date, ...]
    conf: dict[str, Any] | None


@dataclass(frozen=True)
class TaskState:
    task_id: str
    state: str | None
    try_number: int
    duration: float | None


@dataclass(frozen=True)
class RunOutcome:
    dag_id: str
    day: date
    run_id: str | None
    state: str | None
    tasks: tuple[TaskState, ...]


def parse_conf(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"--conf is not JSON: {exc}") from exc
    if not isinstance(conf, dict):
        raise SpecError(f"--conf must be a JSON object of trigger parameters, got {type(conf).__name__}")
    return conf


def plan(project: Project, request: RunRequest) -> tuple[Path, str]:
    """The spec file and dag_id to run, after every check that needs no Airflow."""
    from operators.spec.loader import load_spec

    spec_file = project.spec_file(request.pipeline)
    spec = load_spec(spec_file)
    dag_name = request.dag_name or next(iter(spec.dags))
    if dag_name not in spec.dags:
        raise SpecError(f"pipeline {spec.pipeline!r} has no DAG {dag_name!r}; its DAGs are {list(spec.dags)} "
                        f"(dags: in {spec_file})")
    for day in request.days:
        if day < spec.start_date:
            where = _start_date_line(spec_file, spec.start_date)
            owner = spec.pipeline + ("'" if spec.pipeline.endswith("s") else "'s")
            raise SpecError(f"{day} is before {owner} start_date {spec.start_date}: set start_date in "
                            f"{where} or pick a later date")
    return spec_file, f"{spec.pipeline}_{dag_name}"


def _start_date_line(spec_file: Path, start: date) -> str:
    """Where the spec's start_date comes from: its own line, the folder's `_defaults.yaml`, or the default."""
    from operators.spec.defaults import folder_defaults
    from operators.spec.yaml_source import load_yaml

    for path in (spec_file, folder_defaults(spec_file.parent).path):
        doc = load_yaml(path) if path is not None else None
        if doc is not None and ("start_date",) in doc.lines:
            return doc.where(("start_date",))
    return f"{spec_file} (start_date is not set: it defaults to {start})"


class MetadataDb:
    """The embedded metadata DB: task states of a run, paused flags (read), and the unpause toggle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, args: tuple) -> list[tuple]:
        if not self.path.is_file():
            return []
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # not migrated yet, or locked by the writer for a moment: look again later

    def is_paused(self, dag_id: str) -> bool:
        rows = self._query("SELECT is_paused FROM dag WHERE dag_id = ?", (dag_id,))
        return bool(rows and rows[0][0])

    def unpause(self, dag_id: str) -> bool:
        """Unpause `dag_id` as the UI's toggle does; False if the database does not know the DAG."""
        if not self.path.is_file():
            return False
        with sqlite3.connect(self.path, timeout=30) as conn:
            return conn.execute("UPDATE dag SET is_paused = 0 WHERE dag_id = ?", (dag_id,)).rowcount > 0

    def latest_run(self, dag_id: str, logical: datetime, since: datetime) -> tuple[str, str] | None:
        """The run of `dag_id` for `logical` created at or after `since` (not an earlier run of the date)."""
        rows = self._query("SELECT run_id, state, logical_date, created_at FROM dag_run WHERE dag_id = ? "
                           "ORDER BY created_at DESC", (dag_id,))
        for run_id, state, logical_date, created in rows:
            if logical_date and _as_utc(logical_date) == logical and _as_utc(created) >= since:
                return run_id, state
        return None

    def task_states(self, dag_id: str, run_id: str) -> list[TaskState]:
        rows = self._query("SELECT task_id, state, try_number, duration FROM task_instance "
                           "WHERE dag_id = ? AND run_id = ? ORDER BY priority_weight DESC, task_id",
                           (dag_id, run_id))
        return [TaskState(task_id, state, try_number or 0, duration) for task_id, state, try_number, duration in rows]


def _as_utc(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Progress:
    """Prints a line whenever a task's state changes."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.seen: dict[str, tuple[str | None, int]] = {}
        self.width = 18  # task ids line up; widened for longer ones (`ingest_<source>`)

    def update(self, tasks: list[TaskState]) -> None:
        self.width = max([self.width, *(len(task.task_id) for task in tasks)])
        for task in tasks:
            key = (task.state, task.try_number)
            if self.seen.get(task.task_id) == key or task.state is None:
                continue
            self.seen[task.task_id] = key
            took = f" in {task.duration:.1f}s" if task.duration is not None and task.state in FINISHED else ""
            retry = f" (try {task.try_number})" if task.try_number > 1 else ""
            print(f"  {task.task_id:<{self.width}} {task.state}{took}{retry}", file=self.out, flush=True)


def run_one(project: Project, dag_id: str, dag_file: Path, day: date, conf: dict[str, Any] | None,
            log: Path, env: dict[str, str]) -> tuple[RunOutcome, list[TaskFailure]]:
    """One DAG run in a child process, followed in the metadata DB until it ends."""
    failures = project.logs_dir / f".failures-{os.getpid()}-{time.monotonic_ns()}.jsonl"
    argv = [sys.executable, "-m", "operators.embedded", "--dag", dag_id, "--date", day.isoformat(),
            "--dag-file", str(dag_file), "--failures", str(failures)]
    if conf:
        argv += ["--conf", json.dumps(conf)]
    db, progress = MetadataDb(project.metadata_db), Progress(sys.stdout)
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    since = datetime.now(UTC).replace(microsecond=0)
    print(f"{dag_id} for {day}:", flush=True)
    with log.open("ab") as handle:
        child = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            run = None
            while child.poll() is None:
                run = run or db.latest_run(dag_id, logical, since)
                if run:
                    progress.update(db.task_states(dag_id, run[0]))
                time.sleep(0.5)
        except KeyboardInterrupt:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=30)
            raise
    run = db.latest_run(dag_id, logical, since)
    tasks = db.task_states(dag_id, run[0]) if run else []
    progress.update(tasks)
    found = read_failures(failures)
    failures.unlink(missing_ok=True)
    return RunOutcome(dag_id, day, run[0] if run else None, run[1] if run else None, tuple(tasks)), found


def task_log_tail(log: Path, task_id: str, start_offset: int, lines: int = LOG_LINES_ON_FAILURE) -> list[str]:
    """The last lines this run's log holds for `task_id` (dag.test() logs each task after a marker)."""
    text = _read_from(log, start_offset).splitlines()
    block: list[str] = []
    inside = False
    for line in text:
        if DAG_TEST_TASK_START in line:
            inside = f"{DAG_TEST_TASK_START}{task_id} " in line
            if inside:
                block = []
        if inside and "::group::Post Execute" in line:
            inside = False  # what follows is Airflow's bookkeeping after the task's own error
        if inside:
            block.append(line.rstrip())
    return block[-lines:]


def log_tail(log: Path, start_offset: int, lines: int = LOG_LINES_ON_FAILURE) -> list[str]:
    return _read_from(log, start_offset).rstrip().splitlines()[-lines:]


def _read_from(log: Path, offset: int) -> str:
    """The log as written since `offset` (where this run's part of a shared log file begins)."""
    if not log.is_file():
        return ""
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", errors="replace")


def report_failure(outcome: RunOutcome, failures: list[TaskFailure], log: Path, offset: int) -> None:
    failed = [t for t in outcome.tasks if t.state in ("failed", "upstream_failed")]
    print(f"\n{outcome.dag_id} for {outcome.day} FAILED (run state {outcome.state}).", file=sys.stderr)
    for task in failed:
        if task.state == "upstream_failed":
            continue
        errors = [f.error for f in failures if f.task_id == task.task_id]
        print(f"\n--- task {task.task_id} failed: {errors[-1] if errors else '(no exception recorded)'}",
              file=sys.stderr)
        for line in task_log_tail(log, task.task_id, offset):
            print(f"    {line}", file=sys.stderr)
    if not failed:  # the DAG did not load or the run never started: the log's end says why
        print("no task failed; the run itself did not finish. The end of the log:", file=sys.stderr)
        for line in log_tail(log, offset):
            print(f"    {line}", file=sys.stderr)
    print(f"\nFull Airflow log: {log}", file=sys.stderr)


def run_pipeline(project: Project, request: RunRequest, summary: bool = True) -> int:
    spec_file, dag_id = plan(project, request)
    env = {**os.environ, **project.environment()}
    project.write_dag_files()
    if MetadataDb(project.metadata_db).is_paused(dag_id):
        raise SpecError(f"DAG {dag_id} is paused (in {project.metadata_db}, the database `skylift ui` shows): "
                        f"unpause it in the UI, or run `skylift --home {project.home} unpause {dag_id} "
                        f"--project {project.root}`")
    project.logs_dir.mkdir(parents=True, exist_ok=True)
    log = project.logs_dir / f"{dag_id}-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    print(f"Airflow log: {log}", flush=True)
    outcomes = []
    for day in request.days:
        offset = log.stat().st_size if log.exists() else 0
        outcome, failures = run_one(project, dag_id, project.dag_file(spec_file), day, request.conf, log, env)
        ran = [t for t in outcome.tasks if t.state in FINISHED - {"removed"}]
        if outcome.state != "success":
            report_failure(outcome, failures, log, offset)
            return 1
        if not ran:
            print(f"\n{dag_id} for {day} ran no task at all: check the DAG's start_date and schedule in "
                  f"{spec_file}. Full Airflow log: {log}", file=sys.stderr)
            return 1
        outcomes.append(outcome)
    if summary:
        from operators.summary import run_summary

        print("\n".join(run_summary(project, spec_file, outcomes, log)))
    return 0


def _request(args: argparse.Namespace, days: list[date]) -> RunRequest:
    return RunRequest(args.pipeline, args.dag, tuple(days), parse_conf(args.conf))


def command_run(args: argparse.Namespace) -> int:
    return _guarded(args, lambda project: run_pipeline(project, _request(args, [args.date])))


def command_backfill(args: argparse.Namespace) -> int:
    return _guarded(args, lambda project: run_pipeline(
        project, _request(args, day_range(getattr(args, "from"), args.to))))


def _guarded(args: argparse.Namespace, body: Any) -> int:
    """Skylift's own errors are printed as they are (file:line messages), not as tracebacks."""
    try:
        project = Project.locate(args.project, args.home)
        project.activate()
        return body(project)
    except SkyliftError as exc:
        print(f"skylift: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SpecError) else 1
    except KeyboardInterrupt:
        print("skylift: interrupted", file=sys.stderr)
        return 130


def command_unpause(args: argparse.Namespace) -> int:
    def body(project: Project) -> int:
        if not MetadataDb(project.metadata_db).unpause(args.dag_id):
            raise SpecError(f"no DAG {args.dag_id} in {project.metadata_db} (it is known once a run or "
                            "`skylift ui` has loaded the project's DAGs)")
        print(f"{args.dag_id} unpaused in {project.metadata_db}")
        return 0

    return _guarded(args, body)


def add_commands(sub: Any) -> None:
    """Register `run`, `backfill` and `unpause` on the `skylift` parser's subcommands."""
    for name, helptext in (("run", "run a pipeline's DAG for one date on the embedded default"),
                           ("backfill", "run a pipeline's DAG for every date of a range, oldest first")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("pipeline", help="the pipeline's name (its spec: <project>/dags/pipelines/<name>.yaml)")
        cmd.add_argument("--dag", help="which of the spec's dags: (default: the first one)")
        if name == "run":
            cmd.add_argument("--date", type=date.fromisoformat, required=True, help="the partition date")
        else:
            cmd.add_argument("--from", type=date.fromisoformat, required=True, help="first date")
            cmd.add_argument("--to", type=date.fromisoformat, required=True, help="last date")
        cmd.add_argument("--conf", help='trigger parameters as JSON, e.g. \'{"max_depth": 3}\'')
        add_location_options(cmd)
        cmd.set_defaults(func=command_run if name == "run" else command_backfill)
    cmd = sub.add_parser("unpause", help="unpause a DAG paused in the UI, so that `skylift run` runs it again")
    cmd.add_argument("dag_id", help="the DAG's id, <pipeline>_<dag>")
    add_location_options(cmd)
    cmd.set_defaults(func=command_unpause)


def add_location_options(cmd: Any) -> None:
    cmd.add_argument("--project", help="project folder holding dags/pipelines/*.yaml (env SKYLIFT_PROJECT; "
                                       "default: this repository)")
    cmd.add_argument("--drops", help="where the drops are: a folder or a URI such as s3://bucket/drops (env "
                                     "SKYLIFT_DROPS_ROOT; default: <home>/skylift/drops)")
