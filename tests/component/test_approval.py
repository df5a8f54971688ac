"""Human approval of a promotion: the spec block, the compiled gate -> approve -> deploy chain, the
request a person reads, and the audit record of each answer (approve, reject, timeout)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from include import approval
from include.audit import APPROVAL_REJECT, APPROVAL_TIMEOUT, APPROVE, AuditTrail
from include.errors import RegistryError, SpecError
from operators.spec.compiler import dags_from_spec_file
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
CHURN = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()
BLOCK = "approval: {approvers: [alice, bob], timeout_minutes: 90}\n"
GATE = {"promoted": True, "verdict": "promote", "forced": False, "metric": "auc", "n": 480,
        "challenger": {"value": 0.81, "low": 0.78, "high": 0.84},
        "champion": {"value": 0.79, "low": 0.76, "high": 0.82},
        "gain": {"value": 0.02, "low": 0.0, "high": 0.04}, "reasons": ["auc 0.8100 >= min 0.70", "beats champion"]}
AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def _spec_file(tmp_path: Path, block: str = BLOCK, text: str = CHURN) -> Path:
    folder = tmp_path / "pipelines"
    folder.mkdir(exist_ok=True)
    path = folder / "churn.yaml"
    anchor = "register:\n  model_name: churn\n"
    assert anchor in text
    path.write_text(text.replace(anchor, anchor + "\n" + block))
    return path


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    return dags_from_spec_file(_spec_file(tmp_path_factory.mktemp("spec")))


def test_the_approval_task_sits_between_the_gate_and_deploy(dags):
    for dag_id in ("churn_nightly", "churn_retrain"):
        dag = dags[dag_id]
        gate, approve, deploy = (dag.get_task(t) for t in ("gate", "approve", "deploy"))
        assert gate.upstream_task_ids == {"register"} and gate.downstream_task_ids == {"approve"}, dag_id
        assert approve.upstream_task_ids == {"gate"} and approve.downstream_task_ids == {"deploy"}, dag_id
        assert deploy.upstream_task_ids == {"approve"}, dag_id
        assert (gate.mode, deploy.mode) == ("gate", "promote")
        assert gate.task_group.group_id == "promotion"
    # a rejection skips deploy; the day is still scored with the champion there is
    score = dags["churn_nightly"].get_task("score")
    assert score.upstream_task_ids == {"deploy", "features"}
    assert score.trigger_rule == "none_failed_min_one_success"


def test_the_approval_task_is_airflows_approval_operator_with_the_specs_settings(dags):
    from datetime import timedelta

    from airflow.providers.standard.operators.hitl import ApprovalOperator

    approve = dags["churn_nightly"].get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert approve.options == ["Approve", "Reject"]
    assert approve.defaults == ["Reject"]  # on_timeout: reject
    assert approve.response_timeout == timedelta(minutes=90)
    assert approve.assigned_users == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
    # the form asks for a comment only, not the DAG's trigger-form fields
    assert list(approve.serialized_params) == ["comment"]
    assert approve.retries == 1 and approve.owner == "ml-platform"


def test_without_approval_deploy_is_one_task_that_gates_and_promotes():
    dag = dags_from_spec_file(ROOT / "dags" / "pipelines" / "churn.yaml")["churn_nightly"]
    assert "gate" not in dag.task_dict and "approve" not in dag.task_dict
    assert dag.get_task("deploy").mode == "gate_and_promote"
    assert dag.get_task("deploy").upstream_task_ids == {"register"}


def test_on_timeout_approve_makes_silence_consent(tmp_path):
    path = _spec_file(tmp_path, "approval: {timeout_minutes: 30, on_timeout: approve}\n")
    approve = dags_from_spec_file(path)["churn_retrain"].get_task("approve")
    assert approve.defaults == ["Approve"] and approve.assigned_users is None


@pytest.mark.parametrize(("block", "expected"), [
    ("approval: {timeout_minutes: 0}\n", "timeout_minutes"),
    ("approval: {on_timeout: escalate}\n", "on_timeout"),
    ("approval: {approvers: []}\n", "approvers"),
    ("approval: {approver: [alice]}\n", "approver"),
])
def test_a_bad_approval_block_is_refused_naming_the_key(tmp_path, block, expected):
    with pytest.raises(SpecError) as caught:
        load_spec(_spec_file(tmp_path, block))
    assert "churn.yaml" in str(caught.value) and expected in str(caught.value)


def test_approval_needs_a_deploy_section(tmp_path):
    text = CHURN.split("\ndeploy:")[0] + "\ndags:\n  nightly: {schedule: null, stages: [features, train, register]}\n"
    with pytest.raises(SpecError, match="needs a `deploy:` section"):
        load_spec(_spec_file(tmp_path, BLOCK, text))


# ---- what the person reads ----

def _request(**overrides) -> approval.ApprovalRequest:
    result = {"version": "7", "previous_champion": "5", "gate": GATE, **overrides}
    return approval.ApprovalRequest.from_gate("churn", result, "churn_nightly/manual__1",
                                              report_link="/skylift/report?uri=s3%3A%2F%2Flake%2Fgate.html",
                                              approvers=("alice",), timeout_minutes=90)


def test_the_request_shows_the_gates_numbers_the_report_and_the_stakes():
    request = _request()
    assert request.wanted
    assert request.subject() == "Promote churn v7 to champion?"
    body = request.body()
    assert "**promote**: challenger v7 against champion v5 on 480 holdout rows" in body
    assert "| auc | 0.8100 [0.7800, 0.8400] | 0.7900 [0.7600, 0.8200] | +0.0200 [+0.0000, +0.0400] | pass |" in body
    assert "[Open the full gate report](/skylift/report?uri=s3%3A%2F%2Flake%2Fgate.html)" in body
    assert "**Reject** keeps it where it is: v5 stays champion" in body
    assert "No answer within 90 minutes decides **reject**." in body
    assert "Who may answer: alice." in body


def test_nothing_is_asked_when_the_gate_kept_the_champion():
    assert not _request(gate={**GATE, "promoted": False, "verdict": "keep champion"}).wanted
    assert not _request(previous_champion="7").wanted  # already champion: nothing would move
    assert _request(gate={**GATE, "forced": True}).subject().endswith("(forced past the gate)?")
    with pytest.raises(RegistryError, match="lacks 'gate'"):
        approval.ApprovalRequest.from_gate("churn", {"version": "7"}, "d/r")


# ---- the answers and their audit records ----

def _event(choice: str, *, user: str | None = "alice", comment: str | None = None, timedout: bool = False) -> dict:
    return {"chosen_options": [choice], "params_input": {"comment": comment} if comment is not None else {},
            "responded_at": AT, "responded_by_user": {"id": user, "name": user} if user else None,
            "timedout": timedout}


@pytest.fixture
def trail(tmp_path):
    from include.lake import Lake

    return AuditTrail(Lake(f"file://{tmp_path}/lake"))


@pytest.mark.parametrize(("event", "action", "actor", "reason", "approved"), [
    (_event("Approve", comment="numbers hold up"), APPROVE, "user:alice", "approved by alice: numbers hold up", True),
    (_event("Reject", user="bob", comment="wait for Monday's data"), APPROVAL_REJECT, "user:bob",
     "rejected by bob: wait for Monday's data", False),
    (_event("Reject", user=None, timedout=True), APPROVAL_TIMEOUT, "churn_nightly/manual__1",
     "no answer within 90 minutes; on_timeout decides reject", False),
])
def test_each_answer_lands_in_the_audit_trail(trail, event, action, actor, reason, approved):
    request = _request()
    decision = approval.ApprovalDecision.from_event(event)
    assert decision.approved is approved
    recorded = approval.record(trail, request, decision, gate_report="s3://lake/reports/churn_gate/gate.html")
    assert recorded.new
    [stored] = trail.events("churn")
    assert (stored.action, stored.version, stored.actor, stored.reason) == (action, "7", actor, reason)
    assert (stored.before, stored.after) == ("5", "5")  # an answer moves nothing; `promote` does
    assert stored.details["approval"]["at"] == AT.isoformat()
    assert stored.details["gate"]["n"] == 480 and stored.details["dag_run"] == "churn_nightly/manual__1"
    assert stored.details["report"] == "s3://lake/reports/churn_gate/gate.html"
    assert f"{action} v7: stays v5  by {actor}  {reason}" in stored.line()  # as `skylift history` prints it


def test_a_retried_task_does_not_record_the_same_answer_twice(trail):
    request, decision = _request(), approval.ApprovalDecision.from_event(_event("Reject"))
    first = approval.record(trail, request, decision)
    again = approval.record(trail, request, decision)
    assert not again.new and again.event.seq == first.event.seq
    assert len(trail.events("churn")) == 1
    asked_again = {**_event("Reject"), "responded_at": datetime(2026, 11, 26, tzinfo=UTC)}
    later = approval.ApprovalDecision.from_event(asked_again)
    assert approval.record(trail, request, later).new  # a new answer (asked again) is a new record


def test_an_answer_that_is_not_approve_or_reject_is_refused():
    with pytest.raises(RegistryError, match="must be one of 'Approve' or 'Reject'"):
        approval.ApprovalDecision.from_event(_event("Maybe"))
    with pytest.raises(RegistryError, match="ended without an answer"):
        approval.ApprovalDecision.from_event({"error": "timeout passed", "error_type": "timeout"})


# ---- the operator, on a task context without a scheduler ----

def _operator():
    from operators.approval import PromotionApprovalOperator

    return PromotionApprovalOperator(task_id="approve", model_name="churn", pipeline="churn", timeout_minutes=90)


def test_the_operator_skips_when_there_is_nothing_to_approve(context_for):
    from airflow.sdk.exceptions import AirflowSkipException

    kept = {"version": "7", "previous_champion": "5", "gate": {**GATE, "promoted": False, "verdict": "keep champion"}}
    context = context_for("2026-11-20", task_id="approve", xcoms={("gate", "return_value"): kept})
    with pytest.raises(AirflowSkipException, match="nothing to approve for churn: the gate kept v5: keep champion"):
        _operator().execute(context)


def test_the_operator_records_an_approval_before_deploy_runs(context_for, skylift_env):
    from include.lake import Lake

    gated = {"version": "7", "previous_champion": "5", "gate": GATE, "report": "file:///lake/reports/gate.html"}
    context = context_for("2026-11-20", task_id="approve", run_id="manual__a", xcoms={("gate", "return_value"): gated})
    payload = _operator().execute_complete(context, _event("Approve", comment="ship it"))
    assert payload["chosen_options"] == ["Approve"]
    decision = context["ti"].xcoms[("approve", approval.DECISION_XCOM_KEY)]
    assert decision["approved"] and decision["user_name"] == "alice" and decision["comment"] == "ship it"
    from operators.settings import Settings

    [event] = AuditTrail(Lake(Settings.resolve().lake_root)).events("churn")
    assert (event.action, event.actor, event.details["dag_run"]) == (APPROVE, "user:alice", "unit/manual__a")


def test_skylift_plan_says_who_approves_and_what_waits(tmp_path, skylift_env, monkeypatch):
    import sys
    from datetime import date

    from operators.plan import plan_run
    from operators.project import Project
    from tests.e2e.own_project import write_project

    root = write_project(tmp_path / "project")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the project
    spec = root / "dags" / "pipelines" / "parcels.yaml"
    spec.write_text(spec.read_text() + "\napproval: {approvers: [alice], timeout_minutes: 120}\n")
    plan = plan_run(Project(root=root, home=tmp_path / "home"), "parcels", date(2026, 3, 2), "retrain", None)
    tasks = {t.task_id: t for t in plan.tasks}
    assert [t.task_id for t in plan.tasks][-3:] == ["gate", "approve", "deploy"]
    assert tasks["gate"].writes == ("reports/parcels_gate/ds=2026-03-02; nothing moves until a person approves",)
    assert tasks["approve"].notes == ("asks alice to approve a promotion the gate clears; no answer within 120 "
                                      "minutes decides reject; reject skips deploy",)
    assert tasks["deploy"].writes[0] == "parcels@champion once task approve approves the version task gate cleared"
