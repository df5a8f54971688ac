"""Gradient-boosted trees with `xgboost.train` on a `Booster`.

User params override the defaults below; `num_boost_round` and `early_stopping_rounds` are
taken out of them (they are arguments of `xgboost.train`, not booster parameters). Early
stopping watches the validation set and keeps the best iteration only.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

OBJECTIVES = {"classification": "binary:logistic", "regression": "reg:squarederror"}
DEFAULTS: dict[str, Any] = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "seed": 0}
NUM_BOOST_ROUND = 200
EARLY_STOPPING_ROUNDS = 20
CPU_THREADS = 2


def booster_params(task: str, params: dict[str, Any], device: str) -> tuple[dict[str, Any], int, int]:
    """(booster params, num_boost_round, early_stopping_rounds) after applying the user's params."""
    user = dict(params)
    rounds = int(user.pop("num_boost_round", NUM_BOOST_ROUND))
    patience = int(user.pop("early_stopping_rounds", EARLY_STOPPING_ROUNDS))
    merged: dict[str, Any] = {"objective": OBJECTIVES[task], **DEFAULTS}
    merged["device"] = "cuda" if device == "cuda" else "cpu"
    if device != "cuda":
        merged["nthread"] = CPU_THREADS
    merged.update(user)
    return merged, rounds, patience


def train(  # noqa: PLR0917 (the trainer interface: train(X_train, y_train, X_valid, y_valid, task, params, device))
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    task: str,
    params: dict[str, Any],
    device: str,
    feature_names: list[str] | None = None,
):
    """Train a Booster; returns it trimmed to the best validation iteration."""
    import xgboost as xgb

    merged, rounds, patience = booster_params(task, params, device)
    dtrain = xgb.DMatrix(X_train, label=y_train, feature_names=feature_names)
    dvalid = xgb.DMatrix(X_valid, label=y_valid, feature_names=feature_names)
    callbacks = [xgb.callback.EarlyStopping(rounds=patience, save_best=True)] if patience > 0 else []
    booster = xgb.train(
        merged, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")], callbacks=callbacks, verbose_eval=False
    )
    log.info("xgboost: %s trees (of at most %s), params %s", booster.num_boosted_rounds(), rounds, merged)
    return booster


def predict(booster, X: np.ndarray, feature_names: list[str] | None = None) -> np.ndarray:
    import xgboost as xgb

    return booster.predict(xgb.DMatrix(X, feature_names=feature_names))


def effective_params(task: str, params: dict[str, Any], device: str) -> dict[str, Any]:
    """Everything that shaped the model, for logging."""
    merged, rounds, patience = booster_params(task, params, device)
    return {**merged, "num_boost_round": rounds, "early_stopping_rounds": patience}


def feature_importance(booster, feature_names: list[str]) -> dict[str, dict[str, float]]:
    """Per feature: total gain, average gain, split count (0 for features no tree uses)."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("total_gain", "gain", "weight"):
        scores = booster.get_score(importance_type=kind)
        out[kind] = {name: float(scores.get(name, 0.0)) for name in feature_names}
    return out


def portable(booster):
    """Make the logged model device-neutral and free to use every core when it predicts."""
    booster.set_param({"device": "cpu", "nthread": -1})
    return booster
