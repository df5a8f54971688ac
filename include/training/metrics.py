"""Holdout metrics. Classification scores are probabilities; labels use a 0.5 threshold."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_METRICS = ("auc", "logloss", "accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("rmse", "mae", "r2")
THRESHOLD = 0.5


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.clip(np.asarray(proba, dtype=np.float64).reshape(-1), 1e-15, 1 - 1e-15)
    labels = (p >= THRESHOLD).astype(np.int64)
    # AUC is undefined when the holdout holds one class only.
    auc = float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return {
        "auc": auc,
        "logloss": float(skm.log_loss(y, p, labels=[0, 1])),
        "accuracy": float(skm.accuracy_score(y, labels)),
        "precision": float(skm.precision_score(y, labels, zero_division=0)),
        "recall": float(skm.recall_score(y, labels, zero_division=0)),
        "f1": float(skm.f1_score(y, labels, zero_division=0)),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    return {
        "rmse": float(math.sqrt(skm.mean_squared_error(y, p))),
        "mae": float(skm.mean_absolute_error(y, p)),
        "r2": float(skm.r2_score(y, p)) if len(y) > 1 else math.nan,
    }


def evaluate(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of `task` ("classification" or "regression") for predictions `y_pred`."""
    if task == "classification":
        return classification_metrics(y_true, y_pred)
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    raise ValueError(f"unknown task {task!r}")
