"""Ingest's schema contract against pyarrow's own typed CSV reader on the same drop.

The contract reads every column as text and casts it itself, so that a bad value can be named
with its file, column and row; this measures what that costs on good data.

    .venv/bin/python -m benchmarks.bench_ingest [--customers 200000]
"""

from __future__ import annotations

import argparse
import io
import tempfile
from datetime import date
from pathlib import Path

import pyarrow.csv as pacsv

from benchmarks.common import best_of, table
from include.contracts import Contract, read_drop
from include.datagen.churn import generate

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    args = parser.parse_args()
    contract = Contract.from_file(ROOT / "include/schemas/customer_activity.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        [path] = generate(Path(tmp), date(2026, 11, 24), days=1, n_customers=args.customers)
        data = path.read_bytes()

    def plain():
        pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
            column_types=contract.arrow_schema, true_values=["true"], false_values=["false"]))

    def skylift():
        read_drop([("file:///drop/activity.csv", data)], "csv", contract)

    rows = [(name, best_of(func), args.customers) for name, func in
            [("pyarrow read_csv with column types", plain), ("Skylift read_drop (contract, key check)", skylift)]]
    print(table(f"Ingesting one drop of {args.customers:,} rows ({len(data) / 1e6:.1f} MB CSV)",
                [(n, s, r / s) for n, s, r in rows], "pyarrow read_csv with column types"))


if __name__ == "__main__":
    main()
