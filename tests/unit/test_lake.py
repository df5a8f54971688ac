"""The lake's commit protocol: atomic publish, exact replacement, invisible failures."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from include.errors import DamagedPartition, LakeError, PartitionNotFound, PublishConflict
from include.lake import Lake
from include.lineage import trace
from operators.base import SkyliftOperator


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


# ---- two writers of one partition ---------------------------------------------------------------

def open_writer(lake, ds="2026-11-20", **fields):
    """A writer inside `publish`, to be committed (exit) later: interleaves writers in one thread."""
    block = lake.publish("raw", "events", ds, **fields)
    return block, block.__enter__()


def assert_intact(lake, ds="2026-11-20"):
    """Every file the manifest lists exists with the listed size, checksum and rows."""
    manifest = lake.require("raw", "events", ds)
    assert lake.problems(manifest, checksums=True) == []
    return manifest


def test_interleaved_writers_the_later_commit_is_refused_and_names_the_winner(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(1))
    first_block, first = open_writer(lake, run_id="nightly")
    second_block, second = open_writer(lake, run_id="manual")
    first.write_table(table(3))
    second.write_table(table(5))
    second_block.__exit__(None, None, None)  # the second writer commits first and wins
    with pytest.raises(PublishConflict) as refused:
        first_block.__exit__(None, None, None)
    message = str(refused.value)
    assert "another writer published raw/events/ds=2026-11-20" in message
    assert f"attempt {second.attempt}, run manual" in message and "nothing was published by this attempt" in message
    assert assert_intact(lake).attempt == second.attempt
    assert lake.read_table("raw", "events", "2026-11-20").num_rows == 5
    # the loser removed its own files; the winner's and the manifest are all that is left
    assert files_in(lake, "raw", "events", "2026-11-20") == sorted(["_manifest.json", second.entries[0].path])


def test_first_publish_race_has_one_winner(lake):
    a_block, a = open_writer(lake)
    b_block, b = open_writer(lake)
    a.write_table(table(2))
    b.write_table(table(4))
    a_block.__exit__(None, None, None)
    with pytest.raises(PublishConflict, match=f"attempt {a.attempt}"):
        b_block.__exit__(None, None, None)
    assert assert_intact(lake).row_count == 2


def test_a_writer_that_starts_after_a_publish_builds_on_it(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(2))
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(7))
    assert assert_intact(lake).row_count == 7


def test_clean_up_spares_the_staged_files_of_a_writer_that_started_later(lake):
    older_block, older = open_writer(lake)
    newer_block, newer = open_writer(lake)
    newer.write_table(table(5))
    older.write_table(table(3))
    older_block.__exit__(None, None, None)  # publishes, then cleans up
    assert newer.entries[0].path in files_in(lake, "raw", "events", "2026-11-20")
    assert_intact(lake)
    with pytest.raises(PublishConflict):  # it built on the state before `older` published
        newer_block.__exit__(None, None, None)
    assert assert_intact(lake).attempt == older.attempt


def test_clean_up_removes_the_replaced_partition_and_old_leftovers_only(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(2))
    replaced = lake.require("raw", "events", "2026-11-20").files[0].path
    folder = lake.partition_path("raw", "events", "2026-11-20")
    lake.fs.pipe_file(f"{folder}/part-00000-20000101T000000000000abcdef.parquet", b"killed attempt")
    os.utime(f"{folder}/part-00000-20000101T000000000000abcdef.parquet", (0, 0))  # written long ago
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(3))
    assert files_in(lake, "raw", "events", "2026-11-20") == sorted(["_manifest.json", w.entries[0].path])
    assert replaced not in files_in(lake, "raw", "events", "2026-11-20")


# ---- damage is detected and named ---------------------------------------------------------------

def published(lake, rows=50):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(rows))
    manifest = lake.require("raw", "events", "2026-11-20")
    return manifest, f"{lake.partition_path('raw', 'events', '2026-11-20')}/{manifest.files[0].path}"


def test_a_part_rewritten_with_the_same_size_is_caught_by_checksums(lake):
    manifest, path = published(lake)
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    with pytest.raises(DamagedPartition, match=r"raw/events/ds=2026-11-20 is damaged: part-00000.parquet has SHA-256 "
                                               r".*\(rewritten in place\?\); re-run the stage that writes it"):
        lake.read_table("raw", "events", "2026-11-20", verify=True)
    with pytest.raises(DamagedPartition, match="has SHA-256"):
        Lake(lake.root, verify_checksums=True).read_table("raw", "events", "2026-11-20")
    with pytest.raises(DamagedPartition, match="has SHA-256"):
        lake.check(manifest, checksums=True)


def test_a_part_rewritten_with_another_size_is_caught_on_every_read(lake):
    manifest, path = published(lake)
    Path(path).write_bytes(Path(path).read_bytes()[:120])
    expected = (f"raw/events/ds=2026-11-20 is damaged: part-00000.parquet is 120 bytes, the manifest says "
                f"{manifest.files[0].bytes} (rewritten or truncated in place?); re-run the stage that writes it "
                "for this date: a retry rebuilds damaged outputs")
    with pytest.raises(DamagedPartition) as damaged:
        lake.read_table("raw", "events", "2026-11-20")
    assert str(damaged.value) == expected
    assert damaged.value.partition == "raw/events/ds=2026-11-20"
    with pytest.raises(DamagedPartition, match="is 120 bytes"), lake.local_files("raw", "events", ["2026-11-20"]):
        pass


def test_a_deleted_part_is_named(lake):
    _, path = published(lake)
    Path(path).unlink()
    with pytest.raises(DamagedPartition, match=r"raw/events/ds=2026-11-20 is damaged: part-00000.parquet is missing"):
        lake.read_table("raw", "events", "2026-11-20")


def test_a_rewritten_report_is_caught_when_read(lake):
    with lake.publish("reports", "events", "2026-11-20") as w:
        w.write_bytes("validation.json", b'{"ok": true} ')
    path = f"{lake.partition_path('reports', 'events', '2026-11-20')}/{w.entries[0].path}"
    Path(path).write_bytes(b'{"ok": false}')
    with pytest.raises(DamagedPartition, match="validation.json has SHA-256"):
        lake.read_bytes("reports", "events", "2026-11-20", "validation.json")


@pytest.mark.parametrize("cut", [0, 40, -1])
def test_a_truncated_manifest_names_the_partition(lake, cut):
    published(lake)
    path = Path(lake.partition_path("raw", "events", "2026-11-20")) / "_manifest.json"
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(DamagedPartition, match=r"raw/events/ds=2026-11-20 is damaged: its manifest .* is unreadable"):
        lake.read_table("raw", "events", "2026-11-20")


def test_a_rebuild_replaces_a_damaged_manifest(lake):
    published(lake)
    path = Path(lake.partition_path("raw", "events", "2026-11-20")) / "_manifest.json"
    path.write_bytes(b"{not json")
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(4))
    assert assert_intact(lake).row_count == 4


def test_damaged_partition_survives_pickling(lake):
    error = DamagedPartition("raw/events/ds=2026-11-20", ["part-00000.parquet is missing (deleted?)"])
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.problems == error.problems


# ---- the reuse check trusts only intact outputs ---------------------------------------------------

class Rewriter(SkyliftOperator):
    """A stage that keeps its output when built from the same inputs (the reuse check under test)."""

    def execute(self, context):
        key = self.build_key(["input-fingerprint"])
        kept = self.unchanged(context, "features", "f", "2026-11-20", key)
        if kept is not None:
            return kept
        with self.lake.publish("features", "f", "2026-11-20", extra={"build_key": key}) as writer:
            writer.write_table(table(30))
        return writer.manifest


@pytest.mark.parametrize("damage", ["same size", "truncated", "deleted", "manifest"])
def test_a_retry_rebuilds_a_damaged_output_instead_of_keeping_it(skylift_env, context_for, damage):
    stage = Rewriter(task_id="rewrite", pipeline="t")
    first = stage.execute(context_for("2026-11-20"))
    assert stage.execute(context_for("2026-11-20")).attempt == first.attempt  # intact: kept
    folder = Path(stage.lake.partition_path("features", "f", "2026-11-20"))
    part = folder / first.files[0].path
    if damage == "same size":
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    elif damage == "truncated":
        part.write_bytes(part.read_bytes()[:100])
    elif damage == "deleted":
        part.unlink()
    else:
        (folder / "_manifest.json").write_text("{")
    rebuilt = stage.execute(context_for("2026-11-20"))
    assert rebuilt.attempt != first.attempt
    assert stage.lake.problems(stage.lake.require("features", "f", "2026-11-20"), checksums=True) == []
    assert stage.lake.read_table("features", "f", "2026-11-20").num_rows == 30


def test_withdrawing_removes_the_partition_but_not_a_writers_staged_files(lake):
    with lake.publish("raw", "events", "2026-11-20") as w:
        w.write_table(table(3))
    block, staging = open_writer(lake)
    staging.write_table(table(2))
    assert lake.delete_partition("raw", "events", "2026-11-20") is True
    assert lake.manifest("raw", "events", "2026-11-20") is None
    assert lake.partitions("raw", "events") == []
    assert files_in(lake, "raw", "events", "2026-11-20") == [staging.entries[0].path]
    assert lake.delete_partition("raw", "events", "2026-11-20") is False
    assert lake.delete_partition("raw", "events", "2026-11-21") is False
    with pytest.raises(PublishConflict, match="then withdrew it"):  # it began before the withdrawal
        block.__exit__(None, None, None)
    assert files_in(lake, "raw", "events", "2026-11-20") == []


# ---- adding to a partition (the gate reports of every version gated on one date) ----------------

def test_amend_adds_a_file_and_keeps_the_others_where_they_are(lake):
    first = lake.amend("reports", "t_gate", "2026-11-20", {"gate-v1.json": b"{1}"}, run_id="nightly")
    kept = first.file("gate-v1.json").path
    second = lake.amend("reports", "t_gate", "2026-11-20", {"gate-v2.json": b"{2}"}, run_id="retrain")
    assert [f.name for f in second.files] == ["gate-v1.json", "gate-v2.json"]
    assert second.file("gate-v1.json").path == kept  # a link to version 1's report still works
    assert lake.read_bytes("reports", "t_gate", "2026-11-20", "gate-v1.json") == b"{1}"
    again = lake.amend("reports", "t_gate", "2026-11-20", {"gate-v1.json": b"{1 again}"}, run_id="retry")
    assert lake.read_bytes("reports", "t_gate", "2026-11-20", "gate-v1.json") == b"{1 again}"
    assert again.file("gate-v2.json").path == second.file("gate-v2.json").path
    assert files_in(lake, "reports", "t_gate", "2026-11-20") == sorted(
        ["_manifest.json", again.file("gate-v1.json").path, again.file("gate-v2.json").path])


def test_amenders_at_once_all_land(lake):
    from concurrent.futures import ThreadPoolExecutor

    def add(version: int):
        return lake.amend("reports", "t_gate", "2026-11-20", {f"gate-v{version}.json": str(version).encode()})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(add, range(12)))
    manifest = lake.require("reports", "t_gate", "2026-11-20")
    assert sorted(f.name for f in manifest.files) == sorted(f"gate-v{v}.json" for v in range(12))
    for version in range(12):
        assert lake.read_bytes("reports", "t_gate", "2026-11-20", f"gate-v{version}.json") == str(version).encode()


def test_a_part_file_is_never_carried(lake):
    with lake.publish("reports", "t_gate", "2026-11-20") as w:
        w.write_table(table(2))
    with pytest.raises(LakeError, match="cannot be carried"):
        lake.amend("reports", "t_gate", "2026-11-20", {"gate-v1.json": b"{}"})
    assert lake.read_table("reports", "t_gate", "2026-11-20").num_rows == 2
