"""A person approves a promotion in the Airflow UI, in Chromium, against the production stack.

One run of the stack's approval pipeline (tests/integration/approval_pipeline.py: train ->
register -> gate -> approve -> deploy) waits for an answer. Logged in as admin, the person opens
the approve task's "Required Actions" page, reads the gate's verdict and numbers in the request,
types a comment and clicks Approve. The answer then shows everywhere it must: the run deploys,
the version is champion, and the model's audit trail names the approver and the comment.

The request times out after one minute: the task's page is open before the request comes, and the
answer goes in only once the task is parked (an answer in the moment before races Airflow).
Screenshots go to test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from tests.browser.conftest import run_failure, shot
from tests.integration.approval_pipeline import DAG_ID, DS, MODEL, hitl_path, install, waiting

pytestmark = pytest.mark.browser

COMMENT = "holdout AUC holds up in the UI review; ship it"


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@dataclass(frozen=True)
class Answered:
    run_id: str
    shown: str  # the approval page's text as the person read it before answering
    state: str  # the run's final state


def wait_until_parked(stack, api, run_id: str, timeout: float = 600) -> None:
    """Until the approve task waits for an answer and the scheduler is done with the process that
    parked it (see `waiting`); a run that ends first fails with its report."""
    deadline = time.monotonic() + timeout
    while not waiting(api, run_id, stack):
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        assert run["state"] not in ("success", "failed"), run_failure(api, DAG_ID, run_id)
        assert time.monotonic() < deadline, (f"no approval request after {timeout:.0f}s: "
                                             f"{api.task_states(DAG_ID, run_id)}")
        time.sleep(1)


@pytest.fixture(scope="module")
def answered(admin_page, stack, api, landed) -> Answered:
    """One run of the approval pipeline, approved in the UI with a comment."""
    page = admin_page
    install(stack, api)
    run_id = api.trigger(DAG_ID, None, {"ds": DS})
    # The person watches the approve task; its page polls while the task is active. Loading the UI
    # takes seconds on a busy machine, so that happens now, not within the one-minute answer window.
    page.goto(f"/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/approve")
    wait_until_parked(stack, api, run_id)

    page.locator("a[href$='/tasks/approve/required_actions']").click()  # the tab shows once a request waits
    page.wait_for_url("**/tasks/approve/required_actions")
    approve = page.get_by_test_id("hitl-option-Approve")
    expect(approve).to_be_enabled()
    expect(page.get_by_text(re.compile(rf"^Promote {MODEL} v\d+ to champion\?$")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"holdout rows")).first).to_be_visible()
    shown = page.locator("body").inner_text()
    comment = page.locator("#element_comment")
    comment.fill(COMMENT)
    expect(comment).to_have_value(COMMENT)
    shot(page, "approval-request.png")
    approve.click()
    expect(page.get_by_text("approve response successful")).to_be_visible()
    expect(approve).to_be_disabled()  # the page now shows the answer, and takes no second one
    state = api.wait_for_run(DAG_ID, run_id, timeout=420)
    shot(page, "approval-answered.png")
    return Answered(run_id, shown, state)


@pytest.fixture(scope="module")
def approved(stack, answered):
    """The audit event the approve task recorded for the UI's answer."""
    from include.audit import AuditTrail
    from include.lake import Lake

    events = AuditTrail(Lake("s3://skylift-lake", storage_options=stack.s3_storage_options())).events(MODEL)
    answers = [e for e in events if e.details.get("dag_run") == f"{DAG_ID}/{answered.run_id}"]
    assert [e.action for e in answers] == ["approve"], [(e.action, e.version, e.details.get("dag_run")) for e in events]
    return answers[0], [e.action for e in events if e.version == answers[0].version]


def test_the_request_shows_the_gates_verdict_and_numbers(answered, approved):
    event, _ = approved
    gate, version = event.details["gate"], event.version
    challenger = f"{gate['challenger']['value']:.4f}"
    for seen in (f"Promote {MODEL} v{version} to champion?", f"{gate['verdict']}: challenger v{version}",
                 f"on {gate['n']} holdout rows", challenger, f"moves alias champion to v{version}"):
        assert seen in answered.shown, (seen, answered.shown)


def test_approving_in_the_ui_deploys_and_records_who_and_why(api, stack, answered, approved):
    from include import registry

    assert answered.state == "success", run_failure(api, DAG_ID, answered.run_id)
    states = api.task_states(DAG_ID, answered.run_id)
    assert (states["gate"], states["approve"], states["deploy"]) == ("success", "success", "success"), states
    detail = api.get(hitl_path(answered.run_id))
    assert detail["chosen_options"] == ["Approve"] and detail["params_input"].get("comment") == COMMENT, detail
    assert detail["responded_by_user"]["name"] == "admin", detail

    event, actions = approved
    assert event.actor == "user:admin" and event.reason == f"approved by admin: {COMMENT}", event
    assert event.details["approval"]["comment"] == COMMENT and event.details["approval"]["user_name"] == "admin"
    assert actions == ["approve", "promote"], actions
    assert registry.champion_version(registry.client_for(stack.mlflow_uri), MODEL) == event.version
