"""Human approval of a promotion: what the person is asked, and how the answer is recorded.

Airflow-free. `operators/approval.py` puts the request on Airflow's own human-in-the-loop
`ApprovalOperator` and hands the answer back here, so the wording and the audit record are
tested without a scheduler. The answer becomes one audit event (`approve`, `approval_reject` or
`approval_timeout`) that names who answered, when, with which comment, and the gate's numbers
they saw; an approved promotion then records its own `promote` event when the alias moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from include import audit
from include.errors import RegistryError

APPROVE_OPTION, REJECT_OPTION = "Approve", "Reject"  # the ApprovalOperator's two fixed options
COMMENT = "comment"  # the form field the person may explain the answer in
DECISION_XCOM_KEY = "skylift_approval"  # the approval task's ApprovalDecision.to_dict(), read by `deploy`

Outcome = Literal["approve", "reject", "timeout"]


@dataclass(frozen=True)
class ApprovalRequest:
    """A promotion the gate cleared, waiting for a person."""

    model: str
    version: str
    champion: str | None  # the champion the gate compared against; it stays unless approved
    gate: Mapping[str, Any]  # the gate's verdict (include.gate ... to_dict())
    dag_run: str  # "dag_id/run_id"
    report_link: str | None = None  # where the UI shows the gate's HTML report
    approvers: tuple[str, ...] = ()
    timeout_minutes: int = 24 * 60
    on_timeout: Literal["reject", "approve"] = "reject"

    @classmethod
    def from_gate(cls, model: str, gate_result: Mapping[str, Any], dag_run: str, **settings: Any) -> ApprovalRequest:
        """From the gate task's result (operators/deploy.py `gate` mode)."""
        try:
            return cls(model=model, version=str(gate_result["version"]), champion=gate_result.get("previous_champion"),
                       gate=gate_result["gate"], dag_run=dag_run, **settings)
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"the gate's result for model {model!r} in {dag_run} lacks {exc}; cannot ask for "
                                "approval") from exc

    @property
    def wanted(self) -> bool:
        """Only a promotion the gate cleared (or was forced past) that would move the champion is asked."""
        return bool(self.gate.get("promoted")) and self.champion != self.version

    def subject(self) -> str:
        forced = " (forced past the gate)" if self.gate.get("forced") else ""
        return f"Promote {self.model} v{self.version} to champion{forced}?"

    def body(self) -> str:
        """Markdown for the approval page: the gate's verdict, its numbers, the report and the stakes."""
        champion = f"v{self.champion}" if self.champion else "none yet"
        lines = [f"**{self.gate.get('verdict', '?')}**: challenger v{self.version} against champion {champion} "
                 f"on {self.gate.get('n', '?')} holdout rows (run `{self.dag_run}`).", ""]
        metrics = self.gate.get("metrics") or [dict(self.gate, passed=self.gate.get("promoted"))]
        lines += ["| metric | challenger | champion | gain | verdict |", "| --- | --- | --- | --- | --- |"]
        for m in metrics:
            verdict = "pass" if m.get("passed") else "fail"
            lines.append(f"| {m.get('metric')} | {_estimate(m.get('challenger'))} | {_estimate(m.get('champion'))} "
                         f"| {_estimate(m.get('gain'), signed=True)} | {verdict} |")
        reasons = [str(r) for r in self.gate.get("reasons") or []]
        if reasons:
            lines += ["", "Why: " + "; ".join(reasons)]
        if self.report_link:
            lines += ["", f"[Open the full gate report]({self.report_link})"]
        stays = f"v{self.champion} stays champion" if self.champion else "the model keeps no champion"
        lines += ["", f"**Approve** moves alias `champion` to v{self.version} (smoke-tested, recorded in "
                      f"`skylift history {self.model}`). **Reject** keeps it where it is: {stays}.",
                  f"No answer within {_duration(self.timeout_minutes)} decides **{self.on_timeout}**."]
        if self.approvers:
            lines.append(f"Who may answer: {', '.join(self.approvers)}.")
        return "\n".join(lines)


@dataclass(frozen=True)
class ApprovalDecision:
    """A person's answer, or the timeout's."""

    outcome: Outcome
    approved: bool
    at: str  # ISO time of the answer (of the timeout's default)
    user_id: str | None = None
    user_name: str | None = None
    comment: str = ""

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ApprovalDecision:
        """From the event Airflow resumes a human-in-the-loop task with (a response, or the defaults
        applied at the timeout, where `timedout` is set and no user answered)."""
        if "error" in event:
            raise RegistryError(f"the approval request ended without an answer: {event['error']}")
        chosen = list(event.get("chosen_options") or [])
        if chosen not in ([APPROVE_OPTION], [REJECT_OPTION]):
            raise RegistryError(f"an approval answer must be one of {APPROVE_OPTION!r} or {REJECT_OPTION!r}, "
                                f"got {chosen}")
        approved = chosen == [APPROVE_OPTION]
        user = event.get("responded_by_user") or {}
        comment = (event.get("params_input") or {}).get(COMMENT) or ""
        at = event.get("responded_at")
        at = at.isoformat() if isinstance(at, datetime) else str(at or "")
        if event.get("timedout"):
            return cls(outcome="timeout", approved=approved, at=at, comment=str(comment))
        return cls(outcome="approve" if approved else "reject", approved=approved, at=at,
                   user_id=_text(user.get("id")), user_name=_text(user.get("name")), comment=str(comment))

    @property
    def action(self) -> str:
        return {"approve": audit.APPROVE, "reject": audit.APPROVAL_REJECT, "timeout": audit.APPROVAL_TIMEOUT}[
            self.outcome]

    def actor(self, dag_run: str) -> str:
        """A person answers as `user:<name>`; a timeout is the DAG run's."""
        if self.outcome == "timeout":
            return dag_run
        return f"user:{self.user_name or self.user_id or 'unknown'}"

    def reason(self, request: ApprovalRequest) -> str:
        said = f": {self.comment}" if self.comment else " (no comment)"
        if self.outcome == "timeout":
            return (f"no answer within {_duration(request.timeout_minutes)}; on_timeout decides {request.on_timeout}"
                    + (f"{said}" if self.comment else ""))
        who = self.user_name or self.user_id or "unknown"
        return f"{'approved' if self.approved else 'rejected'} by {who}{said}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recorded:
    event: audit.AuditEvent
    new: bool = field(default=True)  # False: the same answer was recorded by an earlier try


def record(trail: audit.AuditTrail, request: ApprovalRequest, decision: ApprovalDecision,
           gate_report: str | None = None) -> Recorded:
    """Append the answer to the model's audit trail, once: a retried task finds its own record
    (same run, version, action and answer time) instead of writing a second one."""
    for event in reversed(trail.events(request.model)):
        said = event.details.get("approval") or {}
        if (event.action == decision.action and event.version == request.version
                and event.details.get("dag_run") == request.dag_run and said.get("at") == decision.at):
            return Recorded(event, new=False)
    details = {"approval": decision.to_dict(), "dag_run": request.dag_run, "gate": dict(request.gate),
               "report": gate_report, "approvers": list(request.approvers)}
    event = trail.append(request.model, decision.action, version=request.version, actor=decision.actor(request.dag_run),
                         reason=decision.reason(request)[:2000], details=details,
                         initial=request.champion if trail.last(request.model) is None else None)
    return Recorded(event)


def _estimate(value: Mapping[str, Any] | None, signed: bool = False) -> str:
    if not value:
        return "–"
    if value.get("value") is None:
        return f"n/a ({value.get('why_missing') or 'not computable'})"
    fmt = "{:+.4f}" if signed else "{:.4f}"
    text = fmt.format(value["value"])
    if value.get("low") is not None and value.get("high") is not None:
        text += f" [{fmt.format(value['low'])}, {fmt.format(value['high'])}]"
    return text


def _duration(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
