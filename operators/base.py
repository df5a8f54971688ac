"""What every Skylift stage operator shares: settings, hooks and the partition date."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from include.errors import LakeError, SpecError
from operators.hooks.lake import LakeHook
from operators.hooks.mlflow import MlflowHook
from operators.settings import Settings


def partition_date(context: Any) -> str:
    """The date a run works on, refused when it is before the pipeline's `start_date`.

    The compiler gives every task the spec's start_date (`pipeline_start`) and the DAG an earlier
    one: Airflow creates no task instance before a DAG's start_date, so a run the UI triggers for
    an earlier logical date would otherwise "succeed" having run nothing. Here it fails, naming
    the date and the fix.
    """
    ds = _requested_date(context)
    first = getattr(context.get("task"), "pipeline_start", None)
    if first is not None:
        if date.fromisoformat(ds) < date.fromisoformat(str(first)):
            pipeline = getattr(context.get("task"), "pipeline", "the pipeline")
            raise SpecError(f"{ds} is before pipeline {pipeline!r}'s start_date {first}: pick a later date (the "
                            "`ds` parameter or the run's logical date) or set an earlier start_date in its spec")
        return ds
    dag = context.get("dag")
    start = getattr(dag, "start_date", None)
    if start is not None and date.fromisoformat(ds) < start.date():
        raise SpecError(f"{ds} is before {dag.dag_id}'s start_date {start.date()}: set start_date in the "
                        "pipeline's spec or pick a later date (the `ds` parameter)")
    return ds


def _requested_date(context: Any) -> str:
    """The date a run asks for: the `ds` param if given, else `train_end` (a retrain "as of" that
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


def refuse_undeclared_conf(context: Any) -> None:
    """Fail a run whose conf names a key that is not one of its DAG's params.

    Airflow validates the declared params of a trigger but passes any other conf key through, and
    an operator might apply it (an undeclared hyper-parameter reaching the trainer untyped). The
    compiler sets this as every task's `pre_execute` hook, so whichever task runs first (a sensor,
    an ingest or a training pod) fails before doing anything, and nothing downstream runs.
    """
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    declared = set(context["dag"].params)
    unknown = sorted(set(conf) - declared)
    if unknown:
        raise SpecError(f"this run's conf has {unknown}, which {'is' if len(unknown) == 1 else 'are'} not a "
                        f"parameter of DAG {context['dag'].dag_id!r}; its parameters are {sorted(declared)}: "
                        "trigger it again without those keys")


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

    def __init__(self, *, pipeline: str, pipeline_start: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.pipeline_start = pipeline_start  # the spec's start_date (see partition_date)

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
            self.refuse_foreign(manifest)  # another pipeline's partition is neither kept nor replaced
            if manifest is None or manifest.extra.get("build_key") != key:
                return None
            self.lake.check(manifest, checksums=True)
        except DamagedPartition as exc:
            self.log.warning("%s; rebuilding it", exc)
            return None
        self.log.info("%s/%s/ds=%s is up to date (built %s by run %s from the same inputs); kept as is",
                      zone, dataset, ds, manifest.created_at, manifest.run_id)
        return manifest

    def kept_output(self, context: Any) -> Any | None:
        """The partition a run with this context would keep as it is (same build key, undamaged), None
        when it would build it; read only, so `skylift plan` asks the stage itself. Stages that
        always build say None."""
        return None

    def publish(self, zone: str, dataset: str, ds: str, **manifest_fields: Any):
        """`Lake.publish`, refusing to replace a partition another pipeline wrote; records this
        pipeline in the manifest's `extra` so the next writer can tell."""
        return self.lake.publish(zone, dataset, ds, **self._owned_fields(zone, dataset, ds, manifest_fields))

    def amend(self, zone: str, dataset: str, ds: str, files: Any, **manifest_fields: Any) -> Any:
        """`Lake.amend` (add files to a partition, keeping the others), with the same ownership
        check and record as `publish`."""
        return self.lake.amend(zone, dataset, ds, files, **self._owned_fields(zone, dataset, ds, manifest_fields))

    def _owned_fields(self, zone: str, dataset: str, ds: str, manifest_fields: dict[str, Any]) -> dict[str, Any]:
        """Refuse a partition another pipeline wrote; the manifest fields with this pipeline in `extra`."""
        self.check_partition_owner(zone, dataset, ds)
        return {**manifest_fields, "extra": {**manifest_fields.get("extra", {}), "pipeline": self.pipeline}}

    def withdraw(self, zone: str, dataset: str, ds: str) -> bool:
        """`Lake.delete_partition`, with the same ownership check as `publish`."""
        self.check_partition_owner(zone, dataset, ds)
        return self.lake.delete_partition(zone, dataset, ds)

    def check_partition_owner(self, zone: str, dataset: str, ds: str) -> None:
        from include.errors import DamagedPartition

        try:
            manifest = self.lake.manifest(zone, dataset, ds)
        except DamagedPartition as exc:
            # An unreadable manifest names no owner; replacing it is how a retry heals the partition
            # (the spec loader already refuses two specs that write one dataset).
            self.log.warning("%s; its owner cannot be read, replacing it", exc)
            return
        self.refuse_foreign(manifest)

    def refuse_foreign(self, manifest: Any | None) -> None:
        """Refuse a partition whose manifest says another pipeline wrote it (older manifests name none)."""
        owner = manifest.extra.get("pipeline") if manifest is not None else None
        if owner is not None and owner != self.pipeline:
            zone, dataset, ds = manifest.zone, manifest.dataset, manifest.ds
            raise LakeError(f"{zone}/{dataset}/ds={ds} was written by pipeline {owner!r} (run {manifest.run_id}); "
                            f"pipeline {self.pipeline!r} may not replace it. Two specs name the same dataset: "
                            "give this pipeline's spec its own dataset name")

    def run_identity(self, context: Any) -> dict[str, str]:
        """Who wrote an output: recorded in manifests and MLflow tags for lineage."""
        ti = context["ti"]
        return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "try_number": str(ti.try_number)}
