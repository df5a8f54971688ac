"""Schema contracts: every violation names the file, the column and the rows."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.contracts import Contract, read_drop
from include.errors import ContractError

CONTRACT = Contract.from_dict({
    "key": ["id"],
    "columns": {
        "id": {"type": "string", "nullable": False},
        "day": {"type": "date"},
        "n": {"type": "int32", "nullable": False},
        "x": "float64",
        "flag": "bool",
    },
})
GOOD = b"id,day,n,x,flag\na,2026-11-20,1,0.5,true\nb,2026-11-20,2,,False\n"


def read(data: bytes, fmt="csv", name="drop.csv"):
    return read_drop([(f"file:///drops/{name}", data)], fmt, CONTRACT)


def test_good_csv_is_cast_to_the_declared_types():
    table, sources = read(GOOD)
    assert table.schema == CONTRACT.arrow_schema
    assert table.column("flag").to_pylist() == [True, False]
    assert table.column("x").to_pylist() == [0.5, None]
    assert sources[0].uri == "file:///drops/drop.csv" and len(sources[0].sha256) == 64


def test_typed_fast_path_and_text_path_agree():
    # A column order that differs from the contract, spaces around numbers, upper-case and 1/0
    # booleans: some cells only the text path accepts, so the two reads are compared row by row.
    fast = b"flag,id,day,n,x\nTRUE,a,2026-11-20,1,0.5\nfalse,b,2026-11-21,2,\n"
    slow = fast + b"1,c,2026-11-22, 3 ,1e3\n0,d,,4, -2\n"
    assert read(slow)[0].slice(0, 2).equals(read(fast)[0])
    table = read(slow)[0]
    assert table.schema == CONTRACT.arrow_schema
    assert table.column("flag").to_pylist() == [True, False, True, False]
    assert table.column("n").to_pylist() == [1, 2, 3, 4]
    assert table.column("x").to_pylist() == [0.5, None, 1000.0, -2.0]
    assert table.column("day").to_pylist()[3] is None


def test_jsonl_and_parquet_are_read_the_same_way():
    jsonl = b'{"id":"a","day":"2026-11-20","n":1,"x":0.5,"flag":true}\n'
    assert read(jsonl, "jsonl", "d.jsonl")[0].num_rows == 1
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["a"], "day": ["2026-11-20"], "n": [1], "x": [0.5], "flag": [True]}), sink)
    assert read(sink.getvalue(), "parquet", "d.parquet")[0].column("n").type == pa.int32()


@pytest.mark.parametrize("data,message", [
    (b"id,day,n,x\na,2026-11-20,1,0.5\n", r"drop.csv: missing column\(s\) \['flag'\]"),
    (GOOD.replace(b"flag\n", b"flag,extra\n").replace(b"true\n", b"true,1\n").replace(b"False\n", b"False,2\n"),
     r"drop.csv: unexpected column\(s\) \['extra'\]"),
    (GOOD.replace(b",1,0.5", b",one,0.5"), r"column 'n' expects int32, got unparseable value\(s\) at row 2: 'one'"),
    (GOOD.replace(b"2026-11-20,2", b"2026-13-45,2"), r"column 'day' expects date.*row 3: '2026-13-45'"),
    (GOOD.replace(b",1,0.5", b",,0.5"), r"column 'n' must not be null; null in row\(s\) \[2\]"),
    (GOOD.replace(b"b,", b"a,"), r"key \['id'\] is not unique: 1 duplicated key\(s\), e.g. id='a' \(2x\)"),
    (b"id,day,n,x,flag\n", r"the drop is empty"),
    (b"", r"drop.csv: the file is empty"),
    (GOOD.replace(b"a,", b"\xe9t\xe9,"), r"drop.csv: line 2 is not valid UTF-8"),
    (GOOD + b'c,2026-11-20,3,"unterminated\n', r"drop.csv: cannot be read as csv"),
])
def test_bad_csv_errors_name_file_column_and_rows(data, message):
    with pytest.raises(ContractError, match=message):
        read(data)


def test_truncated_parquet_is_reported_as_corrupt():
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["a"]}), sink)
    with pytest.raises(ContractError, match="d.parquet: cannot be read as parquet"):
        read(sink.getvalue()[:-20], "parquet", "d.parquet")


def test_contract_file_errors():
    with pytest.raises(ContractError, match="unknown type 'integer'"):
        Contract.from_dict({"columns": {"a": "integer"}})
    with pytest.raises(ContractError, match=r"key column\(s\) \['b'\]"):
        Contract.from_dict({"columns": {"a": "string"}, "key": ["b"]})
