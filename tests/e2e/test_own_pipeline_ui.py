"""`skylift ui` serves a project's own DAGs over the Airflow REST API, and stops cleanly."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.e2e.own_project import write_project
from tests.e2e.ui_process import alive, descendants, start_ui

pytestmark = pytest.mark.e2e


def request(url: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def test_ui_serves_the_projects_dags_and_stops_cleanly(tmp_path):
    ui = start_ui(write_project(tmp_path / "project"), tmp_path / "home")
    try:
        token = request(f"{ui.url}/auth/token", body={"username": ui.user, "password": ui.password})["access_token"]
        deadline, dag_ids = time.monotonic() + 180, set()
        while time.monotonic() < deadline and not {"parcels_daily", "parcels_retrain"} <= dag_ids:
            time.sleep(2)
            dag_ids = {d["dag_id"] for d in request(f"{ui.url}/api/v2/dags", token)["dags"]}
        # this project's DAGs (its spec's and the rollback DAG every deploying pipeline gets), not the repository's
        assert dag_ids == {"parcels_daily", "parcels_retrain", "parcels_rollback"}
        details = request(f"{ui.url}/api/v2/dags/parcels_retrain/details", token)
        params = details["params"]
        assert {"ds", "max_depth", "train_start", "train_end", "force_deploy"} <= set(params)
        assert params["max_depth"]["schema"]["maximum"] == 8
        assert "parcels" in details["doc_md"]
        running = descendants(ui.proc.pid)
        assert len(running) >= 4  # api-server, scheduler, dag-processor, triggerer (and their workers)
    finally:
        out, err = ui.stop()
    assert ui.proc.returncode == 0, out + err
    assert "stopping the Airflow services" in out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in running):
        time.sleep(0.5)
    assert not [pid for pid in running if alive(pid)], "processes left behind"
