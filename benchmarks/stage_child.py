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
    """The ingest stage's work on the same drop: `read_drop` (contract, key, date, checksums) and
    `Lake.publish` (staged files, manifest, atomic publish)."""
    from include.contracts import Contract, read_drop
    from include.lake import Lake

    contract = Contract.from_file(CONTRACT)
    data = Path(csv).read_bytes()
    lake = Lake(f"file://{out}/lake")
    ds = _ds_of(csv)

    def ingest(body: bytes, dataset: str):
        drop = read_drop([(f"file://{csv}", body)], "csv", contract, date_column="event_date", ds=ds)
        with lake.publish("raw", dataset, ds, inputs=[s.as_input() for s in drop.sources]) as writer:
            writer.write_table(drop.table)
        return drop

    ingest(_head(data), "warm_up")
    start = time.perf_counter()
    drop = ingest(data, "customer_activity")
    report(seconds=time.perf_counter() - start, rows=drop.table.num_rows)


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
