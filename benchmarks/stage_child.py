"""Children of the data benchmarks: one side of one comparison, measured once in a fresh process.

    python -m benchmarks.stage_child SIDE ARGS...

Inputs are prepared by the parent benchmark; reading them into memory is not timed, the work
being compared is (`seconds`), and the parent adds the process's wall time and peak memory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import ROOT, report

SIDES: dict[str, Callable[..., None]] = {}


def side(name: str):
    def register(func):
        SIDES[name] = func
        return func
    return register


# ---- ingest -------------------------------------------------------------------------------------
CONTRACT = ROOT / "include/schemas/customer_activity.yaml"


@side("ingest-pyarrow")
def ingest_pyarrow(csv: str, out: str) -> None:
    """pyarrow's typed CSV read of the drop and a Parquet write: what a hand-written ingest does."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from include.contracts import Contract

    schema = Contract.from_file(CONTRACT).arrow_schema
    data = Path(csv).read_bytes()

    def ingest(body: bytes, name: str):
        table = pacsv.read_csv(pa.BufferReader(body), convert_options=pacsv.ConvertOptions(
            column_types=schema, true_values=["true"], false_values=["false"]))
        pq.write_table(table, f"{out}/{name}.parquet", compression="zstd")
        return table

    ingest(_head(data), "warm-up")
    start = time.perf_counter()
    table = ingest(data, "plain")
    report(seconds=time.perf_counter() - start, rows=table.num_rows)


@side("ingest-skylift")
def ingest_skylift(csv: str, out: str) -> None:
    """The ingest stage's work on the same drop, as `IngestOperator` does it: `DropStream` reads the
    file batch by batch (contract, partition date, SHA-256 on the way; key across batches) into
    `PartitionWriter.write_tables` (one Parquet part streamed to the lake, hashed as written), then
    the manifest with the file's checksum and the atomic publish. It reads the file itself, where
    the baseline parses bytes already in memory."""
    from functools import partial

    from include.contracts import Contract, DropStream
    from include.lake import Lake

    contract = Contract.from_file(CONTRACT)
    lake = Lake(f"file://{out}/lake")
    ds = _ds_of(csv)
    warm_up = Path(out) / "warm-up.csv"
    with open(csv, "rb") as handle:  # not the whole drop: its memory is what a big run measures
        warm_up.write_bytes(_head(handle.read(2**20)))

    def ingest(path: Path, dataset: str):
        stream = DropStream([(f"file://{path}", partial(open, path, "rb"))], "csv", contract,
                            date_column="event_date", ds=ds)
        with lake.publish("raw", dataset, ds) as writer:
            writer.write_tables(stream.tables(), contract.arrow_schema)
            writer.set_manifest_fields(inputs=[s.as_input() for s in stream.sources])
        return writer.manifest

    ingest(warm_up, "warm_up")
    start = time.perf_counter()
    manifest = ingest(Path(csv), "customer_activity")
    report(seconds=time.perf_counter() - start, rows=manifest.row_count)


# ---- features -----------------------------------------------------------------------------------
# The shipped job (include/features/churn.py) written by hand for DuckDB and for polars.
CHURN_SQL = """
WITH activity AS ({union}),
window_stats AS (
    SELECT customer_id, count(*) AS days_seen, avg(sessions) AS sessions_mean,
           stddev_pop(sessions) AS sessions_std, avg(minutes_watched) AS minutes_mean,
           sum(support_tickets) AS tickets_total, sum(payment_failures) AS payment_failures_total,
           sum(CASE WHEN sessions > 0 THEN 1 ELSE 0 END) AS days_active
    FROM activity GROUP BY customer_id),
today AS (
    SELECT customer_id, sessions AS sessions_today, minutes_watched AS minutes_today, tenure_days,
           monthly_charges, CAST(plan = 'basic' AS INT) AS plan_basic,
           CAST(plan = 'standard' AS INT) AS plan_standard, CAST(plan = 'premium' AS INT) AS plan_premium
    FROM activity WHERE ds = '{ds}')
SELECT t.*, w.days_seen, w.sessions_mean, coalesce(w.sessions_std, 0.0) AS sessions_std, w.minutes_mean,
       w.tickets_total, w.payment_failures_total, w.days_active,
       t.sessions_today - w.sessions_mean AS sessions_trend, w.days_active / w.days_seen AS active_share
FROM today t JOIN window_stats w USING (customer_id)
ORDER BY customer_id
"""


def _days(folder: str) -> list[tuple[str, str]]:
    """(ds, parquet file) of each day of the input, oldest first."""
    return sorted((p.stem, str(p)) for p in Path(folder).glob("*.parquet"))


@side("features-spark")
def features_spark(folder: str, out: str) -> None:
    """The shipped PySpark job on the product's Spark session settings (local[2]), read and write
    as the features stage does (one Parquet read per day with its `ds`, one Parquet write)."""
    import os
    from functools import reduce

    started = time.perf_counter()
    from operators.hooks.spark import SparkHook

    master = os.environ.get("SKYLIFT_BENCH_SPARK_MASTER", "local[2]")
    with SparkHook(master=master, app_name="bench").session() as spark:
        from pyspark.sql import functions as F

        from include.features.churn import build

        session_s = time.perf_counter() - started
        days = _days(folder)
        start = time.perf_counter()
        frames = [spark.read.parquet(path).withColumn("ds", F.lit(ds)) for ds, path in days]
        result = build(reduce(lambda a, b: a.unionByName(b), frames), days[-1][0])
        result.write.mode("overwrite").parquet(f"{out}/spark")
        seconds = time.perf_counter() - start
    import pyarrow.parquet as pq

    report(seconds=seconds, session_s=session_s, rows=pq.read_table(f"{out}/spark").num_rows)


@side("features-sqlframe")
def features_sqlframe(folder: str, out: str) -> None:
    """The shipped PySpark job on the features stage's DuckDB engine (include/duckdb_features.py):
    the same files read with their `ds`, the job run through sqlframe, one sorted Parquet file
    written, as the features task does with `features.engine: duckdb` (2 threads, as DuckDB SQL)."""
    started = time.perf_counter()
    import duckdb  # noqa: F401 - imported before the timed part, as the other sides' libraries are
    import sqlframe.duckdb  # noqa: F401

    from include.duckdb_features import write_features
    from include.feature_engine import JobInputs
    from include.features.churn import build  # noqa: F401 - the task loads the job (and pyspark) first

    imports_s = time.perf_counter() - started
    days = _days(folder)
    start = time.perf_counter()
    write_features("include.features.churn:build", JobInputs({"": {ds: [path] for ds, path in days}}),
                   days[-1][0], Path(out) / "sqlframe", threads=2)
    seconds = time.perf_counter() - start
    import pyarrow.parquet as pq

    report(seconds=seconds, imports_s=imports_s, rows=pq.read_table(f"{out}/sqlframe").num_rows)


@side("features-duckdb")
def features_duckdb(folder: str, out: str) -> None:
    import duckdb

    days = _days(folder)
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    union = " UNION ALL ".join(f"SELECT *, '{ds}' AS ds FROM read_parquet('{path}')" for ds, path in days)
    con.execute(f"COPY ({CHURN_SQL.format(union=union, ds=days[-1][0])}) TO '{out}/duckdb.parquet' (FORMAT parquet)")
    seconds = time.perf_counter() - start
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/duckdb.parquet')").fetchone()[0]
    report(seconds=seconds, rows=rows)


@side("features-polars")
def features_polars(folder: str, out: str) -> None:
    import os

    os.environ.setdefault("POLARS_MAX_THREADS", "2")
    import polars as pl

    days = _days(folder)
    ds = days[-1][0]
    start = time.perf_counter()
    activity = pl.concat([pl.scan_parquet(path).with_columns(ds=pl.lit(day)) for day, path in days])
    window = activity.group_by("customer_id").agg(
        days_seen=pl.len(), sessions_mean=pl.col("sessions").mean(), sessions_std=pl.col("sessions").std(ddof=0),
        minutes_mean=pl.col("minutes_watched").mean(), tickets_total=pl.col("support_tickets").sum(),
        payment_failures_total=pl.col("payment_failures").sum(),
        days_active=(pl.col("sessions") > 0).cast(pl.Int64).sum())
    today = activity.filter(pl.col("ds") == ds).select(
        "customer_id", sessions_today="sessions", minutes_today="minutes_watched", tenure_days="tenure_days",
        monthly_charges="monthly_charges",
        **{f"plan_{p}": (pl.col("plan") == p).cast(pl.Int32) for p in ("basic", "standard", "premium")})
    result = (today.join(window, on="customer_id", how="inner")
              .with_columns(sessions_trend=pl.col("sessions_today") - pl.col("sessions_mean"),
                            active_share=pl.col("days_active") / pl.col("days_seen"),
                            sessions_std=pl.col("sessions_std").fill_null(0.0))
              .sort("customer_id"))
    result.sink_parquet(f"{out}/polars.parquet")
    seconds = time.perf_counter() - start
    report(seconds=seconds, rows=pl.scan_parquet(f"{out}/polars.parquet").select(pl.len()).collect().item())


# ---- scoring ------------------------------------------------------------------------------------
def _score_frame(path: str):
    import pandas as pd

    return pd.read_parquet(path)


@side("score-skylift")
def score_skylift(model_uri: str, tracking: str, features: str, threads: str) -> None:
    """The score stage's in-process engine: `include.scoring.load` once, then `predict` on the frame."""
    import mlflow

    from include import scoring

    mlflow.set_tracking_uri(tracking)
    frame = _score_frame(features)
    model = scoring.load(model_uri)
    _set_threads(model.model, int(threads))
    model.predict(frame.head(1000))  # warm-up: lazy imports, first-call set-up
    start = time.perf_counter()
    scores = model.predict(frame)
    report(seconds=time.perf_counter() - start, rows=len(scores), mean=float(scores.mean()))


def _set_threads(pyfunc_model, threads: int) -> None:
    """The pyfunc's XGBoost model on the same thread count as the raw side."""
    inner = pyfunc_model.get_raw_model() if hasattr(pyfunc_model, "get_raw_model") else None
    booster = getattr(inner, "get_booster", lambda: inner)()
    if booster is not None and hasattr(booster, "set_param"):
        booster.set_param({"nthread": threads})


@side("score-booster")
def score_booster(model_file: str, features: str, threads: str) -> None:
    """Raw XGBoost: `Booster.inplace_predict` on the frame's values, same rows and threads."""
    import xgboost as xgb

    frame = _score_frame(features)
    booster = xgb.Booster()
    booster.load_model(model_file)
    booster.set_param({"nthread": int(threads)})
    booster.inplace_predict(frame.head(1000))
    start = time.perf_counter()
    scores = booster.inplace_predict(frame)
    report(seconds=time.perf_counter() - start, rows=len(scores), mean=float(scores.mean()))


# ---- validation ---------------------------------------------------------------------------------
SUITE = ROOT / "include/expectations/customer_activity.yaml"


@side("validate-skylift")
def validate_skylift(parquet: str) -> None:
    """The validate stage's check: `run_suite` (Great Expectations, pandas) on the partition's frame."""
    import pandas as pd

    from include.validation import Suite, run_suite

    suite = Suite.from_file(SUITE, "quarantine", 0.05)
    frame = pd.read_parquet(parquet)
    run_suite(frame.head(1000), suite)  # warm-up: GX's imports and registries
    start = time.perf_counter()
    outcome = run_suite(frame, suite)
    report(seconds=time.perf_counter() - start, rows=len(frame), quarantined=len(outcome.quarantine),
           failed=len(outcome.failed))


def _pandas_rule(frame, name: str, kwargs: dict):
    """Rows failing one expectation, as GX defines it (nulls are skipped by value checks), or a
    table-level verdict for the row count."""
    import numpy as np

    column = frame[kwargs["column"]] if "column" in kwargs else None
    if name == "expect_table_row_count_to_be_between":
        return kwargs.get("min_value", 0) <= len(frame) <= kwargs.get("max_value", len(frame))
    if name == "expect_column_values_to_not_be_null":
        return np.flatnonzero(column.isna().to_numpy())
    present = column.notna().to_numpy()
    if name == "expect_column_values_to_be_unique":
        bad = column.duplicated(keep=False).to_numpy() & present
    elif name == "expect_column_values_to_match_regex":
        bad = present & ~column.str.match(kwargs["regex"]).fillna(False).to_numpy(dtype=bool)
    elif name == "expect_column_values_to_be_in_set":
        bad = present & ~column.isin(kwargs["value_set"]).to_numpy()
    elif name == "expect_column_values_to_be_between":
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        low, high = kwargs.get("min_value", -np.inf), kwargs.get("max_value", np.inf)
        # as Skylift's rule: an infinity fails whatever the bounds
        bad = present & ((values < low) | (values > high) | np.isinf(values))
    else:
        raise SystemExit(f"the pandas baseline has no check for {name}")
    return np.flatnonzero(bad)


@side("validate-pandas")
def validate_pandas(parquet: str) -> None:
    """The same suite's checks written by hand in pandas: failing row indices per rule."""
    import pandas as pd

    from include.validation import Suite

    suite = Suite.from_file(SUITE, "quarantine", 0.05)
    frame = pd.read_parquet(parquet)
    for rule in suite.rules:
        _pandas_rule(frame.head(1000), rule.name, rule.kwargs)
    start = time.perf_counter()
    failing = set()
    verdicts = []
    for rule in suite.rules:
        found = _pandas_rule(frame, rule.name, rule.kwargs)
        if isinstance(found, bool):
            verdicts.append(found)
        elif rule.policy == "quarantine":
            failing.update(found.tolist())
    report(seconds=time.perf_counter() - start, rows=len(frame), quarantined=len(failing),
           failed=sum(not v for v in verdicts))


def _head(data: bytes, lines: int = 1000) -> bytes:
    """The header and the first rows: a warm-up call that pays one-time costs (lazy imports) untimed."""
    end = 0
    for _ in range(lines + 1):
        end = data.index(b"\n", end) + 1
    return data[:end]


def _ds_of(csv: str) -> str:
    return Path(csv).parent.name


def main(argv: list[str]) -> None:
    name, *args = argv
    if name not in SIDES:
        raise SystemExit(f"unknown side {name!r}; sides: {sorted(SIDES)}")
    SIDES[name](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
