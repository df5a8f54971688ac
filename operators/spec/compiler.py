"""Compile a pipeline spec into Airflow DAGs.

The order of stages is fixed by a registry (each stage names the stages it follows) and checked
with `graphlib`; `create_task` is the one place that turns a stage into an operator. Stages
hand over through the lake (partitions) or, for train -> register -> deploy, through XCom.
"""

from __future__ import annotations

import functools
import graphlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import DAG, BaseOperator, Param, get_parsing_context

from operators.base import refuse_undeclared_conf
from operators.spec.assets import evaluations_asset, features_asset, predictions_asset  # noqa: F401 (their home)
from operators.spec.custom_stages import CustomStage, registered_stages
from operators.spec.defaults import folder_defaults
from operators.spec.loader import ASSET_SCHEDULE, load_spec
from operators.spec.models import STAGES, DagSpec, PipelineSpec, SourceBinding
from operators.spec.rollback_dag import build_rollback_dag, rollback_dag_id
from operators.spec.stages import BUILTIN, BuildRequest, hyper_parameter  # noqa: F401 (hyper_parameter: public)

DAG_START = datetime(2000, 1, 1, tzinfo=UTC)


def stage_order(stages: list[str], custom: dict[str, CustomStage] | None = None) -> list[str]:
    """Topological order of the chosen stages (fails loudly if the registry ever had a cycle)."""
    sorter = graphlib.TopologicalSorter({s: [p for p in upstream_of(s, stages, custom or {})] for s in stages})
    return list(sorter.static_order())


def upstream_of(stage: str, stages: list[str], custom: dict[str, CustomStage]) -> list[str]:
    """The stages of this DAG that `stage` runs after: its registry entry's, and custom stages
    placed before it."""
    follows = BUILTIN[stage].follows if stage in BUILTIN else custom[stage].after
    placed = [c for c in stages if c in custom and stage in custom[c].before]
    return [p for p in (*follows, *placed) if p in stages]


def dags_from_spec_file(spec_file: str | Path) -> dict[str, DAG]:
    """All DAGs of one spec, keyed by dag_id; on a worker only the DAG being run is built."""
    path = Path(spec_file)
    spec = load_spec(path)
    wanted = get_parsing_context().dag_id
    dags = {}
    for name, dag_spec in spec.dags.items():
        dag_id = f"{spec.pipeline}_{name}"
        if wanted and wanted != dag_id:
            continue
        dags[dag_id] = build_dag(spec, name, dag_spec, path)
    rollback_id = rollback_dag_id(spec)
    if rollback_id and (not wanted or wanted == rollback_id):
        dags[rollback_id] = build_rollback_dag(spec, path)
    return dags


def build_dag(spec: PipelineSpec, name: str, dag_spec: DagSpec, source: Path) -> DAG:
    custom = custom_stages_of(spec, source)
    stages = stage_order(spec.dag_stages(dag_spec), custom)
    dag = DAG(
        dag_id=f"{spec.pipeline}_{name}",
        description=dag_spec.description or f"{spec.description} ({name}: {', '.join(stages)})",
        schedule=_schedule(spec, dag_spec),
        # Earlier than any spec's: Airflow creates no task before a DAG's start_date, so a run the UI
        # triggers for an earlier date would run nothing and succeed. With catchup off nothing is
        # backfilled; each task refuses a date before the spec's start_date (`pipeline_start`).
        start_date=DAG_START,
        catchup=False,
        max_active_runs=dag_spec.max_active_runs,
        tags=sorted({"skylift", spec.pipeline, name, *spec.tags}),
        params=build_params(spec, dag_spec, stages),
        # Every task first refuses a conf key that is not one of this DAG's params (see refuse_undeclared_conf).
        default_args={"owner": spec.owner, "retries": spec.retries, "retry_delay": timedelta(seconds=30),
                      "pre_execute": refuse_undeclared_conf, "pipeline_start": spec.start_date.isoformat()},
        doc_md=_doc(spec, name, stages, source),
        render_template_as_native_obj=True,
    )
    with dag:
        _add_tasks(spec, dag_spec, stages, custom, shared_waits(spec, stages, source))
    return dag


def shared_waits(spec: PipelineSpec, stages: list[str], source: Path) -> dict[str, BaseOperator]:
    """A sensor per `reads:` entry with a `wait:`, in a DAG that builds features: it waits for the
    owning pipeline's partition of the day (the owner and its DAGs come from the ownership index)."""
    if "features" not in stages or not spec.reads:
        return {}
    from include.shared_partitions import SharedPartition
    from operators.spec.ownership import shared_reads
    from operators.spec.stages import build_shared_wait

    owners = shared_reads(source)
    waits = {}
    for name, read in spec.reads.items():
        if read.wait is None:
            continue
        owner = owners.get(name)
        shared = SharedPartition(owner=read.from_pipeline, dataset=read.dataset,
                                 owner_dags=tuple(owner.owner.dag_ids) if owner else (),
                                 owner_spec=owner.owner.where if owner else None)
        waits[name] = build_shared_wait(spec, name, shared)
    return waits


def _add_tasks(spec: PipelineSpec, dag_spec: DagSpec, stages: list[str], custom: dict[str, CustomStage],
               waits: dict[str, BaseOperator] | None = None) -> None:
    """Each stage's task(s), wired after the stages it follows and the sources it waits for."""
    tasks: dict[str, BaseOperator] = {}
    # source name -> its last task (validate, else ingest); a shared dataset's -> its sensor
    landed: dict[str, BaseOperator] = dict(waits or {})
    for stage in stages:
        if stage in custom:
            tasks[stage] = create_custom_task(spec, custom[stage])
        elif BUILTIN[stage].per_source:
            _add_source_tasks(spec, stage, landed)
            continue
        else:
            # A DAG run only by hand always trains: someone asked for a new model.
            tasks[stage] = create_task(spec, stage, stages, dag_spec, reuse_training=dag_spec.schedule is not None)
        upstream = upstream_of(stage, stages, custom)
        for before in upstream:
            if before in tasks:
                tasks[before] >> tasks[stage]
        for source_name in _sources_awaited(spec, stage, upstream):
            if source_name in landed:
                landed[source_name] >> tasks[stage]


def _sources_awaited(spec: PipelineSpec, stage: str, upstream: list[str]) -> list[str]:
    """The sources whose day must have landed first: a built-in stage's own list; a custom stage
    placed after ingest or validate waits for every source."""
    if stage in BUILTIN:
        return BUILTIN[stage].waits_for_sources(spec)
    if any(before in BUILTIN and BUILTIN[before].per_source for before in upstream):
        return [b.name for b in spec.source_bindings]
    return []


def _add_source_tasks(spec: PipelineSpec, stage: str, landed: dict[str, BaseOperator]) -> None:
    for binding in spec.source_bindings:
        if stage == "validate" and binding.validate is None:
            continue
        task = create_source_task(spec, stage, binding)
        if binding.name in landed:
            landed[binding.name] >> task
        landed[binding.name] = task


def _schedule(spec: PipelineSpec, dag_spec: DagSpec) -> Any:
    if dag_spec.schedule == ASSET_SCHEDULE:
        return [features_asset(spec)]
    return dag_spec.schedule


def build_params(spec: PipelineSpec, dag_spec: DagSpec, stages: list[str]) -> dict[str, Param]:
    params = {
        "ds": Param(None, type=["null", "string"], format="date", title="Partition date",
                    description="The day to process (YYYY-MM-DD). Empty: the run's logical date."),
        "rebuild": Param(False, type="boolean", title="Rebuild",
                         description="Rewrite outputs even when their inputs have not changed since they were built."),
    }
    request = BuildRequest(spec=spec, dag_spec=dag_spec, stages=tuple(stages))
    for stage in stages:
        if stage in BUILTIN:
            params.update(BUILTIN[stage].trigger_form(request))
    return params


def create_task(spec: PipelineSpec, stage: str, stages: list[str], dag_spec: DagSpec,
                reuse_training: bool = True) -> BaseOperator:
    """A built-in stage's operator, as its registry entry builds it."""
    definition = BUILTIN.get(stage)
    if definition is None:
        raise ValueError(f"unknown stage {stage!r}; stages are {list(STAGES)}")
    if definition.per_source:
        raise ValueError(f"stage {stage!r} runs once per source: use create_source_task")
    request = BuildRequest(spec=spec, dag_spec=dag_spec, stages=tuple(stages), reuse_training=reuse_training)
    return definition.build(request)


def create_source_task(spec: PipelineSpec, stage: str, binding: SourceBinding) -> BaseOperator:
    """Ingest or validate one source into raw/<dataset> or validated/<dataset>."""
    request = BuildRequest(spec=spec, dag_spec=DagSpec(stages=[stage]), stages=(stage,))
    return BUILTIN[stage].build(request, binding)


def custom_stages_of(spec: PipelineSpec, source: Path) -> dict[str, CustomStage]:
    """The custom stages the spec's DAGs name (registered for the spec's folder)."""
    named = {s for dag in spec.dags.values() for s in spec.dag_stages(dag) if s not in BUILTIN}
    if not named:
        return {}
    registry = registered_stages(folder_defaults(source.parent).stage_modules)
    return {name: registry[name] for name in named}


def create_custom_task(spec: PipelineSpec, stage: CustomStage) -> BaseOperator:
    """A custom stage: its own operator class, or its function wrapped like a built-in stage."""
    usage = spec.custom[stage.name]
    arguments = {"task_id": stage.name, "pipeline": spec.pipeline, "inputs": usage.inputs, "zone": stage.zone,
                 "dataset": spec.custom_dataset(stage.name), "config": usage.config}
    if stage.operator is not None:
        return stage.operator(**arguments)
    from operators.custom import CustomStageOperator

    return CustomStageOperator(stage_module=stage.module, stage_name=stage.name, **arguments)


# libyaml's emitter where PyYAML has it: the pure-Python one took half of a DagBag parse.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.lru_cache(maxsize=64)
def spec_yaml(body_json: str) -> str:
    """A spec (or part of one), dumped by pydantic as JSON, as the YAML a DAG's doc shows. Cached by
    that text: every DAG of a spec shows the same body, and PyYAML's representer is pure Python."""
    return yaml.dump(json.loads(body_json), Dumper=_DUMPER, sort_keys=False, allow_unicode=True).rstrip()


def _doc(spec: PipelineSpec, name: str, stages: list[str], source: Path) -> str:
    return "\n".join([
        f"# {spec.pipeline} · {name}",
        spec.description,
        "",
        f"**Stages:** {' → '.join(stages)}  ",
        f"**Spec:** `{source.name}` (compiled by Skylift; edit the YAML, not this DAG)",
        "",
        "```yaml",
        spec_yaml(spec.model_dump_json(by_alias=True, exclude_none=True)),
        "```",
    ])
