"""Schema contracts: read a source drop and hold it to the declared columns, types and keys.

A contract is a small YAML file (see `include/schemas/`). Every violation raises
`ContractError` naming the file, the column and the first offending rows; nothing is changed
at the source.

Rows are numbered the way a person finds them in the file: for CSV and JSON lines a row number
is the line number in the file (the CSV header is line 1, blank lines count); for Parquet it is
the row's position, from 1.

A drop is read in batches (`DropStream`: whole lines of text; Parquet in row batches from its
bytes, which are held whole), so memory holds one batch of a text drop, not the drop; cells and
dates are checked per batch, the key across batches.

Missing values and infinities: in a numeric column NaN (`nan`, `NaN`, a Parquet or JSON NaN) is
a missing value like an empty cell, so it becomes null and `nullable: false` refuses it. An
infinity (`inf`, `-inf`, `Infinity`) is not a measurement: it is refused unless the column sets
`allow_infinity: true`. Both read paths (typed and text) apply the same rule.

Under the `quarantine` policy (`on_row_error="quarantine"`), rows whose cells break the
contract (unparseable, infinite, or null where the column is required) are set aside as
`Rejected` rows with their original text and reasons instead of failing the drop. Problems of
the file as a whole (columns, encoding, syntax, duplicate keys) always fail.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import operator
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

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
_TEXT = re.compile(rb"\S")  # a chunk with none of it is blank
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
    allow_infinity: bool = False  # only meaningful for float columns

    @property
    def arrow_type(self) -> pa.DataType:
        return TYPES[self.type]

    @property
    def is_float(self) -> bool:
        return pa.types.is_floating(self.arrow_type)


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
            allow_infinity = bool(spec.get("allow_infinity", False))
            if allow_infinity and not pa.types.is_floating(TYPES[type_name]):
                raise ContractError(f"{where}: column {name!r} sets allow_infinity but is {type_name}, not a float")
            columns.append(Column(name=name, type=type_name, nullable=bool(spec.get("nullable", True)),
                                  allow_infinity=allow_infinity))
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


@dataclass(frozen=True)
class Rejected:
    """A row set aside by the contract: where it is, why, and its cells as the drop wrote them."""

    source: str  # the file's URI
    row: int  # numbered as in error messages (line in the file, or position from 1 in Parquet)
    reasons: tuple[str, ...]  # e.g. "contract: sessions expects int32"
    values: dict[str, str | None]  # the contract's columns, as text

    def as_record(self) -> dict[str, Any]:
        return {"source": self.source, "row": self.row, "reasons": list(self.reasons), "values": self.values}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Rejected:
        return cls(source=record["source"], row=int(record["row"]), reasons=tuple(record["reasons"]),
                   values=dict(record["values"]))


@dataclass(frozen=True)
class DropRead:
    """A drop held to its contract: the good rows (typed), the files read, the rows set aside."""

    table: pa.Table
    sources: list[SourceFile]
    rejected: tuple[Rejected, ...] = ()


ROW_POLICIES = ("fail", "quarantine")
CHUNK_BYTES = 32 * 2**20  # text read per batch: memory holds one batch of a drop, not the drop
PARQUET_BATCH_ROWS = 1_000_000

Opener = Callable[[], BinaryIO]


def read_drop(files: list[tuple[str, bytes]], fmt: str, contract: Contract,
              on_row_error: str = "fail", date_column: str | None = None, ds: str | None = None) -> DropRead:
    """Read every file of a drop, enforce the contract, and return one table plus file checksums.

    `files` holds (uri, content) pairs, so the caller decides where bytes come from (disk, S3).
    `on_row_error="quarantine"` sets rows with bad cells aside (see `Rejected`) instead of failing.
    With `date_column`, every row must hold the partition date `ds` there (`check_partition_date`).
    A drop too large to hold in memory is read batch by batch with `DropStream` instead.
    """
    stream = DropStream([(uri, partial(io.BytesIO, data)) for uri, data in files], fmt, contract,
                        on_row_error=on_row_error, date_column=date_column, ds=ds)
    tables = list(stream.tables())
    table = pa.concat_tables(tables) if tables else contract.arrow_schema.empty_table()
    return DropRead(table=table, sources=stream.sources, rejected=tuple(stream.rejected))


class DropStream:
    """A drop held to its contract batch by batch: `tables()` yields the good rows of each batch
    (typed, `contract.arrow_schema`) while it checks them, so a caller can write them out as they
    come. Every check of `read_drop` runs: a batch's cells and partition date as it is read, the
    key across all batches once the last is read (then `sources` and `rejected` are complete).

    `files` holds (uri, opener) pairs; an opener returns the file's bytes as a binary stream,
    read once, front to back (its SHA-256 is taken on the way). CSV and JSON lines are cut into
    batches of whole lines (`chunk_bytes`), so row numbers in messages stay line numbers.
    """

    def __init__(self, files: list[tuple[str, Opener]], fmt: str, contract: Contract, on_row_error: str = "fail",
                 date_column: str | None = None, ds: str | None = None, chunk_bytes: int = CHUNK_BYTES) -> None:
        if fmt not in FORMATS:
            raise ContractError(f"unknown source format {fmt!r}; use one of {sorted(FORMATS)}")
        if on_row_error not in ROW_POLICIES:
            raise ContractError(f"unknown row error policy {on_row_error!r}; use one of {list(ROW_POLICIES)}")
        if not files:
            raise ContractError("the drop holds no files")
        self.files = sorted(files, key=lambda item: item[0])
        self.fmt, self.contract, self.quarantine = fmt, contract, on_row_error == "quarantine"
        self.date_column, self.ds, self.chunk_bytes = date_column, ds, chunk_bytes
        self.sources: list[SourceFile] = []
        self.rejected: list[Rejected] = []
        self.rows = 0

    def tables(self) -> Iterator[pa.Table]:
        keys = _KeyCheck(self.contract)
        for uri, opener in self.files:
            with opener() as handle, _HashingReader(handle) as reader:
                for table, numbers in self._batches(uri, reader):
                    checked = self._conform(uri, table, numbers)
                    origin = (uri, checked.rows, checked.table.num_rows)
                    if self.date_column:
                        check_partition_date(checked.table, self.date_column, self.ds, [origin])
                    keys.add(checked.table, origin)
                    self.rows += checked.table.num_rows
                    self.rejected.extend(checked.rejected)
                    yield checked.table
                self.sources.append(SourceFile(uri=uri, sha256=reader.hexdigest(), bytes=reader.size))
        if self.rows == 0 and not self.rejected:
            raise ContractError(f"the drop is empty: {len(self.files)} file(s), 0 rows "
                                f"({', '.join(uri for uri, _ in self.files)})")
        keys.check(", ".join(s.uri for s in self.sources))

    def _conform(self, uri: str, parsed: _Parsed, numbers: RowNumbers) -> _Conformed:
        checked = _conform(parsed.table, self.contract, uri, numbers, self.quarantine)
        if checked.rejected and parsed.text is not None and not _all_text(parsed.table):
            # The typed read lost the text of the rejected cells: read the batch again as text to keep it.
            checked = _conform(parsed.text(), self.contract, uri, numbers, self.quarantine)
        return checked

    def _batches(self, uri: str, reader: _HashingReader) -> Iterator[tuple[_Parsed, RowNumbers]]:
        """Each batch of the file, parsed, with its row numbering."""
        if self.fmt == "parquet":
            yield from _parquet_batches(uri, reader.read())
            return
        empty, lines_before = True, 0
        for cut in _line_chunks(reader, self.chunk_bytes, header=self.fmt == "csv"):
            empty = False
            lines_before += cut.blank_lines
            chunk = replace(cut, offset=lines_before - cut.head_lines)
            if self.fmt == "csv":
                parsed = _parse_csv(uri, chunk, self.contract)
                skip = 1
            else:
                parsed, skip = _Parsed(_parse_jsonl(uri, chunk)), 0
            records = parsed.table.num_rows + skip
            if parsed.blank_free:  # every line a record: no need to count them
                numbers: RowNumbers = partial(operator.add, 1 + skip + chunk.offset)
                lines = records
            else:
                newlines = chunk.data.count(b"\n")
                numbers = _LineNumbers(chunk.data, skip, b"\r" if skip else b" \t\r", chunk.offset).compact(
                    records, newlines)
                lines = newlines
            lines_before += lines - chunk.head_lines
            yield parsed, numbers
        if empty:
            raise ContractError(f"{uri}: the file is empty ({reader.size} bytes)")


@dataclass(frozen=True)
class _Parsed:
    """A batch as read, and (typed CSV reads) how to read it again as text for rejected rows."""

    table: pa.Table
    text: Callable[[], pa.Table] | None = None
    blank_free: bool = False  # known to hold no blank line: its n-th line is its n-th record


@dataclass(frozen=True)
class _Chunk:
    """Whole lines of a text file. Line numbers in `data` plus `offset` are the file's; so are byte
    offsets plus `bytes_before`."""

    data: bytes
    offset: int = 0
    bytes_before: int = 0
    head_lines: int = 0  # lines of the header put in front of a chunk after the first
    blank_lines: int = 0  # lines of blank chunks left out just before this one


class _HashingReader:
    """A binary stream read front to back, hashing and counting the bytes on the way. Each block
    is hashed in a helper thread while the caller parses it (hashlib releases the GIL)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0
        self._hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skylift-sha256")
        self._pending: Future[None] | None = None

    def __enter__(self) -> _HashingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._hashing.shutdown(wait=True)

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self._hashed()
        self._pending = self._hashing.submit(self.digest.update, data)  # in order: one block at a time
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        self._hashed()
        return self.digest.hexdigest()

    def _hashed(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


def _line_chunks(reader: _HashingReader, chunk_bytes: int, header: bool) -> Iterator[_Chunk]:
    """The file in chunks of whole lines, blank chunks left out. With `header` (CSV), every chunk
    after the first starts with the file's header line, so each parses on its own. Each byte is
    copied at most once on its way into a chunk. Line offsets are the caller's to set (it knows how
    many lines each chunk held without counting them, most of the time).
    """
    head, rest, bytes_before, blank_lines, first = b"", b"", 0, 0, True
    while True:
        block = reader.read(chunk_bytes)
        if block and (block.rfind(b"\n") < 0 or (first and header and _header_end(rest + block) is None)):
            rest += block  # no whole line yet (in a CSV: no whole header)
            continue
        cut = block.rfind(b"\n") + 1
        tail = block if cut == len(block) else memoryview(block)[:cut]
        prefix = b"" if first else head
        data = tail if not prefix and not rest and isinstance(tail, bytes) else b"".join((prefix, rest, tail))
        if first and header:
            head = _header_line(data[:_header_end(data) or len(data)])
        if _TEXT.search(rest) or _TEXT.search(tail):
            yield _Chunk(data, bytes_before=bytes_before - len(prefix), head_lines=prefix.count(b"\n"),
                         blank_lines=blank_lines)
            blank_lines = 0
        else:
            blank_lines += data.count(b"\n") - prefix.count(b"\n")
        bytes_before += len(data) - len(prefix)
        rest, first = block[cut:], False
        if not block:
            return


def _header_end(data: bytes) -> int | None:
    """Where the line after the CSV header (the first non-blank line) starts, if it is whole."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return None
        if data[start:end].removeprefix(BOM).strip(b"\r"):
            return end + 1
        start = end + 1


def _header_line(data: bytes) -> bytes:
    """The header line itself (no BOM, no blank lines before it), with its line end."""
    for line in io.BytesIO(data.removeprefix(BOM)):
        if line.strip(b"\r\n"):
            return line
    return b""


def _parquet_batches(uri: str, data: bytes) -> Iterator[tuple[_Parsed, RowNumbers]]:
    import pyarrow.parquet as pq

    if not data.strip():
        raise ContractError(f"{uri}: the file is empty ({len(data)} bytes)")
    first = 0
    try:
        batches = pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=PARQUET_BATCH_ROWS)
        for batch in batches:
            yield _Parsed(pa.Table.from_batches([batch])), partial(operator.add, first + 1)
            first += batch.num_rows
        if first == 0:
            yield _Parsed(pq.read_schema(io.BytesIO(data)).empty_table()), partial(operator.add, 1)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ContractError(f"{uri}: cannot be read as parquet (truncated or corrupt?): {exc}") from exc


class _KeyCheck:
    """The contract's key, unique across every batch of a drop. A key column that only ever grows
    (a drop exported in key order) is unique without more ado; otherwise the kept key columns are
    sorted once the last batch is in."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.keys: list[pa.Table] = []
        self.origins: list[tuple[str, RowNumbers, int]] = []
        self.ascending = len(contract.key) == 1

    def add(self, table: pa.Table, origin: tuple[str, RowNumbers, int]) -> None:
        if not self.contract.key or not table.num_rows:
            return
        keys = table.select(list(self.contract.key))
        if self.ascending:
            previous = self.keys[-1].column(0)[-1:] if self.keys else keys.column(0)[:0]
            self.ascending = _strictly_ascending(pa.chunked_array([*previous.chunks, *keys.column(0).chunks],
                                                                  keys.column(0).type))
        self.keys.append(keys)
        self.origins.append(origin)

    def check(self, where: str) -> None:
        if not self.contract.key or not self.keys or self.ascending:
            return
        keys = pa.concat_tables(self.keys)
        if not _unique_once_sorted(keys):  # `check_key` says which keys repeat, and where
            check_key(keys, self.contract, where, origins=self.origins)


def _unique_once_sorted(keys: pa.Table) -> bool:
    """True when no row of `keys` repeats: sorted, no row equals the next. A sort holds less
    memory than grouping (a quarter, for 10M keys) and takes less time. False when in doubt (a
    null key: grouping decides)."""
    if keys.num_rows < 2:
        return True
    if any(column.null_count for column in keys.columns):
        return False
    ordered = keys.take(pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names]))
    repeats = None
    for column in ordered.columns:
        values = column.combine_chunks()
        same = pc.equal(values.slice(1), values.slice(0, len(values) - 1))
        repeats = same if repeats is None else pc.and_(repeats, same)
    return not pc.any(repeats).as_py()


def _strictly_ascending(values: pa.ChunkedArray) -> bool:
    """Every value greater than the one before (so none repeats); a null anywhere answers False."""
    values = values.combine_chunks()
    if len(values) < 2:
        return values.null_count == 0
    after = pc.greater(values.slice(1), values.slice(0, len(values) - 1))
    return values.null_count == 0 and bool(pc.all(after).as_py())


def _all_text(table: pa.Table) -> bool:
    return all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in table.schema.types)


def _parse_csv(uri: str, chunk: _Chunk, contract: Contract) -> _Parsed:
    """One chunk of a CSV file. A good chunk is read with its declared types in one pass; anything
    Arrow refuses falls through to a text read, whose casts in `conform` name the offending rows."""
    import pyarrow.csv as pacsv

    data = chunk.data
    try:
        header = _csv_header(data)
    except UnicodeDecodeError:
        _check_utf8(uri, chunk, csv_header=True)
        raise
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ContractError(f"{uri}: the header names column(s) {duplicated} more than once")
    if sorted(header) == sorted(contract.names):
        typed = partial(_read_csv_typed, data, contract)
        text = partial(_read_csv_text, uri, chunk, header)
        try:
            # Arrow checks the text columns are UTF-8; the others parsed as numbers, dates or booleans.
            # Blank lines kept as rows of nulls: with no such row, lines need not be counted.
            table = typed(parse_options=pacsv.ParseOptions(ignore_empty_lines=False))
            if not _has_empty_rows(table):
                return _Parsed(table, text, blank_free=True)
            return _Parsed(typed(), text)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
            pass
    return _Parsed(_read_csv_text(uri, chunk, header))


def _read_csv_typed(data: bytes, contract: Contract, **options: Any) -> pa.Table:
    import pyarrow.csv as pacsv

    return pacsv.read_csv(pa.BufferReader(data), convert_options=pacsv.ConvertOptions(
        column_types={c.name: c.arrow_type for c in contract.columns}, strings_can_be_null=True,
        null_values=[""], true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"]), **options)


def _has_empty_rows(table: pa.Table) -> bool:
    """Whether a row is null in every column (a blank line, or one of empty cells)."""
    if not table.num_rows or any(column.null_count == 0 for column in table.columns):
        return bool(table.num_rows) and not table.num_columns
    empty = pc.is_null(table.column(0))
    for column in table.columns[1:]:
        empty = pc.and_(empty, pc.is_null(column))
    return bool(pc.any(empty).as_py())


def _read_csv_text(uri: str, chunk: _Chunk, header: list[str]) -> pa.Table:
    import pyarrow.csv as pacsv

    _check_utf8(uri, chunk, csv_header=True)
    try:
        # Every column is read as text so conversion errors can be pinned to rows in `conform`.
        return pacsv.read_csv(
            pa.BufferReader(chunk.data),
            convert_options=pacsv.ConvertOptions(
                # Only an empty cell is missing: "NA" or "null" in a text column is text.
                column_types={n: pa.string() for n in header}, strings_can_be_null=True, null_values=[""]
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        problem = _csv_problem(chunk.data, len(header), chunk.offset)
        raise ContractError(f"{uri}: cannot be read as csv: {problem or exc}") from exc


def _csv_header(data: bytes) -> list[str]:
    """Column names from the first non-empty line (the reader skips empty lines too)."""
    for raw in io.BytesIO(data.removeprefix(BOM)):  # lazily: splitting a whole drop is slow
        line = raw.rstrip(b"\r\n")
        if line:
            return next(csv.reader([line.decode()]), [])
    return []


def _csv_problem(data: bytes, width: int, offset: int = 0) -> str | None:
    """Why the CSV reader gave up, pinned to a line (only called when it did); `offset` as in `_Chunk`."""
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
        return f"line {number + offset} has {fields} field(s) where the header has {width}{hint}: {_excerpt(line)}"
    return None


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= EXCERPT else line[:EXCERPT] + "...")


def _parse_jsonl(uri: str, chunk: _Chunk) -> pa.Table:
    import pyarrow.json as pajson

    _check_utf8(uri, chunk)
    try:
        return pajson.read_json(pa.BufferReader(chunk.data))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        # Arrow's message counts rows within a block; read line by line to say where and why.
        return _jsonl_as_text(uri, chunk.data, exc, chunk.offset)


def _jsonl_as_text(uri: str, data: bytes, arrow_error: Exception, offset: int = 0) -> pa.Table:
    """Parse JSON lines one by one. A line that is not a JSON object is an error; otherwise every
    value becomes text, so that `conform` reports a value of the wrong type with its line.
    """
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.decode().split("\n"), start=1 + offset):
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


def _check_utf8(uri: str, chunk: _Chunk, csv_header: bool = False) -> None:
    data = chunk.data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1 + chunk.offset
        column = _csv_column_at(data, exc.start) if csv_header else None
        where = f"column {column!r}: " if column else ""
        raise ContractError(
            f"{uri}: line {line} is not valid UTF-8 ({where}byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start + chunk.bytes_before}); re-export the drop as UTF-8"
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
    """Line numbers of the records of a text file, skipping `skip` leading records (the CSV header);
    `offset` is added (lines of the file before a chunk).

    The readers skip blank lines (CSV: empty ones; JSON lines: whitespace-only ones too), so the
    n-th record is not always on line n + 1. Worked out only when a message needs it.
    """

    def __init__(self, data: bytes, skip: int, strip: bytes = b"\r", offset: int = 0) -> None:
        self.data, self.skip, self.strip, self.offset = data, skip, strip, offset
        self._lines: list[int] | None = None

    def __call__(self, index: int) -> int:
        if self._lines is None:
            self._lines = [
                number for number, line in enumerate(self.data.split(b"\n"), start=1 + self.offset)
                if line.strip(self.strip)
            ][self.skip:]
        return self._lines[index] if 0 <= index < len(self._lines) else index + 1 + self.skip + self.offset

    def compact(self, records: int, newlines: int) -> RowNumbers:
        """The same numbering without holding the chunk (kept for messages after it is gone): an
        offset when every line is a record, else the line numbers themselves. `newlines`: line
        ends in the chunk (counted once, by the caller)."""
        data, end = self.data, len(self.data)
        while end and data[end - 1] in b" \t\r\n":  # trailing blank lines: not records
            end -= 1
            newlines -= data[end] == ord("\n")
        if newlines + 1 == records and not data[:1].isspace():
            return partial(operator.add, 1 + self.skip + self.offset)
        self(0)
        lines = pa.array(self._lines or [], pa.int64())
        return lambda index: lines[index].as_py() if 0 <= index < len(lines) else index + 1 + self.skip + self.offset


def conform(table: pa.Table, contract: Contract, uri: str, first_row: int = 1,
            rows: RowNumbers | None = None) -> pa.Table:
    """Check columns, cast to declared types and check nullability and infinities; raise on the
    first problem. Rows are numbered from `first_row`, or by `rows` (position -> number in messages).
    """
    return _conform(table, contract, uri, rows or (lambda index: first_row + index), quarantine=False).table


@dataclass(frozen=True)
class _Conformed:
    table: pa.Table  # the good rows, typed
    rows: RowNumbers  # position in `table` -> row number in the file
    rejected: list[Rejected]


@dataclass(frozen=True)
class _CellProblem:
    """Cells of one column that break the contract, found by one check."""

    column: Column
    positions: list[int]
    reason: str  # per row, in `Rejected.reasons`
    message: str  # the whole error, under the `fail` policy


def _conform(table: pa.Table, contract: Contract, uri: str, number: RowNumbers, quarantine: bool) -> _Conformed:
    _check_columns(table, contract, uri)
    arrays, problems = [], []
    for column in contract.columns:
        values, found = _check_column(table.column(column.name), column, uri, number, limit=None if quarantine
                                      else MAX_SHOWN)
        if found and not quarantine:
            raise ContractError(found[0].message)
        arrays.append(values)
        problems.extend(found)
    if not problems:
        return _Conformed(pa.Table.from_arrays(arrays, schema=contract.arrow_schema), number, [])
    reasons: dict[int, list[str]] = {}
    for problem in problems:
        for position in problem.positions:
            reasons.setdefault(position, []).append(problem.reason)
    bad = sorted(reasons)
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()), pa.array(bad, pa.int64())))
    good = pa.Table.from_arrays([pc.filter(a, keep) for a in arrays], schema=contract.arrow_schema)
    kept = _positions(keep, None)
    text = {c.name: table.column(c.name).take(pa.array(bad)).to_pylist() for c in contract.columns}
    rejected = [Rejected(source=uri, row=number(position), reasons=tuple(reasons[position]),
                         values={name: _cell_text(cells[i]) for name, cells in text.items()})
                for i, position in enumerate(bad)]
    return _Conformed(good, lambda index: number(kept[index]), rejected)


def _check_columns(table: pa.Table, contract: Contract, uri: str) -> None:
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


def _check_column(values: pa.ChunkedArray, column: Column, uri: str, number: RowNumbers,
                  limit: int | None) -> tuple[pa.ChunkedArray, list[_CellProblem]]:
    """The column cast to its type (bad cells null, NaN null) and the problems of its cells, in
    the order the `fail` policy reports them: unparseable, infinite, then null where required.
    `limit` caps how many positions each check looks for (all with None).
    """
    problems = []
    # NaN is a missing value in any numeric column: null from here on, refused where required.
    is_nan = _nan_mask(values) if column.is_float or pa.types.is_integer(column.arrow_type) else None
    nan = _positions(is_nan, None) if is_nan is not None else []
    if nan:
        typed, unparseable = _cast(pc.if_else(is_nan, pa.scalar(None, values.type), values), column, limit)
    else:
        typed, unparseable = _cast(values, column, limit)
    name, where = column.name, f"{uri}: column {column.name!r}"
    if unparseable:
        original = values.take(pa.array(unparseable[:MAX_SHOWN])).to_pylist()
        detail = ", ".join(f"row {number(i)}: {v!r}" for i, v in zip(unparseable, original, strict=False))
        problems.append(_CellProblem(column, unparseable, f"contract: {name} expects {column.type}",
                                     f"{where} expects {column.type}, got unparseable value(s) at {detail}"))
        if limit is not None:  # `fail` reports this first; the column was not cast
            return values, problems
    if column.is_float and not column.allow_infinity and _may_be_infinite(typed):
        infinite = _positions(pc.fill_null(pc.is_inf(typed), False), limit)
        if infinite:
            shown = typed.take(pa.array(infinite[:MAX_SHOWN])).to_pylist()
            detail = ", ".join(f"row {number(i)}: {v!r}" for i, v in zip(infinite, shown, strict=False))
            problems.append(_CellProblem(
                column, infinite, f"contract: {name} is infinite",
                f"{where} expects finite {column.type} values, got infinite value(s) at {detail} "
                "(set allow_infinity: true on the column to accept them)"))
    if not column.nullable and typed.null_count:
        missing = pc.is_null(typed)
        if unparseable:  # an unparseable cell is reported as such, not again as null
            missing = pc.and_(missing, pc.invert(pc.is_in(pa.array(range(len(typed)), pa.int64()),
                                                          pa.array(unparseable, pa.int64()))))
        nulls = _positions(missing, limit)
        if nulls:
            hint = " (NaN counts as null)" if set(nulls[:MAX_SHOWN]) & set(nan) else ""
            shown = [number(i) for i in nulls[:MAX_SHOWN]]
            problems.append(_CellProblem(column, nulls, f"contract: {name} must not be null",
                                         f"{where} must not be null; null in row(s) {shown}{hint}"))
    return typed, problems


def _may_be_infinite(values: pa.ChunkedArray) -> bool:
    """False when no value is infinite: its extremes (NaN aside) are finite; one pass, no mask."""
    extremes = pc.min_max(values).as_py()
    return any(v is not None and math.isinf(v) for v in extremes.values())


def _nan_mask(values: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Where `values` hold NaN: a float NaN, or the text `nan` in any letter case."""
    if pa.types.is_floating(values.type):
        return pc.fill_null(pc.is_nan(values), False)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pc.fill_null(pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(values)), "nan"), False)
    return None


def _positions(mask: pa.ChunkedArray | pa.Array, limit: int | None) -> list[int]:
    if isinstance(mask, pa.ChunkedArray):  # indices_nonzero crashes on a column with no chunks
        mask = mask.combine_chunks() if mask.num_chunks else pa.array([], pa.bool_())
    positions = pc.indices_nonzero(mask)
    return (positions if limit is None else positions.slice(0, limit)).to_pylist()


def _cast(values: pa.ChunkedArray, column: Column, limit: int | None) -> tuple[pa.ChunkedArray, list[int]]:
    """The values cast to the column's type, and the positions of those that do not convert
    (up to `limit`; null in the result). Empty text is a missing value, not a parse error.
    """
    target = column.arrow_type
    if values.type == target:
        return values, []
    source = values
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        source = pc.utf8_trim_whitespace(values)
        source = pc.if_else(pc.equal(source, ""), pa.scalar(None, values.type), source)
        if target == pa.bool_():
            source = pc.utf8_lower(source)
    try:
        return pc.cast(source, target, safe=True), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    if limit is not None:  # the caller only reports them: no need to cast the rest
        return values, _unparseable(source, target, limit)
    bad = _unparseable(source, target, None)
    mask = pc.is_in(pa.array(range(len(source)), pa.int64()), pa.array(bad, pa.int64()))
    typed = pc.cast(pc.if_else(mask, pa.scalar(None, source.type), source), target, safe=True)
    return typed, bad


def _unparseable(values: pa.ChunkedArray, target: pa.DataType, limit: int | None) -> list[int]:
    """Positions of the values that do not convert to `target`, found by halving: a slice that
    casts is clean, so the work grows with the number of bad values, not the column's length.
    """
    bad: list[int] = []

    def visit(start: int, length: int) -> None:
        if limit is not None and len(bad) >= limit:
            return
        try:
            pc.cast(values.slice(start, length), target, safe=True)
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        if length == 1:
            bad.append(start)
            return
        half = length // 2
        visit(start, half)
        visit(start + half, length - half)

    if len(values):
        visit(0, len(values))
    return bad


def _cell_text(value: Any) -> str | None:
    """A cell as text, for rejected rows: text as written, other values as the drop meant them."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


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


def check_partition_date(table: pa.Table, column: str, ds: str | None,
                         origins: list[tuple[str, RowNumbers, int]]) -> None:
    """Fail unless every value of `column` is the partition date `ds`: a file of another day in
    this day's folder (yesterday's export uploaded again) must not be ingested as today's.
    """
    if column not in table.column_names:
        raise ContractError(f"date_column {column!r} is not a column of the schema contract; "
                            f"its columns are {table.column_names}")
    values = table.column(column)
    if pa.types.is_timestamp(values.type):
        values = pc.cast(values, pa.date32())
    if _is_date(ds) and pa.types.is_date32(values.type):  # compared as dates: no text per row
        wrong = pc.fill_null(pc.not_equal(values, pa.scalar(date.fromisoformat(ds), pa.date32())), True)
        if not pc.any(wrong).as_py():
            return
    text = pc.cast(values, pa.string())
    wrong = pc.fill_null(pc.not_equal(text, pa.scalar(ds, pa.string())), True)
    if not pc.any(wrong).as_py():
        return
    offset = 0
    for uri, number, count in origins:
        part = wrong.slice(offset, count)
        if pc.any(part).as_py():
            positions = pc.indices_nonzero(part).to_pylist()
            _wrong_date(uri, column, ds, text.slice(offset, count).take(positions).to_pylist(), positions, number)
        offset += count


def _is_date(ds: str | None) -> bool:
    try:
        return ds is not None and date.fromisoformat(ds).isoformat() == ds
    except ValueError:
        return False


def _wrong_date(uri: str, column: str, ds: str | None, found: list[str | None], positions: list[int],
                number: RowNumbers) -> None:
    by_value: dict[str | None, list[int]] = {}
    for position, value in zip(positions, found, strict=True):
        by_value.setdefault(value, []).append(number(position))
    shown = [f"{_row_ranges(rows)} hold{'s' if len(rows) == 1 else ''} {value or 'no date'}"
             for value, rows in list(by_value.items())[:MAX_SHOWN]]
    more = f" (and {len(by_value) - MAX_SHOWN} more values)" if len(by_value) > MAX_SHOWN else ""
    raise ContractError(f"{uri}: column {column!r} must be {ds} (the partition date) but "
                        f"{'; '.join(shown)}{more}: {_date_hint(ds, set(by_value))}")


def _row_ranges(rows: list[int]) -> str:
    """`row 5`, `rows 2-1201`, `rows 2-4, 9, 12-30 (and 3 more ranges)`."""
    ranges: list[list[int]] = []
    for row in rows:
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:MAX_SHOWN])
    more = f" (and {len(ranges) - MAX_SHOWN} more ranges)" if len(ranges) > MAX_SHOWN else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {text}{more}"


def _date_hint(ds: str | None, found: set[str | None]) -> str:
    from datetime import timedelta

    yesterday = (date.fromisoformat(ds) - timedelta(days=1)).isoformat() if ds else None
    if found == {yesterday}:
        return "is this yesterday's drop?"
    return "is this another day's drop, or a drop in the wrong folder?"
