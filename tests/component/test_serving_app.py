"""The serving app (include/serving/app.py) on a tiny XGBoost model in a SQLite MLflow: every payload
format, CSV, /ping, /version, /metrics, 4xx messages for malformed payloads, and following the alias."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from include.serving.app import VERSION_HEADER, create_app
from include.serving.follower import ServingConfig
from tests.serving_models import (
    COLUMNS,
    MODEL,
    feature_rows,
    make_champion,
    process_mlflow_uris,
    register_version,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A registry with two versions of the model; version 1 is champion. The process-wide MLflow URI is
    pointed at a server that does not exist, so the app can only work through its own explicit URIs."""
    tracking = f"sqlite:///{tmp_path_factory.mktemp('serving')}/mlflow.db"
    one = register_version(tracking, trees=4, seed=1)
    two = register_version(tracking, trees=12, seed=2)
    make_champion(tracking, one)
    with process_mlflow_uris("http://127.0.0.1:9"):
        yield {"uri": tracking, "one": one, "two": two}


@pytest.fixture
def client(store):
    make_champion(store["uri"], store["one"])
    app = create_app(ServingConfig(MODEL, store["uri"], poll_seconds=3600))  # checks only when a test asks
    with TestClient(app) as http:
        yield http


def _expected(store, version: str, frame) -> list[float]:
    """What batch scoring computes for these rows: include.scoring on the same version's files."""
    import mlflow.artifacts

    from include import registry, scoring

    source = registry.client_for(store["uri"]).get_model_version_download_uri(MODEL, version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=store["uri"])
    return scoring.load(local).predict(frame).tolist()


def _error(response) -> str:
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST"
    return body["message"]


ROWS = feature_rows(5, seed=7)


@pytest.mark.parametrize("payload", [
    {"dataframe_split": {"columns": list(ROWS.columns), "data": ROWS.astype(object).to_numpy().tolist()}},
    {"dataframe_records": ROWS.to_dict(orient="records")},
    {"instances": ROWS.to_dict(orient="records")},
    {"inputs": ROWS.to_dict(orient="list")},
], ids=["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_every_json_format_answers_what_batch_scoring_computes(client, store, payload):
    response = client.post("/invocations", json=payload)
    assert response.status_code == 200, response.text
    assert response.headers[VERSION_HEADER] == store["one"]
    assert response.json()["predictions"] == pytest.approx(_expected(store, store["one"], ROWS), rel=1e-6)


def test_csv_with_a_header_row(client, store):
    body = ROWS.to_csv(index=False)
    response = client.post("/invocations", content=body, headers={"Content-Type": "text/csv; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == pytest.approx(_expected(store, store["one"], ROWS), rel=1e-6)


def test_ping_and_version(client, store):
    assert client.get("/ping").status_code == 200
    version = client.get("/version").json()
    assert (version["name"], version["version"]) == (MODEL, store["one"])
    assert version["uri"] == f"models:/{MODEL}/{store['one']}"
    assert version["columns"] == COLUMNS


def test_metrics_count_requests_errors_rows_and_the_version_served(client, store):
    client.post("/invocations", json={"dataframe_records": ROWS.to_dict(orient="records")})
    client.post("/invocations", json={"records": []})
    text = client.get("/metrics").text
    assert 'skylift_serving_requests_total{status="200"} 1.0' in text
    assert 'skylift_serving_requests_total{status="400"} 1.0' in text
    assert 'skylift_serving_errors_total{kind="unknown_format"} 1.0' in text
    assert "skylift_serving_rows_total 5.0" in text
    assert "skylift_serving_request_duration_seconds_count 2.0" in text
    assert f'skylift_serving_model_info{{model="{MODEL}",version="{store["one"]}"}} 1.0' in text
    assert f'skylift_serving_model_version{{model="{MODEL}"}} {float(store["one"])}' in text
    assert 'skylift_serving_reloads_total{outcome="loaded"} 1.0' in text


@pytest.mark.parametrize(("body", "content_type", "status", "message"), [
    (b"", "application/json", 400, "the request body is empty"),
    (b'{"records": [{"tenure": 1.0}]}', "application/json", 400,
     "unknown format key(s) ['records']: the JSON body must hold exactly one of ['dataframe_split', "
     "'dataframe_records', 'instances', 'inputs']"),
    (b'{"dataframe_records": [], "inputs": {}}', "application/json", 400,
     "2 format keys ['dataframe_records', 'inputs']"),
    (b'[1, 2]', "application/json", 400, "must be an object with one of the keys"),
    (b'{"dataframe_split": ', "application/json", 400, "the body is not valid UTF-8 JSON"),
    (b'{"dataframe_records": [{"tenure": 1.0, "visits": 3}]}', "application/json", 400,
     "missing column(s) ['spend'] that the model's signature requires (it takes ['tenure', 'visits', 'spend']"),
    (b'{"dataframe_records": [{"tenure": "long", "visits": 3, "spend": 1.5}]}', "application/json", 400,
     "column 'tenure' must hold numbers (the model's signature says float64); row 0: 'long'"),
    (b'{"dataframe_records": [{"tenure": 1.0, "visits": 3, "spend": 1}, {"tenure": 1.0, "visits": 2.5, '
     b'"spend": 1}]}', "application/json", 400,
     "column 'visits' must hold whole numbers (the model's signature says int64); row 1: 2.5"),
    (b'{"inputs": {"tenure": [1.0], "visits": [null], "spend": [1.0]}}', "application/json", 400,
     "column 'visits' must hold integers, not nulls"),
    (b'{"inputs": {"tenure": [1.0, 2.0], "visits": [1], "spend": [1.0, 2.0]}}', "application/json", 400,
     "inputs: the columns hold different numbers of values"),
    (b'{"instances": [[1.0, 2, 3.0]]}', "application/json", 400, "instances: rows must name their columns"),
    (b'{"dataframe_split": {"cols": ["tenure"], "data": [[1.0]]}}', "application/json", 400,
     "dataframe_split: Invalid input. Dataframe split format must have 'data' field"),
    (b'{"dataframe_records": []}', "application/json", 400, "the payload holds no rows to score"),
    (b"tenure,visits\n1.0,2\n", "text/csv", 400, "missing column(s) ['spend']"),
    (b"tenure,visits,spend\nx,2,1.0\n", "text/csv", 400, "column 'tenure' must hold numbers"),
    (b"tenure,visits,spend\n1.0,2,1.0\n", "application/xml", 415,
     "content type 'application/xml' is not supported: send application/json or text/csv"),
    (b"tenure,visits,spend\n1.0,2,1.0\n", "text/csv; charset=latin-1", 415, "charset 'latin-1' is not supported"),
    (b"tenure,visits,spend\n1.0,2,1.0\n", "text/csv; header=present", 415,
     "content type parameter 'header=present' is not supported (only charset)"),
    (b'{"inputs": {"tenure": [1.0]}, "params": {"k": 1}}', "application/json", 400,
     "unknown format key(s) ['params']: the JSON body must hold exactly one of ['dataframe_split', "
     "'dataframe_records', 'instances', 'inputs'] (Skylift's models take no params)"),
])
def test_malformed_payloads_get_a_4xx_naming_the_problem(client, body, content_type, status, message):
    response = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in _error(response)


def test_moving_the_alias_switches_the_model_without_a_restart(client, store):
    rows = {"dataframe_split": {"columns": list(ROWS.columns), "data": ROWS.astype(object).to_numpy().tolist()}}
    before = client.post("/invocations", json=rows)
    follower = client.app.state.follower
    pinned = follower.current  # what a request in flight holds
    make_champion(store["uri"], store["two"])
    assert follower.check() is True  # what the poller does every few seconds
    after = client.post("/invocations", json=rows)
    assert (before.headers[VERSION_HEADER], after.headers[VERSION_HEADER]) == (store["one"], store["two"])
    assert after.json()["predictions"] == pytest.approx(_expected(store, store["two"], ROWS), rel=1e-6)
    assert not np.allclose(before.json()["predictions"], after.json()["predictions"])
    # the version a request started with still scores, in memory, after the swap removed its files
    assert pinned.scorer.predict(ROWS).tolist() == pytest.approx(before.json()["predictions"], rel=1e-6)
    assert client.get("/version").json()["version"] == store["two"]
    metrics = client.get("/metrics").text
    assert f'skylift_serving_model_info{{model="{MODEL}",version="{store["two"]}"}} 1.0' in metrics
    assert f'version="{store["one"]}"' not in metrics
    assert follower.check() is False  # nothing moved: nothing reloaded


def test_without_a_champion_the_app_says_why_and_answers_503(store):
    app = create_app(ServingConfig("never_promoted", store["uri"], poll_seconds=3600))
    with TestClient(app) as http:
        ping = http.get("/ping")
        assert ping.status_code == 503
        assert "model 'never_promoted' has no champion alias" in ping.json()["message"]
        response = http.post("/invocations", json={"inputs": {"tenure": [1.0]}})
        assert response.status_code == 503
        assert response.json()["error_code"] == "MODEL_NOT_READY"
        assert 'skylift_serving_errors_total{kind="no_model"} 1.0' in http.get("/metrics").text


def test_a_champion_that_cannot_be_loaded_leaves_the_current_one_serving(client, store):
    import shutil
    from pathlib import Path

    from include import registry

    broken = register_version(store["uri"], trees=2, seed=3)
    source = registry.client_for(store["uri"]).get_model_version_download_uri(MODEL, broken)
    shutil.rmtree(Path(source.removeprefix("file://")))  # its files are gone: it cannot load
    follower = client.app.state.follower
    make_champion(store["uri"], broken)
    try:
        follower.check_safely()  # what the poller does; it must not raise
        assert follower.current.version == store["one"]
        assert f"cannot download version {broken} of model '{MODEL}'" in follower.problem
        response = client.post("/invocations", json={"dataframe_records": ROWS.to_dict(orient="records")})
        assert response.status_code == 200
        assert response.headers[VERSION_HEADER] == store["one"]
        assert 'skylift_serving_reloads_total{outcome="failed"} 1.0' in client.get("/metrics").text
    finally:
        make_champion(store["uri"], store["one"])


def test_a_pinned_version_is_served_whatever_the_alias_says(store):
    """What a Kubernetes Deployment's pods run (`--version`): the rollout, not the alias, decides."""
    make_champion(store["uri"], store["one"])
    app = create_app(ServingConfig(MODEL, store["uri"], poll_seconds=3600, version=store["two"]))
    with TestClient(app) as http:
        assert http.get("/version").json()["version"] == store["two"]
        assert app.state.follower.check() is False  # the alias names v1: nothing moves
        answer = http.post("/invocations", json={"dataframe_records": ROWS[COLUMNS].to_dict(orient="records")})
        assert answer.headers[VERSION_HEADER] == store["two"]
