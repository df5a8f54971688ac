"""Each shipped feature job gives the same rows on DuckDB (sqlframe) as on Spark, from the same files.

Inputs are small: the typed Parquet days the validate stage would publish (read through the
product's contracts), three days of churn activity, the NYC flights schedule and weather, and
the parcels tutorial's shipments. One Spark session serves the whole module.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.contracts import Contract, read_drop
from include.duckdb_features import write_features as write_on_duckdb
from include.errors import FeatureJobError
from include.feature_engine import JobInputs
from include.spark_features import write_features as write_on_spark

ROOT = Path(__file__).resolve().parents[2]
PARCELS = ROOT / "include" / "examples" / "parcels"


def typed_days(folder: Path, contract: str, drops: dict[str, bytes]) -> dict[str, list[str]]:
    """Each day's CSV drop read through its contract and stored as that day's Parquet file."""
    schema = Contract.from_file(ROOT / contract)
    days = {}
    for day, data in sorted(drops.items()):
        path = folder / f"{day}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(read_drop([(f"{day}.csv", data)], "csv", schema).table, path)
        days[day] = [str(path)]
    return days


def churn_inputs(folder: Path) -> tuple[JobInputs, str]:
    from include.datagen.churn import generate

    end = date(2026, 11, 20)
    drops = {p.parent.name: p.read_bytes() for p in generate(folder / "csv", end, days=3, n_customers=60)}
    return JobInputs({"": typed_days(folder / "activity", "include/schemas/customer_activity.yaml", drops)}), \
        end.isoformat()


def flights_inputs(folder: Path) -> tuple[JobInputs, str]:
    from include.datagen import flights as fl

    data = fl.load(origins=("EWR", "LGA"))
    days = [date(2013, 2, 6) + timedelta(days=n) for n in range(3)]
    schedule = {d.isoformat(): fl.flights_drop(data, d, per_day=40).to_csv(index=False).encode() for d in days}
    weather = {d.isoformat(): fl.weather_drop(data, d).to_csv(index=False).encode() for d in days}
    return JobInputs({"flights": typed_days(folder / "flights", "include/schemas/flights.yaml", schedule),
                      "weather": typed_days(folder / "weather", "include/schemas/weather.yaml", weather)}), \
        days[-1].isoformat()


def parcels_inputs(folder: Path) -> tuple[JobInputs, str]:
    from make_drops import write_drop  # importable while the module runs (parcel_jobs_importable)

    days = [date(2026, 3, 1) + timedelta(days=n) for n in range(2)]
    drops = {d.isoformat(): write_drop(folder / "csv", d).read_bytes() for d in days}
    return JobInputs({"shipments": typed_days(folder / "shipments", "include/examples/parcels/contracts/shipments.yaml",
                                              drops)}), days[-1].isoformat()


JOBS = {"include.features.churn:build": churn_inputs, "include.features.flights:build": flights_inputs,
        "parcel_jobs.features:build": parcels_inputs}


@pytest.fixture(scope="module")
def spark():
    from operators.hooks.spark import SparkHook

    with SparkHook("local[1]", app_name="engines").session() as session:
        yield session


@pytest.fixture(scope="module", autouse=True)
def parcel_jobs_importable():
    sys.path.insert(0, str(PARCELS))
    yield
    sys.path.remove(str(PARCELS))


def load(job_path: str):
    import importlib

    module, _, func = job_path.partition(":")
    return getattr(importlib.import_module(module), func)


@pytest.mark.parametrize("job_path", sorted(JOBS))
def test_the_job_gives_the_same_rows_and_types_on_both_engines(job_path, spark, tmp_path):
    inputs, ds = JOBS[job_path](tmp_path / "in")
    write_on_spark(spark, load(job_path), job_path, inputs, ds, tmp_path / "spark")
    write_on_duckdb(job_path, inputs, ds, tmp_path / "duckdb")
    on_spark = pq.read_table(tmp_path / "spark")
    on_duckdb = pq.read_table(tmp_path / "duckdb")
    # Names and types; nullability is each engine's own inference (Spark's is looser) and is not compared.
    assert [(f.name, f.type) for f in on_duckdb.schema] == [(f.name, f.type) for f in on_spark.schema]
    assert on_spark.num_rows > 0
    # Both engines write the rows sorted by every column, so the rows compare in order.
    pd.testing.assert_frame_equal(on_duckdb.to_pandas(), on_spark.to_pandas(), check_exact=False, rtol=1e-9)
    # The DuckDB run leaves the job's module bound to the real PySpark for later Spark runs.
    from pyspark.sql import DataFrame

    assert load(job_path).__globals__["DataFrame"] is DataFrame


def test_a_job_without_a_return_is_named_on_duckdb_too(tmp_path):
    job = tmp_path / "jobs_without_return" / "forgetful.py"
    job.parent.mkdir()
    job.write_text("from pyspark.sql import functions as F\n\n\ndef build(rows, ds):\n"
                   "    rows.where(F.col('ds') == ds)\n")
    inputs, ds = parcels_inputs(tmp_path / "in")
    sys.path.insert(0, str(job.parent.parent))
    try:
        with pytest.raises(FeatureJobError, match=r"^feature job jobs_without_return.forgetful:build returned None "
                                                  r"for ds=2026-03-02; it must return a Spark DataFrame"):
            write_on_duckdb("jobs_without_return.forgetful:build", JobInputs({"": inputs.files["shipments"]}), ds,
                            tmp_path / "out")
    finally:
        sys.path.remove(str(job.parent.parent))
    assert "jobs_without_return.forgetful" not in sys.modules


def test_the_features_task_records_its_engine_and_publishes_the_same_rows_on_both(spark, skylift_env, context_for,
                                                                                   tmp_path):
    """Through the operator: validated partitions in, an atomic publish out, the engine in the manifest.
    Last in the module: the Spark run stops the module's session (SparkHook stops what it used)."""
    from include.lake import Lake
    from operators.features import FeaturesOperator

    lake = Lake(f"file://{skylift_env}/lake")
    inputs, ds = parcels_inputs(tmp_path / "in")
    for day, (path,) in inputs.files["shipments"].items():
        with lake.publish("validated", "shipments", day) as writer:
            writer.write_table(pq.read_table(path))
    results = {}
    for engine in ("duckdb", "spark"):
        op = FeaturesOperator(task_id="features", pipeline="t", job="parcel_jobs.features:build",
                              sources={"shipments": "shipments"}, dataset=f"parcels_{engine}", lookback_days=2,
                              engine=engine)
        results[engine] = op.execute(context_for(ds, task_id="features"))
        manifest = lake.require("features", f"parcels_{engine}", ds)
        assert (manifest.extra["engine"], manifest.extra["engine_reason"]) == (engine, f"features.engine is {engine}")
    assert results["duckdb"] == {**results["spark"], "engine": "duckdb"}
    assert results["spark"]["engine"] == "spark" and results["spark"]["rows"] == 60
    on_duckdb, on_spark = (lake.read_table("features", f"parcels_{e}", ds) for e in ("duckdb", "spark"))
    pd.testing.assert_frame_equal(on_duckdb.to_pandas(), on_spark.to_pandas(), check_exact=False, rtol=1e-9)
