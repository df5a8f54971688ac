"""Compile a pipeline spec into Airflow DAGs.

The order of stages is fixed by a registry (each stage names the stages it follows) and checked
with `graphlib`; `create_task` is the one place that turns a stage into an operator. Stages
hand over through the lake (partitions) or, for train -> register -> deploy, through XCom.
"""

from __future__ import annotations

import graphlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import DAG, Asset, BaseOperator, Param, get_parsing_context

from include.training import params as model_params
from operators.base import refuse_undeclared_conf
from operators.spec.loader import ASSET_SCHEDULE, load_spec
from operators.spec.models import STAGES, DagSpec, PipelineSpec, SourceBinding

# stage -> the stages it runs after (when both are in the same DAG)
FOLLOWS: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "validate": ("ingest",),
    "features": ("validate",),
    "train": ("features",),
    "register": ("train",),
    "deploy": ("register",),
    "score": ("deploy", "features"),
    "evaluate": ("score",),
}
# Stages that run once per source (tasks `<stage>_<source>`, or `<stage>` for the one-source shorthand).
PER_SOURCE = ("ingest", "validate")


def evaluations_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.evaluations.{spec.evaluations_dataset}",
                 uri=f"skylift://lake/evaluations/{spec.evaluations_dataset}")


def stage_order(stages: list[str]) -> list[str]:
    """Topological order of the chosen stages (fails loudly if the registry ever had a cycle)."""
    sorter = graphlib.TopologicalSorter({s: [p for p in FOLLOWS[s] if p in stages] for s in stages})
    return list(sorter.static_order())


def features_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.features.{spec.features_dataset}", uri=f"skylift://lake/features/{spec.features_dataset}")


def predictions_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.predictions.{spec.predictions_dataset}",
                 uri=f"skylift://lake/predictions/{spec.predictions_dataset}")


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
    return dags


def build_dag(spec: PipelineSpec, name: str, dag_spec: DagSpec, source: Path) -> DAG:
    stages = stage_order(spec.dag_stages(dag_spec))
    dag = DAG(
        dag_id=f"{spec.pipeline}_{name}",
        description=dag_spec.description or f"{spec.description} ({name}: {', '.join(stages)})",
        schedule=_schedule(spec, dag_spec),
        start_date=datetime.combine(spec.start_date, datetime.min.time(), tzinfo=UTC),
        catchup=False,
        max_active_runs=dag_spec.max_active_runs,
        tags=sorted({"skylift", spec.pipeline, name, *spec.tags}),
        params=build_params(spec, dag_spec, stages),
        # Every task first refuses a conf key that is not one of this DAG's params (see refuse_undeclared_conf).
        default_args={"owner": spec.owner, "retries": spec.retries, "retry_delay": timedelta(seconds=30),
                      "pre_execute": refuse_undeclared_conf},
        doc_md=_doc(spec, name, stages, source),
        render_template_as_native_obj=True,
    )
    with dag:
        tasks: dict[str, BaseOperator] = {}
        landed: dict[str, BaseOperator] = {}  # source name -> its last task (validate, else ingest)
        for stage in stages:
            if stage in PER_SOURCE:
                for binding in spec.source_bindings:
                    if stage == "validate" and binding.validate is None:
                        continue
                    task = create_source_task(spec, stage, binding)
                    if binding.name in landed:
                        landed[binding.name] >> task
                    landed[binding.name] = task
                continue
            # A DAG run only by hand always trains: someone asked for a new model.
            tasks[stage] = create_task(spec, stage, stages, reuse_training=dag_spec.schedule is not None,
                                       tunable=tuple(dag_spec.params))
            for before in FOLLOWS[stage]:
                if before in tasks:
                    tasks[before] >> tasks[stage]
            for source_name in _sources_read_by(spec, stage):
                if source_name in landed:
                    landed[source_name] >> tasks[stage]
    return dag


def _sources_read_by(spec: PipelineSpec, stage: str) -> list[str]:
    """The sources whose day must have landed before `stage` runs: features read the feature
    sources; training and evaluation read the label source."""
    if stage == "features":
        return [b.name for b in spec.feature_sources]
    if stage in ("train", "evaluate") and spec.labels is not None:
        return [spec.labels.source]
    return []


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
    if "train" in stages and spec.train:
        params["train_start"] = Param(None, type=["null", "string"], format="date", title="Train from",
                                      description="First features partition to train on. Empty: the spec's window.")
        params["train_end"] = Param(None, type=["null", "string"], format="date", title="Train until",
                                    description="Last features partition to train on. Empty: the partition date.")
        params["gpu"] = Param(spec.train.resources.gpu, type="integer", minimum=0, maximum=16, title="GPUs",
                              description="GPUs for the training pod (0: CPU).")
        for key, param in dag_spec.params.items():
            params[key] = hyper_parameter(spec, key, param)
    if "deploy" in stages:
        params["force_deploy"] = Param(False, type="boolean", title="Force deploy",
                                       description="Promote the new model even if it does not pass the gate.")
    return params


def hyper_parameter(spec: PipelineSpec, key: str, param: Any) -> Param:
    """A trigger-form field for one model parameter: the spec's schema, with the model's own bounds
    wherever the spec gives none, so the form refuses what the trainer would refuse."""
    declared = {k: v for k, v in param.model_dump(exclude={"default"}).items() if v is not None}
    model_bounds = model_params.trigger_schema(spec.train.framework, key)
    bounds = {k: v for k, v in model_bounds.items() if k not in ("type", "items", "maxItems")}
    if "minimum" in declared:
        bounds.pop("exclusiveMinimum", None)
    if "maximum" in declared:
        bounds.pop("exclusiveMaximum", None)
    default = param.default if param.default is not None else spec.train.params.get(key)
    return Param(default, **{**bounds, **declared})


def create_task(spec: PipelineSpec, stage: str, stages: list[str], reuse_training: bool = True,
                tunable: tuple[str, ...] = ()) -> BaseOperator:
    """The one place that maps a stage of the spec to its operator."""
    common = {"task_id": stage, "pipeline": spec.pipeline}
    if stage in PER_SOURCE:
        raise ValueError(f"stage {stage!r} runs once per source: use create_source_task")
    if stage == "features":
        from operators.features import FeaturesOperator

        # The shorthand's job takes its one source positionally; with `sources:` each is a keyword.
        named = {b.name: b.dataset for b in spec.feature_sources} if spec.sources is not None else None
        return FeaturesOperator(job=spec.features.job, source_dataset=None if named else spec.raw_dataset,
                                sources=named,
                                dataset=spec.features_dataset, lookback_days=spec.features.lookback_days,
                                outlets=[features_asset(spec)], **common)
    if stage == "train":
        return _train(spec, common, reuse_training, tunable)
    if stage == "register":
        from operators.register import RegisterModelOperator

        return RegisterModelOperator(model_name=spec.register_.model_name, train_task_id="train",
                                     features_dataset=spec.features_dataset, **common)
    if stage == "deploy":
        return _deploy(spec, common)
    if stage == "score":
        from operators.score import BatchScoreOperator

        extra: dict[str, Any] = {}
        if spec.labels is not None and "deploy" in stages:
            # Nights before enough outcomes have landed train nothing; the day is still scored with
            # the champion there is, and skipped (not failed) while there is none yet. At least one
            # upstream must have succeeded: a day whose validation was skipped has no features to score.
            extra = {"trigger_rule": "none_failed_min_one_success", "skip_without_champion": True}
        return BatchScoreOperator(model_name=spec.register_.model_name, features_dataset=spec.features_dataset,
                                  dataset=spec.predictions_dataset, key=spec.train.key, engine=spec.score.engine,
                                  outlets=[predictions_asset(spec)], **extra, **common)
    if stage == "evaluate":
        from operators.evaluate import EvaluateOperator

        labels = spec.labels
        return EvaluateOperator(model_name=spec.register_.model_name, predictions_dataset=spec.predictions_dataset,
                                labels_dataset=spec.label_source.dataset, dataset=spec.evaluations_dataset,
                                label_column=labels.column, key=labels.key, as_of=labels.as_of,
                                delay_days=labels.delay_days, task=spec.train.task,
                                trigger_rule="none_failed", outlets=[evaluations_asset(spec)], **common)
    raise ValueError(f"unknown stage {stage!r}; stages are {list(STAGES)}")


def create_source_task(spec: PipelineSpec, stage: str, binding: SourceBinding) -> BaseOperator:
    """Ingest or validate one source into raw/<dataset> or validated/<dataset>."""
    common = {"task_id": binding.task_id(stage), "pipeline": spec.pipeline}
    if stage == "ingest":
        return _ingest(binding, common)
    from operators.validate import ValidateOperator

    v = binding.validate
    return ValidateOperator(suite_file=v.suite, dataset=binding.dataset, on_failure=v.on_failure,
                            max_quarantine_share=v.max_quarantine_share, on_empty=v.on_empty, **common)


def _ingest(binding: SourceBinding, common: dict[str, Any]) -> BaseOperator:
    from operators.ingest import IngestOperator

    source = binding.spec
    task = IngestOperator(source_uri=source.uri, source_format=source.format, schema_file=source.schema_,
                          dataset=binding.dataset, completion=source.completion,
                          # Under `quarantine`, rows with cells that break the contract are set aside too.
                          on_row_error="quarantine" if binding.validate and binding.validate.on_failure == "quarantine"
                          else "fail", **common)
    if source.wait:
        from operators.sensors import DropSensor

        sensor = DropSensor(task_id=binding.task_id("wait_for_drop"), source_uri=source.uri,
                            source_format=source.format,
                            poke_interval=source.wait.poke_seconds, timeout=source.wait.timeout_minutes * 60,
                            deferrable=True, pipeline=common["pipeline"], completion=source.completion)
        sensor >> task
    return task


def _train(spec: PipelineSpec, common: dict[str, Any], reuse: bool, tunable: tuple[str, ...]) -> BaseOperator:
    from operators.train import TrainModelOperator

    t, k8s = spec.train, spec.train.kubernetes
    return TrainModelOperator(
        dataset=spec.features_dataset, framework=t.framework, task=t.task, target=t.target, key=t.key,
        # not `params=`: Airflow merges the DAG's trigger-form Params into an argument of that name
        exclude=t.exclude, model_params=t.params, tunable=sorted(tunable),
        window_days=t.window_days, holdout_fraction=t.holdout_fraction, execution=t.execution,
        gpu=t.resources.gpu, cpu=t.resources.cpu, memory=t.resources.memory, namespace=k8s.namespace,
        node_selector=k8s.node_selector, tolerations=k8s.tolerations, env_from_secret=k8s.env_from_secret,
        service_account=k8s.service_account, image=k8s.image, reuse_unchanged=reuse,
        **_label_arguments(spec), **common,
    )


def _deploy(spec: PipelineSpec, common: dict[str, Any]) -> BaseOperator:
    from operators.deploy import DeployModelOperator

    gate = spec.deploy.gate
    return DeployModelOperator(
        model_name=spec.register_.model_name, register_task_id="register", features_dataset=spec.features_dataset,
        key=spec.train.key, target=spec.train.target, task=spec.train.task,
        gate=gate.model_dump(),
        holdout_fraction=spec.train.holdout_fraction, smoke_rows=spec.deploy.smoke_rows,
        window_days=spec.train.window_days, **_label_arguments(spec), **common,
    )


def _label_arguments(spec: PipelineSpec) -> dict[str, Any]:
    """Where train and the gate read outcomes from, with `labels:`; nothing for the shorthand (the
    label is a feature column and the holdout a key hash)."""
    if spec.labels is None:
        return {}
    from include.labels import LabelPlan

    labels = spec.labels
    plan = LabelPlan(column=labels.column, key=tuple(labels.key), as_of=labels.as_of, delay_days=labels.delay_days)
    return {"label_plan": plan, "labels_dataset": spec.label_source.dataset, "holdout_days": spec.train.holdout_days}


def _doc(spec: PipelineSpec, name: str, stages: list[str], source: Path) -> str:
    body = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return "\n".join([
        f"# {spec.pipeline} · {name}",
        spec.description,
        "",
        f"**Stages:** {' → '.join(stages)}  ",
        f"**Spec:** `{source.name}` (compiled by Skylift; edit the YAML, not this DAG)",
        "",
        "```yaml",
        yaml.safe_dump(body, sort_keys=False).rstrip(),
        "```",
    ])
