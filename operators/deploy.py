"""Stage 6: the deployment gate. The challenger becomes `champion` only if it clears the spec's
thresholds and beats the current champion on the same holdout rows; then it is smoke-tested
through the alias and the alias is rolled back if the smoke test fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from include.errors import RegistryError
from operators.base import SkyliftOperator, partition_date
from operators.links import VERSION_XCOM_KEY, ModelVersionLink

CHAMPION = "champion"


class DeployModelOperator(SkyliftOperator):
    ui_color = "#dbeed8"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, register_task_id: str, features_dataset: str, key: list[str],
                 target: str, task: str, gate: dict[str, Any], holdout_fraction: float = 0.2,
                 smoke_rows: int = 20, **kwargs: Any) -> None:
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

    def execute(self, context: Any) -> dict[str, Any]:
        from include.gate import Gate, decide

        registered = context["ti"].xcom_pull(task_ids=self.register_task_id)
        if not registered or "version" not in registered:
            raise RegistryError(f"task {self.register_task_id!r} left no registered version to deploy")
        client = self.mlflow_hook.client
        version = str(registered["version"])
        champion = self._champion(client)
        holdout = self._holdout(partition_date(context))
        gate = Gate(task=self.model_task, **self.gate)
        challenger_score = self._score(f"models:/{self.model_name}/{version}", holdout, gate.metric)
        champion_score = None
        if champion is not None and champion != version and gate.beat_champion:
            champion_score = self._score(f"models:/{self.model_name}/{champion}", holdout, gate.metric)
        force = bool((context.get("params") or {}).get("force_deploy"))
        decision = decide(gate, challenger_score, champion_score, force=force)
        self.log.info("gate for %s v%s: %s", self.model_name, version, decision.summary())
        client.set_model_version_tag(self.model_name, version, "skylift.gate", decision.summary()[:4900])
        if decision.promote and champion != version:
            self._promote(client, version, champion, holdout)
        ui = self.mlflow_hook.ui_base() or "http://127.0.0.1:5000"
        context["ti"].xcom_push(key=VERSION_XCOM_KEY, value={"ui": ui, "name": self.model_name, "version": version})
        return {"promoted": decision.promote, "version": version, "previous_champion": champion,
                "champion": version if decision.promote else champion, "metric": gate.metric,
                "challenger_score": challenger_score, "champion_score": champion_score,
                "reasons": decision.reasons}

    def _champion(self, client: Any) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(client.get_model_version_by_alias(self.model_name, CHAMPION).version)
        except MlflowException:
            return None

    def _holdout(self, ds: str) -> Any:
        from include.training.holdout import holdout_mask

        self.lake.require_fresh("features", self.features_dataset, ds)
        frame = self.lake.read_table("features", self.features_dataset, ds).to_pandas()
        holdout = frame[holdout_mask(frame[self.key], self.holdout_fraction)]
        if holdout.empty or self.target not in holdout:
            raise RegistryError(f"features/{self.features_dataset}/ds={ds} has no labelled holdout rows to "
                                "compare models on")
        return holdout.reset_index(drop=True)

    def _score(self, uri: str, holdout: Any, metric: str) -> float:
        from include import scoring
        from include.training.metrics import evaluate

        predictions = scoring.load(uri).predict(holdout)
        return float(evaluate(self.model_task, holdout[self.target].to_numpy(), predictions)[metric])

    def _promote(self, client: Any, version: str, previous: str | None, holdout: Any) -> None:
        from include import scoring

        client.set_registered_model_alias(self.model_name, CHAMPION, version)
        client.set_model_version_tag(self.model_name, version, "skylift.promoted_at",
                                     datetime.now(UTC).isoformat())
        try:
            # Smoke test through the alias, exactly as batch inference will resolve it.
            import numpy as np

            scores = scoring.load(f"models:/{self.model_name}@{CHAMPION}").predict(holdout.head(self.smoke_rows))
            if not np.isfinite(scores).all():
                raise RegistryError("the champion returned NaN or infinite scores")
        except Exception as exc:
            self._roll_back(client, previous)
            raise RegistryError(f"smoke test of {self.model_name} v{version} failed; alias rolled back to "
                                f"{previous or 'none'}: {exc}") from exc
        self.log.info("%s@%s -> version %s (was %s)", self.model_name, CHAMPION, version, previous or "none")

    def _roll_back(self, client: Any, previous: str | None) -> None:
        if previous is None:
            client.delete_registered_model_alias(self.model_name, CHAMPION)
        else:
            client.set_registered_model_alias(self.model_name, CHAMPION, previous)
