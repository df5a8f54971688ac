"""Schema contracts: read a source drop and hold it to the declared columns, types and keys.

A contract is a small YAML file (see `include/schemas/`). Every violation raises
`ContractError` naming the file, the column and the first offending rows; nothing is changed
at the source.

Rows are numbered the way a person finds them in the file: for CSV and JSON lines a row number
is the line number in the file (the CSV header is line 1, blank lines count); for Parquet it is
the row's position, from 1.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from include.errors import ContractError

TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}
FORMATS = {"csv": (".csv",), "jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet", ".pq")}
MAX_SHOWN = 5
EXCERPT = 80  # characters of an offending line shown in a message
BOM = b"\xef\xbb\xbf"

RowNumbers = Callable[[int], int]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    allow_extra_columns: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns])

    @classmethod
    def from_file(cls, path: Path) -> Contract:
        import yaml

        try:
            body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ContractError(f"{path}: cannot read the schema contract: {exc}") from exc
        if not isinstance(body, dict):
            raise ContractError(f"{path}: a schema contract must be a mapping with 'columns'")
        return cls.from_dict(body, where=str(path))

    @classmethod
    def from_dict(cls, body: dict[str, Any], where: str = "schema") -> Contract:
        columns = []
        declared_columns = body.get("columns") or {}
        if not isinstance(declared_columns, dict):
            raise ContractError(f"{where}: 'columns' must be a mapping of column name to type")
        for name, declared in declared_columns.items():
            spec = {"type": declared} if isinstance(declared, str) else dict(declared or {})
            type_name = spec.get("type")
            if type_name not in TYPES:
                raise ContractError(
                    f"{where}: column {name!r} has unknown type {type_name!r}; use one of {sorted(TYPES)}")
            columns.append(Column(name=name, type=type_name, nullable=bool(spec.get("nullable", True))))
        if not columns:
            raise ContractError(f"{where}: declares no columns")
        key = tuple(body.get("key") or ())
        unknown = [k for k in key if k not in {c.name for c in columns}]
        if unknown:
            raise ContractError(f"{where}: key column(s) {unknown} are not declared columns")
        return cls(columns=tuple(columns), key=key, allow_extra_columns=bool(body.get("allow_extra_columns", False)))


@dataclass(frozen=True)
class SourceFile:
    uri: str
    sha256: str
    bytes: int

    def as_input(self) -> dict[str, Any]:
        return {"source": self.uri, "sha256": self.sha256, "bytes": self.bytes}


def read_drop(files: list[tuple[str, bytes]], fmt: str, contract: Contract) -> tuple[pa.Table, list[SourceFile]]:
    """Read every file of a drop, enforce the contract, and return one table plus file checksums.

    `files` holds (uri, content) pairs, so the caller decides where bytes come from (disk, S3).
    """
    if fmt not in FORMATS:
        raise ContractError(f"unknown source format {fmt!r}; use one of {sorted(FORMATS)}")
    if not files:
        raise ContractError("the drop holds no files")
    tables, sources, origins = [], [], []
    for uri, data in sorted(files):
        sources.append(SourceFile(uri=uri, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)))
        table, rows = _parse(uri, data, fmt, contract)
        tables.append(conform(table, contract, uri, rows=rows))
        origins.append((uri, rows, table.num_rows))
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise ContractError(f"the drop is empty: {len(files)} file(s), 0 rows ({', '.join(u for u, _ in files)})")
    check_key(table, contract, ", ".join(s.uri for s in sources), origins=origins)
    return table, sources


def _parse(uri: str, data: bytes, fmt: str, contract: Contract) -> tuple[pa.Table, RowNumbers]:
    """The file as a table, and how to turn a row's position in it into the number a person sees."""
    import pyarrow.parquet as pq

    if not data.strip():
        raise ContractError(f"{uri}: the file is empty ({len(data)} bytes)")
    if fmt == "csv":
        return _parse_csv(uri, data, contract), _LineNumbers(data, skip=1)
    if fmt == "jsonl":
        return _parse_jsonl(uri, data), _LineNumbers(data, skip=0, strip=b" \t\r")
    try:
        return pq.read_table(io.BytesIO(data)), lambda index: index + 1
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ContractError(f"{uri}: cannot be read as parquet (truncated or corrupt?): {exc}") from exc


def _parse_csv(uri: str, data: bytes, contract: Contract) -> pa.Table:
    import pyarrow.csv as pacsv

    _check_utf8(uri, data, csv_header=True)
    header = _csv_header(data)
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ContractError(f"{uri}: the header names column(s) {duplicated} more than once")
    if sorted(header) == sorted(contract.names):
        # Fast path: a good drop is read with its declared types in one pass. Anything Arrow
        # refuses falls through to the text read below, whose casts name the offending rows.
        try:
            return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
                column_types={c.name: c.arrow_type for c in contract.columns}, strings_can_be_null=True,
                null_values=[""], true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
            pass
    try:
        # Every column is read as text so conversion errors can be pinned to rows in `conform`.
        return pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                # Only an empty cell is missing: "NA" or "null" in a text column is text.
                column_types={n: pa.string() for n in header}, strings_can_be_null=True, null_values=[""]
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ContractError(f"{uri}: cannot be read as csv: {_csv_problem(data, len(header)) or exc}") from exc


def _csv_header(data: bytes) -> list[str]:
    """Column names from the first non-empty line (the reader skips empty lines too)."""
    for raw in io.BytesIO(data.removeprefix(BOM)):  # lazily: splitting a whole drop is slow
        line = raw.rstrip(b"\r\n")
        if line:
            return next(csv.reader([line.decode()]), [])
    return []


def _csv_problem(data: bytes, width: int) -> str | None:
    """Why the CSV reader gave up, pinned to a line (only called when it did)."""
    lines = data.split(b"\n")
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
        if not line:
            continue
        fields = len(next(csv.reader([line]), []))
        if fields == width:
            continue
        if number == len(lines) and raw:
            hint = " (the file ends in the middle of this line: truncated?)"
        elif line.count('"') % 2:
            hint = " (a quote is not closed on this line)"
        else:
            hint = ""
        return f"line {number} has {fields} field(s) where the header has {width}{hint}: {_excerpt(line)}"
    return None


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= EXCERPT else line[:EXCERPT] + "...")


def _parse_jsonl(uri: str, data: bytes) -> pa.Table:
    import pyarrow.json as pajson

    _check_utf8(uri, data)
    try:
        return pajson.read_json(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        # Arrow's message counts rows within a block; read line by line to say where and why.
        return _jsonl_as_text(uri, data, exc)


def _jsonl_as_text(uri: str, data: bytes, arrow_error: Exception) -> pa.Table:
    """Parse JSON lines one by one. A line that is not a JSON object is an error; otherwise every
    value becomes text, so that `conform` reports a value of the wrong type with its line.
    """
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.decode().split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ContractError(
                f"{uri}: cannot be read as jsonl: line {number} is not valid JSON "
                f"({exc.msg.removesuffix(' at')} at character {exc.colno}): {_excerpt(line)}"
            ) from exc
        if not isinstance(record, dict):
            raise ContractError(
                f"{uri}: cannot be read as jsonl: line {number} is a JSON {type(record).__name__}, not an object")
        records.append(record)
    names = list(dict.fromkeys(name for record in records for name in record))
    if not names:
        raise ContractError(f"{uri}: cannot be read as jsonl (truncated or corrupt?): {arrow_error}")
    columns = {name: pa.array([_as_text(r.get(name)) for r in records], pa.string()) for name in names}
    return pa.table(columns)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 3.0 is a fine int32, as it is when Arrow reads the file
    return json.dumps(value)  # true/false, numbers, and nested values as JSON text


def _check_utf8(uri: str, data: bytes, csv_header: bool = False) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = _csv_column_at(data, exc.start) if csv_header else None
        where = f"column {column!r}: " if column else ""
        raise ContractError(
            f"{uri}: line {line} is not valid UTF-8 ({where}byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start}); re-export the drop as UTF-8"
        ) from exc


def _csv_column_at(data: bytes, offset: int) -> str | None:
    """The header name of the CSV field holding byte `offset` (best effort, for messages)."""
    try:
        header = _csv_header(data)
    except UnicodeDecodeError:
        return None
    start = data.rfind(b"\n", 0, offset) + 1
    if start == 0:
        return None  # the header itself
    prefix = data[start:offset].decode("utf-8", errors="replace")
    index = len(next(csv.reader([prefix]), [""])) - 1
    return header[index] if 0 <= index < len(header) else None


class _LineNumbers:
    """Line numbers of the records of a text file, skipping `skip` leading records (the CSV header).

    The readers skip blank lines (CSV: empty ones; JSON lines: whitespace-only ones too), so the
    n-th record is not always on line n + 1. Worked out only when a message needs it.
    """

    def __init__(self, data: bytes, skip: int, strip: bytes = b"\r") -> None:
        self.data, self.skip, self.strip = data, skip, strip
        self._lines: list[int] | None = None

    def __call__(self, index: int) -> int:
        if self._lines is None:
            self._lines = [
                number for number, line in enumerate(self.data.split(b"\n"), start=1) if line.strip(self.strip)
            ][self.skip:]
        return self._lines[index] if 0 <= index < len(self._lines) else index + 1 + self.skip


def conform(table: pa.Table, contract: Contract, uri: str, first_row: int = 1,
            rows: RowNumbers | None = None) -> pa.Table:
    """Check columns, cast to declared types and check nullability.

    Rows are numbered from `first_row`, or by `rows` (position in `table` -> number in messages).
    """
    number = rows or (lambda index: first_row + index)
    present = table.schema.names
    duplicated = sorted({n for n in present if present.count(n) > 1})
    if duplicated:
        raise ContractError(f"{uri}: column(s) {duplicated} appear more than once")
    missing = [n for n in contract.names if n not in present]
    extra = [n for n in present if n not in contract.names]
    if missing:
        also = f" and has unexpected column(s) {extra}" if extra else ""
        raise ContractError(f"{uri}: missing column(s) {missing}{also}; the file has {present}")
    if extra and not contract.allow_extra_columns:
        raise ContractError(f"{uri}: unexpected column(s) {extra} not in the schema "
                            "(set allow_extra_columns: true in the contract to drop them silently)")
    arrays = []
    for column in contract.columns:
        values = _cast(table.column(column.name), column, uri, number)
        if not column.nullable and values.null_count:
            shown = [number(i) for i in pc.indices_nonzero(pc.is_null(values)).to_pylist()[:MAX_SHOWN]]
            raise ContractError(f"{uri}: column {column.name!r} must not be null; null in row(s) {shown}")
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=contract.arrow_schema)


def _cast(values: pa.ChunkedArray, column: Column, uri: str, number: RowNumbers) -> pa.ChunkedArray:
    target = column.arrow_type
    if values.type == target:
        return values
    source = values
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        source = pc.utf8_trim_whitespace(values)
        # Empty text is a missing value, not a parse error.
        source = pc.if_else(pc.equal(source, ""), pa.scalar(None, values.type), source)
        if target == pa.bool_():
            source = pc.utf8_lower(source)
    try:
        return pc.cast(source, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        original = values.to_pylist()
        detail = ", ".join(f"row {number(i)}: {original[i]!r}" for i in _first_bad(source, target)) or str(exc)
        raise ContractError(
            f"{uri}: column {column.name!r} expects {column.type}, got unparseable value(s) at {detail}"
        ) from exc


def _first_bad(values: pa.ChunkedArray, target: pa.DataType) -> list[int]:
    """Positions of the first values that do not convert to `target`."""
    bad = []
    for i, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append(i)
            if len(bad) == MAX_SHOWN:
                break
    return bad


def check_key(table: pa.Table, contract: Contract, where: str,
              origins: list[tuple[str, RowNumbers, int]] | None = None) -> None:
    """Fail if the contract's key is not unique. `origins` lists (uri, row numbers, row count) of
    the files `table` was concatenated from, so duplicates can be shown by file and row.
    """
    if not contract.key:
        return
    counts = table.group_by(list(contract.key)).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    if not dupes.num_rows:
        return
    origins = origins or [("", lambda index: index + 1, table.num_rows)]
    shown = []
    for row in dupes.slice(0, MAX_SHOWN).to_pylist():
        key = ", ".join(f"{k}={row[k]!r}" for k in contract.key)
        places = _places(table, contract.key, row, origins)
        shown.append(f"{key} ({row['count_all']}x) in {places}")
    raise ContractError(
        f"{where}: key {list(contract.key)} is not unique: {dupes.num_rows} duplicated key(s), e.g. "
        + "; ".join(shown)
    )


def _places(table: pa.Table, key: tuple[str, ...], row: dict[str, Any],
            origins: list[tuple[str, RowNumbers, int]]) -> str:
    """Where the rows holding one key value are: `rows 5, 9`, or `a.csv row 5, b.csv row 2`."""
    mask = None
    for name in key:
        column = table.column(name)
        match = pc.is_null(column) if row[name] is None else pc.equal(column, pa.scalar(row[name], column.type))
        mask = match if mask is None else pc.and_(mask, match)
    positions = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()[:MAX_SHOWN]
    found = []
    for position in positions:
        offset = position
        for uri, number, count in origins:
            if offset < count:
                found.append((uri, number(offset)))
                break
            offset -= count
    if len({uri for uri, _ in found}) <= 1:
        return "rows " + ", ".join(str(n) for _, n in found)
    return ", ".join(f"{uri.rsplit('/', 1)[-1]} row {n}" for uri, n in found)
