"""The lake's commit protocol against a plain Parquet write/read of the same table.

    .venv/bin/python -m benchmarks.bench_lake [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import best_of, table
from include.lake import Lake


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = pa.table({"id": pa.array(np.arange(args.rows)), "x": rng.normal(size=args.rows),
                     "s": pa.array([f"C{i % 100000:06d}" for i in range(args.rows)])})
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"file://{tmp}/lake")

        def plain_write():
            pq.write_table(data, f"{tmp}/plain.parquet", compression="zstd")

        def lake_publish():
            with lake.publish("raw", "bench", "2026-11-24") as writer:
                writer.write_table(data)

        writes = [(name, best_of(func), args.rows) for name, func in
                  [("pyarrow write_table", plain_write), ("Lake.publish (stage, manifest, clean-up)", lake_publish)]]
        reads = [(name, best_of(func), args.rows) for name, func in
                 [("pyarrow read_table", lambda: pq.read_table(f"{tmp}/plain.parquet")),
                  ("Lake.read_table (via manifest)", lambda: lake.read_table("raw", "bench", "2026-11-24"))]]
    print(table(f"Publishing a {args.rows:,}-row partition", [(n, s, r / s) for n, s, r in writes],
                "pyarrow write_table"))
    print()
    print(table(f"Reading a {args.rows:,}-row partition", [(n, s, r / s) for n, s, r in reads],
                "pyarrow read_table"))


if __name__ == "__main__":
    main()
