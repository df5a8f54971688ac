"""Tiny XGBoost models registered in a SQLite MLflow, for the serving tests (unit and integration).

Logged the way training logs them (a signature from the feature frame, the version's source the
logged model), and registered the way `RegisterModelOperator` registers them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

MODEL = "serving_churn"
COLUMNS = ["tenure", "visits", "spend"]
ENV_NAMES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def feature_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows with the model's columns and types: float64, int64 and float32, plus a key the model ignores."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype="int64"),
        "tenure": rng.normal(12, 4, n),
        "visits": rng.integers(0, 30, n).astype("int64"),
        "spend": rng.gamma(2.0, 20.0, n).astype("float32"),
    })


@contextmanager
def process_mlflow_uris(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs (and their environment variables) at `uri`,
    then put every one of them back as it was: later tests must not inherit this test's store."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    saved = (tracking_utils._tracking_uri, registry_utils._registry_uri,
             {name: os.environ.get(name) for name in ENV_NAMES})
    tracking_utils._tracking_uri = registry_utils._registry_uri = uri
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri, env = saved
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def register_version(tracking_uri: str, trees: int, seed: int, model: str = MODEL) -> str:
    """Train, log and register one version of `model`; returns the version number."""
    import mlflow
    import mlflow.xgboost
    import xgboost as xgb
    from mlflow.models import infer_signature

    from include import registry

    frame = feature_rows(400, seed)[COLUMNS]
    label = ((frame.tenure / 12 + frame.visits / 15 + np.random.default_rng(seed).normal(0, 0.5, 400)) > 2)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": seed},
                        xgb.DMatrix(frame, label.astype(int)), num_boost_round=trees)
    with process_mlflow_uris(tracking_uri):
        # An explicit artifact root beside the store: by default MLflow writes ./mlruns into the cwd.
        artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        experiment = mlflow.get_experiment_by_name(f"{model}-training")
        mlflow.set_experiment(experiment_id=experiment.experiment_id if experiment else mlflow.create_experiment(
            f"{model}-training", artifact_location=artifacts.as_uri()))
        with mlflow.start_run() as run:
            signature = infer_signature(frame, booster.predict(xgb.DMatrix(frame)).astype(np.float32))
            info = mlflow.xgboost.log_model(booster, name="model", signature=signature)
        client = registry.client_for(tracking_uri)
        registry.create_model(client, model, tags={"skylift.pipeline": "serving_test"})
        # MLflow's registry finds the logged model through the process-wide tracking URI, set until here
        version = client.create_model_version(model, source=f"models:/{info.model_id}", model_id=info.model_id,
                                              run_id=run.info.run_id)
    return str(version.version)


def make_champion(tracking_uri: str, version: str, model: str = MODEL) -> None:
    from include import registry

    # The alias is what serving follows; how a deploy decides to move it is not this helper's business.
    registry.set_alias(registry.client_for(tracking_uri), model, registry.CHAMPION, version)
