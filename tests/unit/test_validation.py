"""The suite runner: policies per expectation, and the NaN / infinity rule (see include/validation.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from include.errors import SpecError
from include.validation import Suite, describe_quarantine, run_suite


def suite(*expectations: dict, policy: str = "quarantine") -> Suite:
    return Suite.from_dict({"expectations": list(expectations)}, "t.yaml", policy, 1.0)


def test_an_infinity_fails_a_between_check_whatever_its_bounds_and_nan_counts_as_null():
    frame = pd.DataFrame({
        "low_only": [1.0, math.inf, 2.0, math.nan, 3.0],  # only a lower bound: GE alone lets +inf pass
        "high_only": [1.0, 2.0, -math.inf, 4.0, 5.0],  # only an upper bound: GE alone lets -inf pass
        "both": [1.0, math.inf, 50.0, 2.0, math.nan],  # out of bounds and infinite: one reason
        "count": [1, 2, 3, 4, 5],  # an int column gets no companion check
    })
    outcome = run_suite(frame, suite(
        {"expect_column_values_to_be_between": {"column": "low_only", "min_value": 0}},
        {"expect_column_values_to_be_between": {"column": "high_only", "max_value": 10}},
        {"expect_column_values_to_be_between": {"column": "both", "min_value": 0, "max_value": 10}},
        {"expect_column_values_to_be_between": {"column": "count", "min_value": 0}},
        {"expect_column_values_to_not_be_null": {"column": "low_only"}},
        {"expect_column_values_to_not_be_null": {"column": "both"}, "on_failure": "warn"},
    ))
    assert outcome.quarantine == {
        1: ["expect_column_values_to_be_between(low_only)", "expect_column_values_to_be_between(both)"],
        2: ["expect_column_values_to_be_between(high_only)", "expect_column_values_to_be_between(both)"],
        3: ["expect_column_values_to_not_be_null(low_only)"],  # NaN is null, and no value check sees it
    }
    assert outcome.warnings == ["expect_column_values_to_not_be_null(both)"]
    assert outcome.failed == [] and outcome.status == "quarantined"
    assert describe_quarantine(outcome).startswith(
        "expect_column_values_to_be_between(both): 2 row(s), first rows 1, 2")


def test_under_fail_an_infinity_names_the_rule_and_the_rows():
    frame = pd.DataFrame({"spend": [1.0, 2.0, math.inf, 3.0]})
    outcome = run_suite(frame, suite(
        {"expect_column_values_to_be_between": {"column": "spend", "min_value": 0}}, policy="fail"))
    assert outcome.failed == ["expect_column_values_to_be_between(spend) (infinite values fail it whatever the "
                              "bounds; 1 of 4 row(s), first at row 2: inf)"]
    assert outcome.status == "failed"


def test_suite_errors_name_the_file_and_the_entry():
    with pytest.raises(SpecError, match=r"t.yaml: expectations\[0\].on_failure: policy 'drop' is not one of"):
        suite({"expect_column_values_to_be_between": {"column": "x"}, "on_failure": "drop"})
    with pytest.raises(SpecError, match="t.yaml: the suite lists no expectations"):
        suite()


def test_great_expectations_imports_without_pysparks_pandas_warning(tmp_path):
    """`skylift lint` names expectations through great_expectations, whose optional PySpark import
    warns under pandas 3: that warning is no problem of a spec and is not printed."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = tmp_path / "lint_names.py"
    script.write_text("from include.validation import expectation_class\n"
                      "print(expectation_class('expect_column_values_to_be_unique').__name__)\n")
    result = subprocess.run([sys.executable, "-W", "error::FutureWarning", str(script)], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                            timeout=120, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ExpectColumnValuesToBeUnique\n", "")
