"""The point-in-time label join: late labels, missing labels, duplicates, days outside the window."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from include.errors import LabelError, TrainingError
from include.labels import (
    FEATURE_DATE,
    LabelPlan,
    complete_days,
    completing_drop,
    labelled_days,
    point_in_time_join,
    time_split,
)

PLAN = LabelPlan(column="churned", key=("customer_id",), as_of="as_of", delay_days=3)


def features(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(ids), "sessions": [float(i) for i in range(len(ids))]})


def labels(rows: list[tuple[str, str, bool]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "churned"])


def test_complete_days_end_delay_days_before_the_run():
    assert complete_days("2026-11-24", delay_days=3, window_days=3) == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert complete_days("2026-11-24", delay_days=0, window_days=1) == ["2026-11-24"]


def test_a_day_is_label_complete_only_once_its_completing_drop_has_landed():
    """The night of 11-22 never ran, so its label drop (the outcomes of 11-19) was never ingested:
    11-19 waits instead of reaching training half-labelled (found on the stack's history nights)."""
    days = ["2026-11-18", "2026-11-19", "2026-11-20"]
    landed = ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-23"]
    assert completing_drop("2026-11-19", 3) == "2026-11-22"
    assert labelled_days(days, 3, landed) == (["2026-11-18", "2026-11-20"], ["2026-11-19"])
    assert labelled_days(days, 3, [*landed, "2026-11-22"]) == (days, [])


def test_time_split_holds_out_the_newest_days():
    days = ["2026-11-03", "2026-11-01", "2026-11-02"]
    assert time_split(days, 1) == (["2026-11-01", "2026-11-02"], ["2026-11-03"])
    with pytest.raises(LabelError, match="at least 3 are needed"):
        time_split(["2026-11-01", "2026-11-02"], 2)


def test_each_feature_row_gets_the_outcome_of_its_own_day():
    joined = point_in_time_join(
        {"2026-11-01": features("A", "B"), "2026-11-02": features("A", "B")},
        {"2026-11-04": labels([("A", "2026-11-01", True), ("B", "2026-11-01", False)]),
         "2026-11-05": labels([("A", "2026-11-02", False), ("B", "2026-11-02", True)])},
        PLAN, cutoff="2026-11-05")
    got = {(r.customer_id, r[FEATURE_DATE]): r.churned for _, r in joined.iterrows()}
    assert got == {("A", "2026-11-01"): True, ("B", "2026-11-01"): False,
                   ("A", "2026-11-02"): False, ("B", "2026-11-02"): True}
    assert list(joined.columns) == ["customer_id", "sessions", FEATURE_DATE, "churned"]


def test_a_late_label_counts_once_it_has_arrived_by_the_cutoff():
    feats = {"2026-11-01": features("A", "B")}
    drops = {"2026-11-04": labels([("A", "2026-11-01", True)]),
             "2026-11-07": labels([("B", "2026-11-01", False)])}  # B's outcome arrived three days late
    assert point_in_time_join(feats, drops, PLAN, cutoff="2026-11-06")["customer_id"].tolist() == ["A"]
    assert point_in_time_join(feats, drops, PLAN, cutoff="2026-11-07")["customer_id"].tolist() == ["A", "B"]


def test_rows_without_a_label_are_left_out_not_guessed():
    joined = point_in_time_join({"2026-11-01": features("A", "B", "C")},
                                {"2026-11-04": labels([("B", "2026-11-01", True)])}, PLAN, cutoff="2026-11-04")
    assert joined["customer_id"].tolist() == ["B"]
    empty = point_in_time_join({"2026-11-01": features("A")}, {}, PLAN, cutoff="2026-11-04")
    assert empty.empty and "churned" in empty.columns


def test_a_drop_after_the_cutoff_is_never_seen_even_with_a_conflicting_value():
    feats = {"2026-11-01": features("A")}
    drops = {"2026-11-04": labels([("A", "2026-11-01", False)]),
             "2026-11-09": labels([("A", "2026-11-01", True)])}  # from the future: would be a duplicate
    joined = point_in_time_join(feats, drops, PLAN, cutoff="2026-11-08")
    assert joined["churned"].tolist() == [False]


def test_as_of_outside_the_feature_days_is_ignored():
    drops = {"2026-11-04": labels([("A", "2026-10-01", True), ("A", "2026-11-01", False), ("A", "2026-11-03", True)])}
    joined = point_in_time_join({"2026-11-01": features("A")}, drops, PLAN, cutoff="2026-11-04")
    assert joined[[FEATURE_DATE, "churned"]].values.tolist() == [["2026-11-01", False]]


def test_date_typed_as_of_column_is_accepted():
    drops = {"2026-11-04": labels([("A", dt.date(2026, 11, 1), True)])}
    assert len(point_in_time_join({"2026-11-01": features("A")}, drops, PLAN, cutoff="2026-11-04")) == 1


def test_the_same_outcome_twice_is_refused_naming_both_drops():
    drops = {"2026-11-04": labels([("A", "2026-11-01", True)]),
             "2026-11-05": labels([("A", "2026-11-01", False)])}
    with pytest.raises(LabelError, match=r"second outcome.*'customer_id': 'A'.*2026-11-04.*2026-11-05"):
        point_in_time_join({"2026-11-01": features("A")}, drops, PLAN, cutoff="2026-11-05")


def test_features_that_hold_the_label_are_refused():
    leaky = features("A").assign(churned=True)
    with pytest.raises(LabelError, match="already hold the label column 'churned'"):
        point_in_time_join({"2026-11-01": leaky}, {}, PLAN, cutoff="2026-11-04")


def test_feature_days_after_the_cutoff_are_refused():
    with pytest.raises(LabelError, match=r"after the cut-off 2026-11-04"):
        point_in_time_join({"2026-11-05": features("A")}, {}, PLAN, cutoff="2026-11-04")


def test_label_drops_missing_columns_or_with_bad_dates_are_named():
    with pytest.raises(LabelError, match=r"drop of 2026-11-04 lacks column\(s\) \['churned'\]"):
        point_in_time_join({"2026-11-01": features("A")},
                           {"2026-11-04": labels([("A", "2026-11-01", True)]).drop(columns="churned")},
                           PLAN, cutoff="2026-11-04")
    with pytest.raises(LabelError, match=r"'as_of' is not a date"):
        point_in_time_join({"2026-11-01": features("A")}, {"2026-11-04": labels([("A", "soon", True)])},
                           PLAN, cutoff="2026-11-04")


def test_training_rows_come_through_the_join_with_the_newest_days_held_out(tmp_path):
    """The entrypoint's data step: label-free feature partitions, outcomes from label partitions
    landed by the cut-off, a time-based holdout; a later drop with contradicting outcomes is unseen."""
    import numpy as np
    import pyarrow as pa

    from include.lake import Lake
    from include.training.entrypoint import TrainConfig, prepare

    root = f"file://{tmp_path}/lake"
    lake = Lake(root)
    rng = np.random.default_rng(3)
    ids = [f"C{i:06d}" for i in range(60)]
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    for n, d in enumerate(days):
        with lake.publish("features", "feats", d) as writer:
            writer.write_table(pa.table({"customer_id": ids, "sessions": rng.normal(size=60) + n}))
        outcomes = labels([(c, d, bool(i % 2)) for i, c in enumerate(ids)])
        arrival = (dt.date.fromisoformat(d) + dt.timedelta(days=3)).isoformat()
        with lake.publish("validated", "outcomes", arrival) as writer:
            writer.write_table(pa.Table.from_pandas(outcomes, preserve_index=False))
    with lake.publish("validated", "outcomes", "2026-11-09") as writer:  # after the cut-off: must stay unseen
        writer.write_table(pa.Table.from_pandas(labels([(c, days[0], True) for c in ids]), preserve_index=False))

    config = TrainConfig.from_dict({
        "lake_root": root, "dataset": "feats", "dates": days, "key": ["customer_id"], "target": "churned",
        "framework": "xgboost", "task": "classification", "experiment": "t",
        "labels": {"dataset": "outcomes", "column": "churned", "key": ["customer_id"], "as_of": "as_of",
                   "delay_days": 3, "arrivals": ["2026-11-04", "2026-11-05", "2026-11-06"],
                   "cutoff": "2026-11-06", "holdout_dates": ["2026-11-03"]}})
    data = prepare(config)
    assert data.features == ["sessions"]  # neither the key, the label nor the feature date
    assert data.rows["holdout"] == 60 and data.rows["train"] == 120
    assert sorted(set(data.y_holdout.tolist())) == [0.0, 1.0]

    planted = {**config.labels.as_config(), "arrivals": ["2026-11-04", "2026-11-05", "2026-11-06", "2026-11-09"],
               "cutoff": "2026-11-09"}
    with pytest.raises(TrainingError, match="second outcome"):  # read, the planted drop is refused
        prepare(TrainConfig.from_dict({**vars(config), "labels": planted}))


def test_a_row_whose_outcome_is_still_empty_labels_nothing():
    """A source that carries features and, later, their outcome: the drop of 11-01 holds A's row with no
    outcome yet, the drop of 11-02 the same row with it. Only the known outcome counts (no 'twice')."""
    empty = pd.DataFrame({"customer_id": ["A", "B"], "as_of": ["2026-11-01"] * 2, "churned": [None, None]})
    known = labels([("A", "2026-11-01", True), ("B", "2026-11-02", False)])
    plan = LabelPlan(column="churned", key=("customer_id",), as_of="as_of", delay_days=1)
    joined = point_in_time_join({"2026-11-01": features("A", "B")}, {"2026-11-01": empty, "2026-11-02": known}, plan,
                                cutoff="2026-11-02")
    assert joined[["customer_id", "churned"]].to_dict("records") == [{"customer_id": "A", "churned": True}]
