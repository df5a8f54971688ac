"""Ingest, validate and features operators on small data, called the way Airflow calls them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from include.datagen.churn import generate
from include.errors import ContractError, PartitionNotFound, SpecError, ValidationFailed
from include.lake import Lake
from operators.features import FeaturesOperator
from operators.ingest import IngestOperator
from operators.validate import ValidateOperator

DS = "2026-11-20"
SCHEMA = "include/schemas/customer_activity.yaml"
SUITE = "include/expectations/customer_activity.yaml"


@pytest.fixture
def drops(skylift_env):
    root = skylift_env / "drops" / "activity"
    generate(root, date.fromisoformat(DS), days=3, n_customers=300)
    return root


@pytest.fixture
def lake(skylift_env):
    return Lake(f"file://{skylift_env}/lake")


def ingest(context_for, ds=DS, **kwargs):
    op = IngestOperator(task_id="ingest", pipeline="t", source_uri="activity/{ds}/", source_format="csv",
                        schema_file=SCHEMA, dataset="activity", **kwargs)
    return op.execute(context_for(ds))


def validate(context_for, ds=DS, policy="quarantine", share=0.05):
    op = ValidateOperator(task_id="validate", pipeline="t", suite_file=SUITE, dataset="activity",
                          on_failure=policy, max_quarantine_share=share)
    ctx = context_for(ds, task_id="validate")
    return op.execute(ctx), ctx


def corrupt(drops: Path, ds: str, edit) -> None:
    path = drops / ds / "activity.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


def test_ingest_publishes_raw_with_source_checksums(drops, lake, context_for):
    result = ingest(context_for)
    assert result["rows"] == 300
    manifest = lake.require("raw", "activity", DS)
    assert manifest.inputs[0]["source"].endswith(f"activity/{DS}/activity.csv")
    assert len(manifest.inputs[0]["sha256"]) == 64
    first = lake.read_table("raw", "activity", DS)
    ingest(context_for)  # re-run: same rows, nothing duplicated
    assert lake.read_table("raw", "activity", DS).equals(first)


def test_ingest_refuses_a_broken_drop_and_keeps_it(drops, lake, context_for):
    corrupt(drops, DS, lambda f: f.__setitem__("sessions", f["sessions"].where(f.index != 4, "lots")))
    before = (drops / DS / "activity.csv").read_bytes()
    with pytest.raises(ContractError, match=r"activity.csv: column 'sessions' expects int32.*row 6: 'lots'"):
        ingest(context_for)
    assert (drops / DS / "activity.csv").read_bytes() == before
    assert lake.manifest("raw", "activity", DS) is None


def test_missing_drop_is_a_clear_error(skylift_env, context_for):
    with pytest.raises(ContractError, match="no csv files in the drop at .*activity/2026-11-20"):
        ingest(context_for)


def test_validate_passes_clean_data_and_writes_the_report(drops, lake, context_for):
    ingest(context_for)
    result, ctx = validate(context_for)
    assert result["status"] == "passed" and result["rows"] == 300
    page = lake.read_bytes("reports", "activity", DS, "validation.html").decode()
    # self-contained (readable offline) and about this partition of this run
    assert "<html" in page and "http://" not in page and "https://" not in page and "<script" not in page
    for name in ("<dd>t</dd>", "<dd>activity</dd>", f"<dd>{DS}</dd>", "unit / manual__unit", "Succeeded"):
        assert name in page
    assert ctx["ti"].xcoms[("validate", "skylift_validation_report")].endswith(".html")
    assert lake.manifest("quarantine", "activity", DS) is None


def test_quarantine_sets_rows_aside_with_reasons(drops, lake, context_for):
    corrupt(drops, DS, lambda f: f.loc[[3, 7], "plan"].__init__() or f.__setitem__(
        "plan", f["plan"].where(~f.index.isin([3, 7]), "platinum")))
    ingest(context_for)
    result, _ = validate(context_for)
    assert (result["status"], result["rows"], result["quarantined"]) == ("quarantined", 298, 2)
    rows = lake.read_table("quarantine", "activity", DS).to_pandas()
    assert sorted(rows["customer_id"]) == ["C000003", "C000007"]
    assert set(rows["_reasons"]) == {"expect_column_values_to_be_in_set(plan)"}


def test_too_many_quarantined_rows_fail_and_withdraw_validated(drops, lake, context_for):
    ingest(context_for)
    validate(context_for)
    assert lake.manifest("validated", "activity", DS) is not None
    corrupt(drops, DS, lambda f: f.__setitem__("plan", "platinum"))
    ingest(context_for)
    with pytest.raises(ValidationFailed, match=r"300 of 300 rows \(100.0%\) failed row checks"):
        validate(context_for)
    assert lake.manifest("validated", "activity", DS) is None
    assert lake.require("reports", "activity", DS).extra["status"] == "failed"


def test_fail_policy_stops_and_warn_policy_continues(drops, lake, context_for):
    corrupt(drops, DS, lambda f: f.__setitem__("monthly_charges", f["monthly_charges"].where(f.index != 0, "")))
    ingest(context_for)
    result, _ = validate(context_for, policy="fail")  # the null check is `warn` in the suite itself
    assert result["status"] == "warned" and "expect_column_values_to_not_be_null(monthly_charges)" in result["warnings"]
    corrupt(drops, DS, lambda f: f.__setitem__("sessions", f["sessions"].where(f.index != 0, "999")))
    ingest(context_for)
    with pytest.raises(ValidationFailed, match=r"expect_column_values_to_be_between\(sessions\)"):
        validate(context_for, policy="fail")


def test_features_over_the_lookback_window(drops, lake, context_for):
    for day in ("2026-11-18", "2026-11-19", DS):
        ingest(context_for, ds=day)
        validate(context_for, ds=day)
    op = FeaturesOperator(task_id="features", pipeline="t", job="include.features.churn:build",
                          source_dataset="activity", dataset="feats", lookback_days=7)
    result = op.execute(context_for(DS, task_id="features"))
    assert result["days"] == ["2026-11-18", "2026-11-19", DS]
    frame = lake.read_table("features", "feats", DS).to_pandas()
    assert len(frame) == 300 and frame["customer_id"].is_unique
    assert (frame["days_seen"] == 3).all()
    assert {"sessions_mean", "sessions_trend", "plan_basic"} <= set(frame.columns)
    assert not {"churned", "next_30d_spend"} & set(frame.columns)  # outcomes arrive in their own source
    manifest = lake.require("features", "feats", DS)
    assert [i["ds"] for i in manifest.inputs] == ["2026-11-18", "2026-11-19", DS]
    assert len(manifest.extra["missing_days"]) == 4

    # With `sources:`, the job gets each source by name: the same rows as the positional form.
    named = FeaturesOperator(task_id="features", pipeline="t", job="include.features.churn:build",
                             sources={"activity": "activity"}, dataset="feats_named", lookback_days=7)
    named.execute(context_for(DS, task_id="features"))
    assert lake.read_table("features", "feats_named", DS).equals(lake.read_table("features", "feats", DS))


def test_a_source_the_feature_job_does_not_take_is_named(skylift_env, context_for):
    op = FeaturesOperator(task_id="features", pipeline="t", job="include.features.churn:build",
                          sources={"events": "activity"}, dataset="feats")
    with pytest.raises(SpecError, match=r"takes \['activity', 'ds'\], but it is called with the sources \['events'\]"):
        op.execute(context_for(DS))


def test_features_need_the_days_validated_partition(skylift_env, context_for):
    op = FeaturesOperator(task_id="features", pipeline="t", job="include.features.churn:build",
                          source_dataset="activity", dataset="feats")
    with pytest.raises(PartitionNotFound, match="validated/activity/ds=2026-11-20 does not exist"):
        op.execute(context_for(DS))
