"""Stage 3: run a PySpark feature job over the validated partitions of a look-back window."""

from __future__ import annotations

import importlib
import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.errors import FeatureJobError, PartitionNotFound, SpecError
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


def check_job_arguments(job: Any, path: str, sources: list[str]) -> None:
    """The job must take each source by name, plus `ds`: say which names do not fit, before Spark starts."""
    try:
        inspect.signature(job).bind(**dict.fromkeys(sources), ds=None)
    except TypeError as exc:
        params = list(inspect.signature(job).parameters)
        raise SpecError(f"feature job {path!r} takes {params}, but it is called with the sources {sources} and "
                        f"'ds' as keyword arguments ({exc}); name the job's parameters after the sources") from exc


def check_job_result(result: Any, path: str, ds: str) -> None:
    """A feature job must return a Spark DataFrame; say so plainly when it did not."""
    from pyspark.sql import DataFrame  # the base of classic and Spark Connect frames

    if isinstance(result, DataFrame):
        return
    if result is None:
        raise FeatureJobError(f"feature job {path} returned None for ds={ds}; it must return a Spark DataFrame "
                              "(missing return?)")
    raise FeatureJobError(f"feature job {path} returned a {type(result).__module__}.{type(result).__qualname__} "
                          f"for ds={ds}; it must return a Spark DataFrame")


def check_job_rows(rows: int, path: str, ds: str, inputs: list[str]) -> None:
    """An empty features partition is not a success: downstream would fail later, less clearly."""
    if rows == 0:
        raise FeatureJobError(f"feature job {path} returned no rows for ds={ds} from {', '.join(inputs)}; "
                              "nothing was published. Check the job's filters and joins against these inputs")


@dataclass(frozen=True)
class FeatureInputs:
    """What a features run reads: each input's published days in the window, the days missing, and
    the build key (the inputs' content fingerprints, shared ones included, plus job and window)."""

    found: dict[str, dict[str, Any]]  # input name -> date -> manifest
    missing: list[str]
    key: str

    @property
    def manifests(self) -> list[Any]:
        return [m for days in self.found.values() for m in days.values()]


class FeaturesOperator(SkyliftOperator):
    """Read `validated/<source>` for the window ending at the run's date, call the job, and
    publish `features/<dataset>` for that date. Days missing in the window are skipped (and
    recorded); the run's own day must be there. With `sources`, every source is read and handed
    to the job by name (`build(activity=..., ds=...)`); a label source is never among them.
    `shared` names the sources another pipeline owns (name -> owning pipeline): they are read only,
    their writer is checked, and a missing day names the owner.
    """

    ui_color = "#e9e2f7"

    def __init__(self, *, job: str, source_dataset: str | None = None, dataset: str,
                 sources: dict[str, str] | None = None, shared: dict[str, str] | None = None,
                 lookback_days: int = 7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (source_dataset is None) == (sources is None):
            raise SpecError("give the feature job either one source_dataset (passed positionally) or sources "
                            "(name -> dataset, passed as keyword arguments)")
        self.job = job
        self.source_dataset = source_dataset
        # Keyword name -> validated dataset; None: the one source is the job's first positional argument.
        self.sources = dict(sources) if sources is not None else None
        self.shared = dict(shared or {})
        if set(self.shared) - set(self.sources or {}):
            raise SpecError(f"shared inputs {sorted(set(self.shared) - set(self.sources or {}))} are not among the "
                            f"job's sources {sorted(self.sources or {})}")
        self.dataset = dataset
        self.lookback_days = lookback_days

    @property
    def datasets(self) -> dict[str, str]:
        return self.sources if self.sources is not None else {"": self.source_dataset}

    def execute(self, context: Any) -> dict[str, Any]:
        ds = partition_date(context)
        window = date_window(ds, self.lookback_days)
        job = load_job(self.job)
        if self.sources is not None:
            check_job_arguments(job, self.job, list(self.sources))
        collected = self.collect_inputs(ds, window, file_digest(inspect.getsourcefile(job)))
        found, missing, key, inputs = collected.found, collected.missing, collected.key, collected.manifests
        if missing:
            self.log.warning("look-back window lacks %d partition(s): %s", len(missing), ", ".join(missing))
        present = sorted({d for days in found.values() for d in days})
        kept = self.unchanged(context, "features", self.dataset, ds, key)
        if kept is not None:
            return {"ds": ds, "rows": kept.row_count, "days": present, "reused": True}
        spark_hook = SparkHook(self.settings.spark_master, app_name=f"skylift-{self.pipeline}-features")
        with spark_hook.session() as spark, tempfile.TemporaryDirectory(prefix="skylift-features-") as tmp:
            out = Path(tmp) / "out"
            self._run_job(spark, job, {name: sorted(days) for name, days in found.items()}, ds, out)
            check_job_rows(_parquet_rows(out), self.job, ds,
                           [f"validated/{m.dataset}/ds={m.ds}" for m in inputs])
            with self.publish(
                "features", self.dataset, ds,
                run_id=context["ti"].run_id,
                inputs=[m.as_input() for m in inputs],
                extra={"job": self.job, "window": window, "missing_days": missing, "build_key": key},
            ) as writer:
                for part in sorted(out.glob("part-*.parquet")):
                    writer.add_parquet_file(str(part))
        rows = writer.manifest.row_count
        self.log.info("features/%s/ds=%s: %d rows from %d day(s)", self.dataset, ds, rows, len(present))
        return {"ds": ds, "rows": rows, "days": present}

    def collect_inputs(self, ds: str, window: list[str], code: str) -> FeatureInputs:
        """Each input's published days in the window (the run's own day required) and the build key.
        A shared input's day comes from its owner: a missing one names that pipeline, and a partition
        another pipeline wrote is refused. Its content fingerprint is in the key like any input's, so a
        partition the owner republishes with other rows rebuilds these features."""
        from include.shared_partitions import SharedPartition, check_writer, require_shared

        found, missing = {}, []
        for name, dataset in self.datasets.items():
            manifests = {d: self.lake.manifest("validated", dataset, d) for d in window}
            shared = SharedPartition(owner=self.shared[name], dataset=dataset) if name in self.shared else None
            if shared is not None:
                manifests[ds] = require_shared(self.lake, shared, ds)
                for manifest in manifests.values():
                    if manifest is not None:
                        check_writer(manifest, shared)
            elif manifests[ds] is None:
                raise PartitionNotFound(
                    f"validated/{dataset}/ds={ds} does not exist: the day's data was not ingested "
                    "or did not pass validation"
                )
            found[name] = {d: m for d, m in manifests.items() if m is not None}
            missing += [f"{dataset}/{d}" for d in window if manifests[d] is None]
        fingerprints = [m.fingerprint for days in found.values() for m in days.values()]
        key = self.build_key(fingerprints, job=self.job, window=window, code=code)
        return FeatureInputs(found, missing, key)

    def _run_job(self, spark: Any, job: Any, dates: dict[str, list[str]], ds: str, out: Path) -> None:
        from contextlib import ExitStack
        from functools import reduce

        from pyspark.sql import functions as F

        # The files must stay in place until the write below has run: Spark reads lazily.
        with ExitStack() as stack:
            frames = {}
            for name, dataset in self.datasets.items():
                files = stack.enter_context(self.lake.local_files("validated", dataset, dates[name]))
                days = [spark.read.parquet(*files[day]).withColumn("ds", F.lit(day)) for day in dates[name]]
                frames[name] = reduce(lambda a, b: a.unionByName(b), days)
            features = job(frames[""], ds) if self.sources is None else job(**frames, ds=ds)
            check_job_result(features, self.job, ds)
            # One file per partition keeps small daily outputs tidy. Sorted, so the same rows give
            # the same bytes whatever order the shuffle returned them in: a rebuild that changes
            # nothing keeps its fingerprint, and training and scoring downstream stay reusable.
            orderable = [f.name for f in features.schema.fields if f.dataType.typeName() != "map"]
            features.coalesce(1).sortWithinPartitions(*orderable).write.mode("overwrite").parquet(str(out))


def _parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(part).num_rows for part in folder.glob("part-*.parquet"))
