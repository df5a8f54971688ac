"""The deployment gate's decisions: the rules on measured estimates, and the statistics behind them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from include.gate import Decision, Estimate, Gate, decide, decide_all, gates_from, judge

AUC = Gate(metric="auc", task="classification", min=0.7)
RMSE = Gate(metric="rmse", task="regression", max=5.0)
N = 1000


def _judge(gate: Gate, challenger: float, champion: float | None, force: bool = False) -> Decision:
    """The rules on point estimates alone (no intervals), as a spec's thresholds read them."""
    gain = None
    if champion is not None:
        gain = Estimate(challenger - champion if gate.greater_is_better else champion - challenger)
    return judge(gate, N, Estimate(challenger), None if champion is None else Estimate(champion), gain, force=force)


@pytest.mark.parametrize("gate,challenger,champion,force,promote,reason", [
    (AUC, 0.80, None, False, True, "no other champion to compare with"),
    (AUC, 0.65, None, False, False, "below the minimum 0.7"),
    (AUC, 0.80, 0.82, False, False, "does not beat it"),
    (AUC, 0.82, 0.80, False, True, "beats the champion by +0.0200"),
    (AUC, 0.80, 0.80, False, True, "beats the champion"),  # a tie is not a regression
    (AUC, 0.65, 0.90, True, True, "force_deploy"),
    (RMSE, 3.0, 4.0, False, True, "beats the champion by +1.0000"),  # lower is better
    (RMSE, 4.5, 4.0, False, False, "does not beat it"),
    (RMSE, 6.0, None, False, False, "above the maximum 5.0"),
])
def test_decisions(gate, challenger, champion, force, promote, reason):
    decision = _judge(gate, challenger, champion, force=force)
    assert decision.promote is promote
    assert reason in decision.summary()


def test_min_delta_must_be_exceeded():
    gate = Gate(metric="auc", task="classification", min_delta=0.01)
    assert not _judge(gate, 0.805, 0.80).promote
    assert _judge(gate, 0.811, 0.80).promote


def test_beat_champion_can_be_turned_off():
    gate = Gate(metric="auc", task="classification", min=0.7, beat_champion=False)
    assert _judge(gate, 0.75, 0.95).promote


# ---- on labels and predictions ------------------------------------------------------------------
def _scores(n: int, signal: float, seed: int = 0, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float) if labels is None else labels
    noise = rng.normal(0.0, 0.25, n)
    return y, np.clip(0.3 + signal * (y - 0.3) + noise, 0.0, 1.0)


def test_one_class_holdout_keeps_the_champion_even_when_forced():
    y = np.zeros(400)
    _, challenger = _scores(400, 0.3, labels=y)
    _, champion = _scores(400, 0.1, seed=1, labels=y)
    for force in (False, True):
        decision = decide(AUC, y, challenger, champion, force=force)
        assert not decision.promote and not decision.forced
        assert decision.challenger.value is None
        assert "every one of the 400 holdout labels is 0" in decision.summary()
        json.dumps(decision.to_dict(), allow_nan=False)  # no NaN reaches XCom or a tag
    assert "force_deploy was set but cannot promote" in decision.summary()


def test_one_class_holdout_without_a_champion_does_not_promote():
    y = np.ones(300)
    decision = decide(AUC, y, np.full(300, 0.9))
    assert not decision.promote
    assert decision.to_dict()["challenger"] == {"value": None, "low": None, "high": None,
                                                "why_missing": "every one of the 300 holdout labels is 1: AUC needs "
                                                               "both classes"}


def test_non_finite_predictions_are_not_computable():
    y, challenger = _scores(500, 0.4)
    challenger[7] = np.nan
    decision = decide(AUC, y, challenger, force=True)
    assert not decision.promote
    assert "1 of 500 predictions are NaN or infinite" in decision.summary()


def test_a_champion_whose_metric_cannot_be_computed_is_kept_unless_forced():
    y, challenger = _scores(500, 0.4)
    champion = np.full(500, np.nan)
    kept = decide(AUC, y, challenger, champion)
    assert not kept.promote and kept.challenger.value is not None
    assert "champion's auc cannot be computed" in kept.summary() and "force_deploy=true" in kept.summary()
    assert kept.to_dict()["champion"]["value"] is None and kept.gain is None
    forced = decide(AUC, y, challenger, champion, force=True)
    assert forced.promote and forced.forced
    json.dumps(forced.to_dict(), allow_nan=False)


def test_bootstrap_intervals_hold_the_estimate_and_are_reproducible():
    y, challenger = _scores(3000, 0.45)
    _, champion = _scores(3000, 0.35, seed=5, labels=y)
    first = decide(AUC, y, challenger, champion)
    again = decide(AUC, y, challenger, champion)
    assert first.to_dict() == again.to_dict()
    for estimate in (first.challenger, first.champion, first.gain):
        assert estimate.low < estimate.value < estimate.high
    assert first.n == 3000 and first.confidence == 0.95
    assert first.gain.value == pytest.approx(first.challenger.value - first.champion.value)
    # A wider confidence gives a wider interval; another seed gives other (close) bounds.
    wide = decide(Gate(metric="auc", task="classification", confidence=0.99), y, challenger, champion)
    assert wide.gain.low < first.gain.low and wide.gain.high > first.gain.high
    other = decide(Gate(metric="auc", task="classification", seed=1), y, challenger, champion)
    assert other.gain.low != first.gain.low
    assert other.gain.low == pytest.approx(first.gain.low, abs=0.01)
    summary = first.summary()
    assert summary.startswith("promote: n=3000, challenger auc=") and "(95% CI)" in summary


def test_intervals_for_a_lower_is_better_metric_and_for_regression():
    rng = np.random.default_rng(3)
    y = rng.normal(size=2000)
    better, worse = y + rng.normal(0, 0.5, 2000), y + rng.normal(0, 0.8, 2000)
    decision = decide(Gate(metric="rmse", task="regression"), y, better, worse)
    assert decision.promote
    assert decision.gain.value > 0 and decision.gain.low > 0  # gain is oriented: positive is better
    assert decision.challenger.low < decision.challenger.value < decision.challenger.high


def test_too_small_a_holdout_keeps_the_champion():
    y, challenger = _scores(40, 0.6)
    decision = decide(AUC, y, challenger)
    assert not decision.promote
    assert "the holdout has 40 rows, fewer than min_holdout_rows=50" in decision.summary()
    assert decide(Gate(metric="auc", task="classification", min_holdout_rows=30), y, challenger).promote


def test_require_significant_blocks_a_tiny_positive_gain():
    y, champion = _scores(800, 0.4)
    rng = np.random.default_rng(11)
    challenger = np.clip(champion + rng.normal(0, 0.02, 800) + 0.004 * (y - 0.5), 0, 1)
    plain = decide(Gate(metric="auc", task="classification"), y, challenger, champion)
    assert plain.promote and plain.gain.value > 0 and plain.gain.low < 0
    strict = decide(Gate(metric="auc", task="classification", require_significant=True), y, challenger, champion)
    assert not strict.promote
    assert "is not significant at 95%" in strict.summary() and "is not above min_delta 0.0" in strict.summary()


def test_predictions_must_score_the_same_rows():
    with pytest.raises(ValueError, match="9 predictions for 10 holdout labels"):
        decide(AUC, np.zeros(10), np.zeros(9))


def test_gate_refuses_a_metric_of_the_other_task():
    with pytest.raises(ValueError, match="metric 'rmse' does not fit task 'classification'"):
        Gate(metric="rmse", task="classification")


def _two_models(n: int = 600):
    """A challenger that ranks as well as the champion but is badly calibrated (same AUC, worse log loss)."""
    rng = np.random.default_rng(11)
    y = (rng.random(n) < 0.4).astype(int)
    champion = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.12, n), 0.01, 0.99)
    challenger = champion * 0.2 + 0.001  # same order, squashed towards zero
    return y, challenger, champion


def test_several_metrics_one_worse_than_its_margin_blocks():
    y, challenger, champion = _two_models()
    gates = gates_from("classification", {"metrics": [
        {"metric": "auc", "min": 0.7, "must_beat": {"margin": 0.0}},
        {"metric": "logloss", "must_beat": {"margin": 0.05, "relative": True}}], "min_holdout_rows": 50})
    verdict = decide_all(gates, y, challenger, champion)
    assert not verdict.promote and [d.promote for d in verdict.decisions] == [True, False]
    assert verdict.reasons[0].startswith("logloss: logloss=")
    assert "worse than the champion by more than the margin" in verdict.reasons[0] and "(5.00% of" in verdict.reasons[0]
    assert "auc: challenger" in verdict.summary() and "FAILS" in verdict.summary()
    body = verdict.to_dict()
    json.dumps(body, allow_nan=False)
    assert [m["metric"] for m in body["metrics"]] == ["auc", "logloss"] and body["metric"] == "auc"
    forced = decide_all(gates, y, challenger, champion, force=True)
    assert forced.promote and forced.forced and "force_deploy was set" in forced.reasons[-1]
    # a wide enough margin lets it through; dropping the comparison leaves the bounds alone
    wide = gates_from("classification", {"metrics": [{"metric": "logloss", "must_beat": {"margin": 50.0,
                                                                                          "relative": True}}]})
    assert decide_all(wide, y, challenger, champion).promote
    bounds = gates_from("classification", {"metrics": [{"metric": "logloss", "max": 5.0, "must_beat": None}]})
    assert decide_all(bounds, y, challenger, champion).promote


def test_several_metrics_a_metric_that_cannot_be_computed_blocks_even_when_forced():
    y, challenger, champion = _two_models()
    challenger = challenger.copy()
    challenger[3] = np.nan
    gates = gates_from("classification", {"metrics": [{"metric": "auc"}, {"metric": "accuracy"}]})
    verdict = decide_all(gates, y, challenger, champion, force=True)
    assert not verdict.promote
    assert "cannot promote a model whose auc, accuracy is not computable" in verdict.reasons[-1]
