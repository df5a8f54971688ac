"""Which engine runs a PySpark feature job: Spark, or DuckDB through sqlframe's PySpark API.

Pure: no Spark, no DuckDB, no Airflow. The features task asks `choose_engine` once it knows
how many rows the look-back window holds, runs the job on the engine it names and records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EngineName = Literal["spark", "duckdb"]
EngineSetting = Literal["auto", "spark", "duckdb"]

# `auto` runs a job on DuckDB up to this many input rows (all sources, all days of the window).
# Measured on 2 cores (benchmarks/RESULTS.md): DuckDB beat Spark local[2] at every size run, so the
# line is about one process's memory, not speed: the churn job peaked at 3.0 GiB at 10M rows, so
# 20M stays near 6 GiB on a worker; past it, or on a cluster, Spark is the place for the job.
DEFAULT_DUCKDB_MAX_ROWS = 20_000_000


@dataclass(frozen=True)
class EngineChoice:
    """The engine a features run uses and why (logged, and kept in the partition's manifest)."""

    engine: EngineName
    reason: str


@dataclass(frozen=True)
class JobInputs:
    """The local Parquet files a feature job reads: argument name -> day -> files.

    The name "" is the one source of the single-source shorthand, passed positionally.
    """

    files: dict[str, dict[str, list[str]]]

    @property
    def positional(self) -> bool:
        return list(self.files) == [""]


def is_cluster(spark_master: str) -> bool:
    """A master that is not `local[...]` runs executors elsewhere: the data may not fit here."""
    return not spark_master.startswith("local")


def choose_engine(setting: EngineSetting, spark_master: str, input_rows: int,
                  duckdb_max_rows: int = DEFAULT_DUCKDB_MAX_ROWS) -> EngineChoice:
    """`spark` and `duckdb` are obeyed; `auto` picks Spark for a cluster master or more than
    `duckdb_max_rows` input rows, DuckDB otherwise."""
    if setting == "spark":
        return EngineChoice("spark", "features.engine is spark")
    if setting == "duckdb":
        return EngineChoice("duckdb", "features.engine is duckdb")
    if setting != "auto":
        raise ValueError(f"features.engine must be auto, spark or duckdb, not {setting!r}")
    if is_cluster(spark_master):
        return EngineChoice("spark", f"auto: the Spark master {spark_master} is a cluster")
    if input_rows > duckdb_max_rows:
        return EngineChoice("spark", f"auto: {input_rows:,} input rows exceed duckdb_max_rows {duckdb_max_rows:,}")
    return EngineChoice("duckdb", f"auto: {input_rows:,} input rows, at most duckdb_max_rows {duckdb_max_rows:,}, "
                                  f"and a local Spark master ({spark_master})")


def check_job_result(result: object, path: str, ds: str, frame_type: type | None = None) -> None:
    """A feature job must return a DataFrame of the engine it ran on (Spark's by default)."""
    if frame_type is None:
        from pyspark.sql import DataFrame  # the base of classic and Spark Connect frames

        frame_type = DataFrame
    if isinstance(result, frame_type):
        return
    from include.errors import FeatureJobError

    if result is None:
        raise FeatureJobError(f"feature job {path} returned None for ds={ds}; it must return a Spark DataFrame "
                              "(missing return?)")
    raise FeatureJobError(f"feature job {path} returned a {type(result).__module__}.{type(result).__qualname__} "
                          f"for ds={ds}; it must return a Spark DataFrame")
