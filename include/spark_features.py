"""Run a PySpark feature job on Spark over local Parquet files and write its rows as Parquet."""

from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Any

from include.feature_engine import JobInputs, check_job_result


def write_features(spark: Any, job: Any, job_path: str, inputs: JobInputs, ds: str, out: Path) -> None:
    """Each argument's days read with their `ds`, unioned, handed to the job; its result written
    to `out` as one sorted Parquet file."""
    from pyspark.sql import functions as F

    frames = {}
    for name, days in inputs.files.items():
        parts = [spark.read.parquet(*files).withColumn("ds", F.lit(day)) for day, files in sorted(days.items())]
        frames[name] = reduce(lambda a, b: a.unionByName(b), parts)
    features = job(frames[""], ds) if inputs.positional else job(**frames, ds=ds)
    check_job_result(features, job_path, ds)
    # One file per partition keeps small daily outputs tidy. Sorted, so the same rows give
    # the same bytes whatever order the shuffle returned them in: a rebuild that changes
    # nothing keeps its fingerprint, and training and scoring downstream stay reusable.
    orderable = [f.name for f in features.schema.fields if f.dataType.typeName() != "map"]
    features.coalesce(1).sortWithinPartitions(*orderable).write.mode("overwrite").parquet(str(out))
