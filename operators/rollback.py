"""The `<pipeline>_rollback` DAG's one task: return the champion to an earlier version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from operators.base import SkyliftOperator
from operators.links import VERSION_XCOM_KEY, ModelVersionLink

if TYPE_CHECKING:
    from operators.spec.models import DeploySpec


class RollbackModelOperator(SkyliftOperator):
    """Roll `model_name`'s champion back to the trigger form's `to_version` (default: the previous
    champion in the audit trail), smoke-test it through the alias and through the deploy target,
    and record who and why (include/rollback.py, which `skylift rollback` runs too)."""

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
        from operators.deploy_targets import serving_for

        params = context.get("params") or {}
        ti = context["ti"]
        reason = str(params.get("reason") or "").strip() or "rollback requested through the rollback DAG"
        serving = None if self.serving is None else serving_for(
            self.serving, pipeline=self.pipeline, model_name=self.model_name,
            tracking_uri=self.mlflow_hook.tracking_uri)
        done = roll_back_champion(self.mlflow_hook.client, AuditTrail(self.lake), self.lake, self.model_name,
                                  to=str(params.get("to_version") or "").strip() or None,
                                  actor=f"{ti.dag_id}/{ti.run_id}", reason=reason, rows=self.smoke_rows,
                                  serving=serving)
        event = done.event
        self.log.info("%s: champion v%s -> v%s (audit event %s)", self.model_name, event.before, event.after,
                      event.seq)
        ti.xcom_push(key=VERSION_XCOM_KEY, value={"ui": self.mlflow_hook.ui_base() or "http://127.0.0.1:5000",
                                                  "name": self.model_name, "version": event.after})
        result = {"model": self.model_name, "from": event.before, "to": event.after, "audit_event": event.seq}
        if done.serving is not None:
            self.log.info("%s", done.serving)
            result["serving"] = done.serving
        return result
