"""What `skylift run` prints at the end (operators/summary.py): each partition of the date, and
whether this run wrote it, kept it, or left it to the DAG that writes it."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pyarrow as pa

from include.lake import Lake
from operators.runner import RunOutcome, TaskState
from operators.summary import _shortened, partition_lines

DAY = date(2026, 3, 5)
SPEC = SimpleNamespace(source_bindings=[SimpleNamespace(dataset="shipments")], features=True,
                       features_dataset="parcels_features", score=None)


def test_each_partition_says_who_wrote_it(tmp_path):
    lake = Lake(f"file://{tmp_path}/lake")
    for zone, dataset, run_id in (("raw", "shipments", "scheduled__a"), ("features", "parcels_features", "manual__b")):
        with lake.publish(zone, dataset, DAY.isoformat(), run_id=run_id) as writer:
            writer.write_table(pa.table({"x": [1, 2]}))
    retrain = RunOutcome("parcels_retrain", DAY, "manual__b", "success", (TaskState("features", "success", 1, 1.0),))
    assert [line.split("  ")[1] for line in partition_lines(lake, SPEC, retrain)] == [
        "raw/shipments/ds=2026-03-05: 2 rows, from run scheduled__a (this DAG has no ingest task)",
        "features/parcels_features/ds=2026-03-05: 2 rows, written"]
    daily = RunOutcome("parcels_daily", DAY, "scheduled__c", "success", (TaskState("ingest", "success", 1, 1.0),))
    assert partition_lines(lake, SPEC, daily)[0].split("  ")[1] == \
        "raw/shipments/ds=2026-03-05: 2 rows, kept (unchanged inputs)"


def test_a_long_gate_verdict_is_shortened_with_an_ellipsis():
    assert _shortened("short") == "short"
    cut = _shortened("auc: challenger 0.8545 ok; " * 10)
    assert len(cut) <= 100 and cut.endswith("…")
