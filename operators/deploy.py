"""Stage 6: the deployment gate. The challenger becomes `champion` only if it clears the spec's
thresholds and beats the current champion on the same holdout rows; then it is smoke-tested
through the alias and the alias is rolled back if the smoke test fails.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.errors import RegistryError, SkyliftError
from include.registry import CHAMPION
from operators.base import SkyliftOperator, partition_date
from operators.links import VERSION_XCOM_KEY, ModelVersionLink

if TYPE_CHECKING:
    from include.labels import LabelPlan

GATE_TAG = "skylift.gate"  # the decision's one-line summary, shown by `skylift demo` and the MLflow UI
GATE_DECISION_TAG = "skylift.gate_decision"  # the same decision as JSON (Decision.to_dict)


class DeployModelOperator(SkyliftOperator):
    ui_color = "#dbeed8"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, register_task_id: str, features_dataset: str, key: list[str],
                 target: str, task: str, gate: dict[str, Any], holdout_fraction: float = 0.2,
                 smoke_rows: int = 20, label_plan: LabelPlan | None = None, labels_dataset: str | None = None,
                 window_days: int = 1, holdout_days: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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

    def execute(self, context: Any) -> dict[str, Any]:
        from include import registry
        from include.gate import Gate, decide

        registered = context["ti"].xcom_pull(task_ids=self.register_task_id)
        if not registered or "version" not in registered:
            raise RegistryError(f"task {self.register_task_id!r} left no registered version to deploy")
        client = self.mlflow_hook.client
        version = str(registered["version"])
        champion = registry.champion_version(client, self.model_name)
        holdout = self._holdout(partition_date(context))
        gate = Gate(task=self.model_task, **self.gate)
        challenger_pred = self._predict(version, holdout)
        champion_pred = None
        if champion is not None and champion != version and gate.beat_champion:
            champion_pred = self._predict(champion, holdout)
        force = bool((context.get("params") or {}).get("force_deploy"))
        decision = decide(gate, holdout[self.target].to_numpy(), challenger_pred, champion_pred, force=force)
        self.log.info("gate for %s v%s (champion: %s): %s", self.model_name, version,
                      f"v{champion}" if champion else "none", decision.summary())
        result = {"version": version, "promoted": decision.promote, "previous_champion": champion,
                  "champion": version if decision.promote else champion, "gate": decision.to_dict()}
        # Checked before anything moves: a value XCom cannot carry must fail here, not after promotion.
        try:
            document = json.dumps(decision.to_dict(), allow_nan=False)
            json.dumps(result, allow_nan=False)
        except ValueError as exc:
            raise SkyliftError(f"the gate's result for {self.model_name} v{version} is not JSON-safe; nothing was "
                               f"promoted: {exc}") from exc
        registry.set_version_tag(client, self.model_name, version, GATE_TAG, decision.summary())
        registry.set_version_tag(client, self.model_name, version, GATE_DECISION_TAG, document)
        link = {"ui": self.mlflow_hook.ui_base() or "http://127.0.0.1:5000", "name": self.model_name,
                "version": version}
        if decision.promote and champion != version:
            self._promote(context, client, version, champion, holdout, link)
        else:
            context["ti"].xcom_push(key=VERSION_XCOM_KEY, value=link)
        return result

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
        from include.labels import complete_days, point_in_time_join, time_split

        window = complete_days(ds, self.label_plan.delay_days, self.window_days)
        present = [d for d in window if self.lake.manifest("features", self.features_dataset, d) is not None]
        try:
            _, days = time_split(present, self.holdout_days)
        except LabelError as exc:
            raise RegistryError(f"no holdout to compare models on for ds={ds} in features/{self.features_dataset}: "
                                f"{exc}") from exc
        features = {}
        for day in days:
            self.lake.require_fresh("features", self.features_dataset, day)
            features[day] = self.lake.read_table("features", self.features_dataset, day).to_pandas()
        arrivals = [d for d in self.lake.partitions("validated", self.labels_dataset) if d <= ds]
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

    def _promote(self, context: Any, client: Any, version: str, previous: str | None, holdout: Any,
                 link: dict[str, str]) -> None:
        """Move the alias, smoke-test through it, and put it back if anything after the move fails."""
        from include import registry

        registry.promote(client, self.model_name, version, expected=previous)
        try:
            self._smoke_test(version, holdout)
            context["ti"].xcom_push(key=VERSION_XCOM_KEY, value=link)
        except Exception as exc:
            self._roll_back(client, version, previous, exc)
        self.log.info("%s@%s -> version %s (was %s)", self.model_name, CHAMPION, version, previous or "none")

    def _smoke_test(self, version: str, holdout: Any) -> None:
        """Score a few rows through the alias, exactly as batch inference will resolve it."""
        import numpy as np

        from include import scoring

        rows = holdout.head(self.smoke_rows)
        scores = scoring.load(f"models:/{self.model_name}@{CHAMPION}").predict(rows)
        if not np.isfinite(scores).all():
            raise RegistryError(f"{self.model_name}@{CHAMPION} (version {version}) returned NaN or infinite scores "
                                f"for {int((~np.isfinite(scores)).sum())} of {len(rows)} smoke-test rows")

    def _roll_back(self, client: Any, version: str, previous: str | None, cause: BaseException) -> None:
        """Undo a promotion whose later steps failed, then fail with what happened."""
        from include import registry

        try:
            registry.roll_back(client, self.model_name, previous)
        except Exception as undo:
            fix = (f"set it back with MlflowClient().set_registered_model_alias({self.model_name!r}, {CHAMPION!r}, "
                   f"'{previous}')" if previous else
                   f"delete it with MlflowClient().delete_registered_model_alias({self.model_name!r}, {CHAMPION!r})")
            raise RegistryError(
                f"promoting {self.model_name} v{version} failed after alias {CHAMPION} moved ({cause}), and rolling "
                f"it back to {previous or 'none'} failed too ({undo}): alias {CHAMPION} still points to v{version}; "
                f"{fix}") from undo
        raise RegistryError(f"promoting {self.model_name} v{version} failed after alias {CHAMPION} moved; the alias "
                            f"was rolled back to {previous or 'none'}: {cause}") from cause
