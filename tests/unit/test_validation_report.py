"""The stored validation report reads offline: no stylesheet or script from the network, status in
words, and a header naming the pipeline, dataset, date and DAG run."""

from __future__ import annotations

import re

import pandas as pd

from include.validation import Suite, run_suite
from include.validation_report import ReportHeader, render_report

HEADER = ReportHeader(pipeline="churn", dataset="customer_activity", ds="2026-11-20", dag_id="churn_nightly",
                      run_id="scheduled__2026-11-20T02:00:00+00:00", suite_file="include/expectations/x.yaml")


def outcome_of(frame: pd.DataFrame):
    suite = Suite.from_dict({"name": "activity", "expectations": [
        {"expect_column_values_to_be_between": {"column": "sessions", "min_value": 0, "max_value": 10}},
        {"expect_column_values_to_not_be_null": {"column": "plan"}, "on_failure": "warn"},
        {"expect_table_row_count_to_be_between": {"min_value": 1}},
    ]}, "x.yaml")
    return run_suite(frame, suite)


def test_report_is_self_contained_and_names_what_it_validated():
    outcome = outcome_of(pd.DataFrame({"sessions": [1.0, 50.0, float("inf")], "plan": ["a", None, "b"]}))
    page = render_report(HEADER, outcome)
    # nothing is fetched: no external stylesheet, script, font or image
    assert not re.search(r"<(script|link|img|iframe)\b", page, re.I)
    assert not re.search(r"(src|href)\s*=|@import|url\(", page, re.I)
    assert "http://" not in page and "https://" not in page
    for name in ("churn", "customer_activity", "2026-11-20", "churn_nightly", "scheduled__2026-11-20T02:00:00+00:00"):
        assert name in page
    assert "Status: <span class='failed'>Failed</span>" in page
    # each expectation's status is a word in its cell (the GE page's blank column offline)
    cells = re.findall(r"<td class='(\w+)'>(\w+)</td><td><code>([^<]+)</code>", page)
    by_rule = {rule: status for _, status, rule in cells}
    assert by_rule["expect_column_values_to_be_between(sessions)"] == "failed"
    assert by_rule["expect_column_values_to_not_be_null(plan)"] == "warned"  # its policy is warn
    assert by_rule["expect_table_row_count_to_be_between"] == "passed"
    assert "2 of 3 row(s) unexpected, e.g. 50.0, inf" in page
    assert "expect_column_values_to_not_be_null(plan)</li>" in page  # the warning, listed under the status


def test_a_passing_run_says_succeeded():
    page = render_report(HEADER, outcome_of(pd.DataFrame({"sessions": [1, 2], "plan": ["a", "b"]})))
    assert "Status: <span class='passed'>Succeeded</span> (<span class='passed'>passed</span>)" in page
    assert "3 of 3 passed" in page
    assert "Expectation Suite: <code>activity</code>" in page
