"""Deterministic holdout split by a stable hash of the entity key.

The same key value(s) always land on the same side, on every day and in every process:
the hash is SHA-256 of the values' text (never Python's salted `hash()`). Multi-column keys
join their values with the ASCII unit separator "\\x1f". Values are hashed as `str(value)`,
so a key column must keep its type across days (an integer id read back as float one day
would hash "7.0" instead of "7").
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

SEPARATOR = "\x1f"
_SCALE = float(2**64)


def _key_text(keys: pd.Series | pd.DataFrame) -> list[str]:
    if isinstance(keys, pd.Series):
        return [str(v) for v in keys.tolist()]
    if keys.shape[1] == 0:
        raise ValueError("holdout_mask needs at least one key column")
    columns = [keys[c].tolist() for c in keys.columns]
    return [SEPARATOR.join(str(v) for v in row) for row in zip(*columns, strict=True)]


def key_unit_interval(keys: pd.Series | pd.DataFrame) -> np.ndarray:
    """A stable number in [0, 1) per row, from the first 8 bytes of the SHA-256 of the key text."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, text in enumerate(_key_text(keys)):
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        out[i] = int.from_bytes(digest[:8], "big") / _SCALE
    return out


def holdout_mask(keys: pd.Series | pd.DataFrame, fraction: float = 0.2) -> np.ndarray:
    """Boolean array, True where the row's key belongs to the holdout (about `fraction` of keys)."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"holdout fraction must be within [0, 1], got {fraction!r}")
    return key_unit_interval(keys) < float(fraction)
