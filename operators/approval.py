"""Human approval between the gate and the alias flip, on Airflow's own human-in-the-loop
`ApprovalOperator` (standard provider).

The task reads the `gate` task's result. When the gate did not clear a new version there is
nothing to ask and the task skips (and `deploy` with it). Otherwise the person sees the gate's
verdict, its numbers and a link to its report in the UI's "Required actions" (or answers through
the REST API's HITL endpoints), with an optional comment. On resume the answer, or the timeout's
default, is recorded in the model's audit trail (include/approval.py) before Airflow acts on it:
Approve lets `deploy` move the alias; Reject or a timeout that rejects skips `deploy`, so the
champion stays, and marks the version `rejected` in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowSkipException

from include.approval import APPROVE_OPTION, COMMENT, DECISION_XCOM_KEY, REJECT_OPTION
from include.errors import RegistryError
from operators.base import SkyliftOperator
from operators.links import GATE_REPORT_XCOM_KEY, GateReportLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import TaskGroup

    from operators.spec.models import PipelineSpec

GROUP = "promotion"  # the task group of gate -> approve -> deploy (task ids unprefixed)
GATE_TASK, APPROVE_TASK, DEPLOY_TASK = "gate", "approve", "deploy"


class PromotionApprovalOperator(SkyliftOperator, ApprovalOperator):
    ui_color = "#fdf3d8"
    operator_extra_links = (GateReportLink(),)

    def __init__(self, *, model_name: str, gate_task_id: str = "gate", approvers: list[str] | None = None,
                 timeout_minutes: int = 24 * 60, on_timeout: str = "reject", **kwargs: Any) -> None:
        if on_timeout not in ("reject", "approve"):
            raise ValueError(f"on_timeout must be 'reject' or 'approve', not {on_timeout!r}")
        users = [{"id": user, "name": user} for user in approvers or []]
        # Airflow hands the DAG's trigger-form params in too; the form shows only the task's own.
        params = kwargs.pop("params", None)
        params = params if isinstance(params, ParamsDict) else ParamsDict(params or {})
        params[COMMENT] = Param("", type=["null", "string"], title="Comment", maxLength=2000, source="task",
                                description="Why you approve or reject; recorded in the model's audit trail.")
        super().__init__(
            subject=f"Promote {model_name} to champion?",  # the version's own subject is set in execute
            defaults=[APPROVE_OPTION if on_timeout == "approve" else REJECT_OPTION],
            response_timeout=timedelta(minutes=timeout_minutes), assigned_users=users or None,
            params=params, **kwargs)
        self.model_name = model_name
        self.gate_task_id = gate_task_id
        self.approvers = list(approvers or [])
        self.timeout_minutes = timeout_minutes
        self.on_timeout = on_timeout

    def request(self, context: Any) -> Any:
        from include.approval import ApprovalRequest

        ti = context["ti"]
        gated = ti.xcom_pull(task_ids=self.gate_task_id)
        if not gated:
            raise RegistryError(f"task {self.gate_task_id!r} left no gate result for model {self.model_name!r}")
        return ApprovalRequest.from_gate(
            self.model_name, gated, f"{ti.dag_id}/{ti.run_id}", report_link=report_url(gated.get("report")) or None,
            approvers=tuple(self.approvers), timeout_minutes=self.timeout_minutes, on_timeout=self.on_timeout)

    def execute(self, context: Any) -> Any:
        request = self.request(context)
        if not request.wanted:
            why = (f"v{request.version} is champion already" if request.champion == request.version
                   else f"the gate kept v{request.champion or '-'}: {request.gate.get('verdict')}")
            raise AirflowSkipException(f"nothing to approve for {self.model_name}: {why}")
        context["ti"].xcom_push(key=GATE_REPORT_XCOM_KEY, value=self._gated(context).get("report"))
        self.subject, self.body = request.subject(), request.body()
        self.log.info("asking for approval: %s (answer by %s within %d minutes)", self.subject,
                      ", ".join(self.approvers) or "any user allowed on the DAG", self.timeout_minutes)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Record the answer first (a failure here leaves `deploy` waiting, not promoted), then let
        the ApprovalOperator skip `deploy` on a rejection."""
        from include import approval, registry
        from include.audit import AuditTrail

        request = self.request(context)
        decision = approval.ApprovalDecision.from_event(event)
        trail = AuditTrail(self.lake)
        recorded = approval.record(trail, request, decision, gate_report=self._gated(context).get("report"))
        event_id = recorded.event.seq
        if not decision.approved and recorded.new:
            registry.set_status(self.mlflow_hook.client, self.model_name, request.version, "rejected",
                                f"{decision.reason(request)} at {decision.at[:19]}Z (audit event {event_id})")
        context["ti"].xcom_push(key=DECISION_XCOM_KEY, value=decision.to_dict())
        if decision.approved:
            self.log.info("%s (audit event %s): deploy promotes v%s", decision.reason(request), event_id,
                          request.version)
        else:
            self.log.info("%s (audit event %s): deploy is skipped, v%s stays champion", decision.reason(request),
                          event_id, request.champion or "-")
        return super().execute_complete(context=context, event=event)

    def _gated(self, context: Any) -> dict[str, Any]:
        return context["ti"].xcom_pull(task_ids=self.gate_task_id) or {}


def promotion_group(spec: PipelineSpec) -> Callable[..., TaskGroup]:
    """The deploy stage of a spec with `approval:`: given the deploy operator's arguments, the
    group gate -> approve -> deploy. The gate decides and reports without moving anything; deploy
    moves the alias (and rolls it out) only after a person approved."""
    from airflow.sdk import TaskGroup

    from operators.deploy import DeployModelOperator

    approval = spec.approval

    def build(**arguments: Any) -> TaskGroup:
        arguments = {k: v for k, v in arguments.items() if k != "task_id"}
        with TaskGroup(GROUP, prefix_group_id=False, tooltip="gate, then a person approves, then deploy") as group:
            gate = DeployModelOperator(**{**arguments, "serving": None} if "serving" in arguments else arguments,
                                       mode="gate", task_id=GATE_TASK)
            approve = PromotionApprovalOperator(
                task_id=APPROVE_TASK, model_name=spec.register_.model_name, gate_task_id=GATE_TASK,
                approvers=approval.approvers, timeout_minutes=approval.timeout_minutes,
                on_timeout=approval.on_timeout, pipeline=spec.pipeline)
            deploy = DeployModelOperator(**arguments, mode="promote", gate_task_id=GATE_TASK,
                                         approval_task_id=APPROVE_TASK, task_id=DEPLOY_TASK)
            gate >> approve >> deploy
        return group

    return build
