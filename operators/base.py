"""What every Skylift stage operator shares: settings, hooks and the partition date."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from include.errors import SpecError
from operators.hooks.lake import LakeHook
from operators.hooks.mlflow import MlflowHook
from operators.settings import Settings


def partition_date(context: Any) -> str:
    """The date a run works on: the `ds` param if given, else `train_end` (a retrain "as of" that
    day), else the logical date, else the day the run was triggered (`run_after`).

    A run triggered through the REST API or UI may have no logical date at all, so `ds` is never
    assumed to be in the context.
    """
    params = context.get("params") or {}
    override = params.get("ds") or params.get("train_end")
    if override:
        try:
            return date.fromisoformat(str(override)).isoformat()
        except ValueError as exc:
            raise SpecError(f"param ds={override!r} is not a date (YYYY-MM-DD)") from exc
    logical = context.get("logical_date")
    if logical is not None:
        return logical.date().isoformat()
    return context["dag_run"].run_after.date().isoformat()


def file_digest(path: str | Path) -> str:
    """Checksum of a file a stage's output depends on (a contract, a suite, a job's source)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def date_window(end: str, days: int) -> list[str]:
    """`days` consecutive dates ending at `end`, oldest first."""
    last = date.fromisoformat(end)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]


class SkyliftOperator(BaseOperator):
    """Base of the stage operators. The constructor only stores; hooks are built on first use."""

    ui_color = "#e8f1fb"

    def __init__(self, *, pipeline: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline

    @cached_property
    def settings(self) -> Settings:
        return Settings.resolve()

    @cached_property
    def lake_hook(self) -> LakeHook:
        return LakeHook(root=self.settings.lake_root, conn_id=self.settings.lake_conn_id,
                        verify_checksums=self.settings.lake_verify_checksums)

    @cached_property
    def lake(self):  # -> include.lake.Lake (imported lazily: pyarrow is not needed to parse DAGs)
        return self.lake_hook.get_lake()

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(self.settings.mlflow_tracking_uri, self.settings.mlflow_artifact_root)

    def build_key(self, inputs: list[Any], **config: Any) -> str:
        """What an output is built from: its inputs' fingerprints plus the stage's configuration."""
        body = {"stage": type(self).__name__, "inputs": inputs, "config": config}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    def unchanged(self, context: Any, zone: str, dataset: str, ds: str, key: str) -> Any | None:
        """The published partition if it was built from exactly these inputs and settings.

        Re-running such a stage would rewrite the same rows, so it keeps the partition instead;
        the `rebuild` trigger parameter forces a rewrite. Before trusting it for good, its files are
        checked against the manifest (sizes, SHA-256, row counts): a damaged partition, or one whose
        manifest is unreadable, is rebuilt, so a plain retry heals it.
        """
        from include.errors import DamagedPartition

        if (context.get("params") or {}).get("rebuild"):
            return None
        try:
            manifest = self.lake.manifest(zone, dataset, ds)
            if manifest is None or manifest.extra.get("build_key") != key:
                return None
            self.lake.check(manifest, checksums=True)
        except DamagedPartition as exc:
            self.log.warning("%s; rebuilding it", exc)
            return None
        self.log.info("%s/%s/ds=%s is up to date (built %s by run %s from the same inputs); kept as is",
                      zone, dataset, ds, manifest.created_at, manifest.run_id)
        return manifest

    def run_identity(self, context: Any) -> dict[str, str]:
        """Who wrote an output: recorded in manifests and MLflow tags for lineage."""
        ti = context["ti"]
        return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "try_number": str(ti.try_number)}
