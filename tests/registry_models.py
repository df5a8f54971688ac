"""Tiny registered models for registry, gate and rollback tests: each scores one feature column."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd


class ColumnScore:
    """A pyfunc model that returns one feature column as its score (clipped to a probability)."""

    def __init__(self, column: str) -> None:
        self.column = column

    def predict(self, context, model_input, params=None):  # noqa: ARG002 - the pyfunc signature
        return np.clip(model_input[self.column].to_numpy(dtype="float64"), 0.0, 1.0)


def features(churned: np.ndarray) -> pd.DataFrame:
    """Rows with a column that separates the classes well (`good`) and one that barely does (`weak`)."""
    rng = np.random.default_rng(5)
    n = len(churned)
    return pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "good": 0.3 + 0.5 * churned + rng.normal(0, 0.15, n),
        "weak": 0.3 + 0.1 * churned + rng.normal(0, 0.15, n),
        "churned": churned.astype("int64"),
    })


def pyfunc(column: str):
    import mlflow.pyfunc

    class Model(mlflow.pyfunc.PythonModel):
        def __init__(self) -> None:
            self.inner = ColumnScore(column)

        def predict(self, context, model_input, params=None):
            return self.inner.predict(context, model_input, params)

    return Model()


def log_column_models(client, uri: str, artifacts: str, columns=("weak", "good")) -> list[tuple[str, str, str]]:
    """Log one model per column to the store at `uri`: (run id, model URI, logged model id) each."""
    import mlflow
    from mlflow.models import infer_signature

    frame = features(np.zeros(10))
    logged = []
    with global_tracking_uri(uri):  # the fluent logging API has no client argument
        experiment = client.create_experiment(f"models-{'-'.join(columns)}", artifact_location=artifacts)
        for column in columns:
            with mlflow.start_run(experiment_id=experiment) as run:
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=pyfunc(column), pip_requirements=[],
                    signature=infer_signature(frame[["good", "weak"]], np.zeros(len(frame))))
            logged.append((run.info.run_id, info.model_uri, info.model_id))
    return logged


def register_versions(client, uri: str, model: str, logged, pipeline: str = "t") -> None:
    """Versions 1, 2, ... of `model`, one per logged model, as the register stage makes them."""
    from include import registry

    registry.create_model(client, model, tags={"skylift.pipeline": pipeline})
    with global_tracking_uri(uri):  # MLflow resolves a `models:/<id>` source through the global URI
        for run_id, model_uri, model_id in logged:
            client.create_model_version(model, source=model_uri, run_id=run_id, model_id=model_id)


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to `uri`, then put back as it was: a test's MlflowHook set
    it (as the CLI's does); clearing it instead made later `models:/` loads open ./mlflow.db."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def column_model_store(home) -> dict:
    """A fresh SQLite MLflow store under `home` with the two column models logged (`weak`, then
    `good`): what a test module shares across its tests."""
    from include import registry

    uri = f"sqlite:///{home}/mlflow.db"
    client = registry.client_for(uri)
    return {"home": home, "uri": uri, "client": client,
            "logged": log_column_models(client, uri, f"file://{home}/artifacts")}
