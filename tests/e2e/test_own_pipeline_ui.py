"""`skylift ui` serves a project's own DAGs over the Airflow REST API, and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.own_project import write_project
from tests.e2e.test_own_pipeline import clean_environment

pytestmark = pytest.mark.e2e
BANNER = re.compile(r"Airflow UI: (http://127\.0\.0\.1:\d+)\s+\(user (\w+), password (\S+)\)")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), the Airflow services' own children included."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def request(url: str, token: str | None = None, body: dict | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def wait_for_banner(proc: subprocess.Popen, timeout: float = 300) -> re.Match:
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"skylift ui exited with {proc.returncode}:\n{''.join(seen)}{proc.stderr.read()}")
        seen.append(line)
        match = BANNER.search(line)
        if match:
            return match
    pytest.fail(f"skylift ui printed no login in {timeout}s:\n{''.join(seen)}")


def test_ui_serves_the_projects_dags_and_stops_cleanly(tmp_path):
    project, home = write_project(tmp_path / "project"), tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-m", "operators.cli", "--home", str(home), "ui", "--port", "0",
                             "--project", str(project)], env=clean_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url, user, password = wait_for_banner(proc).groups()
        token = request(f"{url}/auth/token", body={"username": user, "password": password})["access_token"]
        deadline, dag_ids = time.monotonic() + 180, set()
        while time.monotonic() < deadline and not {"parcels_daily", "parcels_retrain"} <= dag_ids:
            time.sleep(2)
            dag_ids = {d["dag_id"] for d in request(f"{url}/api/v2/dags?tags=parcels", token)["dags"]}
        assert {"parcels_daily", "parcels_retrain"} <= dag_ids
        assert not any(d.startswith("churn") for d in dag_ids)
        details = request(f"{url}/api/v2/dags/parcels_retrain/details", token)
        params = details["params"]
        assert {"ds", "max_depth", "train_start", "train_end", "force_deploy"} <= set(params)
        assert params["max_depth"]["schema"]["maximum"] == 8
        assert "parcels" in details["doc_md"]
        running = descendants(proc.pid)
        assert len(running) >= 4  # api-server, scheduler, dag-processor, triggerer (and their workers)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "stopping the Airflow services" in out
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in running):
        time.sleep(0.5)
    assert not [pid for pid in running if alive(pid)], "processes left behind"
