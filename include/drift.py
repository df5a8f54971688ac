"""Distribution drift between a scored day and the data its model was trained on. No Airflow.

Training records a compact *reference* of every feature (`build_reference`): the training rows'
decile edges with the share of rows in each bin (plus a bin for missing values), and a seeded
sample of up to `SAMPLE_SIZE` values. Scoring then compares the day's rows with it, per feature:

- PSI (population stability index) over the reference's bins: sum((a - e) * ln(a / e)), with
  empty bins counted as `EPSILON`; a missing-value bin catches a column that goes empty;
- the two-sample Kolmogorov-Smirnov test (scipy) between the reference sample and the day's values.

A feature drifts when its PSI reaches the threshold and, if a KS p-value threshold is set, the
KS test also rejects "same distribution" below it: PSI says the shift is large, KS that it is not
noise. The day's predictions are compared the same way with the previous days' predictions of
the same model version (`compare_predictions`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

REFERENCE_FORMAT = "skylift.drift_reference/1"
REFERENCE_ARTIFACT = "drift_reference.json"  # beside the model in the training run
BINS = 10  # deciles of the reference
SAMPLE_SIZE = 1000
EPSILON = 1e-4  # the share an empty bin counts as, so PSI stays finite


@dataclass(frozen=True)
class Thresholds:
    """When a distribution has drifted, and when a day has too few rows to tell (the spec's
    `monitor.drift` sets them; operators/spec/models.py DriftSpec holds the defaults)."""

    psi: float
    ks_pvalue: float | None  # None: PSI alone decides
    min_rows: int

    def __post_init__(self) -> None:
        if not self.psi > 0:
            raise ValueError(f"the PSI threshold must be positive, got {self.psi}")
        if self.ks_pvalue is not None and not 0 < self.ks_pvalue < 1:
            raise ValueError(f"the KS p-value threshold must lie in (0, 1), got {self.ks_pvalue}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be at least 1, got {self.min_rows}")


@dataclass(frozen=True)
class FeatureReference:
    """One column of the training data: bin edges, the share of rows per bin, and a sample."""

    name: str
    edges: tuple[float, ...]  # inner edges: bins (-inf, e0], (e0, e1], ..., (e_last, inf)
    shares: tuple[float, ...]  # len(edges) + 2 values: one per bin, then the missing-value share
    sample: tuple[float, ...]  # finite values for the KS test
    rows: int

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 2:
            raise ValueError(f"reference of {self.name!r}: {len(self.edges)} edges need {len(self.edges) + 2} "
                             f"shares, got {len(self.shares)}")


@dataclass(frozen=True)
class Reference:
    """Every feature's reference, as recorded when the model was trained."""

    features: tuple[FeatureReference, ...]
    rows: int

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {"format": REFERENCE_FORMAT, "rows": self.rows,
                "features": [{**asdict(f), "edges": list(f.edges), "shares": list(f.shares),
                              "sample": list(f.sample)} for f in self.features]}

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Reference:
        if body.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"not a {REFERENCE_FORMAT} document (format {body.get('format')!r})")
        features = tuple(FeatureReference(name=str(f["name"]), edges=tuple(map(float, f["edges"])),
                                           shares=tuple(map(float, f["shares"])),
                                           sample=tuple(map(float, f["sample"])), rows=int(f["rows"]))
                         for f in body["features"])
        return cls(features=features, rows=int(body["rows"]))


def as_float(values: Any) -> np.ndarray:
    """A column as float64, missing values (None, pandas NA) as NaN."""
    if hasattr(values, "to_numpy"):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def reference_of(name: str, values: Any, seed: int = 0) -> FeatureReference:
    """The reference of one column: its decile edges (duplicates merged), shares and sample."""
    column = as_float(values)
    finite = column[np.isfinite(column)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])) if finite.size else np.array([])
    shares = bin_shares(column, edges)
    rng = np.random.default_rng(seed)
    sample = finite if finite.size <= SAMPLE_SIZE else rng.choice(finite, SAMPLE_SIZE, replace=False)
    return FeatureReference(name=name, edges=tuple(float(e) for e in edges), shares=tuple(shares.tolist()),
                            sample=tuple(float(f"{v:.6g}") for v in np.sort(sample)), rows=int(column.size))


def build_reference(columns: Sequence[str], matrix: Any) -> Reference:
    """The reference of a training matrix whose columns are `columns` (rows x features)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(columns):
        raise ValueError(f"a {matrix.shape} matrix does not match {len(columns)} feature columns")
    return Reference(features=tuple(reference_of(name, matrix[:, i], seed=i) for i, name in enumerate(columns)),
                     rows=int(matrix.shape[0]))


def bin_shares(values: Any, edges: Sequence[float]) -> np.ndarray:
    """The share of `values` in each bin of `edges`, then the share of missing (non-finite) values."""
    column = as_float(values)
    finite = np.isfinite(column)
    counts = np.bincount(np.digitize(column[finite], np.asarray(edges, dtype=np.float64), right=True),
                         minlength=len(edges) + 1).astype(np.float64)
    counts = np.append(counts, float((~finite).sum()))
    return counts / counts.sum() if counts.sum() else counts


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of `actual` shares against `expected` ones (same bins)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins on both sides, got {e.shape} and {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def ks_test(reference: Sequence[float], values: Any) -> tuple[float, float] | None:
    """(statistic, p-value) of the two-sample KS test on the finite values; None if a side has none."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference, dtype=np.float64)
    column = as_float(values)
    now = column[np.isfinite(column)]
    if not ref.size or not now.size:
        return None
    result = ks_2samp(ref, now)
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class Comparison:
    """How one distribution (a feature, or the predictions) compares with its reference."""

    name: str
    psi: float
    ks_statistic: float | None
    ks_pvalue: float | None
    rows: int
    reference_rows: int
    missing_share: float
    reference_missing_share: float
    drifted: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compare(ref: FeatureReference, values: Any, thresholds: Thresholds) -> Comparison:
    """PSI and KS of `values` against `ref`, and whether they pass the thresholds."""
    column = as_float(values)
    shares = bin_shares(column, ref.edges)
    score = psi(ref.shares, shares)
    ks = ks_test(ref.sample, column)
    statistic, pvalue = ks if ks is not None else (None, None)
    drifted, why = _verdict(score, pvalue, thresholds)
    return Comparison(name=ref.name, psi=score, ks_statistic=statistic, ks_pvalue=pvalue, rows=int(column.size),
                      reference_rows=ref.rows, missing_share=float(shares[-1]) if shares.size else 0.0,
                      reference_missing_share=float(ref.shares[-1]), drifted=drifted, why=why)


def _verdict(score: float, pvalue: float | None, thresholds: Thresholds) -> tuple[bool, str]:
    if score < thresholds.psi:
        return False, f"PSI {score:.3f} < {thresholds.psi}"
    if thresholds.ks_pvalue is None:
        return True, f"PSI {score:.3f} >= {thresholds.psi}"
    if pvalue is None:  # e.g. a column that became entirely empty: PSI alone speaks
        return True, f"PSI {score:.3f} >= {thresholds.psi}; no finite values for KS"
    if pvalue < thresholds.ks_pvalue:
        return True, f"PSI {score:.3f} >= {thresholds.psi} and KS p {pvalue:.2g} < {thresholds.ks_pvalue}"
    return False, f"PSI {score:.3f} >= {thresholds.psi} but KS p {pvalue:.2g} >= {thresholds.ks_pvalue}"


@dataclass(frozen=True)
class DriftResult:
    """A day's drift check: each feature, the predictions, and the verdict."""

    ds: str
    rows: int
    thresholds: Thresholds
    features: tuple[Comparison, ...] = ()
    predictions: Comparison | None = None
    prediction_baseline: tuple[str, ...] = ()  # the earlier days the predictions were compared with
    missing_columns: tuple[str, ...] = ()  # reference columns the day's rows lack
    min_drifted_features: int = 1
    predictions_flag: bool = False  # whether prediction drift alone flags the day
    too_few_rows: bool = False

    @property
    def drifted_features(self) -> list[str]:
        return [*self.missing_columns, *(c.name for c in self.features if c.drifted)]

    @property
    def prediction_drifted(self) -> bool:
        return self.predictions is not None and self.predictions.drifted

    @property
    def drifted(self) -> bool:
        if self.too_few_rows:
            return False
        return (len(self.drifted_features) >= self.min_drifted_features
                or (self.predictions_flag and self.prediction_drifted))

    @property
    def status(self) -> str:
        return "too_few_rows" if self.too_few_rows else "drift" if self.drifted else "no_drift"

    def summary(self) -> str:
        if self.too_few_rows:
            return f"ds={self.ds}: {self.rows} rows, fewer than min_rows={self.thresholds.min_rows}: no verdict"
        drifted = self.drifted_features
        text = (f"ds={self.ds}: {len(drifted)} of {len(self.features) + len(self.missing_columns)} features drifted"
                + (f" ({', '.join(drifted)})" if drifted else ""))
        if self.predictions is not None:
            text += f"; predictions {'drifted' if self.prediction_drifted else 'stable'} ({self.predictions.why})"
        return text + f"; verdict: {'DRIFT' if self.drifted else 'no drift'}"

    def to_dict(self) -> dict[str, Any]:
        return {"ds": self.ds, "rows": self.rows, "status": self.status, "drifted": self.drifted,
                "drifted_features": self.drifted_features, "prediction_drifted": self.prediction_drifted,
                "summary": self.summary(), "thresholds": asdict(self.thresholds),
                "min_drifted_features": self.min_drifted_features, "predictions_flag": self.predictions_flag,
                "missing_columns": list(self.missing_columns),
                "features": [c.to_dict() for c in self.features],
                "predictions": self.predictions.to_dict() if self.predictions else None,
                "prediction_baseline": list(self.prediction_baseline)}


@dataclass(frozen=True)
class DriftInputs:
    """What one check compares: the day's feature columns and predictions, and the baselines."""

    ds: str
    columns: Mapping[str, Any]  # feature name -> the day's values
    rows: int
    predictions: Any | None = None
    baseline_predictions: Any | None = None  # the earlier days' predictions, concatenated
    baseline_days: tuple[str, ...] = field(default_factory=tuple)


def check(reference: Reference, inputs: DriftInputs, thresholds: Thresholds, *, min_drifted_features: int = 1,
          predictions_flag: bool = False) -> DriftResult:
    """Compare a day with the reference (features) and with the earlier days (predictions)."""
    common = {"ds": inputs.ds, "rows": inputs.rows, "thresholds": thresholds,
              "min_drifted_features": min_drifted_features, "predictions_flag": predictions_flag}
    if inputs.rows < thresholds.min_rows:
        return DriftResult(**common, too_few_rows=True)
    missing = tuple(f.name for f in reference.features if f.name not in inputs.columns)
    features = tuple(compare(f, inputs.columns[f.name], thresholds) for f in reference.features
                     if f.name in inputs.columns)
    predictions = None
    if inputs.predictions is not None and inputs.baseline_predictions is not None:
        predictions = compare_predictions(inputs.baseline_predictions, inputs.predictions, thresholds)
    return DriftResult(**common, features=features, missing_columns=missing, predictions=predictions,
                       prediction_baseline=tuple(inputs.baseline_days))


def compare_predictions(baseline: Any, today: Any, thresholds: Thresholds) -> Comparison | None:
    """Today's predictions against the earlier days'; None when the baseline has too few rows."""
    values = as_float(baseline)
    if values.size < thresholds.min_rows:
        return None
    return compare(reference_of("prediction", values), today, thresholds)
