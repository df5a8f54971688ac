"""Stage 3: run a PySpark feature job over the validated partitions of a look-back window."""

from __future__ import annotations

import importlib
import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.errors import FeatureJobError, PartitionNotFound, SpecError
from include.feature_engine import (
    DEFAULT_DUCKDB_MAX_ROWS,
    EngineChoice,
    EngineSetting,
    JobInputs,
    check_job_result,
    choose_engine,
)
from operators.base import SkyliftOperator, date_window, file_digest, partition_date
from operators.hooks.spark import SparkHook

__all__ = ["check_job_result", "check_job_rows", "load_job"]


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
    `engine` (auto, spark, duckdb) picks where the job runs (include/feature_engine.py): `auto` runs
    it on DuckDB through sqlframe up to `duckdb_max_rows` input rows with a local Spark master, on
    Spark otherwise. The engine used is logged, returned and kept in the partition's manifest.
    """

    ui_color = "#e9e2f7"

    def __init__(self, *, job: str, source_dataset: str | None = None, dataset: str,
                 sources: dict[str, str] | None = None, shared: dict[str, str] | None = None,
                 lookback_days: int = 7, engine: EngineSetting = "auto",
                 duckdb_max_rows: int = DEFAULT_DUCKDB_MAX_ROWS, **kwargs: Any) -> None:
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
        self.engine = engine
        self.duckdb_max_rows = duckdb_max_rows

    @property
    def datasets(self) -> dict[str, str]:
        return self.sources if self.sources is not None else {"": self.source_dataset}

    def kept_output(self, context: Any) -> Any | None:
        ds = partition_date(context)
        _, collected = self.job_and_inputs(ds)
        return self.unchanged(context, "features", self.dataset, ds, collected.key)

    def job_and_inputs(self, ds: str) -> tuple[Any, FeatureInputs]:
        """The job (its arguments checked against the sources) and the window's inputs, whose build
        key covers the job's source file."""
        job = load_job(self.job)
        if self.sources is not None:
            check_job_arguments(job, self.job, list(self.sources))
        window = date_window(ds, self.lookback_days)
        return job, self.collect_inputs(ds, window, file_digest(inspect.getsourcefile(job)))

    def execute(self, context: Any) -> dict[str, Any]:
        ds = partition_date(context)
        window = date_window(ds, self.lookback_days)
        job, collected = self.job_and_inputs(ds)
        found, missing, key, inputs = collected.found, collected.missing, collected.key, collected.manifests
        if missing:
            self.log.warning("look-back window lacks %d partition(s): %s", len(missing), ", ".join(missing))
        present = sorted({d for days in found.values() for d in days})
        kept = self.unchanged(context, "features", self.dataset, ds, key)
        if kept is not None:
            return {"ds": ds, "rows": kept.row_count, "days": present, "reused": True,
                    "engine": kept.extra.get("engine")}
        choice = self.choose_engine(inputs)
        self.log.info("features on %s (%s)", choice.engine, choice.reason)
        with tempfile.TemporaryDirectory(prefix="skylift-features-") as tmp:
            out = Path(tmp) / "out"
            self._run_job(choice, job, {name: sorted(days) for name, days in found.items()}, ds, out)
            check_job_rows(_parquet_rows(out), self.job, ds,
                           [f"validated/{m.dataset}/ds={m.ds}" for m in inputs])
            with self.publish(
                "features", self.dataset, ds,
                run_id=context["ti"].run_id,
                inputs=[m.as_input() for m in inputs],
                extra={"job": self.job, "window": window, "missing_days": missing, "build_key": key,
                       "engine": choice.engine, "engine_reason": choice.reason},
            ) as writer:
                for part in sorted(out.glob("part-*.parquet")):
                    writer.add_parquet_file(str(part))
        rows = writer.manifest.row_count
        self.log.info("features/%s/ds=%s: %d rows from %d day(s) on %s", self.dataset, ds, rows, len(present),
                      choice.engine)
        return {"ds": ds, "rows": rows, "days": present, "engine": choice.engine}

    def choose_engine(self, inputs: list[Any]) -> EngineChoice:
        """Where the job runs, from the setting, the Spark master and the window's input rows."""
        return choose_engine(self.engine, self.settings.spark_master, sum(m.row_count for m in inputs),
                             self.duckdb_max_rows)

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

    def _run_job(self, choice: EngineChoice, job: Any, dates: dict[str, list[str]], ds: str, out: Path) -> None:
        from contextlib import ExitStack

        # The files must stay in place until the write below has run: Spark reads lazily.
        with ExitStack() as stack:
            files = {name: stack.enter_context(self.lake.local_files("validated", dataset, dates[name]))
                     for name, dataset in self.datasets.items()}
            inputs = JobInputs(files)
            if choice.engine == "duckdb":
                from include.duckdb_features import write_features

                write_features(self.job, inputs, ds, out)
                return
            from include.spark_features import write_features

            hook = SparkHook(self.settings.spark_master, app_name=f"skylift-{self.pipeline}-features")
            with hook.session() as spark:
                write_features(spark, job, self.job, inputs, ds, out)


def _parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(part).num_rows for part in folder.glob("part-*.parquet"))
