"""Schema contracts: read a source drop and hold it to the declared columns, types and keys.

A contract is a small YAML file (see `include/schemas/`). Every violation raises
`ContractError` naming the file, the column and the first offending rows; nothing is changed
at the source.
"""

from __future__ import annotations

import csv
import hashlib
import io
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
        except (OSError, yaml.YAMLError) as exc:
            raise ContractError(f"{path}: cannot read the schema contract: {exc}") from exc
        return cls.from_dict(body, where=str(path))

    @classmethod
    def from_dict(cls, body: dict[str, Any], where: str = "schema") -> Contract:
        columns = []
        for name, declared in (body.get("columns") or {}).items():
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
    tables, sources = [], []
    for uri, data in sorted(files):
        sources.append(SourceFile(uri=uri, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data)))
        tables.append(conform(_parse(uri, data, fmt), contract, uri, first_row=2 if fmt == "csv" else 1))
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise ContractError(f"the drop is empty: {len(files)} file(s), 0 rows ({', '.join(u for u, _ in files)})")
    check_key(table, contract, ", ".join(s.uri for s in sources))
    return table, sources


def _parse(uri: str, data: bytes, fmt: str) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    if not data.strip():
        raise ContractError(f"{uri}: the file is empty")
    try:
        if fmt == "csv":
            _check_utf8(uri, data)
            # Read every column as text so conversion errors can be pinned to rows below.
            header = next(csv.reader([data.split(b"\n", 1)[0].decode().rstrip("\r")]))
            return pacsv.read_csv(
                io.BytesIO(data),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in header}, strings_can_be_null=True
                ),
            )
        if fmt == "jsonl":
            _check_utf8(uri, data)
            return pajson.read_json(io.BytesIO(data))
        return pq.read_table(io.BytesIO(data))
    except ContractError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ContractError(f"{uri}: cannot be read as {fmt} (truncated or corrupt?): {exc}") from exc


def _check_utf8(uri: str, data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContractError(
            f"{uri}: line {line} is not valid UTF-8 (byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start}); re-export the drop as UTF-8"
        ) from exc


def conform(table: pa.Table, contract: Contract, uri: str, first_row: int = 1) -> pa.Table:
    """Check columns, cast to declared types and check nullability; rows are numbered from `first_row`."""
    present = table.schema.names
    missing = [n for n in contract.names if n not in present]
    extra = [n for n in present if n not in contract.names]
    if missing:
        raise ContractError(f"{uri}: missing column(s) {missing}; the file has {present}")
    if extra and not contract.allow_extra_columns:
        raise ContractError(f"{uri}: unexpected column(s) {extra} not in the schema "
                            "(set allow_extra_columns: true in the contract to drop them silently)")
    arrays = []
    for column in contract.columns:
        values = table.column(column.name)
        values = _cast(values, column, uri, first_row)
        if not column.nullable and values.null_count:
            rows = _rows(pc.is_null(values), first_row)
            raise ContractError(f"{uri}: column {column.name!r} must not be null; null in row(s) {rows}")
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=contract.arrow_schema)


def _cast(values: pa.ChunkedArray, column: Column, uri: str, first_row: int) -> pa.ChunkedArray:
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
        bad = _first_bad(source, target)
        detail = ", ".join(f"row {first_row + i}: {v!r}" for i, v in bad) or str(exc)
        raise ContractError(
            f"{uri}: column {column.name!r} expects {column.type}, got unparseable value(s) at {detail}"
        ) from exc


def _first_bad(values: pa.ChunkedArray, target: pa.DataType) -> list[tuple[int, Any]]:
    bad = []
    for i, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad.append((i, value))
            if len(bad) == MAX_SHOWN:
                break
    return bad


def check_key(table: pa.Table, contract: Contract, where: str) -> None:
    if not contract.key:
        return
    counts = table.group_by(list(contract.key)).aggregate([([], "count_all")])
    dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dupes.num_rows:
        shown = dupes.slice(0, MAX_SHOWN).to_pylist()
        raise ContractError(
            f"{where}: key {list(contract.key)} is not unique: {dupes.num_rows} duplicated key(s), e.g. "
            + "; ".join(", ".join(f"{k}={row[k]!r}" for k in contract.key) + f" ({row['count_all']}x)" for row in shown)
        )


def _rows(mask: pa.ChunkedArray, first_row: int) -> list[int]:
    indices = pc.indices_nonzero(mask).to_pylist()[:MAX_SHOWN]
    return [first_row + i for i in indices]
