"""The lake's commit protocol: atomic publish, exact replacement, invisible failures."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from include.errors import LakeError, PartitionNotFound
from include.lake import Lake
from include.lineage import trace


@pytest.fixture
def lake(tmp_path):
    return Lake(f"file://{tmp_path}/lake")


def table(n, start=0):
    return pa.table({"id": list(range(start, start + n)), "v": [float(i) for i in range(n)]})


def files_in(lake, zone, dataset, ds):
    return sorted(p.rsplit("/", 1)[-1] for p in lake.fs.ls(lake.partition_path(zone, dataset, ds), detail=False))


def test_publish_writes_parts_and_manifest_listing_them(lake):
    with lake.publish("raw", "events", "2026-11-20", run_id="r1", extra={"k": "v"}) as w:
        w.write_table(table(3))
        w.write_table(table(2, start=3))
    manifest = lake.require("raw", "events", "2026-11-20")
    assert manifest.row_count == 5
    assert [f.name for f in manifest.files] == ["part-00000.parquet", "part-00001.parquet"]
    assert manifest.run_id == "r1" and manifest.extra == {"k": "v"}
    assert lake.read_table("raw", "events", "2026-11-20").column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert sorted(files_in(lake, "raw", "events", "2026-11-20")) == sorted(
        ["_manifest.json", *[f.path for f in manifest.files]])


def test_rerun_replaces_partition_exactly(lake):
    for _ in range(3):
        with lake.publish("raw", "events", "2026-11-20") as w:
            w.write_table(table(4))
    assert lake.read_table("raw", "events", "2026-11-20").num_rows == 4
    # one data file and the manifest: no leftovers from earlier attempts
    assert len(files_in(lake, "raw", "events", "2026-11-20")) == 2


def test_failed_attempt_publishes_nothing_and_keeps_previous(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(4))
    before = lake.require("raw", "events", "2026-11-20")
    with pytest.raises(RuntimeError), lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(10))
        raise RuntimeError("worker died")
    assert lake.require("raw", "events", "2026-11-20") == before
    assert lake.read_table("raw", "events", "2026-11-20").num_rows == 4
    assert len(files_in(lake, "raw", "events", "2026-11-20")) == 2


def test_orphans_of_a_killed_attempt_are_invisible_then_cleaned(lake):
    folder = lake.partition_path("raw", "events", "2026-11-20")
    lake.fs.makedirs(folder, exist_ok=True)
    lake.fs.pipe_file(f"{folder}/part-00000-deadbeef.parquet", b"half a file")
    assert lake.manifest("raw", "events", "2026-11-20") is None
    assert lake.partitions("raw", "events") == []
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(2))
    assert "part-00000-deadbeef.parquet" not in files_in(lake, "raw", "events", "2026-11-20")


def test_schema_mismatch_between_parts_is_refused(lake):
    with pytest.raises(LakeError, match="disagree on schema"), lake.publish("raw", "e", "2026-11-20") as w:
        w.write_table(table(2))
        w.write_table(pa.table({"other": [1]}))
    assert lake.manifest("raw", "e", "2026-11-20") is None


@pytest.mark.parametrize("zone,dataset,ds", [
    ("raw", "../etc", "2026-11-20"),
    ("raw", "ok", "2026-11-20/../../x"),
    ("RAW", "ok", "2026-11-20"),
    ("raw", "ok", "20261120"),
    ("raw", "a/b", "2026-11-20"),
])
def test_addresses_cannot_escape_the_lake(lake, zone, dataset, ds):
    with pytest.raises(LakeError):
        lake.partition_path(zone, dataset, ds)


def test_missing_partition_error_names_it(lake):
    with pytest.raises(PartitionNotFound, match="raw/events/ds=2026-11-20"):
        lake.read_table("raw", "events", "2026-11-20")


def test_corrupt_manifest_is_reported(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(1))
    path = f"{lake.partition_path('raw', 'events', '2026-11-20')}/_manifest.json"
    lake.fs.pipe_file(path, b"{not json")
    with pytest.raises(LakeError, match="unreadable"):
        lake.manifest("raw", "events", "2026-11-20")


def test_reports_and_local_files(lake):
    with lake.publish("reports", "events", "2026-11-20") as w:
        w.write_bytes("validation.json", json.dumps({"ok": True}).encode())
    assert json.loads(lake.read_bytes("reports", "events", "2026-11-20", "validation.json")) == {"ok": True}
    with pytest.raises(LakeError):
        with lake.publish("reports", "events", "2026-11-21") as w:
            w.write_bytes("../escape.html", b"x")
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(1))
    with lake.local_files("raw", "events", ["2026-11-20"]) as files:
        assert len(files["2026-11-20"]) == 1 and files["2026-11-20"][0].endswith(".parquet")


def test_lineage_follows_inputs_to_sources(lake):
    with lake.publish("raw", "events", "2026-11-20", inputs=[{"source": "file:///d/a.csv", "sha256": "ab" * 32,
                                                             "bytes": 10}]) as w:
        w.write_table(table(2))
    raw = lake.require("raw", "events", "2026-11-20")
    with lake.publish("features", "f", "2026-11-20", inputs=[raw.as_input()]) as w:
        w.write_table(table(2))
    chain = trace(lake, "features", "f", ["2026-11-20"])
    assert [(p["zone"], p["changed"]) for p in chain.partitions] == [("features", False), ("raw", False)]
    assert chain.sources[0]["source"] == "file:///d/a.csv"
    # the raw partition is rebuilt with other content: lineage flags the features as stale
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(3))
    assert trace(lake, "features", "f", ["2026-11-20"]).partitions[1]["changed"] is True
