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
    drop = read_drop([(f"file:///drops/{name}", data)], fmt, CONTRACT)
    return drop.table, drop.sources


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


# ---- NaN and infinities: NaN is a missing value, an infinity is refused unless allowed ----------

FLOATS = Contract.from_dict({
    "key": ["id"],
    "columns": {"id": {"type": "string", "nullable": False}, "n": "int32",
                "x": {"type": "float64", "nullable": False}, "y": "float64"},
})
NAN_MESSAGE = r"column 'x' must not be null; null in row\(s\) \[3\] \(NaN counts as null\)"
INF_MESSAGE = r"column 'x' expects finite float64 values, got infinite value\(s\) at row 3: {}"


def read_floats(data: bytes, fmt: str = "csv", name: str = "f.csv", **kwargs):
    return read_drop([(f"file:///drops/{name}", data)], fmt, FLOATS, **kwargs)


def csv_with(cell: str) -> bytes:
    return f"id,n,x,y\na,1,0.5,1\nb,2,{cell},2\n".encode()


def parquet_with(value: float) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": ["a", "b"], "n": [1, 2], "x": [0.5, value], "y": [1.0, 2.0]}), sink)
    return sink.getvalue()


@pytest.mark.parametrize("cell,message", [
    ("nan", NAN_MESSAGE), ("NaN", NAN_MESSAGE), ("NAN", NAN_MESSAGE),
    ("inf", INF_MESSAGE.format("inf")), ("-inf", INF_MESSAGE.format("-inf")), ("Infinity", INF_MESSAGE.format("inf")),
])
def test_nan_and_infinity_in_a_required_float_column_are_refused_by_both_csv_read_paths(cell, message):
    typed = csv_with(cell)
    as_text = typed + b"c, 3 ,1,\n"  # a padded int only the text read accepts
    for data in (typed, as_text):
        with pytest.raises(ContractError, match="^file:///drops/f.csv: " + message):
            read_floats(data)


@pytest.mark.parametrize("line,message", [
    ('{"id":"b","n":2,"x":NaN,"y":2}', NAN_MESSAGE.replace("3", "2")),
    ('{"id":"b","n":2,"x":"nan","y":2}', NAN_MESSAGE.replace("3", "2")),
    ('{"id":"b","n":2,"x":"-inf","y":2}', INF_MESSAGE.replace("3", "2").format("-inf")),
    ('{"id":"b","n":2,"x":Infinity,"y":2}', INF_MESSAGE.replace("3", "2").format("inf")),
])
def test_nan_and_infinity_in_jsonl(line, message):
    data = f'{{"id":"a","n":1,"x":0.5,"y":1}}\n{line}\n'.encode()
    with pytest.raises(ContractError, match="^file:///drops/f.jsonl: " + message):
        read_floats(data, "jsonl", "f.jsonl")


@pytest.mark.parametrize("value,message", [
    (float("nan"), NAN_MESSAGE.replace("3", "2")),
    (float("inf"), INF_MESSAGE.replace("3", "2").format("inf")),
    (float("-inf"), INF_MESSAGE.replace("3", "2").format("-inf")),
])
def test_nan_and_infinity_in_parquet(value, message):
    with pytest.raises(ContractError, match="^file:///drops/f.parquet: " + message):
        read_floats(parquet_with(value), "parquet", "f.parquet")


def test_nan_in_a_nullable_float_column_is_stored_as_null_on_both_read_paths():
    typed = b"id,n,x,y\na,1,0.5,nan\nb,2,1.5,NaN\n"
    fast, slow = read_floats(typed).table, read_floats(typed + b"c, 3 ,1,\n").table
    assert fast.column("y").to_pylist() == [None, None]
    assert slow.slice(0, 2).equals(fast)
    assert read_floats(parquet_with(0.5), "parquet", "f.parquet").table.column("y").null_count == 0


def test_nan_text_in_an_int_column_is_a_missing_value_too():
    with pytest.raises(ContractError, match=r"f.csv: column 'x' must not be null; null in row\(s\) \[2\] "
                                            r"\(NaN counts as null\)"):
        read_floats(b"id,n,x,y\na,1,nan,1\n")
    assert read_floats(b"id,n,x,y\na,NaN,1,1\nb, nan ,1,1\n").table.column("n").to_pylist() == [None, None]
    int_contract = Contract.from_dict({"columns": {"n": {"type": "int32", "nullable": False}}})
    with pytest.raises(ContractError, match=r"column 'n' must not be null; null in row\(s\) \[3\] \(NaN counts"):
        read_drop([("f.csv", b"n\n1\nNaN\n")], "csv", int_contract)


def test_infinity_is_accepted_where_the_contract_allows_it():
    contract = Contract.from_dict({"columns": {"x": {"type": "float32", "allow_infinity": True}}})
    table = read_drop([("f.csv", b"x\ninf\n-inf\nnan\n")], "csv", contract).table
    assert table.column("x").to_pylist() == [float("inf"), float("-inf"), None]
    with pytest.raises(ContractError, match="column 'n' sets allow_infinity but is int32, not a float"):
        Contract.from_dict({"columns": {"n": {"type": "int32", "allow_infinity": True}}})


# ---- quarantine: rows with bad cells are set aside with their text and reasons -------------------

def test_quarantine_sets_rows_with_bad_cells_aside_with_their_text_and_reasons():
    data = b"id,n,x,y\na,1,0.5,\nb,abc,inf,1\nc,3,,2\nd,4,2.5,3\ne, 5x ,NaN,\n"
    for fmt_data in (data, data.replace(b"d,4,", b"d, 4 ,")):  # typed read first, or text read only
        drop = read_floats(fmt_data, on_row_error="quarantine")
        assert drop.table.column("id").to_pylist() == ["a", "d"]
        assert drop.table.schema == FLOATS.arrow_schema
        assert [(r.source, r.row, r.reasons) for r in drop.rejected] == [
            ("file:///drops/f.csv", 3, ("contract: n expects int32", "contract: x is infinite")),
            ("file:///drops/f.csv", 4, ("contract: x must not be null",)),
            ("file:///drops/f.csv", 6, ("contract: n expects int32", "contract: x must not be null")),
        ]
        assert drop.rejected[0].values == {"id": "b", "n": "abc", "x": "inf", "y": "1"}
        assert drop.rejected[2].values == {"id": "e", "n": " 5x ", "x": "NaN", "y": None}


def test_quarantine_numbers_duplicate_keys_by_their_lines_and_still_fails_on_structure():
    data = b"id,n,x,y\na,1,0.5,\nb,abc,1,1\nc,3,1,2\na,4,2.5,3\n"
    with pytest.raises(ContractError, match=r"key \['id'\] is not unique: .*id='a' \(2x\) in rows 2, 5"):
        read_floats(data, on_row_error="quarantine")
    with pytest.raises(ContractError, match=r"missing column\(s\) \['y'\]"):
        read_floats(b"id,n,x\na,abc,1\n", on_row_error="quarantine")


def test_a_drop_whose_every_row_is_rejected_is_not_empty_but_has_no_good_rows():
    drop = read_floats(b"id,n,x,y\na,x,1,\nb,y,1,\n", on_row_error="quarantine")
    assert drop.table.num_rows == 0 and len(drop.rejected) == 2
