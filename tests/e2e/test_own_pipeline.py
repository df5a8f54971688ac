"""A new user's own pipeline, in a project folder outside this repository, run with `skylift run`,
`skylift backfill` and a retrain with `--conf`, as subprocesses, exactly as the README shows.

No churn data is generated and churn's datasets are never touched.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from include.lake import Lake
from tests.e2e.own_project import days, write_drop, write_project
from tests.e2e.ui_process import clean_environment

pytestmark = pytest.mark.e2e
DATES = days(6)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A project folder with the parcels pipeline, and a home folder with five days of drops."""
    base = tmp_path_factory.mktemp("own")
    project, home = write_project(base / "project"), base / "home"
    for day in DATES[:5]:
        write_drop(home / "skylift" / "drops", day)
    return project, home


def skylift(user, *args: str) -> subprocess.CompletedProcess:
    project, home = user
    return subprocess.run([sys.executable, "-m", "operators.cli", "--home", str(home), *args,
                           "--project", str(project)], env=clean_environment(), capture_output=True, text=True,
                          timeout=600, check=False)


@dataclass(frozen=True)
class Served:
    version: str
    columns: list[str]
    rows: list[list[float]]
    predictions: list[float]


def serve_and_ask(user, rows: list[list[float]]) -> Served:
    """Start `skylift serve parcels` on a free port, send the request its printed curl line shows
    (with `rows` as data), and stop it."""
    project, home = user
    server = subprocess.Popen([sys.executable, "-m", "operators.cli", "--home", str(home), "serve", "parcels",
                               "--port", "0", "--project", str(project)], env=clean_environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in server.stdout:
            seen.append(line)
            if line.startswith("Try:"):
                break
        else:
            raise AssertionError("skylift serve stopped before it served:\n" + "".join(seen))
        words = shlex.split(line.removeprefix("Try:"))
        url, body = words[2], json.loads(words[words.index("-d") + 1])
        columns = body["dataframe_split"]["columns"]
        payload = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
        request = urllib.request.Request(url, payload, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
            version = response.headers["X-Skylift-Model-Version"]
        return Served(version, columns, rows, answer["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_runs_backfill_and_retrain_of_a_new_pipeline(user):
    project, home = user
    for day in DATES[:3]:
        result = skylift(user, "run", "parcels", "--date", day.isoformat())
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert f"parcels_daily for {day}:" in out
        for task in ("ingest", "validate"):
            assert any(line.split()[:2] == [task, "success"] and " in " in line for line in out.splitlines()), out
        assert f"raw/shipments/ds={day}: 60 rows, written" in out
        assert f"validated/shipments/ds={day}: 60 rows, written" in out
        assert "validation" in out and ".html" in out
        log = Path(out.split("Airflow log: ", 1)[1].split()[0])
        assert log.is_relative_to(home / "logs") and log.is_file()
        assert len(out.splitlines()) < 30 < len(log.read_text().splitlines())  # the noise went to the file

    result = skylift(user, "backfill", "parcels", "--from", DATES[3].isoformat(), "--to", DATES[4].isoformat())
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"parcels_daily for {DATES[3]}:" in result.stdout and f"parcels_daily for {DATES[4]}:" in result.stdout
    lake = Lake(f"file://{home}/skylift/lake")
    assert lake.partitions("validated", "shipments") == [d.isoformat() for d in DATES[:5]]

    result = skylift(user, "run", "parcels", "--dag", "retrain", "--date", DATES[4].isoformat(),
                     "--conf", '{"max_depth": 2}')
    assert result.returncode == 0, result.stdout + result.stderr
    for task in ("features", "train", "register", "deploy"):
        assert f"  {task}" in result.stdout
    assert "MLflow: model parcels v1 [" in result.stdout
    import mlflow
    import pandas as pd

    uri = f"sqlite:///{home}/skylift/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("parcels", "1")
    assert client.get_run(version.run_id).data.params["max_depth"] == "2"

    # The tutorial's last step: `skylift serve` answers HTTP requests with the champion, as the
    # curl line it prints shows, and gives what batch prediction with that version gives.
    served = serve_and_ask(user, [[12.5, 800.0, 0, 64.0], [20.0, 10.0, 1, 0.5]])
    assert served.version == str(version.version)
    model = mlflow.pyfunc.load_model(f"models:/parcels/{version.version}")
    types = {column.name: column.type.to_pandas() for column in model.metadata.get_input_schema().inputs}
    batch = model.predict(pd.DataFrame(served.rows, columns=served.columns).astype(types))
    assert [round(float(v), 6) for v in batch] == [round(float(v), 6) for v in served.predictions]

    # churn was never asked for: no churn drops, no churn datasets
    assert sorted(p.name for p in (home / "skylift" / "drops").iterdir()) == ["shipments"]
    assert sorted(p.name for p in (home / "skylift" / "lake" / "raw").iterdir()) == ["shipments"]


def test_a_date_before_start_date_fails_with_the_fix(user):
    project, _ = user
    result = skylift(user, "run", "parcels", "--date", "2026-02-27")
    assert result.returncode != 0
    spec = project / "dags" / "pipelines" / "parcels.yaml"
    assert (f"2026-02-27 is before parcels' start_date 2026-03-01: set start_date in {spec}:5: start_date "
            "or pick a later date") in result.stderr


def test_a_paused_dag_is_refused(user):
    _, home = user
    db = home / "airflow" / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE dag SET is_paused = 1 WHERE dag_id = 'parcels_daily'")
    try:
        result = skylift(user, "run", "parcels", "--date", DATES[0].isoformat())
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE dag SET is_paused = 0 WHERE dag_id = 'parcels_daily'")
    assert result.returncode != 0
    assert "DAG parcels_daily is paused" in result.stderr and "unpause it" in result.stderr
    fix = result.stderr.split("or run `", 1)[1].split("`", 1)[0].split()
    assert fix[:4] == ["skylift", "--home", str(home), "unpause"] and "parcels_daily" in fix
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE dag SET is_paused = 1 WHERE dag_id = 'parcels_daily'")
    unpaused = subprocess.run([sys.executable, "-m", "operators.cli", *fix[1:]], env=clean_environment(),
                              capture_output=True, text=True, timeout=120, check=False)
    assert unpaused.returncode == 0, unpaused.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT is_paused FROM dag WHERE dag_id = 'parcels_daily'").fetchone()[0] == 0


def test_a_failing_task_prints_its_own_error_and_a_broken_spec_stays_its_own(user):
    project, home = user
    broken = project / "dags" / "pipelines" / "broken.yaml"
    broken.write_text("pipeline: broken\ndescription: x\nowner: me\nsource:\n  urii: x/{ds}/\n")
    bad_day = DATES[5]
    drop = write_drop(home / "skylift" / "drops", bad_day)
    lines = drop.read_text().splitlines()
    drop.write_text("\n".join(",".join(line.split(",")[:3] + line.split(",")[4:]) for line in lines) + "\n")

    result = skylift(user, "run", "parcels", "--date", bad_day.isoformat())
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.split()[:2] == ["ingest", "failed"] for line in result.stdout.splitlines()), result.stdout
    assert "--- task ingest failed: ContractError" in result.stderr
    assert "priority" in result.stderr  # the missing column is named
    assert "operators/runner.py" not in result.stderr  # the task's error, not a traceback of the runner
    assert "validate" in result.stdout and "upstream_failed" in result.stdout

    result = skylift(user, "run", "broken", "--date", bad_day.isoformat())
    assert result.returncode != 0
    assert f"{broken}:5: source.urii: unknown key" in result.stderr
