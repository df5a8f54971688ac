"""Training data from the lake: read partitions, pick feature columns, build the model matrix."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from include.errors import TrainingError
from include.lake import Lake

log = logging.getLogger(__name__)


def load_frame(lake_root: str, dataset: str, dates: list[str], zone: str = "features") -> pd.DataFrame:
    """Concatenate the published partitions of `zone/dataset` for `dates` (no columns added)."""
    if not dates:
        raise TrainingError("no dates to train on")
    lake = Lake(lake_root)
    frames = []
    for ds in dates:
        frame = lake.read_table(zone, dataset, ds).to_pandas()
        log.info("read %s rows x %s columns from %s/%s/ds=%s", len(frame), frame.shape[1], zone, dataset, ds)
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _is_feature_dtype(series: pd.Series) -> bool:
    dtype = series.dtype
    return pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    )


def split_columns(frame: pd.DataFrame, key: list[str], target: str, exclude: list[str]) -> list[str]:
    """Feature columns: every numeric or bool column that is not key, target or excluded, in frame order."""
    columns = list(frame.columns)
    if target not in frame.columns:
        raise TrainingError(f"target column {target!r} is not in the training frame (columns: {columns})")
    missing_keys = [k for k in key if k not in frame.columns]
    if missing_keys:
        raise TrainingError(f"key column(s) {missing_keys} are not in the training frame (columns: {columns})")
    unknown = [c for c in exclude if c not in frame.columns]
    if unknown:
        log.warning("excluded column(s) %s are not in the frame; ignoring", unknown)
    skip = {*key, target, *exclude}
    features, dropped = [], []
    for column in columns:
        if column in skip:
            continue
        (features if _is_feature_dtype(frame[column]) else dropped).append(column)
    if dropped:
        log.warning("ignoring non-numeric column(s): %s", {c: str(frame[c].dtype) for c in dropped})
    if not features:
        raise TrainingError(
            f"no feature columns remain: every column other than key {key}, target {target!r} "
            f"and exclude {exclude} is non-numeric or absent (columns: {columns})"
        )
    return features


def feature_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The model matrix: float32, bools as 0/1, missing values as NaN."""
    return frame[features].to_numpy(dtype=np.float32, na_value=np.nan)


def require_rows(frame: pd.DataFrame, where: str) -> None:
    """Fail when the partitions hold no rows at all."""
    if len(frame) == 0:
        raise TrainingError(f"{where} hold no rows: nothing to train on. Check that the feature job wrote rows for "
                            "these days, or train on other days (train.window_days, or the train_start/train_end "
                            "trigger params)")


def target_vector(frame: pd.DataFrame, target: str, task: str, where: str = "the training frame",
                  key: list[str] | None = None) -> np.ndarray:
    """The target as float32; finite everywhere, and for classification only 0/1 (or booleans)."""
    column = frame[target]
    try:
        y = column.to_numpy(dtype=np.float32, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"target column {target!r} (dtype {column.dtype}) in {where} is not numeric") from exc
    bad = ~np.isfinite(y)
    if bad.any():
        missing, infinite = int(np.isnan(y).sum()), int(np.isinf(y).sum())
        shown = frame.loc[bad, key].head(5).to_dict("records") if key else np.flatnonzero(bad)[:5].tolist()
        raise TrainingError(
            f"target column {target!r} in {where} has {missing} missing (NaN) and {infinite} infinite value(s) "
            f"(first rows: {shown}): a model cannot learn from them. Fix those rows upstream (the feature job or "
            "the validation suite), or train on other days (train_start/train_end)")
    if task == "classification":
        values = set(np.unique(y).tolist())
        if not values <= {0.0, 1.0}:
            shown = sorted(values)[:10]
            raise TrainingError(f"classification target {target!r} in {where} must be 0/1 or bool, found values "
                                f"{shown}")
    return y


def require_both_classes(y: np.ndarray, target: str, where: str) -> None:
    """A classifier needs both outcomes among the rows it fits on."""
    values = np.unique(y)
    if len(values) < 2:
        only = "no rows" if not len(values) else f"only {int(values[0])}"
        raise TrainingError(
            f"classification target {target!r} holds {only} in the {len(y)} training rows of {where}: a classifier "
            "needs both classes. Train on a wider window that has both outcomes (train.window_days, or the "
            "train_start/train_end trigger params), or check how the feature job computes the target")
