"""Ingest streams a drop into the raw partition: one read, checksums on the way, re-runs kept."""

from __future__ import annotations

import hashlib
from datetime import date

import pyarrow as pa
import pytest

from include.datagen.churn import generate
from include.errors import ContractError
from include.lake import Lake
from operators.ingest import IngestOperator

DS = "2026-11-24"


@pytest.fixture
def drop(skylift_env):
    generate(skylift_env / "drops" / "activity", date.fromisoformat(DS), days=1, n_customers=200)
    return skylift_env / "drops" / "activity" / DS / "activity.csv"


def ingest(context_for, **params):
    op = IngestOperator(task_id="ingest", pipeline="t", source_uri="activity/{ds}/", source_format="csv",
                        schema_file="include/schemas/customer_activity.yaml", dataset="activity")
    context = context_for(DS)
    context["params"] = params
    return op.execute(context)


def test_the_partition_lists_the_drops_checksum_and_a_rerun_keeps_it(drop, skylift_env, context_for):
    lake = Lake(f"file://{skylift_env}/lake")
    ingest(context_for)
    first = lake.require("raw", "activity", DS)
    assert first.inputs[0]["sha256"] == hashlib.sha256(drop.read_bytes()).hexdigest()
    assert lake.check(first, checksums=True) and first.row_count == 200
    ingest(context_for)
    assert lake.require("raw", "activity", DS).attempt == first.attempt  # same drop: kept as is
    ingest(context_for, rebuild=True)
    assert lake.require("raw", "activity", DS).attempt != first.attempt


def test_a_drop_rewritten_at_the_same_size_is_ingested_again(drop, skylift_env, context_for):
    lake = Lake(f"file://{skylift_env}/lake")
    ingest(context_for)
    first = lake.require("raw", "activity", DS)
    data = drop.read_bytes()
    drop.write_bytes(data.replace(b"premium", b"basic__"))  # same size, other bytes: the key must be recomputed
    ingest(context_for)
    again = lake.require("raw", "activity", DS)
    assert again.attempt != first.attempt and again.extra["build_key"] != first.extra["build_key"]
    assert "premium" not in lake.read_table("raw", "activity", DS).column("plan").to_pylist()


def test_a_bad_drop_leaves_the_published_partition_and_no_staged_file(drop, skylift_env, context_for):
    lake = Lake(f"file://{skylift_env}/lake")
    ingest(context_for)
    first = lake.require("raw", "activity", DS)
    lines = drop.read_bytes().split(b"\n")
    customer, day, plan, tenure = lines[150].split(b",")[:4]
    lines[150] = lines[150].replace(b",".join([customer, day, plan, tenure]), b",".join([customer, day, plan, b"x"]))
    drop.write_bytes(b"\n".join(lines))
    with pytest.raises(ContractError, match=r"column 'tenure_days' expects int32, got unparseable value\(s\) at "
                                            r"row 151: 'x'"):
        ingest(context_for)
    assert lake.require("raw", "activity", DS) == first
    folder = skylift_env / "lake" / "raw" / "activity" / f"ds={DS}"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(f.path for f in first.files), "_manifest.json"])


def test_write_tables_streams_one_part_file_and_aborts_cleanly(tmp_path):
    lake = Lake(f"file://{tmp_path}")
    table = pa.table({"n": pa.array([1, 2, 3], pa.int32())})
    with lake.publish("raw", "numbers", DS) as writer:
        writer.write_tables(iter([table, table.slice(0, 0), table]), table.schema)
    manifest = lake.check(lake.require("raw", "numbers", DS), checksums=True)
    assert (manifest.row_count, len(manifest.data_files)) == (6, 1)

    def failing():
        yield table
        raise ContractError("bad batch")

    with pytest.raises(ContractError, match="bad batch"), lake.publish("raw", "numbers", "2026-11-25") as writer:
        writer.write_tables(failing(), table.schema)
    assert list((tmp_path / "raw" / "numbers" / "ds=2026-11-25").iterdir()) == []
