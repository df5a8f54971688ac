"""A drop read batch by batch (`DropStream`): the same rows, checksums and messages as one read."""

from __future__ import annotations

import hashlib
import io
from functools import partial

import pytest

from include.contracts import Contract, DropStream, read_drop
from include.errors import ContractError

CONTRACT = Contract.from_dict({
    "key": ["id"],
    "columns": {"id": {"type": "string", "nullable": False}, "n": {"type": "int32", "nullable": False}},
})
URI = "file:///drops/d.csv"


def drop(rows: int = 40, crlf: bool = False, blank: str = "") -> bytes:
    """A CSV with a blank line before the header and one in the middle (unless `blank` is None):
    lines and rows differ. Without them, the header is line 1, and line 2 the first row."""
    middle = [] if blank is None else [blank]
    lines = [*middle, "id,n", *[f"k{i:03d},{i}" for i in range(rows // 2)], *middle,
             *[f"k{i:03d},{i}" for i in range(rows // 2, rows)]]
    return ("\r\n" if crlf else "\n").join(lines).encode() + b"\n"


def stream(data: bytes, chunk_bytes: int, fmt: str = "csv", **kwargs) -> tuple[DropStream, list]:
    reader = DropStream([(URI, partial(io.BytesIO, data))], fmt, CONTRACT, chunk_bytes=chunk_bytes, **kwargs)
    return reader, list(reader.tables())


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1, 7, 50, 10_000])
def test_batches_hold_the_rows_and_checksum_of_one_read(chunk_bytes, crlf):
    data = drop(crlf=crlf)
    reader, tables = stream(data, chunk_bytes)
    assert len(tables) > 1 or chunk_bytes == 10_000
    assert [r for t in tables for r in t.to_pylist()] == read_drop([(URI, data)], "csv", CONTRACT).table.to_pylist()
    assert [(s.sha256, s.bytes) for s in reader.sources] == [(hashlib.sha256(data).hexdigest(), len(data))]


@pytest.mark.parametrize("blank,line", [("", 39), (None, 37)])  # with blank lines: the header is line 2
@pytest.mark.parametrize("chunk_bytes", [1, 7, 50, 10_000])
def test_a_bad_cell_in_a_later_batch_is_named_by_its_line_in_the_file(chunk_bytes, blank, line):
    data = drop(blank=blank).replace(b"k035,35", b"k035,x5")
    with pytest.raises(ContractError, match=r"d.csv: column 'n' expects int32, got unparseable value\(s\) at "
                                            rf"row {line}: 'x5'"):
        stream(data, chunk_bytes)
    quarantined, tables = stream(data, chunk_bytes, on_row_error="quarantine")
    assert [(r.row, r.values) for r in quarantined.rejected] == [(line, {"id": "k035", "n": "x5"})]
    assert sum(t.num_rows for t in tables) == 39


@pytest.mark.parametrize("blank,rows", [("", "6, 40"), (None, "5, 38")])
@pytest.mark.parametrize("chunk_bytes", [7, 10_000])
def test_a_key_repeated_in_another_batch_is_found_with_both_lines(chunk_bytes, blank, rows):
    data = drop(blank=blank).replace(b"k036,36", b"k003,36")
    with pytest.raises(ContractError, match=rf"id='k003' \(2x\) in rows {rows}"):
        stream(data, chunk_bytes)


@pytest.mark.parametrize("chunk_bytes", [7, 10_000])
def test_invalid_utf8_in_a_later_batch_names_its_line_and_offset_in_the_file(chunk_bytes):
    data = drop().replace(b"k030", b"k\xe930")
    offset = data.index(b"\xe9")
    with pytest.raises(ContractError, match=rf"d.csv: line 34 is not valid UTF-8 \(column 'id': byte b'\\xe9' at "
                                            rf"offset {offset}\)"):
        stream(data, chunk_bytes)


def test_jsonl_batches_number_rows_by_line():
    lines = [b'{"id": "a", "n": 1}', b"", b'{"id": "b", "n": 2}', b'{"id": "c", "n": "x"}']
    with pytest.raises(ContractError, match=r"column 'n' expects int32, got unparseable value\(s\) at row 4: 'x'"):
        stream(b"\n".join(lines) + b"\n", 5, fmt="jsonl")


def test_a_blank_file_is_empty_and_a_header_alone_holds_no_rows():
    with pytest.raises(ContractError, match=r"d.csv: the file is empty \(3 bytes\)"):
        stream(b"\n \n", 1)
    with pytest.raises(ContractError, match=r"the drop is empty: 1 file\(s\), 0 rows"):
        stream(b"id,n\n", 2)


@pytest.mark.parametrize("chunk_bytes", [7, 10_000])
def test_keys_out_of_order_are_checked_by_sorting(chunk_bytes):
    header, *rows = drop(blank=None).splitlines(keepends=True)
    shuffled = header + b"".join(rows[1::2] + rows[::2])  # unique, not in order
    assert sum(t.num_rows for t in stream(shuffled, chunk_bytes)[1]) == 40
    with pytest.raises(ContractError, match=r"key \['id'\] is not unique: 1 duplicated key\(s\), e.g. id='k001' "
                                            r"\(2x\) in rows 2, 32"):
        stream(shuffled.replace(b"k020,20", b"k001,20"), chunk_bytes)
