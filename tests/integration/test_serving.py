"""`skylift serve` as a real process under uvicorn on loopback: its answers equal batch scoring for
the same rows, and a champion that moves under continuous load is picked up with no failed request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from operators.ui import free_port
from tests.conftest import ROOT
from tests.serving_models import COLUMNS, feature_rows, make_champion, process_mlflow_uris, register_version

pytestmark = pytest.mark.integration

MODEL = "churn"  # the model the repository's churn spec registers (register.model_name)
CLIENTS = 4
LOAD_SECONDS = 10.0
MOVE_AFTER_SECONDS = 3.0
START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A home folder whose MLflow store holds two versions of `churn` (v1 champion) and `skylift serve churn`
    running on it, polling the alias every second."""
    home = tmp_path_factory.mktemp("serve-home")
    (home / "skylift").mkdir()
    tracking = f"sqlite:///{home}/skylift/mlflow.db"
    one = register_version(tracking, trees=4, seed=1, model=MODEL)
    two = register_version(tracking, trees=12, seed=2, model=MODEL)
    make_champion(tracking, one, model=MODEL)
    port = free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "operators.cli", "--home", str(home), "serve", MODEL,
                             "--port", str(port), "--poll-seconds", "1"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, home / "serve.log")
        yield {"url": url, "uri": tracking, "one": one, "two": two, "proc": proc, "log": home / "serve.log"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def _wait_ready(url: str, proc: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"skylift serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"skylift serve did not answer /ping within {START_TIMEOUT:.0f} s:\n{log.read_text()}")


def _batch_scores(tracking: str, version: str, frame) -> list[float]:
    """Batch scoring's own path: include.scoring on models:/<name>/<version>, with the process-wide
    registry URI set as the score task's MLflow hook sets it."""
    from include import scoring

    with process_mlflow_uris(tracking):
        return scoring.load(f"models:/{MODEL}/{version}").predict(frame).tolist()


def test_answers_equal_batch_scoring_then_a_new_champion_is_served_under_load_with_no_failure(served):
    rows = feature_rows(200, seed=11)
    payload = {"dataframe_split": {"columns": list(rows.columns), "data": rows.astype(object).to_numpy().tolist()}}
    with httpx.Client(base_url=served["url"], timeout=30) as http:
        answer = http.post("/invocations", json=payload)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Skylift-Model-Version"] == served["one"]
        assert answer.json()["predictions"] == _batch_scores(served["uri"], served["one"], rows)
        csv = http.post("/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
        assert csv.json()["predictions"] == answer.json()["predictions"]
        assert http.get("/version").json()["version"] == served["one"]

    small = {"dataframe_records": feature_rows(8, seed=12)[COLUMNS].to_dict(orient="records")}
    outcomes: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=served["url"], timeout=30) as http:
            while not stop.is_set():
                try:
                    response = http.post("/invocations", json=small)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    if response.status_code == 200 and len(response.json()["predictions"]) == 8:
                        outcomes[response.headers["X-Skylift-Model-Version"]] += 1
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(MOVE_AFTER_SECONDS)
    make_champion(served["uri"], served["two"], model=MODEL)
    time.sleep(LOAD_SECONDS - MOVE_AFTER_SECONDS)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert outcomes[served["one"]] > 0 and outcomes[served["two"]] > 0, outcomes
    with httpx.Client(base_url=served["url"], timeout=30) as http:
        assert http.get("/version").json()["version"] == served["two"]
        after = http.post("/invocations", json=payload).json()["predictions"]
        assert after == _batch_scores(served["uri"], served["two"], rows)
        metrics = http.get("/metrics").text
    answered = sum(outcomes.values()) + 3  # the load plus the three scoring requests around it
    assert f'skylift_serving_requests_total{{status="200"}} {float(answered)}' in metrics
    assert 'skylift_serving_reloads_total{outcome="loaded"} 2.0' in metrics
    assert "skylift_serving_errors_total" not in metrics.replace("# HELP skylift_serving_errors_total", "").replace(
        "# TYPE skylift_serving_errors_total", "")

    os.killpg(served["proc"].pid, signal.SIGTERM)  # uvicorn's graceful shutdown: the command exits 0
    assert served["proc"].wait(timeout=30) == 0, served["log"].read_text()
    assert "Serving models:/churn/1" in served["log"].read_text()
