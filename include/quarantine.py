"""The quarantine zone's rows: what validation set aside for a date, from both places rows fail.

A row is set aside either by the schema contract at ingest (a cell that does not parse, an
infinity, a null where the column is required; see `include.contracts.Rejected`) or by an
expectation of the suite at validation. Ingest keeps the contract's rejects in the raw
partition, in the manifest-listed side file `rejected.jsonl` (one JSON object per row: file,
row number, reasons, the cells as written), so the raw partition holds every row of the drop.
Validation merges both kinds into one quarantine partition.

Quarantined rows are stored as text: a rejected cell such as `abc` in an int32 column has no
typed value, and text keeps every row exactly as the drop (or the raw partition) had it. Each
row also carries `_reasons` (`; `-joined) and `_source`: the file and row number of a contract
reject, or the raw partition and row position (from 0, as in validation messages) otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from include.contracts import Rejected

REJECTED_FILE = "rejected.jsonl"
REASONS, SOURCE = "_reasons", "_source"


def encode_rejected(rejected: Iterable[Rejected]) -> bytes:
    return "".join(json.dumps(r.as_record(), sort_keys=True) + "\n" for r in rejected).encode()


def decode_rejected(data: bytes, where: str) -> list[Rejected]:
    from include.errors import LakeError

    try:
        return [Rejected.from_record(json.loads(line)) for line in data.decode().splitlines() if line.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise LakeError(f"{where}: the rejected rows cannot be read ({exc}); re-run ingest for the date") from exc


def quarantine_table(table: pa.Table, reasons: dict[int, list[str]], rejected: list[Rejected],
                     partition: str) -> pa.Table:
    """One text table of the rows set aside: rows of `table` (the raw partition) at the positions
    in `reasons`, then the contract's rejects. Columns are `table`'s, then `_reasons`, `_source`.
    """
    positions = sorted(reasons)
    picked = table.take(pa.array(positions, pa.int64()))
    columns = {name: pc.cast(picked.column(name), pa.string()).to_pylist() for name in table.column_names}
    for name, cells in columns.items():
        cells.extend(r.values.get(name) for r in rejected)
    columns[REASONS] = ["; ".join(reasons[p]) for p in positions] + ["; ".join(r.reasons) for r in rejected]
    columns[SOURCE] = [f"{partition} row {p}" for p in positions] + [f"{r.source} row {r.row}" for r in rejected]
    return pa.table({name: pa.array(cells, pa.string()) for name, cells in columns.items()})


def describe_rejected(rejected: list[Rejected], limit: int = 3) -> str:
    """Per contract reason, how many rows and where the first are:
    `contract: sessions expects int32: 3 row(s), first at activity.csv row 5, row 9, row 12`.
    """
    by_reason: dict[str, list[Rejected]] = {}
    for row in rejected:
        for reason in row.reasons:
            by_reason.setdefault(reason, []).append(row)
    parts = []
    for reason, rows in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(f"{r.source.rsplit('/', 1)[-1]} row {r.row}" for r in rows[:limit])
        parts.append(f"{reason}: {len(rows)} row(s), first at {shown}")
    return "; ".join(parts)
