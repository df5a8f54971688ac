"""A small pipeline of the stack's own for the approval tests: train ->
register -> gate -> approve -> deploy on the churn features the history nights built, written into
the stack's test DAG bundle."""

from __future__ import annotations

from tests.integration import stack_pipelines
from tests.integration.stack_pipelines import DS, churn_spec

DAG_ID = "approvals_release"
MODEL = "churn_approved"
SPEC = churn_spec("Churn models that reach champion only once a person approves (the stack's approval test).",
                  "approvals", "Churn classifier promoted only on a person's approval.", """\
train:
  framework: xgboost
  target: churned
  key: [customer_id]
  params: {max_depth: 3, eta: 0.3, num_boost_round: 20}
  window_days: 6
  holdout_days: 2
register: {model_name: churn_approved}
deploy: {gate: {metric: auc, min: 0.5, beat_champion: false}}
approval: {timeout_minutes: 1}
dags:
  release: {schedule: null, stages: [train, register, deploy]}
""")
__all__ = ["DAG_ID", "DS", "MODEL", "SPEC", "hitl_path", "install", "waiting"]


def hitl_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"


def install(stack, api) -> None:
    """Write the spec and its DAG file into the stack's test bundle (idempotent) and wait for the DAG."""
    stack_pipelines.install(stack, api, "approvals", SPEC, DAG_ID)


def waiting(api, run_id: str, stack=None) -> bool:
    """Whether the run's approval request is written, its task parked waiting for an answer and,
    given the stack, the scheduler done with the process that parked it.

    The request exists a moment before the task is parked (`awaiting_input`); an answer in between
    races the task's own state change, and Airflow fails the task. And the process that parked the
    task ends with an executor event "success" for the same try: if the answer has already made
    the task queued again when the scheduler reads that event, Airflow 3.3 takes it for a task
    killed outside its control and fails it. A person takes longer than that; a client answering
    within a second must wait for the scheduler's "TaskInstance Finished ... state=awaiting_input"."""
    try:
        api.get(hitl_path(run_id))
    except AssertionError:  # 404: not yet
        return False
    if api.task_states(DAG_ID, run_id).get("approve") != "awaiting_input":
        return False
    if stack is None:
        return True
    finished = stack.mentions(f"TaskInstance Finished: dag_id={DAG_ID}, task_id=approve, run_id={run_id},")
    return "state=awaiting_input" in finished
