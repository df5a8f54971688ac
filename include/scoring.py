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

    def predict(self, frame: Any) -> np.ndarray:
        """1-D scores (probabilities or values) for the frame's rows, in order."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise RegistryError(f"model {self.uri} needs column(s) {missing} that the features lack")
        inputs = frame[self.columns].astype(dict(zip(self.columns, self.dtypes, strict=True)))
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
    return LoadedModel(uri=uri, model=model, columns=columns, dtypes=dtypes)
