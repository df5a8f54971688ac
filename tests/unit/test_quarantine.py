"""The quarantine zone's rows: contract rejects and expectation failures merged as text."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from include.contracts import Rejected
from include.errors import LakeError
from include.quarantine import decode_rejected, describe_rejected, encode_rejected, quarantine_table

REJECTS = [
    Rejected("file:///drops/a.csv", 5, ("contract: n expects int32",), {"id": "b", "n": "abc", "day": "2026-11-20"}),
    Rejected("file:///drops/a.csv", 9, ("contract: n expects int32", "contract: day expects date"),
             {"id": "c", "n": "x", "day": "2026-02-30"}),
]


def test_rejected_rows_survive_the_side_file_unchanged():
    assert decode_rejected(encode_rejected(REJECTS), "raw/t/ds=x/rejected.jsonl") == REJECTS
    with pytest.raises(LakeError, match="raw/t/ds=x/rejected.jsonl: the rejected rows cannot be read"):
        decode_rejected(b'{"source": "a"}\n', "raw/t/ds=x/rejected.jsonl")


def test_one_text_table_holds_expectation_failures_then_contract_rejects():
    raw = pa.table({"id": ["a", "d", "e"], "n": pa.array([1, 2, 3], pa.int32()),
                    "day": [date(2026, 11, 20)] * 3})
    table = quarantine_table(raw, {2: ["expect_column_values_to_be_between(n)"]}, REJECTS, "raw/t/ds=2026-11-20")
    assert table.schema == pa.schema([(name, pa.string()) for name in ["id", "n", "day", "_reasons", "_source"]])
    assert table.to_pylist() == [
        {"id": "e", "n": "3", "day": "2026-11-20", "_reasons": "expect_column_values_to_be_between(n)",
         "_source": "raw/t/ds=2026-11-20 row 2"},
        {"id": "b", "n": "abc", "day": "2026-11-20", "_reasons": "contract: n expects int32",
         "_source": "file:///drops/a.csv row 5"},
        {"id": "c", "n": "x", "day": "2026-02-30", "_reasons": "contract: n expects int32; contract: day expects date",
         "_source": "file:///drops/a.csv row 9"},
    ]


def test_rejects_are_described_by_reason_with_their_first_rows():
    assert describe_rejected(REJECTS) == ("contract: n expects int32: 2 row(s), first at a.csv row 5, a.csv row 9; "
                                          "contract: day expects date: 1 row(s), first at a.csv row 9")
