"""Damage done to published partitions behind the lake's back (a part rewritten, truncated or deleted
in place, a manifest cut short) is found by `skylift verify`, named by readers, and healed by a plain
retry of the stage that wrote it."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from include.errors import DamagedPartition
from include.lake import Lake
from operators.cli import main
from tests.conftest import task_context

pytestmark = pytest.mark.reliability

DATES = ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24")


@pytest.fixture
def lake(skylift_env):
    lake = Lake(f"file://{skylift_env}/lake")
    for ds in DATES:
        with lake.publish("raw", "events", ds) as writer:
            writer.write_table(pa.table({"id": list(range(200)), "v": [float(i) for i in range(200)]}))
    with lake.publish("reports", "events", DATES[0]) as writer:
        writer.write_bytes("validation.json", b'{"success": true}')
    return lake


def part(lake: Lake, zone: str, ds: str) -> Path:
    return Path(lake.partition_path(zone, "events", ds)) / lake.require(zone, "events", ds).files[0].path


def plant_damage(lake: Lake) -> None:
    """One kind of damage per partition; DATES[4] stays intact."""
    same_size = part(lake, "raw", DATES[0])
    data = bytearray(same_size.read_bytes())
    data[len(data) // 2] ^= 0x01
    same_size.write_bytes(bytes(data))
    truncated = part(lake, "raw", DATES[1])
    truncated.write_bytes(truncated.read_bytes()[:120])
    part(lake, "raw", DATES[2]).unlink()
    manifest = Path(lake.partition_path("raw", "events", DATES[3])) / "_manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:50])
    part(lake, "reports", DATES[0]).write_bytes(b'{"success": fals}')


def test_verify_passes_a_clean_lake(lake, capsys):
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    assert f"ok       raw/events/ds={DATES[4]}" in out
    assert "6 partition(s) checked" in out and "0 damaged" in out


def test_verify_names_every_damaged_partition_and_exits_1(lake, capsys):
    plant_damage(lake)
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED  raw/events/ds={DATES[0]}: part-00000.parquet has SHA-256" in out
    assert f"DAMAGED  raw/events/ds={DATES[1]}: part-00000.parquet is 120 bytes, the manifest says" in out
    assert f"DAMAGED  raw/events/ds={DATES[2]}: part-00000.parquet is missing (deleted?)" in out
    assert f"DAMAGED  raw/events/ds={DATES[3]}: its manifest" in out and "is unreadable" in out
    assert f"DAMAGED  reports/events/ds={DATES[0]}: validation.json has SHA-256" in out
    assert f"ok       raw/events/ds={DATES[4]}" in out
    assert "6 partition(s) checked" in out and "5 damaged" in out
    # one partition, or one dataset, on its own
    assert main(["verify", f"raw/events/{DATES[4]}"]) == 0
    assert main(["verify", f"raw/events/ds={DATES[1]}"]) == 1
    capsys.readouterr()
    assert main(["verify", "raw/events"]) == 1
    assert "5 partition(s) checked" in capsys.readouterr().out


def test_verify_refuses_a_bad_target(lake, capsys):
    assert main(["verify", "lake/events"]) == 2
    assert "cannot verify 'lake/events'" in capsys.readouterr().err


def test_the_installed_command_exits_1_on_damage(lake, skylift_env):
    plant_damage(lake)
    skylift = Path(sys.executable).parent / "skylift"
    done = subprocess.run([str(skylift), "verify", "raw"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"DAMAGED  raw/events/ds={DATES[1]}" in done.stdout
    assert "a retry rebuilds damaged outputs" in done.stderr


# ---- on S3 (moto's server): the same checks, sizes from one listing ------------------------------

@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server alone (the stack's launcher, without the other services)."""
    from tests.stack import Stack

    server = Stack(tmp_path_factory.mktemp("s3"))
    try:
        server.start_s3()
        yield server
    finally:
        server.stop()


def test_damage_on_s3_is_found_and_a_rebuild_heals_it(s3_server):
    lake = Lake("s3://skylift-lake/damage", storage_options=s3_server.s3_storage_options())
    with lake.publish("features", "f", "2026-11-24") as writer:
        writer.write_table(pa.table({"id": list(range(300))}))
    path = f"{lake.partition_path('features', 'f', '2026-11-24')}/{writer.entries[0].path}"
    lake.fs.pipe_file(path, lake.fs.cat_file(path)[:100])
    with pytest.raises(DamagedPartition, match=r"features/f/ds=2026-11-24 is damaged: part-00000.parquet is 100 bytes"):
        lake.read_table("features", "f", "2026-11-24")
    with lake.publish("features", "f", "2026-11-24") as writer:
        writer.write_table(pa.table({"id": list(range(300))}))
    assert lake.read_table("features", "f", "2026-11-24", verify=True).num_rows == 300


# ---- a plain retry of the stage heals its output ---------------------------------------------------

def ingest(ds: str) -> None:
    from operators.ingest import IngestOperator

    op = IngestOperator(task_id="ingest", pipeline="churn", source_uri="activity/{ds}/", source_format="csv",
                        schema_file="include/schemas/customer_activity.yaml", dataset="activity")
    op.execute(task_context(ds, task_id="ingest"))


@pytest.mark.parametrize("damage", ["rewritten in place", "manifest cut short"])
def test_a_retry_of_ingest_rebuilds_its_damaged_partition(skylift_env, damage):
    from include.datagen.churn import generate

    ds = "2026-11-24"
    generate(skylift_env / "drops" / "activity", date.fromisoformat(ds), days=1, n_customers=300)
    lake = Lake(f"file://{skylift_env}/lake")
    ingest(ds)
    clean = lake.read_table("raw", "activity", ds)
    folder = Path(lake.partition_path("raw", "activity", ds))
    if damage == "rewritten in place":
        target = folder / lake.require("raw", "activity", ds).files[0].path
        data = bytearray(target.read_bytes())
        data[len(data) // 3] ^= 0x01
        target.write_bytes(bytes(data))
    else:
        (folder / "_manifest.json").write_text('{"format": "skylift.manifest/1", "files": [')
    assert main(["verify", f"raw/activity/{ds}"]) == 1
    ingest(ds)  # the retry: same drop, same contract, no rebuild parameter
    assert main(["verify", f"raw/activity/{ds}"]) == 0
    assert lake.read_table("raw", "activity", ds, verify=True).equals(clean)
