"""The deployment gate: may a challenger replace the champion? Pure logic, no I/O.

The gate sees the holdout's true labels and both models' predictions on the same rows. It
reports the sample size, each model's metric, and bootstrap confidence intervals (paired: each
resample draws rows once and scores both models on them) for the challenger's metric and for
its gain over the champion.

The NaN rule: a metric that cannot be computed (one class in the holdout, no rows, non-finite
predictions) never promotes. The champion stays and the decision says why; `force_deploy`
cannot override it. Every number a `Decision` reports is finite or None, so it can go to XCom
and to MLflow tags as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from include.gate_metrics import METRICS

RESAMPLES = 500
SEED = 20261125  # fixed, so the same holdout and predictions always give the same intervals
CHUNK = 25  # resamples scored per matrix product: bounds memory at CHUNK x rows weights



def verdict_text(promote: bool, forced: bool) -> str:
    """The gate's verdict in words, the same for one metric and for several."""
    if not promote:
        return "keep the champion"
    return "promote (forced)" if forced else "promote"

@dataclass(frozen=True)
class Gate:
    metric: str
    task: str
    min: float | None = None
    max: float | None = None
    beat_champion: bool = True
    # The gain over the champion this metric needs; negative: how much worse it may be (a margin).
    min_delta: float = 0.0
    relative: bool = False  # min_delta is a fraction of the champion's value, not an absolute amount
    min_holdout_rows: int = 50
    confidence: float = 0.95
    require_significant: bool = False
    resamples: int = RESAMPLES
    seed: int = SEED

    def __post_init__(self) -> None:
        if self.task not in METRICS:
            raise ValueError(f"unknown task {self.task!r}; tasks are {sorted(METRICS)}")
        if self.metric not in METRICS[self.task]:
            raise ValueError(f"metric {self.metric!r} does not fit task {self.task!r}; use one of "
                             f"{sorted(METRICS[self.task])}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be within [0.5, 1), got {self.confidence!r}")
        if self.resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {self.resamples!r}")

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.task][self.metric]


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the holdout and its bootstrap interval; None where not computable."""

    value: float | None
    low: float | None = None
    high: float | None = None
    why_missing: str | None = None

    @property
    def computable(self) -> bool:
        return self.value is not None

    def text(self, signed: bool = False) -> str:
        if self.value is None:
            return f"not computable ({self.why_missing})" if self.why_missing else "not computable"
        fmt = "{:+.4f}" if signed else "{:.4f}"
        if self.low is None or self.high is None:
            return fmt.format(self.value)
        return f"{fmt.format(self.value)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "low": self.low, "high": self.high}
        if self.why_missing:
            out["why_missing"] = self.why_missing
        return out


@dataclass(frozen=True)
class Decision:
    promote: bool
    metric: str
    n: int
    confidence: float
    challenger: Estimate
    champion: Estimate | None = None
    gain: Estimate | None = None
    forced: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        return verdict_text(self.promote, self.forced)

    def summary(self) -> str:
        """One line: the verdict, n, the metrics with their intervals, and why."""
        level = f"{self.confidence:.0%} CI"
        parts = [f"{self.verdict}: n={self.n}", f"challenger {self.metric}={self.challenger.text()}"]
        if self.champion is not None:
            parts.append(f"champion {self.metric}={self.champion.text()}")
        if self.gain is not None:
            parts.append(f"gain={self.gain.text(signed=True)}")
        return f"{', '.join(parts)} ({level}); " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (no NaN or infinity): what goes to XCom and into the `skylift.gate` tag."""
        return {
            "promoted": self.promote, "verdict": self.verdict, "forced": self.forced, "metric": self.metric,
            "n": self.n, "confidence": self.confidence, "challenger": self.challenger.to_dict(),
            "champion": None if self.champion is None else self.champion.to_dict(),
            "gain": None if self.gain is None else self.gain.to_dict(), "reasons": list(self.reasons),
        }


# ---- statistics -------------------------------------------------------------------------------
def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _why_not_computable(task: str, metric: str, y: np.ndarray, pred: np.ndarray | None) -> str | None:
    if len(y) == 0:
        return "the holdout has no rows"
    if pred is not None:
        bad = int((~np.isfinite(pred)).sum())
        if bad:
            return f"{bad} of {len(pred)} predictions are NaN or infinite"
    if task == "classification" and metric == "auc" and len(np.unique(y)) < 2:
        return f"every one of the {len(y)} holdout labels is {int(y[0])}: AUC needs both classes"
    return None


def _resample_weights(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """k bootstrap resamples of n rows as row counts (shape (k, n)); each row sums to n."""
    draws = rng.integers(0, n, size=(k, n), dtype=np.int64)
    draws += (np.arange(k, dtype=np.int64) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    kept = samples[np.isfinite(samples)]
    if len(kept) < max(10, len(samples) // 2):  # most resamples undefined: no honest interval
        return None, None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(kept, [tail, 1.0 - tail])
    return float(low), float(high)


def measure(gate: Gate, y_true: Any, challenger: Any, champion: Any | None = None
            ) -> tuple[int, Estimate, Estimate | None, Estimate | None]:
    """n, the challenger's and champion's metric, and the gain (positive = challenger better)."""
    from include.training.metrics import weighted

    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    preds = [np.asarray(challenger, dtype=np.float64).reshape(-1)]
    if champion is not None:
        preds.append(np.asarray(champion, dtype=np.float64).reshape(-1))
    for pred in preds:
        if len(pred) != len(y):
            raise ValueError(f"{len(pred)} predictions for {len(y)} holdout labels: both must score the same rows")
    if len(y) and not np.isfinite(y).all():
        return len(y), Estimate(None, why_missing="the holdout labels hold NaN or infinite values"), None, None
    whys = [_why_not_computable(gate.task, gate.metric, y, pred) for pred in preds]
    ones = np.ones((1, len(y)))
    points = [None if why else float(weighted(gate.task, gate.metric, y, pred, ones)[0])
              for why, pred in zip(whys, preds, strict=True)]
    points = [None if p is None else _finite_or_none(p) for p in points]
    whys = [why or (None if p is not None else f"{gate.metric} is undefined on these rows")
            for why, p in zip(whys, points, strict=True)]
    samples = _bootstrap(gate, y, [pred for pred, p in zip(preds, points, strict=True) if p is not None]) \
        if any(p is not None for p in points) else []
    sample_of = iter(samples)
    estimates = []
    for point, why in zip(points, whys, strict=True):
        if point is None:
            estimates.append(Estimate(None, why_missing=why))
        else:
            estimates.append(Estimate(point, *_interval(next(sample_of), gate.confidence)))
    challenger_est = estimates[0]
    champion_est = estimates[1] if champion is not None else None
    gain = None
    if champion_est is not None and challenger_est.computable and champion_est.computable:
        sign = 1.0 if gate.greater_is_better else -1.0
        diffs = sign * (samples[0] - samples[1])
        gain = Estimate(sign * (challenger_est.value - champion_est.value), *_interval(diffs, gate.confidence))
    return len(y), challenger_est, champion_est, gain


def _bootstrap(gate: Gate, y: np.ndarray, preds: list[np.ndarray]) -> list[np.ndarray]:
    """The metric of each prediction vector under the same `gate.resamples` resamples of rows."""
    from include.training.metrics import weighted_metric

    rng = np.random.default_rng(gate.seed)
    metrics = [weighted_metric(gate.task, gate.metric, y, pred) for pred in preds]
    out: list[list[np.ndarray]] = [[] for _ in preds]
    for start in range(0, gate.resamples, CHUNK):
        weights = _resample_weights(rng, min(CHUNK, gate.resamples - start), len(y))
        for i, metric in enumerate(metrics):
            out[i].append(metric(weights))
    return [np.concatenate(parts) for parts in out]


# ---- the rules --------------------------------------------------------------------------------
def decide(gate: Gate, y_true: Any, challenger: Any, champion: Any | None = None, force: bool = False) -> Decision:
    """Judge the challenger's predictions (and the champion's, on the same rows) against the gate."""
    n, challenger_est, champion_est, gain = measure(gate, y_true, challenger, champion if gate.beat_champion else None)
    return judge(gate, n, challenger_est, champion_est, gain, force=force)


def judge(gate: Gate, n: int, challenger: Estimate, champion: Estimate | None = None,
          gain: Estimate | None = None, force: bool = False) -> Decision:
    """The rules, on measured estimates. `champion` None means there is no champion (or no comparison)."""
    made = dict(metric=gate.metric, n=n, confidence=gate.confidence, challenger=challenger, champion=champion,
                gain=gain)
    if not challenger.computable:
        reasons = [f"the challenger's {gate.metric} cannot be computed on the holdout ({challenger.why_missing}), "
                   "so it cannot be shown to clear the gate"]
        if force:
            reasons.append("force_deploy was set but cannot promote a model whose metric is not computable")
        return Decision(False, reasons=tuple(reasons), **made)
    failures = _threshold_failures(gate, n, challenger) + _comparison_failures(gate, challenger, champion, gain)
    if failures and force:
        return Decision(True, forced=True, reasons=(*failures, "promoted anyway: force_deploy was set"), **made)
    if failures:
        return Decision(False, reasons=tuple(failures), **made)
    if champion is None:
        return Decision(True, reasons=("there is no other champion to compare with",) if gate.beat_champion else
                        ("beat_champion is off: the thresholds alone decide",), **made)
    return Decision(True, reasons=(f"beats the champion by {gain.text(signed=True)}",), **made)


def _threshold_failures(gate: Gate, n: int, challenger: Estimate) -> list[str]:
    failures = []
    if n < gate.min_holdout_rows:
        failures.append(f"the holdout has {n} rows, fewer than min_holdout_rows={gate.min_holdout_rows}: too few "
                        "to judge (widen the holdout, or lower deploy.gate.min_holdout_rows)")
    value = challenger.value
    if gate.min is not None and value < gate.min:
        failures.append(f"{gate.metric}={value:.4f} is below the minimum {gate.min}")
    if gate.max is not None and value > gate.max:
        failures.append(f"{gate.metric}={value:.4f} is above the maximum {gate.max}")
    return failures


def _comparison_failures(gate: Gate, challenger: Estimate, champion: Estimate | None,
                         gain: Estimate | None) -> list[str]:
    if champion is None or not gate.beat_champion:
        return []
    if not champion.computable:
        return [f"the champion's {gate.metric} cannot be computed on the holdout ({champion.why_missing}), so the "
                "challenger cannot be shown to beat it: trigger with force_deploy=true to replace it"]
    comparison = f"{gate.metric}={challenger.value:.4f} vs champion {champion.value:.4f}"
    needed = gate.min_delta * abs(champion.value) if gate.relative else gate.min_delta
    if gain.value < needed:
        return [f"{comparison}: {_shortfall(gate, needed)}"]
    if gate.require_significant and (gain.low is None or gain.low <= needed):
        bound = "has no interval" if gain.low is None else f"lower bound {gain.low:+.4f}"
        return [f"{comparison}: the gain {gain.text(signed=True)} is not significant at {gate.confidence:.0%} "
                f"({bound} is not above " + (f"min_delta {gate.min_delta})" if needed == gate.min_delta else
                                             f"the required {needed:+.4f})")]
    return []


def _shortfall(gate: Gate, needed: float) -> str:
    of = f" ({abs(gate.min_delta):.2%} of the champion's value)" if gate.relative else ""
    if needed < 0:
        return f"worse than the champion by more than the margin {-needed:.4f}{of}"
    return "does not beat it" + (f" by {gate.min_delta}{of}" if needed else "")


# ---- several metrics at once --------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """The gate on every metric of `deploy.gate`: promote only if each metric's rule passes."""

    promote: bool
    n: int
    confidence: float
    decisions: tuple[Decision, ...]
    forced: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        return verdict_text(self.promote, self.forced)

    def summary(self) -> str:
        """One line: the verdict, n, each metric's numbers, and why."""
        level = f"{self.confidence:.0%} CI"
        metrics = []
        for d in self.decisions:
            text = f"{d.metric}: challenger {d.challenger.text()}"
            if d.champion is not None:
                text += f", champion {d.champion.text()}"
            if d.gain is not None:
                text += f", gain {d.gain.text(signed=True)}"
            metrics.append(text + (" ok" if d.promote else " FAILS"))
        return f"{self.verdict}: n={self.n}; " + "; ".join(metrics) + f" ({level}); " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; the first metric's fields stay at the top level, as the single-metric gate wrote them."""
        first = self.decisions[0].to_dict()
        return {**first, "promoted": self.promote, "verdict": self.verdict, "forced": self.forced, "n": self.n,
                "reasons": list(self.reasons), "metrics": [d.to_dict() | {"passed": d.promote}
                                                           for d in self.decisions]}


def gates_from(task: str, spec: dict[str, Any]) -> tuple[Gate, ...]:
    """The gates of a `deploy.gate` mapping (GateSpec.model_dump()): its `metrics:` list, or the
    single-metric shorthand. A `must_beat` margin is how much worse than the champion a metric may be."""
    shared = {k: spec[k] for k in ("beat_champion", "min_holdout_rows", "confidence", "require_significant")
              if k in spec}
    rules = spec.get("metrics")
    if not rules:
        single = {k: v for k, v in spec.items() if k != "metrics"}
        return (Gate(task=task, **single),)
    gates = []
    for rule in rules:
        must_beat = rule.get("must_beat")
        compare = must_beat is not None and shared.get("beat_champion", True)
        gates.append(Gate(metric=rule["metric"], task=task, min=rule.get("min"), max=rule.get("max"),
                          **{**shared, "beat_champion": compare},
                          min_delta=-float(must_beat["margin"]) if compare else 0.0,
                          relative=bool(must_beat.get("relative")) if compare else False))
    return tuple(gates)


def decide_all(gates: tuple[Gate, ...] | list[Gate], y_true: Any, challenger: Any, champion: Any | None = None,
               force: bool = False) -> Verdict:
    """Each gate on the same rows; promote only if all pass. `force` overrides failed rules, never a
    metric that cannot be computed (the NaN rule)."""
    if not gates:
        raise ValueError("a gate needs at least one metric")
    decisions = tuple(decide(g, y_true, challenger, champion, force=False) for g in gates)
    n, confidence = decisions[0].n, gates[0].confidence
    failed = [f"{d.metric}: {r}" for d in decisions if not d.promote for r in d.reasons]
    if not failed:
        passed = [f"{d.metric}: {d.reasons[0]}" for d in decisions if d.reasons]
        return Verdict(True, n, confidence, decisions, reasons=tuple(passed))
    uncomputable = [d.metric for d in decisions if not d.challenger.computable]
    if force and uncomputable:
        failed.append(f"force_deploy was set but cannot promote a model whose {', '.join(uncomputable)} is not "
                      "computable")
    elif force:
        return Verdict(True, n, confidence, decisions, forced=True,
                       reasons=(*failed, "promoted anyway: force_deploy was set"))
    return Verdict(False, n, confidence, decisions, reasons=tuple(failed))
