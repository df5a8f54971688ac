"""Run a Great Expectations suite declared in YAML and decide what each failure means.

Suite file format (`include/expectations/*.yaml`):

    name: customer_activity
    expectations:
      - expect_column_values_to_not_be_null: {column: customer_id}
      - expect_column_values_to_be_between: {column: sessions, min_value: 0, max_value: 500}
        on_failure: warn              # per-expectation policy

The pipeline spec sets the default policy (`fail`, `warn` or `quarantine`) and the largest
share of rows that may be quarantined; an expectation may set its own policy.

Missing values and infinities follow the schema contract's rule: NaN is null (it fails
`expect_column_values_to_not_be_null` and is skipped by value checks, as any null is), and an
infinity fails every `expect_column_values_to_be_between` on its column whatever the bounds
(GE alone lets `inf` pass a check that has only a `min_value`). The runner adds a companion
check for that; its failures carry the `between` rule's label and policy.
Expectation names are Great Expectations' own (snake_case of the class in
`great_expectations.expectations`); nothing else can be named, so a suite cannot run code.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from include.errors import SpecError

POLICIES = ("fail", "warn", "quarantine")
RULE_INDEX = "skylift_rule"
FINITE_CHECK = "skylift_finite"  # meta flag of the companion check of a `between` rule
BOUNDED = "expect_column_values_to_be_between"


@dataclass(frozen=True)
class ExpectationRule:
    name: str
    kwargs: dict[str, Any]
    policy: str

    @property
    def label(self) -> str:
        column = self.kwargs.get("column")
        return f"{self.name}({column})" if column else self.name


@dataclass(frozen=True)
class Suite:
    name: str
    rules: tuple[ExpectationRule, ...]
    max_quarantine_share: float

    @classmethod
    def from_file(cls, path: Path, default_policy: str = "fail", max_share: float = 0.05) -> Suite:
        try:
            body = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"{path}: cannot read the expectation suite: {exc}") from exc
        if not isinstance(body, dict):
            raise SpecError(f"{path}: an expectation suite must be a mapping with 'expectations'")
        return cls.from_dict(body, str(path), default_policy, max_share)

    @classmethod
    def from_dict(cls, body: dict[str, Any], where: str, default_policy: str = "fail",
                  max_share: float = 0.05) -> Suite:
        _check_policy(default_policy, f"{where}: on_failure")
        unknown = sorted(set(body) - {"name", "expectations", "description"})
        if unknown:
            raise SpecError(f"{where}: unknown key(s) {unknown}; a suite has name, description, expectations")
        rules = tuple(_rule(item, i, where, default_policy) for i, item in enumerate(body.get("expectations") or []))
        if not rules:
            raise SpecError(f"{where}: the suite lists no expectations")
        return cls(name=str(body.get("name") or Path(where).stem), rules=rules, max_quarantine_share=max_share)


def _check_policy(policy: Any, where: str) -> None:
    if policy not in POLICIES:
        raise SpecError(f"{where}: policy {policy!r} is not one of {list(POLICIES)}")


def _rule(item: Any, index: int, where: str, default_policy: str) -> ExpectationRule:
    if not isinstance(item, dict):
        raise SpecError(f"{where}: expectations[{index}] must be a mapping, got {item!r}")
    item = dict(item)
    policy = item.pop("on_failure", default_policy)
    _check_policy(policy, f"{where}: expectations[{index}].on_failure")
    if len(item) != 1:
        raise SpecError(f"{where}: expectations[{index}] must name exactly one expectation, got {sorted(item)}")
    (name, kwargs), = item.items()
    if not isinstance(kwargs, dict):
        raise SpecError(f"{where}: expectations[{index}].{name} takes a mapping of arguments")
    return ExpectationRule(name=name, kwargs=kwargs, policy=policy)


def _great_expectations() -> Any:
    """great_expectations, imported without the FutureWarning its optional PySpark support raises
    under pandas 3 (suites run on pandas here): `skylift lint` prints only the specs' problems."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        import great_expectations as gx
    return gx


def expectation_class(name: str, where: str = "suite") -> type:
    gx = _great_expectations()

    class_name = "".join(part.capitalize() for part in name.split("_"))
    found = getattr(gx.expectations, class_name, None)
    if not name.startswith("expect_") or not isinstance(found, type):
        known = [n for n in dir(gx.expectations) if n.startswith("Expect")]
        snake = [_snake(n) for n in known]
        close = difflib.get_close_matches(name, snake, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecError(f"{where}: unknown expectation {name!r}{hint}")
    return found


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel).lstrip("_")


@dataclass
class Outcome:
    """What a suite run decided: the GE result, and what the policies make of it."""

    success: bool
    result: dict[str, Any]  # GE's result as JSON (include.validation_report renders it as HTML)
    failed: list[str] = field(default_factory=list)  # labels of failures under `fail`
    warnings: list[str] = field(default_factory=list)  # labels of failures under `warn`
    quarantine: dict[int, list[str]] = field(default_factory=dict)  # row position -> reasons
    rejected: int = 0  # rows the schema contract set aside at ingest (quarantined too)
    empty: str | None = None  # why no row is left to validate, when none is

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.empty:
            return "empty"
        if self.quarantine or self.rejected:
            return "quarantined"
        return "warned" if self.warnings else "passed"


def run_suite(frame: Any, suite: Suite, where: str = "suite") -> Outcome:
    """Validate a pandas DataFrame (positional index 0..n-1) against the suite."""
    gx = _great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("skylift")
    batch = source.add_dataframe_asset("partition").add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": frame.reset_index(drop=True)}
    )
    expectations = [_build(rule, index, where) for index, rule in enumerate(suite.rules)]
    expectations += _finite_checks(frame, suite)
    gx_suite = gx.ExpectationSuite(name=suite.name, expectations=expectations)
    result = batch.validate(gx_suite, result_format={"result_format": "COMPLETE"})
    outcome = Outcome(success=bool(result.success), result=result.to_json_dict())
    # GE reorders results; each one carries the index of its rule in `meta`.
    for item in result.results:
        _apply_policy(suite.rules[item.expectation_config.meta[RULE_INDEX]], item, outcome)
    return outcome


def _build(rule: ExpectationRule, index: int, where: str) -> Any:
    cls = expectation_class(rule.name, where)
    try:
        return cls(**rule.kwargs, meta={RULE_INDEX: index})
    except Exception as exc:  # GE raises pydantic v1 errors; report them as a spec problem
        raise SpecError(f"{where}: {rule.name}: bad arguments {rule.kwargs}: {exc}") from exc


def _finite_checks(frame: Any, suite: Suite) -> list[Any]:
    """For each `between` rule on a float column, a check that the column holds no infinity."""
    gx = _great_expectations()
    import pandas as pd

    checks = []
    for index, rule in enumerate(suite.rules):
        column = rule.kwargs.get("column")
        if rule.name == BOUNDED and column in frame.columns and pd.api.types.is_float_dtype(frame[column]):
            checks.append(gx.expectations.ExpectColumnValuesToNotBeInSet(
                column=column, value_set=[math.inf, -math.inf], meta={RULE_INDEX: index, FINITE_CHECK: True}))
    return checks


def _apply_policy(rule: ExpectationRule, item: Any, outcome: Outcome) -> None:
    if item.exception_info and item.exception_info.get("raised_exception"):
        outcome.failed.append(f"{rule.label}: {item.exception_info.get('exception_message')}")
        return
    if item.success:
        return
    rows = item.result.get("unexpected_index_list")
    finite = bool(item.expectation_config.meta.get(FINITE_CHECK))
    if rule.policy == "warn":
        if rule.label not in outcome.warnings:
            outcome.warnings.append(rule.label)
    elif rule.policy == "quarantine" and rows is not None:
        for row in rows:
            reasons = outcome.quarantine.setdefault(int(row), [])
            if rule.label not in reasons:  # a row out of bounds and infinite fails its rule once
                reasons.append(rule.label)
    elif finite:
        outcome.failed.append(f"{rule.label} (infinite values fail it whatever the bounds; "
                              f"{item.result.get('unexpected_count')} of {item.result.get('element_count')} "
                              f"row(s), {_first_rows(rows, item.result.get('unexpected_list'))})")
    else:
        # A table-level expectation has no rows to set aside: under `quarantine` it fails the run.
        outcome.failed.append(f"{rule.label} {_evidence(rule, item.result)}")


def _evidence(rule: ExpectationRule, result: dict[str, Any]) -> str:
    """What a failed expectation saw, for the message: `(expected min_value=100; observed 10)`."""
    expected = ", ".join(f"{k}={v!r}" for k, v in rule.kwargs.items() if k != "column")
    parts = [f"expected {expected}"] if expected else []
    if "observed_value" in result:
        parts.append(f"observed {result['observed_value']!r}")
    elif result.get("unexpected_count"):
        parts.append(f"{result['unexpected_count']} of {result.get('element_count')} row(s) unexpected, "
                     + _first_rows(result.get("unexpected_index_list"), result.get("unexpected_list")))
    return f"({'; '.join(parts)})"


def _first_rows(rows: list[Any] | None, values: list[Any] | None, limit: int = 5) -> str:
    """`first at row 3: 999, row 8: -1` (rows of the validated partition, from 0)."""
    if not rows:
        return "e.g. " + ", ".join(repr(v) for v in (values or [])[:limit])
    shown = [f"row {int(r)}: {v!r}" for r, v in zip(rows[:limit], (values or [])[:limit], strict=False)]
    return "first at " + ", ".join(shown)


def describe_quarantine(outcome: Outcome, limit: int = 3) -> str:
    """Per expectation, how many rows it set aside and the first of them (row positions from 0):
    `expect_column_values_to_be_between(sessions): 120 row(s), first rows 0, 10, 20`.
    """
    by_rule: dict[str, list[int]] = {}
    for row in sorted(outcome.quarantine):
        for label in outcome.quarantine[row]:
            by_rule.setdefault(label, []).append(row)
    return "; ".join(
        f"{label}: {len(rows)} row(s), first rows {', '.join(str(r) for r in rows[:limit])}"
        for label, rows in sorted(by_rule.items(), key=lambda item: -len(item[1]))
    )
