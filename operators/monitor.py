"""Stage 7b: drift monitoring after scoring, and the retrain it may trigger.

`monitor` compares the day's scored feature rows with the reference its model recorded at
training (`include.drift`), and the day's predictions with the same version's predictions of the
previous days. It writes `reports/<pipeline>_drift/ds=<ds>/drift.{json,html}` (the "Drift
report" link), logs the verdict, and returns it. When the day drifts and the spec asks for it, it
claims the retrain in the lake's ledger (`include.retrain_ledger`): at most one date per cooldown.
`retrain_on_drift`, Airflow's own `TriggerDagRunOperator`, then triggers the retrain DAG for that
date, or skips when nothing was claimed.

A day whose predictions were only kept unchanged (scoring found them up to date) is not checked
again: its check already ran when they were written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowSkipException

from include.errors import RegistryError
from operators.base import SkyliftOperator, date_window, partition_date
from operators.links import DRIFT_REPORT_XCOM_KEY, DriftReportLink

if TYPE_CHECKING:
    from include.drift import DriftInputs, DriftResult, Reference
    from include.retrain_ledger import Claim
    from operators.spec.models import DriftSpec


@dataclass(frozen=True)
class MonitorOutcome:
    """What one drift check found and did: the task's XCom and the report's JSON body."""

    pipeline: str
    model: str
    model_version: str
    dag_run: str
    reference_rows: int
    result: DriftResult
    retrain_enabled: bool
    cooldown_days: int
    claim: Claim | None = None
    report: str | None = None

    @property
    def trigger(self) -> dict[str, str] | None:
        """The retrain DAG run to trigger, when this check holds the claim for its date."""
        if self.claim is None or not self.claim.granted or self.claim.record is None:
            return None
        return {"dag_id": self.claim.record.dag_id, "run_id": self.claim.record.run_id}

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "model": self.model, "model_version": self.model_version,
                "dag_run": self.dag_run, "reference_rows": self.reference_rows, **self.result.to_dict(),
                "retrain": {"enabled": self.retrain_enabled, "cooldown_days": self.cooldown_days,
                            "claim": self.claim.to_dict() if self.claim else None, "trigger": self.trigger},
                "report": self.report}


class DriftMonitorOperator(SkyliftOperator):
    ui_color = "#f7e1e1"
    operator_extra_links = (DriftReportLink(),)

    def __init__(self, *, model_name: str, features_dataset: str, predictions_dataset: str, drift: dict[str, Any],
                 score_task_id: str = "score", retrain_dag_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.features_dataset = features_dataset
        self.predictions_dataset = predictions_dataset
        self.drift = drift  # monitor.drift of the spec (DriftSpec fields), checked again in execute
        self.score_task_id = score_task_id
        self.retrain_dag_id = retrain_dag_id

    @property
    def policy(self) -> DriftSpec:
        from operators.spec.models import DriftSpec

        return DriftSpec.model_validate(self.drift)

    def execute(self, context: Any) -> dict[str, Any]:
        from include import drift

        policy = self.policy
        ds = partition_date(context)
        version = self._scored_version(context, ds)
        reference = self.reference(version)
        thresholds = drift.Thresholds(psi=policy.psi_threshold, ks_pvalue=policy.ks_pvalue, min_rows=policy.min_rows)
        result = drift.check(reference, self.inputs(ds, version, reference, policy.prediction_days), thresholds,
                             min_drifted_features=policy.min_drifted_features,
                             predictions_flag=policy.on_prediction_drift == "flag")
        ti = context["ti"]
        outcome = MonitorOutcome(pipeline=self.pipeline, model=self.model_name, model_version=version,
                                 dag_run=f"{ti.dag_id}/{ti.run_id}", reference_rows=reference.rows, result=result,
                                 retrain_enabled=policy.retrain, cooldown_days=policy.cooldown_days)
        if result.drifted:
            self.log.warning("DRIFT in %s (model %s v%s): %s", self.pipeline, self.model_name, version,
                             result.summary())
            if policy.retrain:
                outcome = self._claim(outcome, ds, policy.cooldown_days)
        else:
            self.log.info("drift check: %s", result.summary())
        report = self._publish_report(context, ds, outcome)
        ti.xcom_push(key=DRIFT_REPORT_XCOM_KEY, value=report)
        return replace(outcome, report=report).to_dict()

    def _scored_version(self, context: Any, ds: str) -> str:
        """The version that scored the day; a skip when scoring wrote nothing new."""
        scored = context["ti"].xcom_pull(task_ids=self.score_task_id)
        if not scored or "model_version" not in scored:
            raise AirflowSkipException(f"task {self.score_task_id!r} left no scoring result for ds={ds}: "
                                       "nothing was scored, so there is nothing to check for drift")
        if scored.get("reused"):
            raise AirflowSkipException(
                f"predictions/{self.predictions_dataset}/ds={ds} were kept unchanged (already scored from the same "
                "features and model): their drift check ran when they were written; no new check, no retrain")
        return str(scored["model_version"])

    def reference(self, version: str) -> Reference:
        """The training-data reference recorded in the run that trained `version`."""
        import tempfile
        from pathlib import Path

        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        from include.drift import REFERENCE_ARTIFACT, Reference

        try:
            model_version = self.mlflow_hook.client.get_model_version(self.model_name, version)
        except MlflowException as exc:
            raise RegistryError(f"model {self.model_name} v{version} scored the day but cannot be read from the "
                                f"registry: {exc}") from exc
        run_id = model_version.run_id
        with tempfile.TemporaryDirectory(prefix="skylift-drift-") as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT,
                                                           dst_path=tmp,
                                                           tracking_uri=self.settings.mlflow_tracking_uri)
            except (MlflowException, OSError) as exc:
                derived = self.derived_reference(version, model_version.tags or {})
                if derived is not None:
                    return derived
                raise AirflowSkipException(
                    f"model {self.model_name} v{version} (run {run_id}) has no {REFERENCE_ARTIFACT}: it was trained "
                    "before Skylift recorded training-data references, and its skylift.features tag names no "
                    "training partition still in the lake, so its drift cannot be measured; retrain it to monitor "
                    f"drift ({type(exc).__name__})") from exc
            body = json.loads(Path(path).read_text())
        try:
            return Reference.from_dict(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{REFERENCE_ARTIFACT} of run {run_id} (model {self.model_name} v{version}) is "
                                f"unreadable: {exc}") from exc

    def derived_reference(self, version: str, tags: dict[str, str]) -> Reference | None:
        """For a version trained before references were recorded: the reference of the feature
        partitions its `skylift.features` lineage tag names, over its signature's columns (slower:
        it reads the training data); None when the tag or those partitions are gone."""
        import mlflow.models
        import numpy as np

        from include.drift import build_reference

        named = [item.rsplit("@", 1) for item in tags.get("skylift.features", "").split(",") if "@" in item]
        found = [(dataset, day) for dataset, day in named if self.lake.manifest("features", dataset, day) is not None]
        if not found:
            return None
        info = mlflow.models.get_model_info(f"models:/{self.model_name}/{version}")
        if info.signature is None or not info.signature.inputs.has_input_names():
            return None
        columns = info.signature.inputs.input_names()
        frames = [self.lake.read_table("features", dataset, day).to_pandas() for dataset, day in found]
        rows = np.vstack([frame.reindex(columns=columns).to_numpy(dtype=np.float64, na_value=np.nan)
                          for frame in frames])
        self.log.warning("model %s v%s has no recorded training reference; derived one from its training partitions "
                         "%s (%d rows): retraining records one and spares this read", self.model_name, version,
                         ", ".join(f"{d}@{day}" for d, day in found), len(rows))
        return build_reference(columns, rows)

    def inputs(self, ds: str, version: str, reference: Reference, prediction_days: int) -> DriftInputs:
        """The day's feature columns and predictions, and the version's predictions of earlier days."""
        import pandas as pd

        from include.drift import DriftInputs

        frame = self.lake.read_table("features", self.features_dataset, ds).to_pandas()
        predictions = self.lake.read_table("predictions", self.predictions_dataset, ds,
                                           columns=["prediction"]).column("prediction").to_numpy()
        earlier, days = [], []
        for day in date_window(ds, prediction_days + 1)[:-1] if prediction_days else []:
            if self.lake.manifest("predictions", self.predictions_dataset, day) is None:
                continue
            rows = self.lake.read_table("predictions", self.predictions_dataset, day,
                                        columns=["prediction", "model_version"]).to_pandas()
            rows = rows[rows["model_version"].astype(str) == version]
            if len(rows):
                earlier.append(rows["prediction"])
                days.append(day)
        baseline = pd.concat(earlier, ignore_index=True) if earlier else None
        columns = {name: frame[name] for name in reference.columns if name in frame.columns}
        return DriftInputs(ds=ds, columns=columns, rows=len(frame), predictions=predictions,
                           baseline_predictions=baseline, baseline_days=tuple(days))

    def _claim(self, outcome: MonitorOutcome, ds: str, cooldown_days: int) -> MonitorOutcome:
        from include.retrain_ledger import RetrainLedger

        if not self.retrain_dag_id:
            raise ValueError(f"task {self.task_id}: retrain is on but no retrain DAG is named")
        claim = RetrainLedger(self.lake, self.pipeline).claim(
            ds, cooldown_days, dag_id=self.retrain_dag_id, actor=outcome.dag_run,
            reason=f"drift: {', '.join(outcome.result.drifted_features) or 'predictions'}")
        if claim.granted:
            self.log.warning("retrain of %s claimed for ds=%s: DAG %s run %s%s", self.pipeline, ds,
                             claim.record.dag_id, claim.record.run_id,
                             " (this date's claim already existed: the trigger is repeated, not doubled)"
                             if claim.repeated else "")
        else:
            self.log.warning("no retrain for ds=%s: ds=%s triggered %s within the %d-day cooldown", ds,
                             claim.blocked_by.ds, claim.blocked_by.run_id, cooldown_days)
        return replace(outcome, claim=claim)

    def _publish_report(self, context: Any, ds: str, outcome: MonitorOutcome) -> str:
        """The check as JSON and a self-contained HTML page in `reports/<pipeline>_drift`."""
        from include.drift_report import render_html

        body = outcome.to_dict()
        dataset = f"{self.pipeline}_drift"
        with self.publish("reports", dataset, ds, run_id=context["ti"].run_id) as writer:
            writer.write_bytes("drift.json", json.dumps(body, indent=2, allow_nan=False).encode())
            writer.write_bytes("drift.html", render_html(body).encode())
        return self.lake.file_uri("reports", dataset, ds, "drift.html")


class RetrainOnDriftOperator(TriggerDagRunOperator):
    """Triggers the retrain DAG run the `monitor` task claimed for its date; skips otherwise.

    The run id comes from the claim (one per date), and a run that already exists is a skip, so a
    retry or a re-run never starts a second retrain.
    """

    def __init__(self, *, monitor_task_id: str = "monitor", retrain_dag_id: str, **kwargs: Any) -> None:
        super().__init__(trigger_dag_id=retrain_dag_id, logical_date=None, skip_when_already_exists=True,
                         wait_for_completion=False, openlineage_inject_parent_info=False, **kwargs)
        self.monitor_task_id = monitor_task_id

    def execute(self, context: Any) -> None:
        outcome = context["ti"].xcom_pull(task_ids=self.monitor_task_id) or {}
        retrain = outcome.get("retrain") or {}
        trigger = retrain.get("trigger")
        if not trigger:
            claim = retrain.get("claim") or {}
            blocker = claim.get("blocked_by")
            why = (f"ds={blocker['ds']} triggered {blocker['run_id']} within the {retrain.get('cooldown_days')}-day "
                   "cooldown" if blocker else "the day did not drift" if not outcome.get("drifted")
                   else "retraining on drift is off")
            raise AirflowSkipException(f"no retrain for ds={outcome.get('ds')}: {why}")
        if trigger["dag_id"] != self.trigger_dag_id:
            raise ValueError(f"the claim names DAG {trigger['dag_id']!r}, this task triggers {self.trigger_dag_id!r}")
        self.trigger_run_id = trigger["run_id"]
        self.conf = {"ds": outcome["ds"]}
        self.log.info("triggering %s run %s for ds=%s (drifted: %s)", self.trigger_dag_id, self.trigger_run_id,
                      outcome["ds"], ", ".join(outcome.get("drifted_features") or []) or "predictions")
        super().execute(context)
