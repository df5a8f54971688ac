"""Stage 5: register the trained model as a new version, with lineage tags, alias `challenger`."""

from __future__ import annotations

from typing import Any

from include.errors import RegistryError
from include.registry import CHALLENGER
from operators.base import SkyliftOperator, partition_date
from operators.links import VERSION_XCOM_KEY, ModelVersionLink


class RegisterModelOperator(SkyliftOperator):
    """Take the training task's result (XCom), register `runs:/<run>/model` under `model_name`.

    Safe to retry: a version already registered from the same run is reused, not duplicated.
    """

    ui_color = "#e0f0f5"
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, train_task_id: str, features_dataset: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.train_task_id = train_task_id
        self.features_dataset = features_dataset

    def execute(self, context: Any) -> dict[str, Any]:
        from include import registry

        trained = context["ti"].xcom_pull(task_ids=self.train_task_id)
        if not trained or "run_id" not in trained:
            raise RegistryError(f"task {self.train_task_id!r} left no training result to register")
        client = self.mlflow_hook.client
        self._ensure_model(client)
        if not trained.get("model_id"):
            raise RegistryError(f"task {self.train_task_id!r} returned no logged model id to register")
        tags = self.lineage(context, trained)
        with registry.translated(client, f"registering run {trained['run_id']} as a version of model "
                                         f"{self.model_name!r}",
                                 missing=f"MLflow run {trained['run_id']} or its logged model {trained['model_id']} "
                                         "no longer exists: re-run the train task"):
            version = self._existing_version(client, trained["run_id"]) or client.create_model_version(
                name=self.model_name,
                # MLflow 3: a version points at the logged model, not at a run artifact path.
                source=f"models:/{trained['model_id']}",
                model_id=trained["model_id"],
                run_id=trained["run_id"],
                tags=tags,
                description=f"{self.pipeline}: trained by {context['ti'].dag_id} for ds={partition_date(context)}",
            )
        registry.set_alias(client, self.model_name, CHALLENGER, str(version.version))
        self.log.info("registered %s version %s (alias %s)", self.model_name, version.version, CHALLENGER)
        ui = self.mlflow_hook.ui_base() or "http://127.0.0.1:5000"
        context["ti"].xcom_push(key=VERSION_XCOM_KEY, value={"ui": ui, "name": self.model_name,
                                                              "version": str(version.version)})
        return {"name": self.model_name, "version": str(version.version), "run_id": trained["run_id"],
                "metrics": trained.get("metrics", {})}

    def _ensure_model(self, client: Any) -> None:
        from include import registry

        model = registry.registered_model(client, self.model_name)  # None only when MLflow says it does not exist
        if model is None:
            registry.create_model(client, self.model_name, tags={"skylift.pipeline": self.pipeline})
            return
        owner = (model.tags or {}).get("skylift.pipeline")
        if owner != self.pipeline:  # another pipeline's model, or one made outside Skylift: never take it over
            raise RegistryError(
                f"registered model {self.model_name!r} belongs to pipeline {owner!r} (its skylift.pipeline tag), "
                f"not to {self.pipeline!r}; nothing was registered. Give this pipeline's spec its own "
                "register.model_name" + ("" if owner else f", or tag the model skylift.pipeline={self.pipeline} "
                                         "to hand it over"))

    def _existing_version(self, client: Any, run_id: str) -> Any | None:
        from include import registry

        return registry.version_from_run(client, self.model_name, run_id)

    def lineage(self, context: Any, trained: dict[str, Any]) -> dict[str, str]:
        """Tags that trace the version back to the feature partitions and the raw files."""
        from include.lineage import trace

        ti = context["ti"]
        tags = {
            "skylift.pipeline": self.pipeline,
            "skylift.dag_id": ti.dag_id,
            "skylift.dag_run_id": ti.run_id,
            "skylift.ds": partition_date(context),
            "skylift.framework": str(trained.get("framework")),
            "skylift.features": ",".join(f"{self.features_dataset}@{d}" for d in trained.get("dates", [])),
        }
        chain = trace(self.lake, "features", self.features_dataset, trained.get("dates", []))
        tags["skylift.feature_fingerprints"] = ",".join(f"{n['ds']}:{n['fingerprint'][:12]}" for n in chain.partitions
                                                        if n["zone"] == "features")
        sources = sorted({f"{s['source']}#{s['sha256'][:12]}" for s in chain.sources})
        tags["skylift.raw_sources"] = ",".join(sources)[:4900]  # MLflow caps tag values at 5000
        tags["skylift.validation"] = ",".join(sorted({f"{n['ds']}:{n.get('status', '?')}" for n in chain.partitions
                                                      if n["zone"] == "validated"}))
        return tags
