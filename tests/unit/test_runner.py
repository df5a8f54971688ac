"""The runner's checks before a run, and how it reads and shows a run (no Airflow run here)."""

from __future__ import annotations

import io
import sqlite3
import sys
from datetime import date

import pytest

from include.errors import SpecError
from operators.project import Project
from operators.runner import MetadataDb, Progress, RunOutcome, RunRequest, TaskState, parse_conf, plan, task_log_tail
from tests.e2e.own_project import write_project


@pytest.fixture
def project(tmp_path, monkeypatch):
    located = Project.locate(write_project(tmp_path / "p"), tmp_path / "home")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(located.root))
    monkeypatch.syspath_prepend(str(located.root))
    forget_project_package()
    yield located
    forget_project_package()


def forget_project_package() -> None:
    """Each test has its own project folder; its package must not come from an earlier one."""
    for name in [n for n in sys.modules if n == "parcel_jobs" or n.startswith("parcel_jobs.")]:
        del sys.modules[name]


def test_plan_picks_the_first_dag_and_refuses_unknown_ones(project):
    spec_file, dag_id = plan(project, RunRequest("parcels", None, (date(2026, 3, 1),), None))
    assert (spec_file.name, dag_id) == ("parcels.yaml", "parcels_daily")
    with pytest.raises(SpecError, match=r"has no DAG 'nightly'; its DAGs are \['daily', 'retrain'\]"):
        plan(project, RunRequest("parcels", "nightly", (date(2026, 3, 1),), None))
    with pytest.raises(SpecError, match=r"no pipeline 'flights' in .*; pipelines there: \['parcels'\]"):
        plan(project, RunRequest("flights", None, (date(2026, 3, 1),), None))


def test_a_date_before_start_date_names_the_line_or_the_default(project):
    spec = project.pipelines_dir / "parcels.yaml"
    with pytest.raises(SpecError) as err:
        plan(project, RunRequest("parcels", None, (date(2026, 3, 1), date(2026, 2, 28)), None))
    assert str(err.value) == (f"2026-02-28 is before parcels' start_date 2026-03-01: set start_date in {spec}:5: "
                              "start_date or pick a later date")
    spec.write_text(spec.read_text().replace("start_date: 2026-03-01\n", ""))
    with pytest.raises(SpecError, match="start_date is not set: it defaults to 2026-01-01"):
        plan(project, RunRequest("parcels", None, (date(2025, 12, 31),), None))


def test_conf_must_be_a_json_object():
    assert parse_conf('{"max_depth": 2}') == {"max_depth": 2}
    assert parse_conf(None) is None
    with pytest.raises(SpecError, match="--conf must be a JSON object"):
        parse_conf("[1]")
    with pytest.raises(SpecError, match="--conf is not JSON"):
        parse_conf("{max_depth: 2}")


def test_metadata_db_reads_paused_flags_and_task_states(tmp_path):
    path = tmp_path / "airflow.db"
    db = MetadataDb(path)
    assert db.is_paused("x") is False and db.task_states("x", "r") == []  # no database yet
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE dag (dag_id TEXT, is_paused BOOLEAN)")
        conn.execute("INSERT INTO dag VALUES ('x', 1)")
        conn.execute("CREATE TABLE task_instance (task_id TEXT, dag_id TEXT, run_id TEXT, state TEXT, "
                     "try_number INT, duration FLOAT, priority_weight INT)")
        conn.execute("INSERT INTO task_instance VALUES ('ingest', 'x', 'r', 'success', 1, 2.5, 2)")
    assert db.is_paused("x") is True
    assert db.task_states("x", "r") == [TaskState("ingest", "success", 1, 2.5)]
    assert db.unpause("x") is True and db.is_paused("x") is False
    assert db.unpause("unknown") is False


def test_skylift_unpause_clears_the_flag_the_refusal_names(tmp_path, monkeypatch, capsys):
    from operators.cli import embedded_environment, main

    root = write_project(tmp_path / "project")
    project = Project.at(root, tmp_path / "home")
    for key, value in {**embedded_environment(project.home, root), **project.environment()}.items():
        monkeypatch.setenv(key, value)  # what --home and the command set, put back after the test
    monkeypatch.setattr(sys, "path", list(sys.path))
    project.metadata_db.parent.mkdir(parents=True)
    with sqlite3.connect(project.metadata_db) as conn:
        conn.execute("CREATE TABLE dag (dag_id TEXT, is_paused BOOLEAN)")
        conn.execute("INSERT INTO dag VALUES ('parcels_daily', 1)")
    location = ["--project", str(root)]
    assert main(["--home", str(project.home), "unpause", "parcels_daily", *location]) == 0
    assert capsys.readouterr().out == f"parcels_daily unpaused in {project.metadata_db}\n"
    assert MetadataDb(project.metadata_db).is_paused("parcels_daily") is False
    assert main(["--home", str(project.home), "unpause", "parcels_nightly", *location]) == 2
    assert f"no DAG parcels_nightly in {project.metadata_db}" in capsys.readouterr().err


def test_progress_prints_each_change_once():
    out = io.StringIO()
    progress = Progress(out)
    progress.update([TaskState("ingest", None, 0, None)])
    progress.update([TaskState("ingest", "running", 1, None)])
    progress.update([TaskState("ingest", "running", 1, None)])
    progress.update([TaskState("ingest", "failed", 2, 3.0)])
    assert out.getvalue().splitlines() == ["  ingest             running",
                                           "  ingest             failed in 3.0s (try 2)"]


def test_task_log_tail_keeps_the_tasks_own_lines(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("old run\n[DAG TEST] starting task_id=ingest map_index=-1\nread drop\nContractError: bad\n"
                   "::group::Post Execute\nbookkeeping\n[DAG TEST] starting task_id=validate map_index=-1\nother\n")
    assert task_log_tail(log, "ingest", 0) == ["[DAG TEST] starting task_id=ingest map_index=-1", "read drop",
                                                "ContractError: bad"]
    assert task_log_tail(log, "validate", 0)[-1] == "other"


def test_a_folder_without_specs_is_a_message_not_a_traceback(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "operators.cli", "--home", str(tmp_path / "home"), "run",
                             "parcels", "--date", "2026-03-01", "--project", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"skylift: project folder {tmp_path} has no dags/pipelines/ folder of pipeline "
                                     "specs (give --project DIR or set SKYLIFT_PROJECT)")


def test_a_run_that_executes_no_task_is_an_error(project, monkeypatch, capsys):
    """Airflow may finish a run "successfully" without a single task instance; the runner says so and fails."""
    from operators import runner

    def no_task(project, dag_id, dag_file, day, conf, log, env):
        return RunOutcome(dag_id, day, "manual__x", "success", ()), []

    monkeypatch.setattr(runner, "run_one", no_task)
    request = RunRequest("parcels", None, (date(2026, 3, 2),), None)
    assert runner.run_pipeline(project, request) == 1
    err = capsys.readouterr().err
    assert "parcels_daily for 2026-03-02 ran no task at all: check the DAG's start_date and schedule in " in err
    assert str(project.spec_file("parcels")) in err
