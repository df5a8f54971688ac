"""The `<pipeline>_rollback` DAG's one task: return the champion to an earlier version."""

from __future__ import annotations

from typing import Any

from operators.base import SkyliftOperator
from operators.links import VERSION_XCOM_KEY, ModelVersionLink


class RollbackModelOperator(SkyliftOperator):
    """Roll `model_name`'s champion back to the trigger form's `to_version` (default: the previous
    champion in the audit trail), smoke-test it through the alias, and record who and why."""

    ui_color = "#f5e0d8"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, smoke_rows: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.smoke_rows = smoke_rows

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
        return {"model": self.model_name, "from": event.before, "to": event.after, "audit_event": event.seq}
