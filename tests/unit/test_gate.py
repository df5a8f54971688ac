"""The deployment gate's decisions."""

from __future__ import annotations

import pytest

from include.gate import Gate, decide

AUC = Gate(metric="auc", task="classification", min=0.7)
RMSE = Gate(metric="rmse", task="regression", max=5.0)


@pytest.mark.parametrize("gate,challenger,champion,force,promote,reason", [
    (AUC, 0.80, None, False, True, "no champion yet"),
    (AUC, 0.65, None, False, False, "below the minimum 0.7"),
    (AUC, 0.80, 0.82, False, False, "does not beat it"),
    (AUC, 0.82, 0.80, False, True, "vs champion 0.8000"),
    (AUC, 0.80, 0.80, False, True, "vs champion"),  # a tie is not a regression
    (AUC, 0.65, 0.90, True, True, "force_deploy"),
    (RMSE, 3.0, 4.0, False, True, "vs champion 4.0000"),  # lower is better
    (RMSE, 4.5, 4.0, False, False, "does not beat it"),
    (RMSE, 6.0, None, False, False, "above the maximum 5.0"),
])
def test_decisions(gate, challenger, champion, force, promote, reason):
    decision = decide(gate, challenger, champion, force=force)
    assert decision.promote is promote
    assert reason in decision.summary()


def test_min_delta_must_be_exceeded():
    gate = Gate(metric="auc", task="classification", min_delta=0.01)
    assert not decide(gate, 0.805, 0.80).promote
    assert decide(gate, 0.811, 0.80).promote


def test_beat_champion_can_be_turned_off():
    gate = Gate(metric="auc", task="classification", min=0.7, beat_champion=False)
    assert decide(gate, 0.75, 0.95).promote
