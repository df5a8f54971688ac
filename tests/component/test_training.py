"""The training entrypoint, run as a subprocess against a tiny file:// lake and a SQLite MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from include.errors import TrainingError
from include.lake import Lake
from include.training.data import feature_matrix, load_frame, split_columns
from include.training.entrypoint import ConfigError, TrainConfig
from include.training.holdout import holdout_mask
from include.training.metrics import evaluate

ROOT = Path(__file__).resolve().parents[2]
DATES = ["2026-01-01", "2026-01-02"]
N_CUSTOMERS = 600
FEATURES = ["tenure_days", "orders_30d", "spend_30d", "support_tickets", "is_premium", "noise"]
TIMEOUT = 240


def _partition(rng: np.random.Generator, day: int) -> pd.DataFrame:
    n = N_CUSTOMERS
    tenure = rng.integers(1, 2000, n)
    orders = rng.poisson(3, n)
    spend = rng.gamma(2.0, 50.0, n)
    spend[rng.random(n) < 0.05] = np.nan  # missing values must not break either framework
    tickets = rng.poisson(1, n)
    premium = rng.random(n) < 0.3
    logit = 1.5 * tickets - 0.8 * orders + 1.5 * (tenure < 200) - 1.2 * premium + 0.5
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    next_spend = 0.9 * np.nan_to_num(spend, nan=100.0) + 15.0 * orders + 40.0 * premium + rng.normal(0, 20, n)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "tenure_days": tenure + day,
            "orders_30d": orders,
            "spend_30d": spend,
            "support_tickets": tickets.astype(np.int32),
            "is_premium": premium,
            "segment": rng.choice(["a", "b", "c"], n),  # not numeric: never a feature
            "noise": rng.normal(size=n),
            "churned": churned,
            "next_30d_spend": next_spend,
        }
    )


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory) -> str:
    root = f"file://{tmp_path_factory.mktemp('lake')}"
    rng = np.random.default_rng(7)
    lake = Lake(root)
    for day, ds in enumerate(DATES):
        with lake.publish("features", "customer_features", ds) as writer:
            writer.write_table(pa.Table.from_pandas(_partition(rng, day), preserve_index=False))
    return root


def _config(lake_root: str, framework: str, task: str, **overrides) -> dict:
    other_target = "next_30d_spend" if task == "classification" else "churned"
    params = (
        {"num_boost_round": 60, "max_depth": 4}
        if framework == "xgboost"
        else {"epochs": 15, "batch_size": 64, "lr": 0.003, "hidden": [32, 16]}
    )
    config = {
        "lake_root": lake_root,
        "dataset": "customer_features",
        "dates": DATES,
        "key": ["customer_id"],
        "target": "churned" if task == "classification" else "next_30d_spend",
        "exclude": [other_target],
        "framework": framework,
        "task": task,
        "params": params,
        "experiment": f"test-{framework}-{task}",
        "tags": {"team": "ml"},
        "device": "cpu",
    }
    config.update(overrides)
    return config


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir}/mlflow.db",
        SKYLIFT_ARTIFACT_ROOT=f"file://{workdir}/artifacts",
        SKYLIFT_RESULT_PATH=str(workdir / "xcom" / "return.json"),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        PYTHONPATH=str(ROOT),
        PYTHONHASHSEED="random",
    )
    return env


def _start(config: dict, workdir: Path) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "include.training.entrypoint", "--config", json.dumps(config)],
        cwd=ROOT,
        env=_env(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


CASES = [
    ("xgboost", "classification"),
    ("pytorch", "classification"),
    ("xgboost", "regression"),
    ("pytorch", "regression"),
]


@pytest.fixture(scope="module")
def runs(lake_root, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """The four training runs, two at a time (one per core); each has its own MLflow store."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for pair in (CASES[:2], CASES[2:]):
        started = {}
        for framework, task in pair:
            workdir = base / f"{framework}-{task}"
            started[(framework, task)] = (
                workdir,
                time.monotonic(),
                _start(_config(lake_root, framework, task), workdir),
            )
        for case, (workdir, t0, proc) in started.items():
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            out[case] = {
                "rc": proc.returncode,
                "stdout": stdout,
                "stderr": stderr,
                "workdir": workdir,
                "seconds": time.monotonic() - t0,
            }
    return out


def _holdout_frame(lake_root: str, features: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = load_frame(lake_root, "customer_features", DATES)
    holdout = frame[holdout_mask(frame[["customer_id"]], 0.2)]
    return holdout, holdout[features]


@pytest.mark.parametrize(("framework", "task"), CASES)
def test_training_run(runs, lake_root, framework, task, tmp_path):
    import mlflow
    from mlflow.models.utils import load_serving_example, validate_serving_input
    from mlflow.tracking import MlflowClient

    run = runs[(framework, task)]
    assert run["rc"] == 0, run["stderr"][-4000:]
    workdir = run["workdir"]
    result_path = workdir / "xcom" / "return.json"
    assert run["stdout"].strip() == str(result_path)
    result = json.loads(result_path.read_text())
    assert result["framework"] == framework and result["task"] == task and result["device"] == "cpu"
    assert result["model_uri"] == f"runs:/{result['run_id']}/model"
    assert result["feature_columns"] == FEATURES
    assert result["dates"] == DATES
    assert result["rows"]["train"] + result["rows"]["holdout"] == 2 * N_CUSTOMERS
    assert 0 < result["rows"]["valid"] < result["rows"]["train"]
    assert 0.1 * 2 * N_CUSTOMERS < result["rows"]["holdout"] < 0.3 * 2 * N_CUSTOMERS
    metrics = result["metrics"]
    if task == "classification":
        assert set(metrics) == {"auc", "logloss", "accuracy", "precision", "recall", "f1"}
        assert metrics["auc"] > 0.7, metrics
    else:
        assert set(metrics) == {"rmse", "mae", "r2"}
        assert metrics["r2"] > 0.3, metrics

    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    try:
        client = MlflowClient()
        mlrun = client.get_run(result["run_id"])
        assert mlrun.info.status == "FINISHED"
        assert mlrun.info.experiment_id == result["experiment_id"]
        experiment = client.get_experiment(result["experiment_id"])
        assert experiment.artifact_location == f"file://{workdir}/artifacts/test-{framework}-{task}"
        params = mlrun.data.params
        assert params["device"] == "cpu" and params["n_features"] == str(len(FEATURES))
        assert params["rows_train"] == str(result["rows"]["train"])
        assert params["rows_holdout"] == str(result["rows"]["holdout"])
        assert params["dates"] == ",".join(DATES)
        assert mlrun.data.metrics == pytest.approx(metrics)
        tags = mlrun.data.tags
        assert tags["team"] == "ml" and tags["skylift.framework"] == framework and tags["skylift.task"] == task
        assert tags["skylift.device"] == "cpu"
        artifacts = {a.path for a in client.list_artifacts(result["run_id"], "plots")}
        plot = "plots/roc_curve.png" if task == "classification" else "plots/predicted_vs_actual.png"
        assert plot in artifacts
        top = {a.path for a in client.list_artifacts(result["run_id"])}
        assert "feature_columns.json" in top
        # The training rows' reference, which scoring's drift check compares each day with (include/drift.py).
        reference = json.loads(Path(client.download_artifacts(result["run_id"], "drift_reference.json",
                                                               str(tmp_path))).read_text())
        assert [f["name"] for f in reference["features"]] == FEATURES
        assert reference["rows"] == result["rows"]["train"]
        if framework == "xgboost":
            assert "feature_importance.json" in top

        model = mlflow.pyfunc.load_model(result["model_uri"])
        assert model.metadata.get_input_schema().input_names() == FEATURES
        if framework == "pytorch":  # a pt2 program cannot change device: pinned so GPU hosts load it too
            assert model.model_config["device"] == "cpu"
        # The stored serving example matches the (column) signature.
        example = json.loads(load_serving_example(result["model_uri"]))
        assert example["dataframe_split"]["columns"] == FEATURES
        assert len(np.asarray(validate_serving_input(result["model_uri"], example)).reshape(-1)) > 0
        holdout, X = _holdout_frame(lake_root, FEATURES)
        predicted = np.asarray(model.predict(X), dtype="float64").reshape(-1)
        assert predicted.shape == (len(holdout),) == (result["rows"]["holdout"],)
        assert np.isfinite(predicted).all()
        if task == "classification":
            assert ((predicted >= 0) & (predicted <= 1)).all()
            assert evaluate(task, holdout["churned"].to_numpy(), predicted)["auc"] == pytest.approx(
                metrics["auc"], abs=1e-4
            )
        else:
            r2 = evaluate(task, holdout["next_30d_spend"].to_numpy(), predicted)["r2"]
            assert r2 == pytest.approx(metrics["r2"], abs=1e-4)
        # Raw frame with extra columns in another order is accepted too.
        reordered = holdout[["segment", *reversed(FEATURES), "customer_id"]]
        again = np.asarray(model.predict(reordered), dtype="float64").reshape(-1)
        np.testing.assert_allclose(again, predicted, rtol=1e-6)
    finally:
        mlflow.set_tracking_uri(None)


def test_unknown_framework_exits_non_zero_naming_the_key(lake_root, tmp_path):
    proc = _start(_config(lake_root, "sklearn", "classification"), tmp_path)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "'framework'" in stderr and "sklearn" in stderr
    assert not (tmp_path / "xcom" / "return.json").exists()


def test_missing_target_fails_the_run(lake_root, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    config = _config(lake_root, "xgboost", "classification", target="no_such_column", experiment="bad-target")
    proc = _start(config, tmp_path)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1
    assert "no_such_column" in stderr and "target column" in stderr
    assert not (tmp_path / "xcom" / "return.json").exists()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        (run,) = mlflow.search_runs(experiment_names=["bad-target"], output_format="list")
        assert run.info.status == "FAILED"
        assert "no_such_column" in MlflowClient().get_run(run.info.run_id).data.tags["skylift.error"]
    finally:
        mlflow.set_tracking_uri(None)


# ---- in-process units -------------------------------------------------------------------------
def test_holdout_mask_is_deterministic_and_about_the_fraction():
    keys = pd.Series([f"customer-{i}" for i in range(20000)])
    mask = holdout_mask(keys, 0.2)
    assert mask.dtype == bool and mask.shape == (20000,)
    assert 0.19 < mask.mean() < 0.21
    np.testing.assert_array_equal(mask, holdout_mask(keys.sample(frac=1, random_state=1).sort_index(), 0.2))
    # Stable across processes (Python's own hash() is salted per process) and across versions: pinned.
    code = "import pandas as pd; from include.training.holdout import holdout_mask; " + (
        "print(''.join('1' if m else '0' for m in holdout_mask(pd.Series([f'customer-{i}' for i in range(40)]), 0.5)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    here = "".join("1" if m else "0" for m in holdout_mask(keys[:40], 0.5))
    assert other.stdout.strip() == here == PINNED_40


PINNED_40 = "1011110001011000000110100100001101000100"


def test_holdout_mask_multi_column_and_edges():
    frame = pd.DataFrame({"shop": ["a", "a", "b", "b"] * 500, "customer": [str(i) for i in range(2000)]})
    mask = holdout_mask(frame, 0.3)
    np.testing.assert_array_equal(mask, holdout_mask(frame.copy(), 0.3))
    joined = frame["shop"] + "\x1f" + frame["customer"]
    np.testing.assert_array_equal(mask, holdout_mask(joined, 0.3))
    assert not holdout_mask(frame, 0.0).any() and holdout_mask(frame, 1.0).all()
    with pytest.raises(ValueError):
        holdout_mask(frame, 1.5)


def test_split_columns():
    frame = pd.DataFrame(
        {
            "id": ["x", "y"],
            "a": [1.0, 2.0],
            "flag": [True, False],
            "s": ["p", "q"],
            "n": [1, 2],
            "y": [0, 1],
            "z": [3, 4],
        }
    )
    assert split_columns(frame, ["id"], "y", ["z"]) == ["a", "flag", "n"]
    assert feature_matrix(frame, ["a", "flag", "n"]).dtype == np.float32
    assert feature_matrix(frame, ["flag"]).tolist() == [[1.0], [0.0]]
    with pytest.raises(TrainingError, match="target column 'missing'"):
        split_columns(frame, ["id"], "missing", [])
    with pytest.raises(TrainingError, match="no feature columns"):
        split_columns(frame, ["id"], "y", ["a", "flag", "n", "z"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"framework": "sklearn"}, "'framework'"),
        ({"task": "ranking"}, "'task'"),
        ({"dates": ["2026-13-01"]}, "'dates'"),
        ({"dates": []}, "'dates'"),
        ({"holdout_fraction": 1.0}, "'holdout_fraction'"),
        ({"params": {"device": "cuda"}}, "'params'"),
        ({"tags": {"a": {"b": 1}}}, "'tags'"),
        ({"device": "tpu"}, "'device'"),
        ({"targte": "x"}, "targte"),
        ({"target": None}, "'target'"),
    ],
)
def test_config_validation_names_the_key(change, message):
    raw = _config("file:///tmp/lake", "xgboost", "classification")
    raw.update(change)
    if change.get("target", "") is None:
        del raw["target"]
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(raw)


def test_config_defaults():
    raw = _config("file:///tmp/lake", "pytorch", "regression")
    for name in ("device", "tags", "params", "exclude"):
        raw.pop(name)
    config = TrainConfig.from_dict(raw)
    assert (config.zone, config.holdout_fraction, config.device, config.exclude) == ("features", 0.2, "auto", [])
    assert config.default_run_name == "customer_features-pytorch-2026-01-02"


def test_training_key_follows_inputs_not_run_names():
    from operators.train_reuse import training_key

    config = {"dataset": "f", "dates": ["2026-11-24"], "params": {"max_depth": 4}, "run_name": "a",
              "tags": {"skylift.dag_run_id": "r1"}, "lake_root": "file:///lake"}
    key = training_key(config, ["abc"], None)
    renamed = {**config, "run_name": "b", "tags": {"skylift.dag_run_id": "r2"}, "lake_root": "s3://lake"}
    assert training_key(renamed, ["abc"], None) == key
    assert training_key({**config, "params": {"max_depth": 5}}, ["abc"], None) != key
    assert training_key(config, ["abd"], None) != key  # a rebuilt feature partition
    assert training_key(config, ["abc"], "skylift-training:2") != training_key(config, ["abc"], "skylift-training:3")


# ---- data that cannot support the task, and metrics that cannot be computed ----------------------
def _lake_with(tmp_path: Path, edit) -> str:
    """A one-feature-partition lake per date in DATES, each frame changed by `edit(frame, day)`."""
    root = f"file://{tmp_path}/lake"
    rng = np.random.default_rng(3)
    lake = Lake(root)
    for day, ds in enumerate(DATES):
        frame = edit(_partition(rng, day).head(200).copy(), day)
        with lake.publish("features", "customer_features", ds) as writer:
            writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    return root


def _prepare(root: str, task: str = "classification"):
    from include.training.entrypoint import prepare

    return prepare(TrainConfig.from_dict(_config(root, "xgboost", task)))


def test_a_single_class_training_window_fails_naming_the_partitions(tmp_path):
    root = _lake_with(tmp_path, lambda f, day: f.assign(churned=0))
    with pytest.raises(TrainingError) as caught:
        _prepare(root)
    message = str(caught.value)
    assert "classification target 'churned' holds only 0 in the" in message
    assert "features/customer_features ds=2026-01-01, 2026-01-02" in message
    assert "needs both classes" in message and "train.window_days" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_target_fails_naming_the_rows(tmp_path, bad):
    def edit(frame, day):
        if day == 1:
            frame.loc[frame.index[3], "next_30d_spend"] = bad
        return frame

    root = _lake_with(tmp_path, edit)
    with pytest.raises(TrainingError) as caught:
        _prepare(root, task="regression")
    message = str(caught.value)
    counts = "1 missing (NaN) and 0 infinite" if np.isnan(bad) else "0 missing (NaN) and 1 infinite"
    assert f"target column 'next_30d_spend' in features/customer_features ds=2026-01-01, 2026-01-02 has {counts}" \
        in message
    assert "{'customer_id': 'c00003'}" in message and "train_start/train_end" in message


def test_zero_rows_fail_naming_the_partitions(tmp_path):
    root = _lake_with(tmp_path, lambda f, day: f.head(0))
    with pytest.raises(TrainingError, match=r"features/customer_features ds=2026-01-01, 2026-01-02 hold no rows: "
                                            r"nothing to train on"):
        _prepare(root)


def test_a_one_class_evaluation_set_warns_and_leaves_auc_not_computable(caplog):
    with caplog.at_level("WARNING", logger="include.training.metrics"):
        metrics = evaluate("classification", np.zeros(30), np.linspace(0.0, 1.0, 30))
    assert np.isnan(metrics["auc"]) and np.isfinite(metrics["accuracy"])
    assert "auc cannot be computed: the 30 evaluation rows hold one class only (every label is 0)" in caplog.text


@pytest.mark.parametrize(("task", "metrics"), [
    ("classification", ["auc", "logloss", "accuracy", "precision", "recall", "f1"]),
    ("regression", ["rmse", "mae", "r2"]),
])
def test_weighted_metrics_match_evaluate_and_weights_act_as_repeated_rows(task, metrics):
    from include.training.metrics import weighted

    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(float) if task == "classification" else rng.normal(size=300)
    pred = np.clip(0.4 + 0.3 * (y - 0.4) + rng.normal(0, 0.2, 300), 0, 1) if task == "classification" \
        else y + rng.normal(0, 0.5, 300)
    pred[:20] = np.round(pred[:20], 1)  # some ties
    counts = rng.integers(0, 3, 300)
    repeated = np.repeat(np.arange(300), counts)
    for name in metrics:
        once = weighted(task, name, y, pred, np.ones((1, 300)))[0]
        assert once == pytest.approx(evaluate(task, y, pred)[name], rel=1e-9), name
        under_counts = weighted(task, name, y, pred, counts[None, :].astype(float))[0]
        assert under_counts == pytest.approx(evaluate(task, y[repeated], pred[repeated])[name], rel=1e-9), name


def test_stale_running_runs_of_the_same_dag_run_and_date_are_marked_failed(tmp_path):
    from mlflow.entities import RunStatus

    from operators.hooks.mlflow import STALE_TAG, MlflowHook

    hook = MlflowHook(f"sqlite:///{tmp_path}/mlflow.db")
    client = hook.client
    experiment = client.create_experiment("skylift/churn")

    def run(dag_run_id: str, ds: str) -> str:
        tags = {"skylift.dag_run_id": dag_run_id, "skylift.ds": ds}
        return client.create_run(experiment, tags=tags).info.run_id  # left RUNNING, as by a killed process

    killed, other_date, other_run = run("scheduled__1", "2026-11-24"), run("scheduled__1", "2026-11-23"), \
        run("scheduled__2", "2026-11-24")
    finished = run("scheduled__1", "2026-11-24")
    client.set_terminated(finished, status="FINISHED")
    assert hook.fail_stale_runs("skylift/churn", "scheduled__1", "2026-11-24") == [killed]
    stale = client.get_run(killed)
    assert stale.info.status == RunStatus.to_string(RunStatus.FAILED)
    assert "marked FAILED by a later attempt of DAG run scheduled__1 (ds=2026-11-24)" in stale.data.tags[STALE_TAG]
    for untouched in (other_date, other_run):
        assert client.get_run(untouched).info.status == "RUNNING"
    assert client.get_run(finished).info.status == "FINISHED"
    assert hook.fail_stale_runs("skylift/absent", "scheduled__1", "2026-11-24") == []


def test_a_new_attempt_of_the_training_task_marks_the_killed_attempts_run_failed(skylift_env, monkeypatch):
    """The operator's wiring of the above: a retry's first step, before it trains, ends the run an
    earlier attempt of the same DAG run and date left RUNNING (the tags it gives its runs match)."""
    from operators.hooks.mlflow import MlflowHook
    from operators.settings import Settings
    from operators.train import TrainModelOperator
    from tests.conftest import task_context

    task = TrainModelOperator(task_id="train", pipeline="churn", dataset="churn_features", framework="xgboost",
                              target="churned")
    context = task_context("2026-11-24", task_id="train", run_id="scheduled__1")
    context["ti"].dag_id = "churn_nightly"
    tags = task.training_config(context, Settings.resolve(), ["2026-11-24"])["tags"]
    client = MlflowHook(Settings.resolve().mlflow_tracking_uri).client
    killed = client.create_run(client.create_experiment("skylift/churn"), tags=tags).info.run_id  # never ended

    class Stop(Exception):
        pass

    def stop(*_args, **_kwargs):
        raise Stop

    monkeypatch.setattr(task, "prepare", lambda *_: ({"experiment": "skylift/churn"}, "key", None))
    monkeypatch.setattr(task, "earlier_result", lambda *_: None)
    monkeypatch.setattr(task, "run_locally", stop)  # the new attempt's training itself is not under test
    with pytest.raises(Stop):
        task.execute(context)
    assert client.get_run(killed).info.status == "FAILED"
