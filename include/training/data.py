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


def target_vector(frame: pd.DataFrame, target: str, task: str) -> np.ndarray:
    """The target as float32; for classification it must hold only 0/1 (or booleans)."""
    column = frame[target]
    try:
        y = column.to_numpy(dtype=np.float32, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"target column {target!r} (dtype {column.dtype}) is not numeric") from exc
    if np.isnan(y).any():
        raise TrainingError(f"target column {target!r} has {int(np.isnan(y).sum())} missing values")
    if task == "classification":
        values = set(np.unique(y).tolist())
        if not values <= {0.0, 1.0}:
            shown = sorted(values)[:10]
            raise TrainingError(f"classification target {target!r} must be 0/1 or bool, found values {shown}")
    return y
