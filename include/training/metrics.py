"""Holdout metrics. Classification scores are probabilities; labels use a 0.5 threshold.

`evaluate` gives each metric once (NaN where it cannot be computed, with a logged warning);
`weighted` gives one metric under many row-weight vectors at once, which is what the deployment
gate's bootstrap needs (a resample of rows is a vector of row counts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

log = logging.getLogger(__name__)

CLASSIFICATION_METRICS = ("auc", "logloss", "accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("rmse", "mae", "r2")
THRESHOLD = 0.5


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.clip(np.asarray(proba, dtype=np.float64).reshape(-1), 1e-15, 1 - 1e-15)
    labels = (p >= THRESHOLD).astype(np.int64)
    # AUC is undefined when the holdout holds one class only.
    auc = float(skm.roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    if math.isnan(auc):
        log.warning("auc cannot be computed: the %d evaluation rows hold one class only (%s); it is recorded "
                    "as not computable", len(y), "no rows" if not len(y) else f"every label is {int(y[0])}")
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


def weighted(task: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`metric` once per row of `weights` (shape (k, n): a non-negative weight per evaluation row).

    With all weights 1 this equals `evaluate` (r2 of a constant target is NaN here, not 0 or 1).
    A value is NaN where the metric is undefined under those weights (AUC with one class left);
    precision, recall and f1 with an empty denominator are 0, as in `evaluate`. `y_pred` must be finite.
    """
    return weighted_metric(task, metric, y_true, y_pred)(weights)


def weighted_metric(task: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray
                    ) -> Callable[[np.ndarray], np.ndarray]:
    """`weighted` with the per-row work done once: call the result with each block of weights."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if task == "classification" and metric == "auc":
        return _auc_under_weights(y, p)
    if task == "classification":
        return _classification_under_weights(metric, y, np.clip(p, 1e-15, 1 - 1e-15))
    if task == "regression":
        return _regression_under_weights(metric, y, p)
    raise ValueError(f"unknown task {task!r}")


def _ratio(top: np.ndarray, bottom: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(top.shape, empty, dtype=np.float64)
    np.divide(top, bottom, out=out, where=bottom > 0)
    return out


def _auc_under_weights(y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Mann-Whitney form: the weighted share of (positive, negative) pairs ranked right, ties half.

    Rows are binned by their rank among the distinct scores once; each block of weights is then
    two weighted bincounts and a cumulative sum, with no per-block sorting.
    """
    distinct, rank = np.unique(p, return_inverse=True)
    groups = len(distinct)
    is_positive = y == 1.0
    offsets: dict[int, np.ndarray] = {}

    def auc(weights: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(weights)
        k = w.shape[0]
        if k not in offsets:
            offsets[k] = (rank[None, :] + (np.arange(k) * groups)[:, None]).ravel()
        bins = offsets[k]
        total = np.bincount(bins, weights=w.ravel(), minlength=k * groups).reshape(k, groups)
        positives = np.bincount(bins, weights=(w * is_positive).ravel(), minlength=k * groups).reshape(k, groups)
        negatives = total - positives
        below = np.cumsum(negatives, axis=1) - negatives  # negative weight scored strictly lower
        pairs = positives.sum(axis=1) * negatives.sum(axis=1)
        return _ratio((positives * (below + 0.5 * negatives)).sum(axis=1), pairs, math.nan)

    return auc


def _classification_under_weights(metric: str, y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    predicted = (p >= THRESHOLD).astype(np.float64)
    per_row = {
        "logloss": -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)),
        "accuracy": (predicted == y).astype(np.float64),
    }
    if metric not in (*per_row, "precision", "recall", "f1"):
        raise ValueError(f"unknown classification metric {metric!r}; metrics are {list(CLASSIFICATION_METRICS)}")

    def value(weights: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(weights).astype(np.float64, copy=False)
        if metric in per_row:
            return _ratio(w @ per_row[metric], w.sum(axis=1), math.nan)
        true_pos, pred_pos, actual_pos = w @ (predicted * y), w @ predicted, w @ y
        if metric == "precision":
            return _ratio(true_pos, pred_pos, 0.0)
        if metric == "recall":
            return _ratio(true_pos, actual_pos, 0.0)
        return _ratio(2.0 * true_pos, pred_pos + actual_pos, 0.0)

    return value


def _regression_under_weights(metric: str, y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    if metric not in REGRESSION_METRICS:
        raise ValueError(f"unknown regression metric {metric!r}; metrics are {list(REGRESSION_METRICS)}")
    squared, absolute = (p - y) ** 2, np.abs(p - y)

    def value(weights: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(weights).astype(np.float64, copy=False)
        total = w.sum(axis=1)
        if metric == "rmse":
            return np.sqrt(_ratio(w @ squared, total, math.nan))
        if metric == "mae":
            return _ratio(w @ absolute, total, math.nan)
        mean = _ratio(w @ y, total, math.nan)
        spread = w @ y**2 - total * mean**2  # weighted total sum of squares; ~0 for a constant target
        spread = np.where(spread > 1e-12 * np.maximum(w @ y**2, 1.0), spread, 0.0)
        return 1.0 - _ratio(w @ squared, spread, math.nan)

    return value
