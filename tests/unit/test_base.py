"""What every stage shares: a stage never keeps, replaces or withdraws another pipeline's partition."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from include.datagen.churn import generate
from include.errors import LakeError
from include.lake import Lake
from operators.base import SkyliftOperator
from operators.ingest import IngestOperator

DS = "2026-11-20"


@pytest.fixture
def lake(skylift_env):
    return Lake(f"file://{skylift_env}/lake")


def stage(pipeline: str) -> SkyliftOperator:
    return SkyliftOperator(task_id="stage", pipeline=pipeline)


def write(op: SkyliftOperator, rows: list[int]) -> None:
    with op.publish("raw", "shared", DS, run_id=f"run-of-{op.pipeline}", extra={"note": "x"}) as writer:
        writer.write_table(pa.table({"id": rows}))


def test_publish_records_the_pipeline_and_refuses_another_ones_partition(lake):
    write(stage("spend"), [1, 2])
    manifest = lake.require("raw", "shared", DS)
    assert manifest.extra == {"note": "x", "pipeline": "spend"}
    write(stage("spend"), [1, 2, 3])  # its own partition: replaced as always
    with pytest.raises(LakeError) as err:
        write(stage("churn"), [9])
    assert str(err.value) == (
        f"raw/shared/ds={DS} was written by pipeline 'spend' (run run-of-spend); pipeline 'churn' may not replace "
        "it. Two specs name the same dataset: give this pipeline's spec its own dataset name")
    assert lake.read_table("raw", "shared", DS).column("id").to_pylist() == [1, 2, 3]
    with pytest.raises(LakeError, match="pipeline 'churn' may not replace it"):
        stage("churn").withdraw("raw", "shared", DS)
    assert lake.manifest("raw", "shared", DS) is not None


def test_a_partition_from_before_ownership_was_recorded_can_be_taken(lake):
    with lake.publish("raw", "shared", DS, run_id="old") as writer:
        writer.write_table(pa.table({"id": [1]}))
    write(stage("churn"), [4])
    assert lake.require("raw", "shared", DS).extra["pipeline"] == "churn"


def test_an_ingest_neither_keeps_nor_replaces_another_pipelines_partition(skylift_env, lake, context_for):
    """The same drop and contract would make the other pipeline's partition look up to date: refused too."""
    generate(skylift_env / "drops" / "activity", date.fromisoformat(DS), days=1, n_customers=50)

    def ingest(pipeline):
        op = IngestOperator(task_id="ingest", pipeline=pipeline, source_uri="activity/{ds}/", source_format="csv",
                            schema_file="include/schemas/customer_activity.yaml", dataset="activity")
        return op.execute(context_for(DS))

    ingest("churn")
    before = lake.require("raw", "activity", DS)
    with pytest.raises(LakeError, match=f"raw/activity/ds={DS} was written by pipeline 'churn'"):
        ingest("spend")
    assert lake.require("raw", "activity", DS) == before


def test_partition_date_refuses_a_date_before_the_pipelines_start_date():
    """The compiler gives each task the spec's start_date; the DAG's own is earlier (see test_start_date)."""
    from types import SimpleNamespace

    from include.errors import SpecError
    from operators.base import partition_date
    from tests.conftest import task_context

    task = SimpleNamespace(pipeline="parcels", pipeline_start="2026-03-01")
    assert partition_date({**task_context("2026-03-01"), "task": task}) == "2026-03-01"
    with pytest.raises(SpecError, match=r"2026-02-28 is before pipeline 'parcels'\'s start_date 2026-03-01: pick a "
                                        r"later date"):
        partition_date({**task_context("2026-02-28"), "task": task})
    with pytest.raises(SpecError, match="2026-02-27 is before"):  # a `ds` from the trigger form, too
        partition_date({**task_context("2026-03-05", params={"ds": "2026-02-27"}), "task": task})
