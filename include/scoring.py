"""Load a registered model once and score pandas frames with it (shared by deploy and score)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from include.errors import RegistryError


@dataclass
class LoadedModel:
    uri: str
    model: Any  # mlflow.pyfunc.PyFuncModel
    columns: list[str]
    dtypes: list[Any]
    # The model's own XGBoost Booster when it was logged with the xgboost flavor: scored in place,
    # without the pyfunc's pandas -> DMatrix copy (a quarter of the scoring time; same scores).
    booster: Any = None

    def predict(self, frame: Any) -> np.ndarray:
        """1-D scores (probabilities or values) for the frame's rows, in order."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise RegistryError(f"model {self.uri} needs column(s) {missing} that the features lack")
        inputs = frame[self.columns].astype(dict(zip(self.columns, self.dtypes, strict=True)))
        if self.booster is not None:
            output = np.asarray(self.booster.inplace_predict(inputs, validate_features=True))
        else:
            output = np.asarray(self.model.predict(inputs))
        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1 or len(output) != len(frame):
            raise RegistryError(f"model {self.uri} returned shape {output.shape} for {len(frame)} rows")
        return output.astype("float64")


def load(uri: str) -> LoadedModel:
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # MLflow raises several unrelated types for a missing model or alias
        raise RegistryError(f"cannot load model {uri}: {exc}") from exc
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise RegistryError(f"model {uri} has no named input signature; log it with a signature")
    columns = schema.input_names()
    dtypes = [spec.type.to_numpy() for spec in schema.inputs]
    return LoadedModel(uri=uri, model=model, columns=columns, dtypes=dtypes, booster=_xgboost_booster(model))


def _xgboost_booster(model: Any) -> Any:
    """The Booster inside a pyfunc of the xgboost flavor, else None (other flavors, and XGBoost's
    scikit-learn models, whose `predict` means class labels, keep going through the pyfunc)."""
    if model.metadata.flavors.get("python_function", {}).get("loader_module") != "mlflow.xgboost":
        return None
    import xgboost as xgb

    raw = model.get_raw_model()
    return raw if type(raw) is xgb.Booster else None
