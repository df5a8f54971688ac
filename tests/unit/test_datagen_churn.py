"""The churn sample-data generator: any date, deterministic output."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from include.datagen.churn import EPOCH, customers, daily_activity, day_entropy, generate, generate_labels


def test_days_before_the_epoch_generate_valid_drops(tmp_path):
    written = generate(tmp_path, date(2013, 5, 2), days=2, n_customers=50)  # numpy refused negative seeds
    frames = [pd.read_csv(path) for path in written]
    assert [f["event_date"].iloc[0] for f in frames] == ["2013-05-01", "2013-05-02"]
    assert all((f["tenure_days"] >= 0).all() for f in frames)
    assert not frames[0]["sessions"].equals(frames[1]["sessions"])  # each day draws its own numbers


def test_same_day_same_data_and_days_after_the_epoch_keep_their_seed():
    base = customers(30, seed=7)
    day = date(2026, 11, 24)
    assert daily_activity(base, day, 7).equals(daily_activity(base, day, 7))
    assert day_entropy(day) == (day - EPOCH).days
    assert day_entropy(date(2019, 12, 31)) != day_entropy(date(2019, 12, 30))


def test_label_drops_land_delay_days_after_the_activity_they_label(tmp_path):
    """The drop of day L holds each customer's outcome of feature day L - delay_days, never of a
    later day, and is written whole with its marker, as the activity drops are."""
    end = date(2026, 11, 24)
    generate(tmp_path / "activity", end, days=4, n_customers=40)
    written = generate_labels(tmp_path, end, days=4, delay_days=3, n_customers=40)
    arrivals = sorted(p.parent.name for p in written if p.parent.parent.name == "labels")
    assert arrivals == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24"]
    for arrival in arrivals:
        folder = tmp_path / "labels" / arrival
        assert sorted(p.name for p in folder.iterdir()) == ["_SUCCESS", "churn_labels.csv"]
        labels = pd.read_csv(folder / "churn_labels.csv")
        assert set(labels["as_of"]) == {(date.fromisoformat(arrival) - timedelta(days=3)).isoformat()}
        activity = pd.read_csv(tmp_path / "activity" / arrival / "activity.csv")
        assert sorted(labels["customer_id"]) == sorted(activity["customer_id"])  # every customer, once
        assert "churned" not in activity.columns  # the outcome is only in the later drop
    spend = pd.read_csv(tmp_path / "spend_labels" / "2026-11-24" / "spend_labels.csv")
    assert set(spend["as_of"]) == {"2026-11-21"} and (spend["next_30d_spend"] >= 0).all()
