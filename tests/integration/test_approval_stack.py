"""Human approval through the real scheduler and the REST API's human-in-the-loop endpoints.

A small pipeline of the stack's own (train -> register -> gate -> approve -> deploy on the churn
features the history nights built) runs three times at once for the same day. A client answers
one request "Approve" and one "Reject" through `PATCH .../hitlDetails`, as a platform team's
tooling or the UI would, and leaves the third unanswered until its one-minute timeout rejects it.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.approval_pipeline import DAG_ID, DS, MODEL, hitl_path, install, waiting
from tests.stack import BIN, service_environment

pytestmark = pytest.mark.integration

CASES = ("approve", "reject", "timeout")
COMMENTS = {"approve": "holdout AUC holds up; ship it", "reject": "wait for the pricing change to settle"}


@pytest.fixture(scope="module")
def release(stack, api, landed):
    """The three runs, answered through the REST API; each run's final state."""
    install(stack, api)
    runs = {case: api.trigger(DAG_ID, None, {"ds": DS}) for case in CASES}
    answers = {}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        for case in ("approve", "reject"):
            if case not in answers and waiting(api, runs[case], stack):
                choice = "Approve" if case == "approve" else "Reject"
                answers[case] = api.patch(hitl_path(runs[case]), {
                    "chosen_options": [choice], "params_input": {"comment": COMMENTS[case]}})
        states = {case: api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")["state"] for case, run_id in runs.items()}
        if all(state in ("success", "failed") for state in states.values()):
            return {"runs": runs, "states": states, "answers": answers}
        time.sleep(2)
    raise AssertionError(f"approval runs did not finish: {[api.failure_report(DAG_ID, r) for r in runs.values()]}")


@pytest.fixture(scope="module")
def registry_client(stack):
    from include import registry

    return registry.client_for(stack.mlflow_uri)


@pytest.fixture(scope="module")
def trail(stack):
    from include.audit import AuditTrail
    from include.lake import Lake

    return AuditTrail(Lake("s3://skylift-lake", storage_options=stack.s3_storage_options()))


def _answer(trail, run_id: str):
    """The audit record of the answer a run's approval request got."""
    [event] = [e for e in trail.events(MODEL) if e.details.get("dag_run") == f"{DAG_ID}/{run_id}"]
    return event


def test_every_run_ends_without_failing(stack, api, release):
    for case, run_id in release["runs"].items():
        if release["states"][case] != "success":
            states = api.task_states(DAG_ID, run_id)
            logs = [stack.task_log(DAG_ID, run_id, task) for task, state in states.items() if state == "failed"]
            raise AssertionError("\n".join([f"{case} run {run_id}: {states}", *logs, "services:",
                                            stack.mentions(run_id)]))


def test_approve_promotes_and_records_who_approved(api, release, registry_client, trail):
    from include import registry

    run_id = release["runs"]["approve"]
    states = api.task_states(DAG_ID, run_id)
    assert (states["gate"], states["approve"], states["deploy"]) == ("success", "success", "success")
    assert release["answers"]["approve"]["responded_by"]["name"] == "admin"
    approved = _answer(trail, run_id)
    version = approved.version
    assert registry.champion_version(registry_client, MODEL) == version
    events = [e for e in trail.events(MODEL) if e.version == version]
    assert [e.action for e in events] == ["approve", "promote"]
    promoted = events[1]
    assert approved.actor == "user:admin" and approved.reason == f"approved by admin: {COMMENTS['approve']}"
    assert approved.details["dag_run"] == f"{DAG_ID}/{run_id}" and approved.details["gate"]["promoted"] is True
    assert promoted.after == version and promoted.details["approval"]["user_name"] == "admin"


@pytest.mark.parametrize("case", ["reject", "timeout"])
def test_reject_and_timeout_keep_the_champion_and_skip_deploy(api, release, registry_client, trail, case):
    from include import registry

    run_id = release["runs"][case]
    states = api.task_states(DAG_ID, run_id)
    assert (states["gate"], states["approve"], states["deploy"]) == ("success", "success", "skipped")
    event = _answer(trail, run_id)
    version = event.version
    assert registry.champion_version(registry_client, MODEL) != version
    assert [e.action for e in trail.events(MODEL) if e.version == version] == [event.action]
    assert not event.moved
    tags = registry_client.get_model_version(MODEL, version).tags
    assert tags[registry.STATUS_TAG] == "rejected"
    if case == "reject":
        assert event.action == "approval_reject" and event.actor == "user:admin"
        assert event.reason == f"rejected by admin: {COMMENTS['reject']}"
    else:
        assert event.action == "approval_timeout" and event.actor == f"{DAG_ID}/{run_id}"
        assert event.reason == "no answer within 1 minute; on_timeout decides reject"
        assert "no answer within 1 minute" in tags[registry.STATUS_DETAIL_TAG]


def test_skylift_history_shows_every_answer(stack, release):
    shown = subprocess.run([str(BIN / "skylift"), "history", MODEL], env={**service_environment(), **stack.env},
                           capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for action, by in (("approve", "user:admin"), ("promote", DAG_ID), ("approval_reject", "user:admin"),
                       ("approval_timeout", DAG_ID)):
        assert any(f" {action} v" in line and f"by {by}" in line for line in lines), (action, shown.stdout)
