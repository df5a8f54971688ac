"""A small client for Airflow's REST API (v2), as a platform team's tooling would use it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

TERMINAL = {"success", "failed"}


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = self._token(username, password)

    def _token(self, username: str, password: str) -> str:
        body = self._request("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        return body["access_token"]

    def _request(self, method: str, path: str, payload: Any = None, auth: bool = True) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}") from exc

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def patch(self, path: str, payload: Any) -> Any:
        return self._request("PATCH", path, payload)

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the DAG processor has parsed and registered the DAG."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, logical_date: str | None, conf: dict[str, Any] | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def trigger_or_join(self, dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run with a logical date, or, when this session already has that run (409),
        return its id: suites that need the same night share one run instead of each paying for it."""
        from urllib.parse import quote

        try:
            return self.trigger(dag_id, logical_date, conf)
        except AssertionError as exc:
            if "409" not in str(exc):
                raise
        when = quote(logical_date)
        runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={when}&logical_date_lte={when}")["dag_runs"]
        assert runs, f"{dag_id}: the trigger for {logical_date} was refused but no run has that logical date"
        return runs[0]["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return state
            time.sleep(3)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:.0f}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        body = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        body = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                        "?full_content=true")
        content = body.get("content")
        if isinstance(content, list):
            return "\n".join(item.get("event", "") if isinstance(item, dict) else str(item) for item in content)
        return str(content)

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """Task states and, for each failed task, the end of its last try's log with its exception."""
        lines = [f"{dag_id} {run_id}: {self.task_states(dag_id, run_id)}"]
        for ti in self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            if ti["state"] != "failed":
                continue
            body = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
                            f"{ti['try_number']}?full_content=true")
            events = []
            for item in body.get("content") or []:
                if not isinstance(item, dict):
                    events.append(str(item))
                    continue
                events.append(str(item.get("event", "")))
                events += [f"{e.get('exc_type')}: {e.get('exc_value')}" for e in item.get("error_detail") or []]
            lines.append(f"--- {ti['task_id']} (try {ti['try_number']}):\n" + "\n".join(events)[-4000:])
        return "\n".join(lines)

