"""What a feature job hands back is checked before anything is published (no Spark needed here)."""

from __future__ import annotations

import pandas as pd
import pytest

from include.errors import FeatureJobError
from operators.features import check_job_result, check_job_rows

JOB = "include.features.churn:build"


def test_a_job_that_forgot_to_return_is_named_with_the_likely_cause():
    with pytest.raises(FeatureJobError, match=r"^feature job include.features.churn:build returned None for "
                                              r"ds=2026-11-20; it must return a Spark DataFrame \(missing return\?\)$"):
        check_job_result(None, JOB, "2026-11-20")


def test_a_job_returning_another_type_is_named_with_that_type():
    with pytest.raises(FeatureJobError, match=r"returned a pandas.DataFrame for ds=2026-11-20; it must return a "
                                              "Spark DataFrame"):
        check_job_result(pd.DataFrame({"a": [1]}), JOB, "2026-11-20")


def test_no_rows_is_a_failure_naming_the_job_the_date_and_the_inputs():
    check_job_rows(1, JOB, "2026-11-20", ["validated/a/ds=2026-11-20"])
    with pytest.raises(FeatureJobError, match=r"^feature job include.features.churn:build returned no rows for "
                                              r"ds=2026-11-20 from validated/a/ds=2026-11-19, "
                                              r"validated/a/ds=2026-11-20; nothing was published"):
        check_job_rows(0, JOB, "2026-11-20", ["validated/a/ds=2026-11-19", "validated/a/ds=2026-11-20"])
