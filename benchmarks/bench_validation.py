"""Validation: the validate stage's Great Expectations suite against the same checks in pandas.

    .venv/bin/python -m benchmarks.bench_validation [--rows 1000000] [--repeat 5] [--quick]

One day of the sample generator's customer activity, typed by the contract (as the raw partition
holds it), checked against `include/expectations/customer_activity.yaml` (10 expectations plus
Skylift's companion finite-value checks); every 100th row's `sessions` is set out of range.
Skylift's side is `include.validation.run_suite` (an ephemeral GX context, the suite, COMPLETE
results); the baseline evaluates the same rules with pandas and numpy and collects the failing
rows. Both make one small warm-up call first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import Comparison, Side, emit, interleave, log, python_child, row_of

PANDAS, SKYLIFT = "the same checks in pandas", "Skylift run_suite (Great Expectations)"


def make_partition(tmp: Path, rows: int) -> Path:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from benchmarks.bench_ingest import make_drop
    from benchmarks.stage_child import CONTRACT
    from include.contracts import Contract

    csv = make_drop(tmp / "drops", rows)
    table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(
        column_types=Contract.from_file(CONTRACT).arrow_schema, true_values=["true"], false_values=["false"]))
    # Every 100th row out of range, so that both sides have rows to find.
    import pyarrow as pa

    sessions = table.column("sessions").to_numpy().copy()
    sessions[::100] = 999
    table = table.set_column(table.schema.get_field_index("sessions"), "sessions",
                             pa.array(sessions, type=table.schema.field("sessions").type))
    path = tmp / "raw.parquet"
    pq.write_table(table, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k rows, 2 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 100_000, 2
    with tempfile.TemporaryDirectory(prefix="skylift-bench-validation-") as tmp:
        path = make_partition(Path(tmp), args.rows)
        runs = interleave([Side(PANDAS, python_child("benchmarks.stage_child", "validate-pandas", str(path))),
                           Side(SKYLIFT, python_child("benchmarks.stage_child", "validate-skylift", str(path)))],
                          args.repeat, progress=log)
    verdicts = {(r.values["quarantined"], r.values["failed"]) for rs in runs.values() for r in rs}
    if len(verdicts) != 1:
        raise SystemExit(f"the two sides disagree on (quarantined rows, failed table checks): {sorted(verdicts)}")
    emit([Comparison(
        key="validation", title=f"Validation: {args.rows:,} rows, the customer_activity suite",
        command=f".venv/bin/python -m benchmarks.bench_validation --rows {args.rows}", baseline=PANDAS,
        rows=[row_of(name, r, args.rows) for name, r in runs.items()],
        notes=[f"Both sides agree: {verdicts.pop()} (rows to quarantine, failed table-level checks)."])])


if __name__ == "__main__":
    main()
