"""Features: the shipped PySpark churn job on both of the stage's engines against the same
aggregation written by hand in DuckDB and in polars.

    .venv/bin/python -m benchmarks.bench_features [--rows 1000000] [--big-rows 10000000] [--repeat 5] [--quick]
        [--spark-max-rows N]

Input: seven days of the sample generator's customer activity (rows / 7 customers a day), typed
by the contract and stored as one Parquet file per day, as the lake's validated partitions are.
Each side reads those files with their day, computes one row per customer seen on the last day
(window aggregates, today's values, trend, plan flags) and writes Parquet; all must give the
same number of rows. Spark runs `include.features.churn:build` on the product's session settings
(`SparkHook`, `local[2]`); its session start is reported apart (the features task pays it on
every run). The DuckDB engine runs the same job through sqlframe
(`include.duckdb_features.write_features`, 2 threads), its imports reported apart like Spark's
session. Hand-written DuckDB (2 threads) and polars (2 threads) come from the peers' environment.
`--spark-max-rows` leaves Spark out above that size (a local[2] run of 10M rows takes minutes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import date
from pathlib import Path

from benchmarks.common import Comparison, Side, emit, interleave, log, python_child, row_of
from benchmarks.peers import peer_python, versions

SPARK = "Skylift features on Spark (PySpark job, local[2])"
SQLFRAME = "Skylift features on DuckDB (same job, sqlframe)"
DUCKDB, POLARS = "DuckDB SQL", "polars lazy"
DAY = date(2026, 11, 24)
DAYS = 7


def make_input(folder: Path, rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from benchmarks.stage_child import CONTRACT
    from include.contracts import Contract
    from include.datagen.churn import generate

    schema = Contract.from_file(CONTRACT).arrow_schema
    days = folder / "days"
    days.mkdir(parents=True)
    for csv in generate(folder / "csv", DAY, days=DAYS, n_customers=max(rows // DAYS, 1)):
        table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(
            column_types=schema, true_values=["true"], false_values=["false"]))
        pq.write_table(table.cast(pa.schema([schema.field(n) for n in table.column_names])),
                       days / f"{csv.parent.name}.parquet")
        csv.unlink()
    return days


def compare(tmp: Path, rows: int, repeat: int, peers: str, with_spark: bool = True) -> Comparison:
    log(f"features: making {rows:,} input rows")
    days = make_input(tmp / f"in-{rows}", rows)
    outs = {}
    for name in ("spark", "sqlframe", "duckdb", "polars"):
        outs[name] = tmp / f"out-{rows}-{name}"
        outs[name].mkdir()
    sides = [Side(SQLFRAME, python_child("benchmarks.stage_child", "features-sqlframe", str(days),
                                         str(outs["sqlframe"]))),
             Side(DUCKDB, python_child("benchmarks.stage_child", "features-duckdb", str(days), str(outs["duckdb"]),
                                       python=peers)),
             Side(POLARS, python_child("benchmarks.stage_child", "features-polars", str(days), str(outs["polars"]),
                                       python=peers))]
    if with_spark:
        sides.insert(0, Side(SPARK, python_child("benchmarks.stage_child", "features-spark", str(days),
                                                 str(outs["spark"]))))
    runs = interleave(sides, repeat, progress=log)
    counts = {name: {r.values["rows"] for r in rs} for name, rs in runs.items()}
    if len({c for found in counts.values() for c in found}) != 1:
        raise SystemExit(f"the engines disagree on the number of feature rows: {counts}")
    imports = statistics.median(r.values["imports_s"] for r in runs[SQLFRAME])
    notes = [f"The DuckDB engine's imports (duckdb, sqlframe, the job and PySpark, not in the timed part) take a "
             f"median {imports:.1f} s; the timed part holds sqlframe's activation, the job's import under it, "
             "planning, and DuckDB's read, run and sorted write."]
    if with_spark:
        session = statistics.median(r.values["session_s"] for r in runs[SPARK])
        notes.append(f"Spark's session start (JVM, not in the timed part) adds a median {session:.1f} s to every "
                     "features run on Spark; see the whole-process column.")
    else:
        notes.append("Spark left out at this size (--spark-max-rows is below it).")
    peer = versions(peers)
    return Comparison(
        key=f"features_{rows}", title=f"Features: the churn job on {rows:,} activity rows ({DAYS} days)",
        command=f".venv/bin/python -m benchmarks.bench_features --rows {rows}", baseline=DUCKDB,
        rows=[row_of(name, r, rows) for name, r in runs.items()],
        notes=[*notes,
               f"duckdb {peer['duckdb']}, polars {peer['polars']} (peers' environment), 2 threads each; "
               f"every engine gave {next(iter(counts[SQLFRAME])):,} feature rows."])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0: only --rows")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k rows only, 2 repetitions")
    parser.add_argument("--spark-max-rows", type=int, default=0, help="leave Spark out above this size (0: never)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows, args.repeat = 100_000, 0, 2
    peers = peer_python()
    with tempfile.TemporaryDirectory(prefix="skylift-bench-features-") as tmp:
        results = [compare(Path(tmp), rows, args.repeat, peers,
                           with_spark=not args.spark_max_rows or rows <= args.spark_max_rows)
                   for rows in (args.rows, args.big_rows) if rows]
    emit(results)


if __name__ == "__main__":
    main()
