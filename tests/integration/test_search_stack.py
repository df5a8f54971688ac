"""A hyper-parameter search through the real scheduler: the retrain DAG of a small spec of the stack's
own, triggered through the REST API with its form's `search` switched on and 8 trials.

The trials are mapped task instances that the LocalExecutor runs in separate worker processes, 2 at
a time; they share one Optuna study in the stack's PostgreSQL database (skylift_search_storage) and
log child runs of one parent run to the MLflow server. The best trial by AUC is the version that
register creates and the gate promotes. Data: the churn features the history nights built (one
training day and two holdout days of 1200 customers), at most 20 boosting rounds per trial.

Cost (2026-11-26, on a 2-core machine at load average 20-30): the run took 722 s, four rounds of two
trials at 130-265 s each, mostly each trial task's start (parsing the DAG file, reading the lake's
manifests) and its training process's imports; the assertions take 6 s.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.integration.stack_pipelines import DS, churn_spec, install

pytestmark = pytest.mark.integration

DAG_ID = "searches_retrain"
MODEL = "churn_searched"
TRIALS, PARALLELISM = 8, 2
SPEC = churn_spec("Churn models tuned by a hyper-parameter search (the stack's search test).", "searches",
                  "Churn classifier whose parameters a search picks.", """\
train:
  framework: xgboost
  target: churned
  key: [customer_id]
  params: {max_depth: 3, eta: 0.3, num_boost_round: 10}
  window_days: 6
  holdout_days: 2
  search:
    params:
      max_depth: {type: int, low: 2, high: 5}
      eta: {type: log_float, low: 0.05, high: 0.5}
      num_boost_round: {type: int, low: 5, high: 20, step: 5}
    trials: 20
    parallelism: 2
    metric: auc
    seed: 5
register: {model_name: churn_searched}
deploy: {gate: {metric: auc, min: 0.5, beat_champion: false}}
dags:
  retrain: {schedule: null, stages: [train, register, deploy]}
""")


@pytest.fixture(scope="module")
def searched(stack, api, landed):
    """The retrain run, triggered from the form's fields (search on, 8 trials) and waited for."""
    install(stack, api, "searches", SPEC, DAG_ID)
    run_id = api.trigger(DAG_ID, None, {"ds": DS, "search": True, "search_trials": TRIALS})
    return run_id, api.wait_for_run(DAG_ID, run_id, timeout=900)


@pytest.fixture(scope="module")
def instances(api, searched):
    run_id, _ = searched
    return api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]


@pytest.fixture(scope="module")
def client(stack):
    from include import registry

    return registry.client_for(stack.mlflow_uri)


@pytest.fixture(scope="module")
def plan(api, searched):
    """The search plan search_plan handed the trials (its XCom, read through the REST API)."""
    from include.training import search as hyper_search
    from operators import search

    run_id, _ = searched
    entry = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{search.PLAN_TASK}"
                    f"/xcomEntries/{search.PLAN_XCOM}")
    value = json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
    return hyper_search.SearchPlan.from_dict(value)


@pytest.fixture(scope="module")
def trial_runs(client, plan):
    from operators import search

    return search.child_runs(client, plan)


def test_the_search_run_succeeds(stack, api, searched, instances):
    run_id, state = searched
    if state != "success":
        failed = [ti for ti in instances if ti["state"] != "success"]
        logs = [stack.task_log(DAG_ID, run_id, ti["task_id"]) for ti in failed if ti["state"] == "failed"]
        raise AssertionError("\n".join([api.failure_report(DAG_ID, run_id), *logs, "services:",
                                        stack.mentions(run_id)]))


def test_every_trial_ran_as_its_own_task_at_most_two_at_once(instances):
    from operators import search

    trials = [ti for ti in instances if ti["task_id"] == search.TRIAL_TASK]
    assert sorted(ti["map_index"] for ti in trials) == list(range(TRIALS))
    assert {ti["state"] for ti in trials} == {"success"}
    spans = [(datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])) for ti in trials]
    assert most_at_once(spans) <= PARALLELISM, sorted(spans)


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of the spans that overlap at one instant (one ending as another starts: apart)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_the_parent_run_lists_every_trial_and_the_best(client, plan, trial_runs, searched):
    from operators import search

    parent = client.get_run(plan.parent_run_id)
    assert parent.data.tags[search.ROLE_TAG] == "parent"
    assert parent.data.tags[search.SEARCH_RUN_TAG] == searched[0]
    assert parent.info.status == "FINISHED"
    assert len(trial_runs) == TRIALS and {r.info.status for r in trial_runs} == {"FINISHED"}
    assert sorted(int(r.data.tags[search.TRIAL_TAG]) for r in trial_runs) == list(range(TRIALS))
    assert sorted(int(r.data.tags[search.SLOT_TAG]) for r in trial_runs) == list(range(TRIALS))
    assert len({tuple(r.data.params[name] for name in plan.space) for r in trial_runs}) > 1
    best = best_trial(trial_runs)
    assert parent.data.tags["skylift.search.best_run_id"] == best.info.run_id
    assert parent.data.tags["skylift.search.finished_trials"] == str(TRIALS)
    assert parent.data.metrics["best_auc"] == pytest.approx(best.data.metrics["auc"])


def best_trial(trial_runs):
    """The highest holdout AUC; ties go to the lower trial number, as the search decides them."""
    from operators import search

    return max(trial_runs, key=lambda r: (r.data.metrics["auc"], -int(r.data.tags[search.TRIAL_TAG])))


def test_the_best_trial_is_registered_and_gated(client, instances, trial_runs):
    from include import registry
    from operators.deploy import GATE_DECISION_TAG

    states = {ti["task_id"]: ti["state"] for ti in instances if ti["map_index"] == -1}
    assert (states["train"], states["register"], states["deploy"]) == ("success", "success", "success")
    [version] = client.search_model_versions(f"name = '{MODEL}'")
    assert version.run_id == best_trial(trial_runs).info.run_id
    decision = json.loads(version.tags[GATE_DECISION_TAG])  # the deploy task's gate judged this version
    assert decision["metric"] == "auc" and decision["promoted"] is True and decision["n"] > 0
    assert registry.champion_version(client, MODEL) == str(version.version)


def test_the_study_in_postgresql_holds_every_trial(plan, trial_runs):
    from optuna.trial import TrialState

    from include.training import search as hyper_search

    assert plan.storage.startswith("postgresql")  # one study every worker process reaches
    study = hyper_search.open_study(plan)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * TRIALS
    values = sorted(t.value for t in study.trials)
    assert values == pytest.approx(sorted(r.data.metrics["auc"] for r in trial_runs))
