"""`skylift lint`: every error of every spec (and of its contracts, suites and feature job) at once,
each at the right file, line and column. No Spark session, no Airflow run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from operators.cli import main
from operators.spec.lint import lint_spec

BASE = """\
pipeline: NAME
description: lint case NAME
sources:
  activity:
    uri: "activity/{ds}/"
    schema: schemas/activity.yaml
    dataset: NAME_activity
    completion: {date_column: event_date}
    validate: {suite: suites/activity.yaml, on_failure: quarantine}
  outcomes:
    uri: "outcomes/{ds}/"
    schema: schemas/outcomes.yaml
    dataset: NAME_outcomes
labels: {source: outcomes, column: churned, key: [customer_id], as_of: as_of, delay_days: 2}
features:
  job: lintjobs.good:build
  lookback_days: 3
train:
  framework: xgboost
  target: churned
  key: [customer_id]
  params: {max_depth: 4, eta: 0.1}
register:
  model_name: NAME
deploy:
  gate: {metric: auc, min: 0.6}
dags:
  nightly:
    schedule: "0 2 * * *"
    stages: all
  retrain:
    stages: [features, train, register, deploy]
    params:
      max_depth: {type: integer, default: 4, minimum: 1, maximum: 12}
"""

CONTRACT = """\
key: [customer_id]
columns:
  customer_id: {type: string, nullable: false}
  event_date: {type: date, nullable: false}
  sessions: {type: int32}
  minutes: {type: float64}
"""
OUTCOMES = """\
key: [customer_id, as_of]
columns:
  customer_id: {type: string, nullable: false}
  as_of: {type: date, nullable: false}
  churned: {type: int32, nullable: false}
"""
SUITE = """\
name: activity
expectations:
  - expect_column_values_to_be_unique: {column: customer_id}
  - expect_column_values_to_be_between: {column: sessions, min_value: 0, max_value: 200}
    on_failure: warn
"""
JOBS = {
    "good.py": "def build(activity, ds):\n    return activity\n",
    "wrong_args.py": "def helper():\n    pass\n\n\ndef build(activty, ds, *, window):\n    return activty\n",
}


@dataclass(frozen=True)
class Expected:
    """An error lint must print: in `file`, on the line holding `needle` (after `after`), where `token` starts."""

    file: str
    needle: str
    token: str
    key: str
    message: str
    after: str = ""

    def prefix(self, root: Path) -> str:
        path = root / self.file
        lines = path.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if self.after in line) if self.after else 0
        number = next(i for i in range(start, len(lines)) if self.needle in lines[i])
        column = lines[number].index(self.token) + 1
        return f"{path}:{number + 1}:{column}: {self.key}: "


def spec(name: str, *edits: tuple[str, str]) -> str:
    text = BASE.replace("NAME", name)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder: shared contracts, suite and feature jobs; specs go to `pipelines/`."""
    monkeypatch.setenv("SKYLIFT_PROJECT", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    for folder, files in {"schemas": {"activity.yaml": CONTRACT, "outcomes.yaml": OUTCOMES},
                          "suites": {"activity.yaml": SUITE},
                          "lintjobs": {"__init__.py": "", **JOBS}, "pipelines": {}}.items():
        (tmp_path / folder).mkdir()
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text)
    yield tmp_path
    # finding `lintjobs.good` imported the package `lintjobs`: the next test's is another folder
    for name in [m for m in sys.modules if m == "lintjobs" or m.startswith("lintjobs.")]:
        del sys.modules[name]


def write(root: Path, relative: str, text: str) -> None:
    (root / relative).write_text(text)


def broken_project(root: Path) -> list[Expected]:
    """At least 15 distinct broken specs, with their broken contracts, suites and feature jobs."""
    p = "pipelines/"
    write(root, p + "a_typo.yaml", spec("a_typo", ("lookback_days: 3", "lookback_dayz: 3")))
    write(root, p + "b_cron.yaml", spec("b_cron", ('"0 2 * * *"', '"0 2 * *"')))
    # a schema error does not hide the checks that need only the raw YAML: all three are reported
    write(root, p + "c_three.yaml", spec("c_three", ("max_depth: 4, eta", "max_dept: 4, eta"),
                                         ("schedule: \"0 2 * * *\"", "schedule: \"61 2 * * *\""),
                                         ("  nightly:\n", "  nightly:\n    max_active_runs: 0\n")))
    write(root, p + "d_param_default.yaml", spec("d_param_default", ("default: 4, minimum", "default: 40, minimum")))
    write(root, p + "e_param_bounds.yaml", spec("e_param_bounds", ("minimum: 1, maximum", "minimum: 20, maximum")))
    write(root, "schemas/typo.yaml", CONTRACT.replace("{type: int32}", "{type: integer}")
          .replace("key: [customer_id]", "key: [customer]"))
    write(root, p + "f_contract.yaml", spec("f_contract", ("schemas/activity.yaml", "schemas/typo.yaml")))
    write(root, "suites/bad.yaml", SUITE.replace("expect_column_values_to_be_unique",
                                                 "expect_column_values_to_be_uniqe")
          .replace("max_value: 200", "maxvalue: 200")
          + "  - expect_column_values_to_not_be_null: {column: minuts}\n    on_failure: ignore\n")
    write(root, p + "g_suite.yaml", spec("g_suite", ("suites/activity.yaml", "suites/bad.yaml")))
    write(root, p + "h_no_module.yaml", spec("h_no_module", ("lintjobs.good:build", "lintjobs.gone:build")))
    write(root, p + "i_no_function.yaml", spec("i_no_function", ("lintjobs.good:build", "lintjobs.good:buidl")))
    write(root, p + "j_signature.yaml", spec("j_signature", ("lintjobs.good:build", "lintjobs.wrong_args:build")))
    write(root, p + "k_label_column.yaml", spec("k_label_column", ("column: churned", "column: churn"),
                                                ("target: churned", "target: churn")))
    write(root, p + "l_train_key.yaml", spec("l_train_key", ("key: [customer_id]\n  par", "key: [customer]\n  par")))
    write(root, p + "m_date_column.yaml", spec("m_date_column", ("date_column: event_date", "date_column: event_day")))
    write(root, p + "n_metric.yaml", spec("n_metric", ("metric: auc", "metric: acu")))
    write(root, p + "o_missing_file.yaml", spec("o_missing_file", ("schemas/outcomes.yaml", "schemas/outcome.yaml")))
    write(root, p + "p_yaml.yaml", "pipeline: p_yaml\n\tdescription: tab-indented\n")
    write(root, p + "q_dup_a.yaml", spec("q_dup_a", ("model_name: q_dup_a", "model_name: shared")))
    write(root, p + "r_dup_b.yaml", spec("r_dup_b", ("model_name: r_dup_b", "model_name: shared")))
    write(root, p + "s_reserved.yaml", spec("s_reserved", ("      max_depth: {type", "      ds: {type: string}\n"
                                                           "      max_depth: {type")))
    return [
        Expected(p + "a_typo.yaml", "lookback_dayz", "lookback_dayz", "features.lookback_dayz",
                 "unknown key; did you mean 'lookback_days'?"),
        Expected(p + "b_cron.yaml", "schedule:", "schedule", "dags.nightly.schedule",
                 "'0 2 * *' is not a cron expression"),
        Expected(p + "c_three.yaml", "max_active_runs", "max_active_runs", "dags.nightly.max_active_runs",
                 "Input should be greater than or equal to 1"),
        Expected(p + "c_three.yaml", "schedule:", "schedule", "dags.nightly.schedule",
                 "'61 2 * * *' is not a cron expression"),
        Expected(p + "c_three.yaml", "max_dept", "max_dept", "train.params.max_dept",
                 "not a xgboost parameter; did you mean 'max_depth'?"),
        Expected(p + "d_param_default.yaml", "max_depth: {type", "max_depth", "dags.retrain.params.max_depth",
                 "default 40 is outside the bounds [1.0, 12.0]"),
        Expected(p + "e_param_bounds.yaml", "max_depth: {type", "max_depth", "dags.retrain.params.max_depth",
                 "minimum 20.0 is above maximum 12.0"),
        Expected("schemas/typo.yaml", "sessions", "type", "columns.sessions.type",
                 "unknown type 'integer'"),
        Expected("schemas/typo.yaml", "key:", "customer", "key.0",
                 "key column 'customer' is not a declared column; did you mean 'customer_id'?"),
        Expected("suites/bad.yaml", "uniqe", "expect", "expectations.0.expect_column_values_to_be_uniqe",
                 "unknown expectation 'expect_column_values_to_be_uniqe'; did you mean "
                 "'expect_column_values_to_be_unique'?"),
        Expected("suites/bad.yaml", "maxvalue", "maxvalue", "expectations.1.expect_column_values_to_be_between"
                 ".maxvalue", "takes no argument 'maxvalue'; did you mean 'max_value'?"),
        Expected("suites/bad.yaml", "minuts", "column: minuts",
                 "expectations.2.expect_column_values_to_not_be_null.column",
                 "column 'minuts' is not in the contract of source 'activity' (schemas/activity.yaml); "
                 "did you mean 'minutes'?"),
        Expected("suites/bad.yaml", "on_failure: ignore", "on_failure", "expectations.2.on_failure",
                 "must be one of ['fail', 'warn', 'quarantine']"),
        Expected(p + "h_no_module.yaml", "job:", "job", "features.job", "module 'lintjobs.gone' not found"),
        Expected(p + "i_no_function.yaml", "job:", "job", "features.job",
                 "module 'lintjobs.good' defines no function 'buidl'; did you mean lintjobs.good:build?"),
        Expected(p + "j_signature.yaml", "job:", "job", "features.job",
                 "lintjobs.wrong_args:build (line 5) takes ['activty', 'ds', 'window'], but it is called with the "
                 "sources ['activity'] and 'ds' as keyword arguments"),
        Expected(p + "k_label_column.yaml", "labels:", "column", "labels.column",
                 "column 'churn' is not in the contract of source 'outcomes' (schemas/outcomes.yaml); "
                 "did you mean 'churned'?"),
        Expected(p + "l_train_key.yaml", "key: [customer]", "customer", "train.key.0",
                 "column 'customer' is not in the contract of source 'activity'"),
        Expected(p + "m_date_column.yaml", "date_column: event_day", "date_column",
                 "sources.activity.completion.date_column",
                 "column 'event_day' is not in the contract of source 'activity' (schemas/activity.yaml); "
                 "did you mean 'event_date'?"),
        Expected(p + "n_metric.yaml", "metric: acu", "metric", "deploy.gate.metric",
                 "'acu' is not a classification metric"),
        Expected(p + "o_missing_file.yaml", "schemas/outcome.yaml", "schema", "sources.outcomes.schema",
                 "file 'schemas/outcome.yaml' not found"),
        Expected(p + "q_dup_a.yaml", "model_name: shared", "shared", "register.model_name",
                 f"registered model 'shared' is also written by {root / p / 'r_dup_b.yaml'}:"),
        Expected(p + "r_dup_b.yaml", "model_name: shared", "shared", "register.model_name",
                 f"registered model 'shared' is also written by {root / p / 'q_dup_a.yaml'}:"),
        Expected(p + "s_reserved.yaml", "ds: {type", "ds", "dags.retrain.params.ds", "'ds' is a built-in parameter"),
    ]


def test_lint_prints_every_error_of_every_spec_with_file_line_and_column(project, capsys):
    expected = broken_project(project)
    assert main(["lint", str(project / "pipelines")]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    for case in expected:
        prefix = case.prefix(project)
        found = any(line.startswith(prefix) and case.message in line for line in lines)
        assert found, f"{prefix}{case.message}\nnot among:\n" + "\n".join(lines)
    syntax = [line for line in lines if "p_yaml.yaml" in line]
    assert len(syntax) == 1 and syntax[0].startswith(f"{project / 'pipelines' / 'p_yaml.yaml'}:2:1: not valid YAML: ")
    # nothing else: a broken file's neighbours report no error of its own, a spec line is never reported twice
    errors = [line for line in lines if not line.endswith("spec(s)")]
    assert len(errors) == len(expected) + 1, "\n".join(errors)
    assert lines[-1] == f"{len(expected) + 1} error(s) in 19 of 19 spec(s)"
    assert out == ""


def test_check_is_an_alias_of_lint(project, capsys):
    write(project, "pipelines/b_cron.yaml", spec("b_cron", ('"0 2 * * *"', '"0 2 * *"')))
    assert main(["check", str(project / "pipelines" / "b_cron.yaml")]) == 1
    assert "dags.nightly.schedule: '0 2 * *' is not a cron expression" in capsys.readouterr().err


def test_a_correct_spec_has_no_lint_problem(project):
    write(project, "pipelines/good.yaml", spec("good"))
    result = lint_spec(project / "pipelines" / "good.yaml")
    assert result.problems == ()
    assert result.spec is not None and result.spec.pipeline == "good"


def test_the_one_source_shorthand_passes_the_frame_positionally(project):
    """`build(frame, ds)`: the shorthand calls the job positionally, so any parameter names bind."""
    shorthand = spec("short").split("sources:")[0] + (
        "source: {uri: \"activity/{ds}/\", schema: schemas/activity.yaml}\n"
        "validate: {suite: suites/activity.yaml}\n"
        "features: {job: lintjobs.good:build}\n"
        "dags: {nightly: {stages: [ingest, validate, features]}}\n")
    write(project, "pipelines/short.yaml", shorthand)
    assert lint_spec(project / "pipelines" / "short.yaml").problems == ()
    write(project, "lintjobs/three.py", "def build(frame, ds, extra):\n    return frame\n")
    write(project, "pipelines/short.yaml", shorthand.replace("lintjobs.good:build", "lintjobs.three:build"))
    (problem,) = lint_spec(project / "pipelines" / "short.yaml").problems
    assert problem.key == "features.job" and "missing a required argument: 'extra'" in problem.message


def test_a_copied_project_is_linted_from_any_folder(tmp_path, monkeypatch, capsys):
    """The tutorial's `skylift lint /tmp/parcels/dags/pipelines`, run from elsewhere: the spec's paths
    and its feature package belong to the folder holding its dags/pipelines/ (or to --project)."""
    from tests.e2e.own_project import write_project

    root = write_project(tmp_path / "parcels")
    monkeypatch.delenv("SKYLIFT_PROJECT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert main(["lint", str(root / "dags" / "pipelines")]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out == f"{root / 'dags' / 'pipelines' / 'parcels.yaml'}: ok (parcels: " \
                                          "parcels_daily, parcels_retrain)\n"
        moved = tmp_path / "specs"
        moved.mkdir()
        (moved / "parcels.yaml").write_text((root / "dags" / "pipelines" / "parcels.yaml").read_text())
        assert main(["lint", "--project", str(root), str(moved)]) == 0, capsys.readouterr().err
        assert main(["lint", str(moved)]) == 1  # neither --project nor a project layout: this repository's paths
        assert "source.schema: file 'contracts/shipments.yaml' not found" in capsys.readouterr().err
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
            del sys.modules[name]
