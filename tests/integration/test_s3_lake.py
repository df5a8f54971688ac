"""The lake's commit protocol on a real S3 API (moto's server), where rename is not atomic."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet below
import pytest

from include.errors import DamagedPartition, PublishConflict
from include.lake import Lake

pytestmark = pytest.mark.integration


@pytest.fixture
def lakes(stack):
    """Two independent clients of one lake, as two worker processes would be."""
    prefix = f"s3://skylift-lake/t-{uuid.uuid4().hex[:8]}"
    options = stack.s3_storage_options()
    return Lake(prefix, storage_options=options), Lake(prefix, storage_options={**options, "skip_instance_cache": True})


def rows(n):
    return pa.table({"id": list(range(n))})


def test_publish_replace_and_abort_on_s3(lakes):
    writer, _ = lakes
    with writer.publish("raw", "events", "2026-11-24") as w:
        w.write_table(rows(3))
    with writer.publish("raw", "events", "2026-11-24") as w:
        w.write_table(rows(5))
    with pytest.raises(RuntimeError), writer.publish("raw", "events", "2026-11-24") as w:
        w.write_table(rows(50))
        raise RuntimeError("killed")
    assert writer.read_table("raw", "events", "2026-11-24").num_rows == 5
    listing = writer.fs.ls(writer.partition_path("raw", "events", "2026-11-24"), detail=False)
    assert len(listing) == 2  # one part file and the manifest


def test_a_reader_sees_a_partition_rebuilt_by_another_process(lakes):
    writer, reader = lakes
    with writer.publish("features", "f", "2026-11-24") as w:
        w.write_table(rows(1))
    assert reader.read_table("features", "f", "2026-11-24").num_rows == 1
    reader.fs.ls(reader.partition_path("features", "f", "2026-11-24"))  # a listing a cache could keep
    with writer.publish("features", "f", "2026-11-24") as w:
        w.write_table(rows(2))
    assert reader.read_table("features", "f", "2026-11-24").num_rows == 2


def test_staging_for_spark_copies_and_cleans_up(lakes):
    writer, _ = lakes
    with writer.publish("validated", "v", "2026-11-24") as w:
        w.write_table(rows(4))
    with writer.local_files("validated", "v", ["2026-11-24"]) as files:
        [path] = files["2026-11-24"]
        assert pa.parquet.read_table(path).num_rows == 4
    import os

    assert not os.path.exists(path)


def test_two_clients_publishing_one_partition_at_once_one_is_refused(lakes):
    first, second = lakes
    with first.publish("raw", "events", "2026-11-24") as w:
        w.write_table(rows(1))
    slow = first.publish("raw", "events", "2026-11-24", run_id="nightly")
    slow_writer = slow.__enter__()
    slow_writer.write_table(rows(3))
    with second.publish("raw", "events", "2026-11-24", run_id="manual") as fast:
        fast.write_table(rows(4))
    with pytest.raises(PublishConflict, match=rf"another writer published raw/events/ds=2026-11-24 "
                                              rf"\(attempt {fast.attempt}, run manual\)"):
        slow.__exit__(None, None, None)  # its conditional PUT names an ETag that is gone
    manifest = first.require("raw", "events", "2026-11-24")
    assert manifest.attempt == fast.attempt and first.problems(manifest, checksums=True) == []
    listing = first.fs.ls(first.partition_path("raw", "events", "2026-11-24"), detail=False)
    assert len(listing) == 2  # the winner's part and the manifest: the loser removed its own


def test_a_part_truncated_on_s3_is_named_by_readers(lakes):
    writer, reader = lakes
    with writer.publish("features", "f", "2026-11-24") as w:
        w.write_table(rows(500))
    path = f"{writer.partition_path('features', 'f', '2026-11-24')}/{w.entries[0].path}"
    writer.fs.pipe_file(path, b"PAR1")
    with pytest.raises(DamagedPartition, match=r"features/f/ds=2026-11-24 is damaged: part-00000.parquet is 4 bytes"):
        reader.read_table("features", "f", "2026-11-24")
