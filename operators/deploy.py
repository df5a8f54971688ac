"""Stage 6: the deployment gate. The challenger becomes `champion` only if it clears the spec's
thresholds and beats the current champion on the same holdout rows; then it is smoke-tested
through the alias and the alias is rolled back if the smoke test fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from include.errors import RegistryError, SkyliftError
from include.registry import CHAMPION
from operators.base import SkyliftOperator, partition_date
from operators.links import GATE_REPORT_XCOM_KEY, VERSION_XCOM_KEY, GateReportLink, ModelVersionLink

if TYPE_CHECKING:
    from include.labels import LabelPlan
    from operators.spec.models import DeploySpec

GATE_TAG = "skylift.gate"  # the decision's one-line summary, shown by `skylift demo` and the MLflow UI
GATE_DECISION_TAG = "skylift.gate_decision"  # the same decision as JSON (Decision.to_dict)
# With `approval:` the stage is three tasks: `gate` (mode "gate": decides, reports, moves nothing),
# `approve` (operators/approval.py) and `deploy` (mode "promote": moves the alias once approved).
DeployMode = Literal["gate_and_promote", "gate", "promote"]


@dataclass(frozen=True)
class ClearedGate:
    """The part of a gate verdict that promoting needs, as the gate task handed it over."""

    forced: bool
    reasons: tuple[str, ...]


def gate_report_name(version: str) -> str:
    """The gate report's file stem for one model version (`.json` and `.html` beside each other)."""
    return f"gate-v{version}"


class DeployModelOperator(SkyliftOperator):
    ui_color = "#dbeed8"
    operator_extra_links = (ModelVersionLink(), GateReportLink())

    def __init__(self, *, model_name: str, register_task_id: str, features_dataset: str, key: list[str],
                 target: str, task: str, gate: dict[str, Any], holdout_fraction: float = 0.2,
                 mode: DeployMode = "gate_and_promote", gate_task_id: str = "gate", approval_task_id: str = "approve",
                 smoke_rows: int = 20, label_plan: LabelPlan | None = None, labels_dataset: str | None = None,
                 window_days: int = 1, holdout_days: int = 3, serving: DeploySpec | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode: DeployMode = mode
        self.gate_task_id = gate_task_id
        self.approval_task_id = approval_task_id
        self.model_name = model_name
        self.register_task_id = register_task_id
        self.features_dataset = features_dataset
        self.key = key
        self.target = target
        self.model_task = task
        self.gate = gate
        self.holdout_fraction = holdout_fraction
        self.smoke_rows = smoke_rows
        # With labels, the holdout is the newest label-complete feature days (as training held out).
        self.label_plan = label_plan
        self.labels_dataset = labels_dataset
        self.window_days = window_days
        self.holdout_days = holdout_days
        # `deploy.target` local or kubernetes: what serves the champion online (operators/deploy_targets.py)
        self.serving = serving

    def execute(self, context: Any) -> dict[str, Any]:
        from include import registry
        from include.audit import AuditTrail
        from include.gate import decide_all, gates_from

        if self.mode == "promote":
            return self._promote_approved(context)
        registered = context["ti"].xcom_pull(task_ids=self.register_task_id)
        if not registered or "version" not in registered:
            raise RegistryError(f"task {self.register_task_id!r} left no registered version to deploy")
        client = self.mlflow_hook.client
        trail = AuditTrail(self.lake)
        version = str(registered["version"])
        champion = registry.current_champion(client, trail, self.model_name)
        ds = partition_date(context)
        holdout = self._holdout(ds)
        gates = gates_from(self.model_task, self.gate)
        challenger_pred = self._predict(version, holdout)
        champion_pred = None
        if champion is not None and champion != version and any(g.beat_champion for g in gates):
            champion_pred = self._predict(champion, holdout)
        force = bool((context.get("params") or {}).get("force_deploy"))
        verdict = decide_all(gates, holdout[self.target].to_numpy(), challenger_pred, champion_pred, force=force)
        self.log.info("gate for %s v%s (champion: %s): %s", self.model_name, version,
                      f"v{champion}" if champion else "none", verdict.summary())
        result = {"version": version, "promoted": verdict.promote, "previous_champion": champion,
                  "champion": version if verdict.promote else champion, "gate": verdict.to_dict()}
        # Checked before anything moves: a value XCom cannot carry must fail here, not after promotion.
        try:
            document = json.dumps(verdict.to_dict(), allow_nan=False)
            json.dumps(result, allow_nan=False)
        except ValueError as exc:
            raise SkyliftError(f"the gate's result for {self.model_name} v{version} is not JSON-safe; nothing was "
                               f"promoted: {exc}") from exc
        report = self._publish_report(context, ds, version, champion, verdict)
        context["ti"].xcom_push(key=GATE_REPORT_XCOM_KEY, value=report)
        result["report"] = report
        registry.set_version_tag(client, self.model_name, version, GATE_TAG, verdict.summary())
        registry.set_version_tag(client, self.model_name, version, GATE_DECISION_TAG, document)
        link = {"ui": self.mlflow_hook.ui_base() or "http://127.0.0.1:5000", "name": self.model_name,
                "version": version}
        # `smoke`: feature rows a later rollback smoke-tests the alias on (include/rollback.py).
        details = {"gate": verdict.to_dict(), "report": report, "ds": ds,
                   "smoke": {"dataset": self.features_dataset, "ds": ds}}
        actor = f"{context['ti'].dag_id}/{context['ti'].run_id}"
        if verdict.promote and champion != version and self.mode == "gate":
            self.log.info("the gate clears %s v%s; the champion moves once a person approves (task %r)",
                          self.model_name, version, self.approval_task_id)
            result["awaiting_approval"] = True
            result["champion"] = champion
        elif verdict.promote and champion != version:
            self._promote(client, trail, version, champion, holdout, actor, verdict, details)
        elif not verdict.promote:
            self._reject(client, trail, version, champion, actor, verdict, details)
        if self.serving is not None and self.serving.target != "alias" and result["champion"] and \
                not result.get("awaiting_approval"):
            result["serving"] = self._roll_out(client, trail, result["champion"], holdout, actor)
        context["ti"].xcom_push(key=VERSION_XCOM_KEY, value=link)
        return result

    def _promote_approved(self, context: Any) -> dict[str, Any]:
        """Mode "promote": move the alias to the version the gate cleared and a person approved."""
        from include import registry
        from include.approval import DECISION_XCOM_KEY
        from include.audit import AuditTrail

        ti = context["ti"]
        gated = ti.xcom_pull(task_ids=self.gate_task_id)
        approval = ti.xcom_pull(task_ids=self.approval_task_id, key=DECISION_XCOM_KEY)
        if not gated or "version" not in gated:
            raise RegistryError(f"task {self.gate_task_id!r} left no gate result to promote")
        if not approval or not approval.get("approved"):
            raise RegistryError(f"task {self.approval_task_id!r} recorded no approval for {self.model_name} "
                                f"v{gated['version']}; nothing was promoted")
        client = self.mlflow_hook.client
        trail = AuditTrail(self.lake)
        version, previous = str(gated["version"]), gated.get("previous_champion")
        link = {"ui": self.mlflow_hook.ui_base() or "http://127.0.0.1:5000", "name": self.model_name,
                "version": version}
        result = {**gated, "champion": version, "awaiting_approval": False, "approval": approval}
        ds, actor = partition_date(context), f"{ti.dag_id}/{ti.run_id}"
        holdout = self._holdout(ds)
        if registry.current_champion(client, trail, self.model_name) == version:  # a retry after it moved
            self.log.info("%s v%s is champion already", self.model_name, version)
        else:
            who = approval.get("user_name") or approval.get("outcome")
            gate = gated.get("gate") or {}
            cleared = ClearedGate(forced=bool(gate.get("forced")),
                                  reasons=(*(gate.get("reasons") or ()), f"approved ({who})"))
            details = {"gate": gate, "report": gated.get("report"), "ds": ds, "approval": approval,
                       "smoke": {"dataset": self.features_dataset, "ds": ds}}
            self._promote(client, trail, version, previous, holdout, actor, cleared, details)
        if self.serving is not None and self.serving.target != "alias":
            result["serving"] = self._roll_out(client, trail, version, holdout, actor)
        ti.xcom_push(key=VERSION_XCOM_KEY, value=link)
        return result

    def _reject(self, client: Any, trail: Any, version: str, champion: str | None, actor: str, verdict: Any,
                details: dict[str, Any]) -> None:
        from include import audit, registry

        event = trail.append(self.model_name, audit.REJECT, version=version, actor=actor, details=details,
                             reason="; ".join(verdict.reasons)[:2000],
                             initial=champion if trail.last(self.model_name) is None else None)
        if version != champion:
            registry.set_status(client, self.model_name, version, "rejected",
                                f"rejected by the gate at {event.at[:19]}Z by {actor} (audit event {event.seq})")

    def _publish_report(self, context: Any, ds: str, version: str, champion: str | None, verdict: Any) -> str:
        """The gate's full result as JSON and a self-contained HTML page, `gate-v<version>.json` and
        `.html` in `reports/<pipeline>_gate/ds=<ds>`. Several runs gate versions on one date (the
        nightly, a retrain, runs waiting for approval): each adds its version's report to the day's
        partition and keeps the others, so every link in XComs and the audit trail stays valid."""
        from include.gate_report import render_html

        body = {"model": self.model_name, "challenger_version": version, "champion_version": champion, "ds": ds,
                "dag_run": f"{context['ti'].dag_id}/{context['ti'].run_id}", **verdict.to_dict()}
        dataset, name = f"{self.pipeline}_gate", gate_report_name(version)
        manifest = self.amend("reports", dataset, ds, {
            f"{name}.json": json.dumps(body, indent=2, allow_nan=False).encode(),
            f"{name}.html": render_html(body).encode()}, run_id=context["ti"].run_id)
        return self.lake.uri(f"{self.lake.partition_path('reports', dataset, ds)}/{manifest.file(f'{name}.html').path}")

    def _holdout(self, ds: str) -> Any:
        if self.label_plan is not None:
            return self._labelled_holdout(ds)
        from include.training.holdout import holdout_mask

        self.lake.require_fresh("features", self.features_dataset, ds)
        frame = self.lake.read_table("features", self.features_dataset, ds).to_pandas()
        holdout = frame[holdout_mask(frame[self.key], self.holdout_fraction)]
        if holdout.empty or self.target not in holdout:
            raise RegistryError(f"features/{self.features_dataset}/ds={ds} has no labelled holdout rows to "
                                "compare models on")
        return holdout.reset_index(drop=True)

    def _labelled_holdout(self, ds: str) -> Any:
        """The newest `holdout_days` feature days whose outcomes are complete on ds, joined to the
        label drops landed by ds: the same days training held out, scored by every model alike."""
        from include.errors import LabelError
        from include.labels import complete_days, labelled_days, point_in_time_join, time_split

        window = complete_days(ds, self.label_plan.delay_days, self.window_days)
        present = [d for d in window if self.lake.manifest("features", self.features_dataset, d) is not None]
        arrivals = [d for d in self.lake.partitions("validated", self.labels_dataset) if d <= ds]
        # The same days training chose: those whose completing label drop has landed.
        present, _ = labelled_days(present, self.label_plan.delay_days, arrivals)
        try:
            _, days = time_split(present, self.holdout_days)
        except LabelError as exc:
            raise RegistryError(f"no holdout to compare models on for ds={ds} in features/{self.features_dataset}: "
                                f"{exc}") from exc
        features = {}
        for day in days:
            self.lake.require_fresh("features", self.features_dataset, day)
            features[day] = self.lake.read_table("features", self.features_dataset, day).to_pandas()
        drops = {d: self.lake.read_table("validated", self.labels_dataset, d).to_pandas() for d in arrivals}
        try:
            holdout = point_in_time_join(features, drops, self.label_plan, cutoff=ds)
        except LabelError as exc:
            raise RegistryError(f"holdout labels of validated/{self.labels_dataset}: {exc}") from exc
        if holdout.empty:
            raise RegistryError(f"features/{self.features_dataset} days {days} have no outcomes in "
                                f"validated/{self.labels_dataset} landed by {ds}: nothing to compare models on")
        self.log.info("holdout: %d labelled rows from feature days %s", len(holdout), ", ".join(days))
        return holdout

    def _predict(self, version: str, holdout: Any) -> Any:
        from include import scoring

        return scoring.load(f"models:/{self.model_name}/{version}").predict(holdout)

    def _promote(self, client: Any, trail: Any, version: str, previous: str | None, holdout: Any, actor: str,
                 verdict: Any, details: dict[str, Any]) -> None:
        """Move the alias (compare-and-set), smoke-test through it, and roll it back if that fails."""
        from include import registry

        registry.promote(client, trail, self.model_name, version, expected=previous, actor=actor,
                         forced=verdict.forced, details=details, reason="; ".join(verdict.reasons)[:2000])
        try:
            registry.smoke_test(self.model_name, version, holdout.head(self.smoke_rows))
        except Exception as exc:
            self._roll_back(client, trail, version, previous, actor, exc)
        self.log.info("%s@%s -> version %s (was %s)", self.model_name, CHAMPION, version, previous or "none")

    def _roll_back(self, client: Any, trail: Any, version: str, previous: str | None, actor: str,
                   cause: BaseException) -> None:
        """Undo a promotion whose smoke test failed, record it, then fail with what happened."""
        from include import audit, registry

        try:
            event = registry.roll_back(client, trail, self.model_name, previous, actor=actor, expected=version,
                                       action=audit.SMOKE_ROLLBACK, reason=f"smoke test failed: {cause}"[:2000])
        except Exception as undo:
            raise RegistryError(
                f"promoting {self.model_name} v{version} failed after alias {CHAMPION} moved ({cause}), and rolling "
                f"it back to {previous or 'none'} failed too ({undo}): alias {CHAMPION} may still point to "
                f"v{version}; run `skylift rollback {self.model_name}" + (f" --to {previous}`" if previous else "`")
            ) from undo
        raise RegistryError(f"promoting {self.model_name} v{version} failed after alias {CHAMPION} moved; the alias "
                            f"was rolled back to {previous or 'none'} (audit event {event.seq}): {cause}") from cause

    def _roll_out(self, client: Any, trail: Any, version: str, holdout: Any, actor: str) -> str:
        """Make the deploy target serve champion `version` and smoke-test it live. When this DAG run
        moved the alias (now, or in an earlier try of this task), a failure moves it back and puts
        the target's previous objects back; otherwise the target alone is put back."""
        from include.deploy.targets import smoke_sample
        from include.errors import RolloutFailed
        from operators.deploy_targets import build_target

        last = trail.last(self.model_name)
        promoted = last is not None and last.moved and last.after == version and last.actor == actor
        target = None
        try:
            target = build_target(self.serving, pipeline=self.pipeline, model_name=self.model_name, version=version,
                                  tracking_uri=self.mlflow_hook.tracking_uri)
            said = target.roll_out(smoke_sample(self.model_name, version, holdout.head(self.smoke_rows)))
        except Exception as exc:
            plan = target.undo_plan() if target is not None else "nothing was applied"
            cause = RolloutFailed(f"deploy target {self.serving.target}: {exc}; {plan}")
            if promoted:
                try:
                    self._roll_back(client, trail, version, last.before, actor, cause)
                except RegistryError as failed:
                    raise RolloutFailed(f"{failed}. Target: {self._undo(target)}") from exc
            raise RolloutFailed(f"{cause} (the champion alias stays at v{version}: this run did not move it). "
                                f"Target: {self._undo(target)}") from exc
        self.log.info("%s", said)
        return said

    def _undo(self, target: Any) -> str:
        from include.deploy.targets import put_back

        return put_back(target)  # the alias is already back
