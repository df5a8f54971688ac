"""The `<pipeline>_rollback` DAG's one task: return the champion to an earlier version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operators.base import SkyliftOperator
from operators.links import VERSION_XCOM_KEY, ModelVersionLink

if TYPE_CHECKING:
    from operators.spec.models import DeploySpec


class RollbackModelOperator(SkyliftOperator):
    """Roll `model_name`'s champion back to the trigger form's `to_version` (default: the previous
    champion in the audit trail), smoke-test it through the alias, and record who and why."""

    ui_color = "#f5e0d8"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, smoke_rows: int = 20, serving: DeploySpec | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.smoke_rows = smoke_rows
        self.serving = serving  # `deploy.target` local or kubernetes: it is made to serve the version returned to

    def execute(self, context: Any) -> dict[str, Any]:
        from include.audit import AuditTrail
        from include.rollback import roll_back_champion

        params = context.get("params") or {}
        ti = context["ti"]
        reason = str(params.get("reason") or "").strip() or "rollback requested through the rollback DAG"
        event = roll_back_champion(self.mlflow_hook.client, AuditTrail(self.lake), self.lake, self.model_name,
                                   to=str(params.get("to_version") or "").strip() or None,
                                   actor=f"{ti.dag_id}/{ti.run_id}", reason=reason, rows=self.smoke_rows)
        self.log.info("%s: champion v%s -> v%s (audit event %s)", self.model_name, event.before, event.after,
                      event.seq)
        ti.xcom_push(key=VERSION_XCOM_KEY, value={"ui": self.mlflow_hook.ui_base() or "http://127.0.0.1:5000",
                                                  "name": self.model_name, "version": event.after})
        result = {"model": self.model_name, "from": event.before, "to": event.after, "audit_event": event.seq}
        if self.serving is not None and self.serving.target != "alias" and event.after:
            result["serving"] = self._roll_out(event)
        return result

    def _roll_out(self, event: Any) -> str:
        """Make the deploy target serve the version returned to, smoke-tested like a deploy. If it cannot,
        its objects are put back and the task fails; the alias stays where the rollback put it (the
        version rolled back from is what someone wanted gone)."""
        from include.audit import AuditTrail
        from include.errors import RolloutFailed
        from include.rollback import smoke_rows
        from operators.deploy_targets import build_target, smoke_sample

        target = None
        try:
            target = build_target(self.serving, pipeline=self.pipeline, model_name=self.model_name,
                                  version=event.after, tracking_uri=self.mlflow_hook.tracking_uri)
            rows = smoke_rows(AuditTrail(self.lake), self.lake, self.model_name, self.smoke_rows)
            said = target.roll_out(smoke_sample(self.model_name, event.after, rows))
        except Exception as exc:
            undone = "nothing was applied"
            if target is not None:
                try:
                    undone = target.undo()
                except Exception as undo:  # report both
                    undone = f"putting it back failed too ({undo}): {target.undo_plan()} by hand"
            raise RolloutFailed(
                f"model {self.model_name!r} is back at version {event.after} (audit event {event.seq}; batch scoring "
                f"uses it), but deploy target {self.serving.target} could not serve it: {exc}. Target: {undone}"
            ) from exc
        self.log.info("%s", said)
        return said
