"""The metrics a deployment gate may use, per task, and whether larger is better.

Apart from include/gate.py (which needs numpy) so that checking a spec at DAG-parse time does
not import numpy.
"""

from __future__ import annotations

METRICS: dict[str, dict[str, bool]] = {
    "classification": {"auc": True, "accuracy": True, "precision": True, "recall": True, "f1": True,
                       "logloss": False},
    "regression": {"r2": True, "rmse": False, "mae": False},
}
