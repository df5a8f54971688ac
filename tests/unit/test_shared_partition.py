"""A shared partition against a local lake: the sensor waits for its owner to publish it whole, a
time-out names the owner, and the reader's features key follows the partition's content."""

from __future__ import annotations

import pyarrow as pa
import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from include.errors import LakeError, PartitionNotFound, SpecError
from include.shared_partitions import SharedPartition, shared_partition_state
from operators.base import SkyliftOperator, date_window
from operators.features import FeaturesOperator
from operators.sensors import SharedPartitionSensor
from operators.triggers import SharedPartitionTrigger

DS = "2026-11-20"
ACTIVITY = SharedPartition(owner="churn", dataset="customer_activity", owner_dags=("churn_nightly",),
                           owner_spec="dags/pipelines/churn.yaml:15")


def owner(pipeline: str = "churn") -> SkyliftOperator:
    """Publishes as a stage of `pipeline` does (the manifest names its writer)."""
    return SkyliftOperator(task_id="validate_activity", pipeline=pipeline)


def publish(op: SkyliftOperator, zone: str, ds: str, rows: list[int], inputs=()) -> None:
    with op.publish(zone, "customer_activity", ds, run_id=f"run-{ds}", inputs=list(inputs)) as writer:
        writer.write_table(pa.table({"customer_id": rows}))


def sensor(**kwargs) -> SharedPartitionSensor:
    return SharedPartitionSensor(task_id="wait_for_activity", pipeline="spend", shared=ACTIVITY, **kwargs)


def context(task) -> dict:
    return {"params": {"ds": DS}, "task": task}


def test_the_sensor_waits_until_the_owner_has_published_the_day(skylift_env):
    waiting = sensor()
    assert waiting.mode == "reschedule"  # the worker slot is given back between looks
    assert not waiting.poke(context(waiting))
    assert waiting._last_reason == (f"validated/customer_activity/ds={DS} is not published yet by pipeline 'churn' "
                                    "(DAG churn_nightly; declared at dags/pipelines/churn.yaml:15)")
    publish(owner(), "validated", "2026-11-19", [1, 2])  # another day does not count
    assert not waiting.poke(context(waiting))
    publish(owner(), "validated", DS, [1, 2, 3])
    assert waiting.poke(context(waiting))
    assert waiting._last_reason == (f"validated/customer_activity/ds={DS} published by pipeline 'churn' "
                                    f"(run run-{DS}, 3 rows)")


def test_a_partition_being_rebuilt_by_its_owner_is_waited_for(skylift_env):
    publish(owner(), "raw", DS, [1, 2, 3])
    raw = owner().lake.require("raw", "customer_activity", DS)
    publish(owner(), "validated", DS, [1, 2, 3], inputs=[raw.as_input()])
    lake = owner().lake
    assert shared_partition_state(lake, ACTIVITY, DS).ready
    publish(owner(), "raw", DS, [1, 2, 3, 4])  # the owner re-ingests; its validate has not run yet
    state = shared_partition_state(lake, ACTIVITY, DS)
    assert not state.ready
    assert state.reason == (f"validated/customer_activity/ds={DS} is being rebuilt by pipeline 'churn': its inputs "
                            f"changed since it was published (raw/customer_activity/ds={DS} (rebuilt))")


def test_a_partition_another_pipeline_wrote_is_refused_not_waited_for(skylift_env):
    publish(owner("billing"), "validated", DS, [1])
    waiting = sensor()
    with pytest.raises(LakeError, match=(
            rf"^validated/customer_activity/ds={DS} was written by pipeline 'billing' \(run run-{DS}\), but it is "
            r"shared as pipeline 'churn' \(DAG churn_nightly; declared at dags/pipelines/churn.yaml:15\)'s")):
        waiting.poke(context(waiting))


def test_a_damaged_manifest_is_waited_for(skylift_env):
    publish(owner(), "validated", DS, [1])
    lake = owner().lake
    manifest = f"{lake.partition_path('validated', 'customer_activity', DS)}/_manifest.json"
    lake.fs.pipe_file(manifest, b"{not json")
    state = shared_partition_state(lake, ACTIVITY, DS)
    assert not state.ready and "is damaged" in state.reason and "waiting for 'churn' to republish it" in state.reason


def test_a_time_out_names_the_partition_the_owner_and_its_dag(skylift_env):
    waiting = sensor(mode="poke", timeout=0, poke_interval=5)
    with pytest.raises(AirflowSensorTimeout) as err:
        waiting.execute(context(waiting))
    assert str(err.value) == (
        f"gave up after 0s: validated/customer_activity/ds={DS} is not published yet by pipeline 'churn' (DAG "
        "churn_nightly; declared at dags/pipelines/churn.yaml:15). Pipeline 'spend' only reads this dataset; its "
        f"owner 'churn' publishes it: run or fix churn_nightly for {DS}, then clear this task")


def test_the_sensor_refuses_a_date_before_the_readers_start_date(skylift_env):
    waiting = sensor(pipeline_start="2026-12-01")
    with pytest.raises(SpecError, match="is before pipeline 'spend'"):
        waiting.poke(context(waiting))


# ---- the reader's feature inputs ----

def job(activity, spend_labels, ds):  # the signature a feature job of these inputs has
    return None


def features() -> FeaturesOperator:
    return FeaturesOperator(task_id="features", pipeline="spend", job=f"{__name__}:job", dataset="spend_features",
                            sources={"activity": "customer_activity"}, shared={"activity": "churn"}, lookback_days=2)


def test_the_features_key_follows_the_shared_partitions_content(skylift_env):
    publish(owner(), "validated", "2026-11-19", [1, 2])
    publish(owner(), "validated", DS, [1, 2, 3])
    reader = features()
    window = date_window(DS, 2)
    first = reader.collect_inputs(DS, window, code="c")
    assert sorted(first.found["activity"]) == window and first.missing == []
    assert reader.collect_inputs(DS, window, code="c").key == first.key  # nothing changed: kept
    publish(owner(), "validated", DS, [1, 2, 3])  # republished, same rows
    assert reader.collect_inputs(DS, window, code="c").key == first.key
    publish(owner(), "validated", DS, [1, 2, 3, 4])  # republished with other rows: the features are rebuilt
    assert reader.collect_inputs(DS, window, code="c").key != first.key


def test_features_name_the_owner_of_a_missing_shared_day(skylift_env):
    publish(owner(), "validated", "2026-11-19", [1, 2])
    with pytest.raises(PartitionNotFound, match=(
            rf"^validated/customer_activity/ds={DS} is not published yet by pipeline 'churn' \(none of its DAGs "
            r"validates it\); it is shared, so this pipeline only reads it: run the owner for 2026-11-20 first$")):
        features().collect_inputs(DS, date_window(DS, 2), code="c")


def test_features_refuse_a_window_day_another_pipeline_wrote(skylift_env):
    publish(owner("billing"), "validated", "2026-11-19", [1])
    publish(owner(), "validated", DS, [1, 2])
    with pytest.raises(LakeError, match="was written by pipeline 'billing'"):
        features().collect_inputs(DS, date_window(DS, 2), code="c")


def test_a_shared_input_must_be_one_of_the_jobs_sources():
    with pytest.raises(SpecError, match=r"shared inputs \['weather'\] are not among the job's sources \['activity'\]"):
        FeaturesOperator(task_id="features", pipeline="spend", job=f"{__name__}:job", dataset="f",
                         sources={"activity": "customer_activity"}, shared={"weather": "churn"})


def test_the_plan_shows_the_wait_for_the_owners_partition(skylift_env):
    from pathlib import Path

    from operators.plan import _Planner
    from operators.spec.compiler import dags_from_spec_file
    from operators.spec.loader import load_spec

    spend = Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "spend.yaml"
    dag = dags_from_spec_file(spend)["spend_retrain"]
    publish(owner(), "validated", DS, [1, 2])
    wait = _Planner(load_spec(spend), dag, DS, {}).task(dag.get_task("wait_for_activity"))
    assert wait.reads == (f"file://{skylift_env}/lake/validated/customer_activity/ds={DS}",) and wait.writes == ()
    churn = spend.parent / "churn.yaml"
    line = churn.read_text().split("dataset: customer_activity")[0].count("\n") + 1
    assert wait.notes == ("waits (reschedule, a look every 300s, up to 180 min) until pipeline 'churn' (DAG "
                          f"churn_nightly; declared at {churn}:{line}) has published it; read only, never written "
                          "by 'spend'",)
    assert dag.get_task("features").upstream_task_ids == {"wait_for_activity"}


def test_wait_null_builds_no_sensor_and_the_features_task_names_the_owner_itself(tmp_path):
    from pathlib import Path

    import yaml

    from operators.spec.compiler import shared_waits
    from operators.spec.loader import load_spec

    pipelines = Path(__file__).resolve().parents[2] / "dags" / "pipelines"
    (tmp_path / "churn.yaml").write_text((pipelines / "churn.yaml").read_text())
    body = yaml.safe_load((pipelines / "spend.yaml").read_text())
    body["reads"]["activity"]["wait"] = None
    (tmp_path / "spend.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    spec = load_spec(tmp_path / "spend.yaml")
    assert shared_waits(spec, ["features", "train"], tmp_path / "spend.yaml") == {}
    body["reads"]["activity"].pop("wait")  # the default waits
    (tmp_path / "spend.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    (sensor_task,) = shared_waits(load_spec(tmp_path / "spend.yaml"), ["features"], tmp_path / "spend.yaml").values()
    assert (sensor_task.task_id, sensor_task.timeout, sensor_task.poke_interval) == ("wait_for_activity", 180 * 60, 300)
    assert sensor_task.shared.owner_dags == ("churn_nightly",)


# ---- deferrable: the same wait in the triggerer ----

class ScriptedTrigger(SharedPartitionTrigger):
    """The trigger on a fake clock: each pause advances it and lets the owner take its next step."""

    def __init__(self, *args, steps, **kwargs) -> None:
        super().__init__(*args, started=0.0, **kwargs)
        self.clock, self.steps, self.looks = 0.0, list(steps), []

    def _now(self) -> float:
        self.looks.append(self.clock)
        return self.clock

    async def _pause(self, seconds: float) -> None:
        self.clock += seconds
        if self.steps:
            self.steps.pop(0)()


def events(trigger: SharedPartitionTrigger) -> list[dict]:
    import asyncio

    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def trigger_for(skylift_env, steps, timeout: float = 3600) -> ScriptedTrigger:
    return ScriptedTrigger(lake_root=f"file://{skylift_env}/lake", conn_id="unused", owner="churn",
                           dataset="customer_activity", ds=DS, owner_dags=["churn_nightly"], poke_interval=300,
                           timeout=timeout, steps=steps)


def test_the_trigger_fires_on_the_first_look_after_the_owner_publishes(skylift_env):
    trigger = trigger_for(skylift_env, [lambda: None, lambda: publish(owner(), "validated", DS, [1, 2])])
    assert events(trigger) == [{"status": "found", "reason": f"validated/customer_activity/ds={DS} published by "
                                                             f"pipeline 'churn' (run run-{DS}, 2 rows)"}]
    assert trigger.looks == [0, 300]  # the third look saw it: ready before the clock was read again


def test_the_trigger_times_out_with_the_reason_and_reports_a_foreign_writer_as_an_error(skylift_env):
    assert events(trigger_for(skylift_env, [], timeout=500)) == [{"status": "timeout", "reason": (
        f"validated/customer_activity/ds={DS} is not published yet by pipeline 'churn' (DAG churn_nightly)")}]
    publish(owner("billing"), "validated", DS, [1])
    (event,) = events(trigger_for(skylift_env, []))
    assert event["status"] == "error" and "was written by pipeline 'billing'" in event["message"]


def test_the_trigger_serializes_to_what_rebuilds_it(skylift_env):
    trigger = SharedPartitionTrigger(lake_root="s3://lake", conn_id="skylift_s3", owner="churn",
                                     dataset="customer_activity", ds=DS, owner_dags=("churn_nightly",), started=1.0)
    path, kwargs = trigger.serialize()
    assert path == "operators.triggers.SharedPartitionTrigger"
    assert SharedPartitionTrigger(**kwargs).serialize() == (path, kwargs)


def test_a_deferrable_sensor_defers_only_while_the_partition_is_missing(skylift_env):
    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    waiting = sensor(deferrable=True, timeout=600)
    assert waiting.mode == "poke"
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(context(waiting))
    assert deferred.value.trigger.serialize()[1]["ds"] == DS
    with pytest.raises(AirflowSensorTimeout, match=r"^gave up after 10 min: validated/customer_activity/ds="
                                                   rf"{DS} is not published yet .* run or fix churn_nightly for"):
        waiting.execute_complete(context(waiting), {"status": "timeout", "reason": (
            f"validated/customer_activity/ds={DS} is not published yet by pipeline 'churn'")})
    with pytest.raises(AirflowException, match="of pipeline 'churn' failed: LakeError: x"):
        waiting.execute_complete(context(waiting), {"status": "error", "message": "LakeError: x"})
    publish(owner(), "validated", DS, [1])
    assert waiting.execute(context(waiting)) is None  # there already: no deferral
