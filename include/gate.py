"""The deployment gate: may a challenger replace the champion? Pure logic, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

# Metrics a gate may use, per task, and whether larger is better.
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"auc": True, "accuracy": True, "precision": True, "recall": True, "f1": True,
                       "logloss": False},
    "regression": {"r2": True, "rmse": False, "mae": False},
}


@dataclass(frozen=True)
class Gate:
    metric: str
    task: str
    min: float | None = None
    max: float | None = None
    beat_champion: bool = True
    min_delta: float = 0.0

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.task][self.metric]


@dataclass
class Decision:
    promote: bool
    challenger: float
    champion: float | None
    reasons: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "promote" if self.promote else "keep the champion"
        return f"{verdict}: " + "; ".join(self.reasons)


def decide(gate: Gate, challenger: float, champion: float | None, force: bool = False) -> Decision:
    """Compare the challenger's holdout metric with the thresholds and with the champion's.

    Beating the champion means improving the metric by at least `min_delta` (a tie passes when
    `min_delta` is 0, so re-running the same training is not a regression).
    """
    failures, notes = [], []
    if gate.min is not None and challenger < gate.min:
        failures.append(f"{gate.metric}={challenger:.4f} is below the minimum {gate.min}")
    if gate.max is not None and challenger > gate.max:
        failures.append(f"{gate.metric}={challenger:.4f} is above the maximum {gate.max}")
    if champion is None:
        notes.append(f"{gate.metric}={challenger:.4f}; there is no champion yet")
    elif gate.beat_champion:
        gain = challenger - champion if gate.greater_is_better else champion - challenger
        comparison = f"{gate.metric}={challenger:.4f} vs champion {champion:.4f}"
        if gain < gate.min_delta:
            failures.append(f"{comparison}: does not beat it" + (f" by {gate.min_delta}" if gate.min_delta else ""))
        else:
            notes.append(comparison)
    if failures and force:
        return Decision(True, challenger, champion, [*failures, "promoted anyway: force_deploy was set"])
    return Decision(not failures, challenger, champion, failures or notes)
