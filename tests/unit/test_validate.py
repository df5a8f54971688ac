"""The validate operator: contract rejects join the quarantine, and an empty result is never a success.

Ingest and validate run as Airflow calls them, on a small drop in a temporary lake.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from include.datagen.churn import generate
from include.errors import ContractError, ValidationFailed
from include.lake import Lake
from include.quarantine import REJECTED_FILE
from operators.ingest import IngestOperator
from operators.validate import ValidateOperator

DS = "2026-11-20"
ROWS = 300


@pytest.fixture
def drop(skylift_env):
    root = skylift_env / "drops" / "activity"
    generate(root, date.fromisoformat(DS), days=1, n_customers=ROWS)
    return root / DS / "activity.csv"


@pytest.fixture
def lake(skylift_env):
    return Lake(f"file://{skylift_env}/lake")


def edit(path, column: str, values: dict[int, str]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for row, value in values.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def ingest(context_for, on_row_error="quarantine"):
    op = IngestOperator(task_id="ingest", pipeline="t", source_uri="activity/{ds}/", source_format="csv",
                        schema_file="include/schemas/customer_activity.yaml", dataset="activity",
                        on_row_error=on_row_error)
    return op.execute(context_for(DS, task_id="ingest"))


def validate(context_for, share=0.05, on_empty="fail"):
    op = ValidateOperator(task_id="validate", pipeline="t", suite_file="include/expectations/customer_activity.yaml",
                          dataset="activity", on_failure="quarantine", max_quarantine_share=share, on_empty=on_empty)
    return op.execute(context_for(DS, task_id="validate"))


def test_cells_that_break_the_types_are_quarantined_with_their_text_and_reasons(drop, lake, context_for):
    edit(drop, "sessions", {3: "abc", 40: "12x"})
    edit(drop, "plan", {7: "platinum"})  # and one row that fails an expectation
    assert ingest(context_for)["rejected"] == 2
    raw = lake.require("raw", "activity", DS)
    assert raw.row_count == ROWS - 2 and raw.extra["rejected_rows"] == 2
    assert REJECTED_FILE in [f.name for f in raw.files]  # the raw partition keeps every row of the drop

    result = validate(context_for)
    assert (result["status"], result["rows"], result["quarantined"]) == ("quarantined", ROWS - 3, 3)
    rows = lake.read_table("quarantine", "activity", DS).to_pandas().set_index("customer_id")
    assert rows.loc["C000003", "sessions"] == "abc" and rows.loc["C000040", "sessions"] == "12x"
    assert rows.loc["C000003", "_reasons"] == "contract: sessions expects int32"
    assert rows.loc["C000003", "_source"].endswith(f"activity/{DS}/activity.csv row 5")
    assert rows.loc["C000007", "_reasons"] == "expect_column_values_to_be_in_set(plan)"
    validated = lake.require("validated", "activity", DS)
    assert validated.row_count == ROWS - 3 and validated.extra["quarantined_rows"] == 3
    report = lake.require("reports", "activity", DS).extra
    assert (report["quarantined_rows"], report["rejected_by_contract"]) == (3, 2)


def test_contract_rejects_count_in_the_share(drop, lake, context_for):
    edit(drop, "sessions", dict.fromkeys(range(0, ROWS, 10), "abc"))  # 30 rows: 10%
    ingest(context_for)
    with pytest.raises(ValidationFailed, match=(
            r"30 of 300 rows \(10.0%\) failed row checks, more than max_quarantine_share=5.0% "
            r"\(contract: sessions expects int32: 30 row\(s\), first at activity.csv row 2, activity.csv row 12, ")):
        validate(context_for)
    assert lake.manifest("validated", "activity", DS) is None
    assert lake.manifest("quarantine", "activity", DS) is None


def test_under_fail_a_bad_cell_still_fails_ingest(drop, lake, context_for):
    edit(drop, "sessions", {3: "abc"})
    with pytest.raises(ContractError, match=r"activity.csv: column 'sessions' expects int32, got unparseable "
                                            r"value\(s\) at row 5: 'abc'"):
        ingest(context_for, on_row_error="fail")
    assert lake.manifest("raw", "activity", DS) is None


def test_all_rows_quarantined_fails_even_within_the_share(drop, lake, context_for):
    edit(drop, "plan", dict.fromkeys(range(ROWS), "platinum"))
    ingest(context_for)
    with pytest.raises(ValidationFailed, match=(
            rf"no row of raw/activity/ds={DS} passed: all 300 row\(s\) were set aside "
            r"\(expect_column_values_to_be_in_set\(plan\): 300 row\(s\), first rows 0, 1, 2\), so "
            rf"validated/activity/ds={DS} would be empty \(set validate.on_empty: skip")):
        validate(context_for, share=1.0)
    assert lake.manifest("validated", "activity", DS) is None
    assert lake.require("reports", "activity", DS).extra["status"] == "failed"


def test_all_rows_rejected_by_the_contract_skips_by_policy(drop, lake, context_for):
    edit(drop, "tenure_days", dict.fromkeys(range(ROWS), "n/a"))
    assert ingest(context_for)["rows"] == 0
    with pytest.raises(AirflowSkipException, match=rf"skipping ds={DS} and everything downstream "
                                                   r"\(validate.on_empty: skip\): no row of raw/activity"):
        validate(context_for, share=1.0, on_empty="skip")
    assert lake.manifest("validated", "activity", DS) is None
    assert lake.require("quarantine", "activity", DS).row_count == ROWS  # the rows and their reasons are kept
    assert lake.require("reports", "activity", DS).extra["status"] == "empty"
