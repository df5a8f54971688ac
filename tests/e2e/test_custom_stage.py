"""A data engineer's own stage, registered in the project's `_defaults.yaml`, run between validate
and features by `dag.test()` (SQLite): it publishes its partition with a manifest like a built-in
stage, keeps it when nothing changed, and features runs after it."""

from __future__ import annotations

import pytest

from include.lake import Lake
from tests.e2e.custom_stage_project import write_custom_stage_project
from tests.e2e.in_process import activate_project
from tests.e2e.own_project import days, write_drop

pytestmark = pytest.mark.e2e
DAY = days(1)[0]


@pytest.fixture
def dag_file(tmp_path, skylift_env, monkeypatch):
    root = write_custom_stage_project(tmp_path / "project")
    write_drop(skylift_env / "drops", DAY)
    return activate_project(monkeypatch, root, tmp_path / "home", packages=("parcel_stages", "parcel_jobs"))


def test_custom_stage_publishes_its_partition_before_features(dag_file, skylift_env):
    from operators.embedded import load_dag, run_dag

    dag = load_dag("parcels_daily", dag_file)
    assert dag.get_task("heavy_share").upstream_task_ids == {"validate"}
    assert "heavy_share" in dag.get_task("features").upstream_task_ids
    assert dag.owner == "logistics-team"  # from _defaults.yaml

    assert run_dag("parcels_daily", DAY, dag_file=dag_file) == "success"
    lake = Lake(f"file://{skylift_env}/lake")
    manifest = lake.require_fresh("reports", "parcels_heavy_share", DAY.isoformat())
    assert manifest.extra["pipeline"] == "parcels" and manifest.extra["stage"] == "heavy_share"
    assert [i["dataset"] for i in manifest.inputs] == ["shipments"]
    table = lake.read_table("reports", "parcels_heavy_share", DAY.isoformat()).to_pylist()
    shipments = lake.read_table("validated", "shipments", DAY.isoformat())
    assert table[0]["shipments"] == shipments.num_rows == 60
    assert table[0]["heavy"] == sum(w >= 20 for w in shipments["weight_kg"].to_pylist())
    # features ran after the custom stage (it is downstream of it, and published later)
    features = lake.manifest("features", "parcels_features", DAY.isoformat())
    assert features is not None and features.created_at >= manifest.created_at

    # a second run of the same day keeps the partition (same inputs, config and code)
    assert run_dag("parcels_daily", DAY, dag_file=dag_file) == "success"
    assert lake.manifest("reports", "parcels_heavy_share", DAY.isoformat()).run_id == manifest.run_id
