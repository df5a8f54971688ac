"""The batch-scoring engine: an xgboost-flavor Booster is scored in place, with the pyfunc's scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include import scoring
from include.errors import RegistryError


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "c"])


def _saved(folder, model) -> str:
    import mlflow.xgboost
    from mlflow.models import infer_signature

    # Requirements given: MLflow would otherwise infer them in a subprocess (seconds).
    mlflow.xgboost.save_model(model, str(folder), signature=infer_signature(_frame(10)),
                              pip_requirements=["xgboost"])
    return str(folder)


@pytest.fixture(scope="module")
def booster(tmp_path_factory) -> str:
    import xgboost as xgb

    frame = _frame()
    trained = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(frame, label=(frame["a"] > 0).astype(int)), num_boost_round=5)
    return _saved(tmp_path_factory.mktemp("booster") / "model", trained)


def test_booster_is_scored_in_place_with_the_pyfuncs_scores(booster):
    model = scoring.load(booster)
    assert model.booster is not None
    # Columns out of order and as float32: the engine selects and casts to the signature first.
    frame = _frame()[["c", "a", "b"]].astype("float32")
    through_pyfunc = model.model.predict(frame[model.columns].astype("float64"))
    np.testing.assert_array_equal(model.predict(frame), np.asarray(through_pyfunc, dtype="float64"))


def test_scikit_learn_model_keeps_the_pyfunc(tmp_path):
    import xgboost as xgb

    frame = _frame()
    classifier = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(frame, (frame["a"] > 0).astype(int))
    model = scoring.load(_saved(tmp_path / "model", classifier))
    assert model.booster is None  # its pyfunc predicts class labels, which the engine must keep
    assert set(np.unique(model.predict(frame))) <= {0.0, 1.0}


def test_missing_column_is_named(booster):
    model = scoring.load(booster)
    with pytest.raises(RegistryError, match=r"needs column\(s\) \['c'\]"):
        model.predict(_frame().drop(columns=["c"]))
