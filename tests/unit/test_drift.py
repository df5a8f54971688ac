"""PSI, KS and the drift verdict (include/drift.py), and the report page (include/drift_report.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from include import drift
from include.drift_report import render_html


def training(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"tenure": rng.normal(24, 6, n), "visits": rng.integers(0, 30, n).astype(float),
                         "premium": rng.integers(0, 2, n).astype(float)})


def reference(frame: pd.DataFrame | None = None) -> drift.Reference:
    frame = training() if frame is None else frame
    return drift.build_reference(list(frame.columns), frame.to_numpy())


def limits(psi: float = 0.25, ks_pvalue: float | None = 0.001, min_rows: int = 100) -> drift.Thresholds:
    return drift.Thresholds(psi=psi, ks_pvalue=ks_pvalue, min_rows=min_rows)


def day_inputs(frame: pd.DataFrame, ds: str = "2026-11-10", **extra) -> drift.DriftInputs:
    return drift.DriftInputs(ds=ds, columns={c: frame[c] for c in frame.columns}, rows=len(frame), **extra)


def test_psi_is_zero_for_equal_shares_and_matches_the_formula():
    assert drift.psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0
    expected = (0.4 - 0.2) * math.log(0.4 / 0.2) + (0.6 - 0.8) * math.log(0.6 / 0.8)
    assert drift.psi([0.2, 0.8], [0.4, 0.6]) == pytest.approx(expected)


def test_an_empty_bin_counts_as_epsilon_so_psi_stays_finite():
    value = drift.psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    assert math.isfinite(value) and value > 5


def test_psi_refuses_different_bins():
    with pytest.raises(ValueError, match="same bins"):
        drift.psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_bin_shares_have_a_bin_for_missing_values():
    shares = drift.bin_shares(pd.Series([1.0, 2.0, None, 3.0]), [1.5, 2.5])
    assert shares.tolist() == [0.25, 0.25, 0.25, 0.25]  # (-inf,1.5], (1.5,2.5], (2.5,inf), missing


def test_a_reference_holds_deciles_shares_and_a_bounded_sample_and_survives_json():
    ref = reference()
    tenure = ref.features[0]
    assert ref.rows == 4000 and ref.columns == ["tenure", "visits", "premium"]
    assert len(tenure.edges) == 9 and len(tenure.sample) == drift.SAMPLE_SIZE
    assert sum(tenure.shares) == pytest.approx(1.0) and tenure.shares[-1] == 0.0
    assert all(s == pytest.approx(0.1, abs=0.01) for s in tenure.shares[:-1])
    premium = ref.features[2]  # a 0/1 column: the deciles collapse to its two values
    assert premium.edges == (0.0, 1.0) and premium.shares[0] == pytest.approx(0.5, abs=0.03)
    assert premium.shares[2:] == (0.0, 0.0)  # nothing above 1, nothing missing
    assert drift.Reference.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_a_document_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="not a skylift.drift_reference/1 document"):
        drift.Reference.from_dict({"format": "other", "rows": 1, "features": []})


def test_ks_compares_finite_values_and_needs_some_on_each_side():
    rng = np.random.default_rng(1)
    same = drift.ks_test(rng.normal(0, 1, 1000), rng.normal(0, 1, 1000))
    moved = drift.ks_test(rng.normal(0, 1, 1000), rng.normal(1, 1, 1000))
    assert same[1] > 0.01 and moved[1] < 1e-20 and moved[0] > same[0]
    assert drift.ks_test([1.0, 2.0], [np.nan, np.nan]) is None


def test_a_day_like_the_training_data_does_not_drift():
    result = drift.check(reference(), day_inputs(training(800, seed=7)), limits())
    assert not result.drifted and result.drifted_features == [] and result.status == "no_drift"
    assert all(c.psi < 0.05 for c in result.features)


def test_a_shifted_feature_drifts_and_is_named():
    day = training(800, seed=7)
    day["tenure"] += 12  # two standard deviations
    result = drift.check(reference(), day_inputs(day), limits())
    assert result.drifted and result.drifted_features == ["tenure"]
    tenure = result.features[0]
    assert tenure.psi > 1 and tenure.ks_pvalue < 1e-30 and "KS p" in tenure.why
    assert "1 of 3 features drifted (tenure)" in result.summary()


def test_psi_over_the_threshold_but_ks_above_its_p_value_is_not_drift():
    day = training(800, seed=7)
    day["tenure"] += 3
    loose = drift.check(reference(), day_inputs(day), limits(psi=0.05, ks_pvalue=None))
    strict = drift.check(reference(), day_inputs(day), limits(psi=0.05, ks_pvalue=1e-300))
    assert loose.drifted_features == ["tenure"]
    assert strict.drifted_features == [] and "but KS p" in strict.features[0].why


def test_a_column_gone_empty_drifts_through_the_missing_bin():
    day = training(800, seed=7)
    day["visits"] = np.nan
    result = drift.check(reference(), day_inputs(day), limits())
    visits = result.features[1]
    assert result.drifted_features == ["visits"] and visits.ks_pvalue is None and visits.missing_share == 1.0


def test_a_column_missing_from_the_day_counts_as_drifted():
    result = drift.check(reference(), day_inputs(training(800, seed=7).drop(columns=["premium"])),
                         limits())
    assert result.missing_columns == ("premium",) and result.drifted_features == ["premium"] and result.drifted


def test_too_few_rows_give_no_verdict():
    result = drift.check(reference(), day_inputs(training(50, seed=7) + 100), limits(min_rows=100))
    assert result.too_few_rows and not result.drifted and result.status == "too_few_rows" and not result.features


def test_min_drifted_features_needs_that_many():
    day = training(800, seed=7)
    day["tenure"] += 12
    result = drift.check(reference(), day_inputs(day), limits(), min_drifted_features=2)
    assert result.drifted_features == ["tenure"] and not result.drifted


def test_prediction_drift_is_reported_and_flags_the_day_only_when_asked():
    rng = np.random.default_rng(3)
    baseline, moved = rng.beta(2, 5, 3000), rng.beta(5, 2, 800)
    inputs = day_inputs(training(800, seed=7), predictions=moved, baseline_predictions=baseline,
                        baseline_days=("2026-11-08", "2026-11-09"))
    reported = drift.check(reference(), inputs, limits())
    flagged = drift.check(reference(), inputs, limits(), predictions_flag=True)
    assert reported.prediction_drifted and not reported.drifted
    assert flagged.drifted and flagged.drifted_features == []
    assert reported.to_dict()["prediction_baseline"] == ["2026-11-08", "2026-11-09"]


def test_a_baseline_with_too_few_rows_is_not_compared():
    assert drift.compare_predictions(np.zeros(10), np.zeros(500), limits(min_rows=100)) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"psi": 0}, "PSI threshold must be positive"),
    ({"ks_pvalue": 1.5}, "KS p-value threshold"),
    ({"min_rows": 0}, "min_rows"),
])
def test_thresholds_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        limits(**kwargs)


def test_the_report_names_the_drifted_features_first_and_the_retrain():
    day = training(800, seed=7)
    day["visits"] *= 3
    result = drift.check(reference(), day_inputs(day), limits())
    body = {"pipeline": "churn", "model": "churn", "model_version": "3", "dag_run": "churn_nightly/r1",
            "reference_rows": 4000, **result.to_dict(),
            "retrain": {"enabled": True, "cooldown_days": 7, "trigger": {"dag_id": "churn_retrain"},
                        "claim": {"granted": True, "repeated": False,
                                  "record": {"dag_id": "churn_retrain", "run_id": "skylift_drift__2026-11-10"}}}}
    page = render_html(json.loads(json.dumps(body, allow_nan=False)))
    assert "Drifted features: <span class='drift'>visits</span>" in page
    assert page.index("<td class='name'>visits</td>") < page.index("<td class='name'>tenure</td>")
    assert "Retrain triggered: DAG churn_retrain, run skylift_drift__2026-11-10." in page
    assert "<script" not in page and "http" not in page
