"""The lake's commit protocol on a real S3 API (moto's server), where rename is not atomic."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet below
import pytest

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
