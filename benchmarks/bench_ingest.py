"""Ingest: the stage's read and publish against pyarrow's typed read and Parquet write, same drop.

    .venv/bin/python -m benchmarks.bench_ingest [--rows 1000000] [--big-rows 10000000] [--repeat 5] [--quick]

Skylift's side is what the ingest operator does with a drop: `DropStream` reads the file batch by
batch (the schema contract with row-level errors, the partition date, SHA-256 of the file on the
way, key uniqueness across batches) into `PartitionWriter.write_tables` (one Parquet part streamed
to the lake and hashed as written), then the manifest and the atomic publish. It reads the file
from disk; the baseline, pyarrow's `read_csv` with the contract's column types and `pq.write_table`,
parses bytes already in memory. One drop of the sample generator's
customer activity, one row per customer. `--big-rows` adds one run of each side on a larger drop
for peak memory (not a ratio: one repetition).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from benchmarks.common import Comparison, Side, emit, interleave, log, python_child, row_of

PYARROW, SKYLIFT = "pyarrow read_csv (typed) + write_table", "Skylift DropStream + Lake.publish (streamed)"
DAY = date(2026, 11, 24)


def make_drop(folder: Path, rows: int) -> Path:
    from include.datagen.churn import generate

    [path] = generate(folder, DAY, days=1, n_customers=rows)
    return path


def compare(tmp: Path, rows: int, repeat: int) -> Comparison:
    csv = make_drop(tmp / f"drops-{rows}", rows)
    out_a, out_b = tmp / f"out-a-{rows}", tmp / f"out-b-{rows}"
    out_a.mkdir()
    out_b.mkdir()
    sides = [Side(PYARROW, python_child("benchmarks.stage_child", "ingest-pyarrow", str(csv), str(out_a))),
             Side(SKYLIFT, python_child("benchmarks.stage_child", "ingest-skylift", str(csv), str(out_b)))]
    runs = interleave(sides, repeat, progress=log)
    size = csv.stat().st_size / 1e6
    return Comparison(key=f"ingest_{rows}", title=f"Ingest: one drop of {rows:,} rows ({size:,.0f} MB CSV)",
                      command=f".venv/bin/python -m benchmarks.bench_ingest --rows {rows}", baseline=PYARROW,
                      rows=[row_of(name, r, rows) for name, r in runs.items()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000, help="0: skip the peak-memory run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k rows, no big run, 2 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows, args.repeat = 100_000, 0, 2
    with tempfile.TemporaryDirectory(prefix="skylift-bench-ingest-") as tmp:
        results = [compare(Path(tmp), args.rows, args.repeat)]
        if args.big_rows:
            log(f"ingest: one run of each side at {args.big_rows:,} rows (peak memory)")
            big = compare(Path(tmp), args.big_rows, 1)
            big.key = "ingest_big"
            results.append(big)
    emit(results)


if __name__ == "__main__":
    main()
