"""Stage 3: run a PySpark feature job over the validated partitions of a look-back window."""

from __future__ import annotations

import importlib
import inspect
import tempfile
from pathlib import Path
from typing import Any

from include.errors import PartitionNotFound, SpecError
from operators.base import SkyliftOperator, date_window, file_digest, partition_date
from operators.hooks.spark import SparkHook


def load_job(path: str):
    """Import `module:function`; the spec loader has already checked the module is allowed."""
    module_name, _, func_name = path.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"feature job {path!r} cannot be loaded: {exc}") from exc
    if not callable(func):
        raise SpecError(f"feature job {path!r} is not a function")
    return func


class FeaturesOperator(SkyliftOperator):
    """Read `validated/<source>` for the window ending at the run's date, call the job, and
    publish `features/<dataset>` for that date. Days missing in the window are skipped (and
    recorded); the run's own day must be there.
    """

    ui_color = "#e9e2f7"

    def __init__(self, *, job: str, source_dataset: str, dataset: str, lookback_days: int = 7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.source_dataset = source_dataset
        self.dataset = dataset
        self.lookback_days = lookback_days

    def execute(self, context: Any) -> dict[str, Any]:
        ds = partition_date(context)
        window = date_window(ds, self.lookback_days)
        manifests = {d: self.lake.manifest("validated", self.source_dataset, d) for d in window}
        present = [d for d in window if manifests[d] is not None]
        if manifests[ds] is None:
            raise PartitionNotFound(
                f"validated/{self.source_dataset}/ds={ds} does not exist: the day's data was not ingested "
                "or did not pass validation"
            )
        missing = sorted(set(window) - set(present))
        if missing:
            self.log.warning("look-back window lacks %d day(s): %s", len(missing), ", ".join(missing))
        job = load_job(self.job)
        key = self.build_key([manifests[d].fingerprint for d in present], job=self.job, window=window,
                             code=file_digest(inspect.getsourcefile(job)))
        kept = self.unchanged(context, "features", self.dataset, ds, key)
        if kept is not None:
            return {"ds": ds, "rows": kept.row_count, "days": present, "reused": True}
        spark_hook = SparkHook(self.settings.spark_master, app_name=f"skylift-{self.pipeline}-features")
        with spark_hook.session() as spark, tempfile.TemporaryDirectory(prefix="skylift-features-") as tmp:
            out = Path(tmp) / "out"
            self._run_job(spark, job, present, ds, out)
            with self.lake.publish(
                "features", self.dataset, ds,
                run_id=context["ti"].run_id,
                inputs=[manifests[d].as_input() for d in present],
                extra={"job": self.job, "window": window, "missing_days": missing, "build_key": key},
            ) as writer:
                for part in sorted(out.glob("part-*.parquet")):
                    writer.add_parquet_file(str(part))
        rows = writer.manifest.row_count
        self.log.info("features/%s/ds=%s: %d rows from %d day(s)", self.dataset, ds, rows, len(present))
        return {"ds": ds, "rows": rows, "days": present}

    def _run_job(self, spark: Any, job: Any, dates: list[str], ds: str, out: Path) -> None:
        from functools import reduce

        from pyspark.sql import functions as F

        # The files must stay in place until the write below has run: Spark reads lazily.
        with self.lake.local_files("validated", self.source_dataset, dates) as files:
            frames = [spark.read.parquet(*files[day]).withColumn("ds", F.lit(day)) for day in dates]
            activity = reduce(lambda a, b: a.unionByName(b), frames)
            features = job(activity, ds)
            # One file per partition keeps small daily outputs tidy. Sorted, so the same rows give
            # the same bytes whatever order the shuffle returned them in: a rebuild that changes
            # nothing keeps its fingerprint, and training and scoring downstream stay reusable.
            orderable = [f.name for f in features.schema.fields if f.dataType.typeName() != "map"]
            features.coalesce(1).sortWithinPartitions(*orderable).write.mode("overwrite").parquet(str(out))
