"""The churn sample-data generator: any date, deterministic output."""

from __future__ import annotations

from datetime import date

import pandas as pd

from include.datagen.churn import EPOCH, customers, daily_activity, day_entropy, generate


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
