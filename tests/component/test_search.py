"""Hyper-parameter search: the search space against the typed parameters, the spec's `train.search`,
the study shared across processes, the pick of the best finished trial, and the DAG it compiles to."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from include.training import search

ROOT = Path(__file__).resolve().parents[2]


def ranges(raw: dict) -> dict:
    return search.parse_space(raw)


def described(framework: str, raw: dict) -> list[str]:
    return [f"{p.name}: {p.message}" for p in search.space_problems(framework, ranges(raw))]


# ---- the space ---------------------------------------------------------------------------------
def test_a_valid_space_of_every_kind_has_no_problem():
    assert described("xgboost", {"max_depth": {"type": "int", "low": 2, "high": 8},
                                 "eta": {"type": "log_float", "low": 0.01, "high": 0.3},
                                 "subsample": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.1},
                                 "tree_method": {"type": "categorical", "choices": ["hist", "approx"]}}) == []
    assert described("pytorch", {"hidden": {"type": "categorical", "choices": [[64, 32], [32]]},
                                 "lr": {"type": "float", "low": 1, "high": 2}}) == []  # an int end is a fine float


@pytest.mark.parametrize("framework,raw,expected", [
    ("xgboost", {"max_dept": {"type": "int", "low": 2, "high": 8}},
     "max_dept: not a xgboost parameter; did you mean 'max_depth'?"),
    ("pytorch", {"hiden": {"type": "categorical", "choices": [[32]]}},
     "hiden: not a pytorch parameter; did you mean 'hidden'?"),
    ("xgboost", {"eta": {"type": "float", "low": 0.0, "high": 0.3}},
     "eta: end 0.0 is outside what xgboost accepts: Input should be greater than 0"),
    ("xgboost", {"max_depth": {"type": "float", "low": 2, "high": 8}},
     "max_depth: is an integer xgboost parameter: use type int, not float"),
    ("xgboost", {"tree_method": {"type": "categorical", "choices": ["hist", "gpu_hist"]}},
     "tree_method: choice 'gpu_hist' is outside what xgboost accepts: Input should be 'hist', 'approx' or 'exact'"),
    ("pytorch", {"hidden": {"type": "categorical", "choices": [[64, 0]]}},
     "hidden: choice [64, 0] is outside what pytorch accepts: Input should be greater than or equal to 1"),
    ("xgboost", {"eta": {"type": "log_float", "low": 0.01, "high": 0.3},
                 "learning_rate": {"type": "log_float", "low": 0.01, "high": 0.3}},
     "learning_rate: is the same parameter as 'eta': search only one of them"),
])
def test_a_bad_range_is_named_with_a_hint(framework, raw, expected):
    assert expected in described(framework, raw)
    with pytest.raises(ValueError, match="^" + expected.split(":")[0]):
        search.check_space(framework, ranges(raw))


@pytest.mark.parametrize("raw,expected", [
    ({"type": "int", "low": 8, "high": 2}, "low 8 is above high 2"),
    ({"type": "log_float", "low": 0.0, "high": 1.0}, "greater than 0"),
    ({"type": "int", "low": 0, "high": 9, "log": True}, "log-scale int range needs low >= 1"),
    ({"type": "categorical", "choices": []}, "at least 1 item"),
    ({"type": "categorical", "choices": ["a", "a"]}, "lists a choice twice"),
    ({"type": "normal", "low": 0, "high": 1}, "does not match any of the expected tags"),
    ({"type": "int", "low": 1, "high": 3, "stepp": 1}, "Extra inputs are not permitted"),
])
def test_a_malformed_range_is_refused(raw, expected):
    with pytest.raises(ValidationError, match=expected):
        TypeAdapter(search.ParamRange).validate_python(raw)


# ---- the spec ----------------------------------------------------------------------------------
SPEC = """\
pipeline: tuning_unit
description: a spec to check train.search
features: {{job: "include.features.churn:build"}}
train:
  framework: {framework}
  target: y
  key: [id]
  search:
    params:
{params}
    metric: {metric}
register: {{model_name: tuning_unit}}
dags:
  retrain: {{schedule: {schedule}, stages: [train, register]}}
"""


def spec_problems(tmp_path, framework="xgboost", params="      max_depth: {type: int, low: 1, high: 6}",
                  metric="auc", schedule="null") -> list[str]:
    from operators.spec.loader import inspect_spec

    path = tmp_path / "tuning_unit.yaml"
    path.write_text(SPEC.format(framework=framework, params=params, metric=metric, schedule=schedule))
    return [str(p) for p in inspect_spec(path).problems]


def test_a_spec_with_a_valid_search_loads(tmp_path):
    from operators.spec.loader import load_spec

    assert spec_problems(tmp_path) == []
    spec = load_spec(tmp_path / "tuning_unit.yaml")
    assert spec.train.search.trials == 20 and spec.train.search.parallelism == 2
    assert spec.train.search.enabled is False  # off unless the form switches it on


@pytest.mark.parametrize("framework,params,needle", [
    ("xgboost", "      max_dept: {type: int, low: 1, high: 6}",
     "tuning_unit.yaml:10: train.search.params.max_dept: not a xgboost parameter; did you mean 'max_depth'?"),
    ("pytorch", "      hiden: {type: categorical, choices: [[32], [64]]}",
     "tuning_unit.yaml:10: train.search.params.hiden: not a pytorch parameter; did you mean 'hidden'?"),
])
def test_a_typo_in_a_searched_parameter_is_a_spec_error_with_file_and_line(tmp_path, framework, params, needle):
    problems = spec_problems(tmp_path, framework=framework, params=params,
                             metric="auc" if framework == "xgboost" else "r2")
    assert any(needle in p for p in problems), problems


def test_an_unknown_metric_and_a_search_no_dag_can_run_are_spec_errors(tmp_path):
    problems = spec_problems(tmp_path, metric="acu", schedule="'0 2 * * *'")
    assert any("train.search.metric: 'acu' is not a classification metric" in p and "did you mean 'auc'?" in p
               for p in problems), problems
    assert any("train.search: no DAG can run the search: it runs in an on-demand DAG" in p for p in problems)


# ---- the study ---------------------------------------------------------------------------------
def plan(tmp_path, **overrides) -> search.SearchPlan:
    fields = dict(study_name=search.study_name("tuning_retrain", "manual__2026-03-10T00:00:00+00:00"),
                  storage=f"file://{tmp_path}/optuna", parent_run_id="p", experiment="e", framework="xgboost",
                  space={"max_depth": {"type": "int", "low": 1, "high": 6},
                         "hidden_like": {"type": "categorical", "choices": [[8], [8, 4]]}},
                  metric="auc", direction="maximize", trials=4, seed=3)
    fields.update(overrides)
    return search.SearchPlan(**fields)


def test_the_study_name_is_one_per_dag_run_and_safe_as_a_file_name():
    first = search.study_name("churn_retrain", "manual__2026-03-10T00:00:00+00:00")
    assert first == search.study_name("churn_retrain", "manual__2026-03-10T00:00:00+00:00")
    assert first != search.study_name("churn_retrain", "manual__2026-03-11T00:00:00+00:00")
    assert "/" not in first and ":" not in first and "+" not in first


def test_a_retried_slot_gets_its_unreported_point_back_and_other_slots_get_new_ones(tmp_path):
    the_plan = plan(tmp_path)
    first = search.claim(search.open_study(the_plan, 0), the_plan, slot=0)
    again = search.claim(search.open_study(the_plan, 0), the_plan, slot=0)  # the killed attempt's point
    assert (again.number, again.params, again.resumed) == (first.number, first.params, True)
    other = search.claim(search.open_study(the_plan, 1), the_plan, slot=1)
    assert other.number != first.number and not other.resumed
    assert other.params["hidden_like"] in ([8], [8, 4])  # list choices come back as lists
    study = search.open_study(the_plan)
    search.record(study, first.number, 0.8)
    search.record(study, other.number, None)  # a failed trial
    states = {t.number: t.state.name for t in study.trials}
    assert states == {first.number: "COMPLETE", other.number: "FAIL"}
    # once reported, the slot's next attempt asks for a new point
    third = search.claim(study, the_plan, slot=0)
    assert third.number not in (first.number, other.number)
    # when the search is over, a point whose task was killed for good is failed, not left running
    assert search.fail_unfinished(study) == [third.number]
    assert {t.state.name for t in study.trials} == {"COMPLETE", "FAIL"}


def test_trials_in_separate_processes_share_the_study(tmp_path):
    """Each trial task runs in its own process: the journal file is the study they share."""
    the_plan = plan(tmp_path)
    script = textwrap.dedent(f"""
        from include.training import search
        plan = search.SearchPlan.from_dict({the_plan.as_dict()!r})
        study = search.open_study(plan, 1)
        claimed = search.claim(study, plan, slot=1)
        search.record(study, claimed.number, 0.75)
        print(claimed.number)
    """)
    mine = search.claim(search.open_study(the_plan), the_plan, slot=0)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    theirs = int(out.stdout.split()[-1])
    study = search.open_study(the_plan)
    assert {t.number for t in study.trials} == {mine.number, theirs}
    assert study.best_trial.number == theirs and study.best_value == 0.75


# ---- the pick -------------------------------------------------------------------------------------
def outcome(run_id, number, value):
    return search.TrialOutcome(run_id=run_id, number=number, value=value)


def test_the_best_trial_follows_the_direction_and_ignores_trials_without_a_value():
    found = [outcome("a", 0, 0.7), outcome("b", 1, None), outcome("c", 2, 0.9), outcome("d", 3, float("nan"))]
    assert search.best(found, "maximize").run_id == "c"
    assert search.best(found, "minimize").run_id == "a"
    assert search.best([outcome("x", 5, 0.9), outcome("y", 2, 0.9)], "maximize").run_id == "y"  # tie: lower number
    assert search.best([outcome("b", 1, None)], "maximize") is None
    with pytest.raises(ValueError, match="direction must be"):
        search.best(found, "up")


# ---- the DAG --------------------------------------------------------------------------------------
def test_the_on_demand_dag_gets_the_search_group_and_its_form(tmp_path):
    from operators.search import PLAN_TASK, TRIAL_TASK
    from operators.spec.compiler import dags_from_spec_file

    assert spec_problems(tmp_path) == []
    dag = dags_from_spec_file(tmp_path / "tuning_unit.yaml")["tuning_unit_retrain"]
    trials, train = dag.get_task(TRIAL_TASK), dag.get_task("train")
    assert dag.get_task(PLAN_TASK).downstream_task_ids == {TRIAL_TASK}
    assert trials.max_active_tis_per_dagrun == 2 and trials.downstream_task_ids == {"train"}
    assert train.trigger_rule == "all_done"  # a failed trial does not stop the pick
    assert dag.get_task("register").upstream_task_ids == {"train"}
    assert dag.params["search"] is False and dag.params["search_trials"] == 20


def test_a_scheduled_dag_trains_once_without_a_search(tmp_path):
    from operators.spec.compiler import dags_from_spec_file

    path = tmp_path / "tuning_unit.yaml"
    path.write_text(SPEC.format(framework="xgboost", params="      max_depth: {type: int, low: 1, high: 6}",
                                metric="auc", schedule="null").replace(
        "dags:\n", "dags:\n  nightly: {schedule: '0 2 * * *', stages: [train, register]}\n"))
    dag = dags_from_spec_file(path)["tuning_unit_nightly"]
    assert sorted(dag.task_ids) == ["register", "train"] and "search" not in dag.params


def test_search_off_maps_no_trial(context_for):
    from operators.search import PLAN_XCOM, SearchPlanOperator

    operator = SearchPlanOperator(task_id="search_plan", pipeline="tuning", search={"trials": 4})
    context = context_for("2026-03-10", task_id="search_plan", params={"search": False})
    assert operator.execute(context) == []
    assert context["ti"].xcom_pull("search_plan", key=PLAN_XCOM) == {"enabled": False}


# ---- the pick, from MLflow ----------------------------------------------------------------------
def test_the_pick_reads_the_finished_trials_and_a_killed_one_loses_only_itself(tmp_path):
    from include import registry
    from operators import search as search_ops

    client = registry.client_for(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("skylift/tuning", artifact_location=f"file://{tmp_path}/artifacts")
    parent = client.create_run(experiment, tags={search_ops.ROLE_TAG: "parent"}).info.run_id
    the_plan = plan(tmp_path, parent_run_id=parent, experiment="skylift/tuning")
    runs = {}
    for number, (status, auc) in enumerate([("FINISHED", 0.71), ("FINISHED", 0.83), ("RUNNING", None),
                                            ("FAILED", None), ("FINISHED", 0.79)]):
        run = client.create_run(experiment, tags={search_ops.PARENT_TAG: parent, search_ops.TRIAL_TAG: str(number)})
        client.log_param(run.info.run_id, "max_depth", str(number + 1))
        if auc is not None:
            client.log_metric(run.info.run_id, "auc", auc)
        if status != "RUNNING":  # trial 2 was killed: its run never ended
            client.set_terminated(run.info.run_id, status=status)
        runs[number] = run.info.run_id
    outcomes, others = search_ops.finished_trials(client, the_plan)
    assert sorted(o.number for o in outcomes) == [0, 1, 4] and sorted(others) == sorted([runs[2], runs[3]])
    chosen = search.best(outcomes, the_plan.direction)
    assert (chosen.run_id, chosen.params) == (runs[1], {"max_depth": "2"})
    search_ops.close_parent(client, the_plan, chosen, outcomes, others)
    closed = client.get_run(parent)
    assert closed.info.status == "FINISHED" and closed.data.metrics["best_auc"] == 0.83
    assert closed.data.tags["skylift.search.best_run_id"] == runs[1]
    assert (closed.data.tags["skylift.search.finished_trials"], closed.data.tags["skylift.search.failed_trials"]) == (
        "3", "2")


# ---- skylift plan ------------------------------------------------------------------------------------
def test_skylift_plan_says_what_a_searching_run_would_do(tmp_path, skylift_env, monkeypatch):
    import pyarrow as pa

    from include.lake import Lake
    from operators.plan import plan_run
    from operators.project import Project
    from tests.e2e.own_project import write_project

    root = write_project(tmp_path / "project")
    spec = root / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text().replace("  window_days: 1\n", (
        "  window_days: 1\n  search:\n    params: {max_depth: {type: int, low: 2, high: 5}}\n"
        "    trials: 6\n    parallelism: 3\n    metric: auc\n"), 1))
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)
    with Lake(f"file://{skylift_env}/lake").publish("features", "parcels_features", "2026-03-02") as writer:
        writer.write_table(pa.table({"shipment_id": ["a", "b"], "km_per_kg": [1.0, 2.0], "late": [0, 1]}))
    from datetime import date

    project = Project(root=root, home=tmp_path / "home")
    plan = plan_run(project, "parcels", date(2026, 3, 2), "retrain", {"search": True, "search_trials": 4})
    tasks = {t.task_id: t for t in plan.tasks}
    assert tasks["train_trial"].after == ("search_plan",) and tasks["train"].after == ("train_trial",)
    assert tasks["search_plan"].notes == (
        "4 trials over ['max_depth'], 3 at a time; the best by auc (maximize) goes on to register",)
    assert "picks the best finished trial" in tasks["train"].notes[0]
    off = {t.task_id: t for t in plan_run(project, "parcels", date(2026, 3, 2), "retrain", None).tasks}
    assert off["search_plan"].notes == ("search off for this run: maps no trial, train trains once",)
    assert any("model parameters {'max_depth': 3" in note for note in off["train"].notes)


def test_a_trial_trains_its_point_as_a_child_run_that_no_other_trials_clean_up_touches(context_for, skylift_env):
    from operators.search import PARENT_TAG, TRIAL_TAG, TrialTrainOperator
    from operators.settings import Settings

    trial = TrialTrainOperator(task_id="train_trial", pipeline="tuning", dataset="tuning_features",
                               framework="xgboost", target="churned", key=["customer_id"],
                               model_params={"max_depth": 3, "eta": 0.3}, slot=2, plan_task_id="search_plan")
    trial._plan = plan(skylift_env, parent_run_id="parent123")
    trial._claimed = search.ClaimedTrial(number=5, params={"max_depth": 6})
    config = trial.training_config(context_for("2026-03-10"), Settings.resolve(), ["2026-03-10"])
    assert config["params"] == {"max_depth": 6, "eta": 0.3}  # the point over the spec's parameters
    assert config["run_name"].endswith(".2026-03-10.trial-5")
    tags = config["tags"]
    assert (tags[PARENT_TAG], tags[TRIAL_TAG], tags["skylift.search.slot"]) == ("parent123", "5", "2")
    # the training operator fails RUNNING runs tagged with this DAG run *and* date before a pod starts
    assert "skylift.ds" not in tags and tags["skylift.search.ds"] == "2026-03-10"
