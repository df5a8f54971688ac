"""The stage registry: one definition per stage, from which the loader's checks and the compiler's
wiring both derive.

A `Stage` names its spec section, the stages it runs after, the sections it reads besides its own,
the stage it takes over from through XCom, the trigger-form parameters it adds and how its
operator is built. Nothing here imports Airflow at module level (the loader uses the registry);
builders import their operators when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Param

    from include.shared_partitions import SharedPartition
    from operators.spec.models import DagSpec, PipelineSpec, SourceBinding

# Trigger-form parameters every DAG gets, whatever its stages.
COMMON_PARAMS = ("ds", "rebuild")


@dataclass(frozen=True)
class BuildRequest:
    """What a builder needs besides the stage: the spec, the DAG's stages and its trigger form."""

    spec: PipelineSpec
    dag_spec: DagSpec
    stages: tuple[str, ...]
    # A DAG run only by hand always trains: someone asked for a new model.
    reuse_training: bool = True

    @property
    def tunable(self) -> tuple[str, ...]:
        return tuple(self.dag_spec.params)

    @property
    def searches(self) -> bool:
        """An on-demand DAG of a spec with `train.search`: its form offers the search (operators/search.py)."""
        train = self.spec.train
        return train is not None and train.search is not None and self.dag_spec.schedule is None


@dataclass(frozen=True)
class Stage:
    name: str
    section: str  # the top-level spec key that configures it (as written in YAML)
    follows: tuple[str, ...] = ()  # stages it runs after when both are in the DAG
    needs_sections: tuple[str, ...] = ()  # other top-level sections it reads
    needs_in_dag: str | None = None  # the stage whose XCom result it takes over
    params: tuple[str, ...] = ()  # trigger-form parameters it adds (reserved: a spec cannot redefine them)
    per_source: bool = False  # one task per source: `<stage>_<source>` (or `<stage>` for the shorthand)
    waits_for_sources: Callable[[PipelineSpec], list[str]] = field(default=lambda spec: [])
    build: Callable[..., BaseOperator] | None = None
    trigger_form: Callable[[BuildRequest], dict[str, Param]] = field(default=lambda request: {})

    def task_ids(self, spec: PipelineSpec) -> list[str]:
        if not self.per_source:
            return [self.name]
        return [b.task_id(self.name) for b in spec.source_bindings
                if self.name != "validate" or b.validate is not None]


# ---- builders (operators imported when a DAG is built, never when a spec is only checked) ----

def _build_ingest(request: BuildRequest, binding: SourceBinding) -> BaseOperator:
    from operators.ingest import IngestOperator

    source = binding.spec
    common = {"task_id": binding.task_id("ingest"), "pipeline": request.spec.pipeline}
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


def build_shared_wait(spec: PipelineSpec, name: str, shared: SharedPartition) -> BaseOperator:
    """The sensor for `reads.<name>`: wait for the owner's validated partition of the day."""
    from operators.sensors import SharedPartitionSensor

    wait = spec.reads[name].wait
    return SharedPartitionSensor(task_id=f"wait_for_{name}", shared=shared, pipeline=spec.pipeline,
                                 poke_interval=wait.poke_seconds, timeout=wait.timeout_minutes * 60,
                                 deferrable=wait.deferrable)


def _build_validate(request: BuildRequest, binding: SourceBinding) -> BaseOperator:
    from operators.validate import ValidateOperator

    v = binding.validate
    return ValidateOperator(suite_file=v.suite, dataset=binding.dataset, on_failure=v.on_failure,
                            max_quarantine_share=v.max_quarantine_share, on_empty=v.on_empty,
                            task_id=binding.task_id("validate"), pipeline=request.spec.pipeline)


def _build_features(request: BuildRequest) -> BaseOperator:
    from operators.features import FeaturesOperator
    from operators.spec.assets import features_asset

    spec = request.spec
    # The shorthand's job takes its one source positionally; with `sources:` each is a keyword,
    # and so is each dataset shared by another pipeline (`reads:`, read-only, checked against its owner).
    named = spec.feature_inputs if spec.sources is not None else None
    shared = {name: read.from_pipeline for name, read in spec.reads.items()} or None
    return FeaturesOperator(job=spec.features.job, source_dataset=None if named else spec.raw_dataset,
                            sources=named, shared=shared, dataset=spec.features_dataset,
                            lookback_days=spec.features.lookback_days, engine=spec.features.engine,
                            duckdb_max_rows=spec.features.duckdb_max_rows, outlets=[features_asset(spec)],
                            task_id="features", pipeline=spec.pipeline)


def _build_train(request: BuildRequest) -> BaseOperator:
    from operators.train import TrainModelOperator, pod_arguments

    spec = request.spec
    t, k8s = spec.train, spec.train.kubernetes
    arguments = dict(
        dataset=spec.features_dataset, framework=t.framework, task=t.task, target=t.target, key=t.key,
        # not `params=`: Airflow merges the DAG's trigger-form Params into an argument of that name
        exclude=t.exclude, model_params=t.params, tunable=sorted(request.tunable),
        window_days=t.window_days, holdout_fraction=t.holdout_fraction, execution=t.execution,
        **pod_arguments(t.resources, k8s), reuse_unchanged=request.reuse_training,
        **label_arguments(spec), task_id="train", pipeline=spec.pipeline,
    )
    if request.searches:  # search_plan -> train_trial (mapped) -> train, as one group
        from operators.search import build_search

        return build_search(spec, arguments)
    return TrainModelOperator(**arguments)


def _build_register(request: BuildRequest) -> BaseOperator:
    from operators.register import RegisterModelOperator

    spec = request.spec
    return RegisterModelOperator(model_name=spec.register_.model_name, train_task_id="train",
                                 features_dataset=spec.features_dataset, task_id="register", pipeline=spec.pipeline)


def _build_deploy(request: BuildRequest) -> BaseOperator:
    from operators.deploy import DeployModelOperator

    spec = request.spec
    operator: Callable[..., Any] = DeployModelOperator
    if spec.approval is not None:  # gate -> approve -> deploy, as one group (operators/approval.py)
        from operators.approval import promotion_group

        operator = promotion_group(spec)
    return operator(
        model_name=spec.register_.model_name, register_task_id="register", features_dataset=spec.features_dataset,
        key=spec.train.key, target=spec.train.target, task=spec.train.task, gate=spec.deploy.gate.model_dump(),
        holdout_fraction=spec.train.holdout_fraction, smoke_rows=spec.deploy.smoke_rows,
        window_days=spec.train.window_days, **label_arguments(spec), task_id="deploy", pipeline=spec.pipeline,
        serving=spec.deploy,
    )


def _build_score(request: BuildRequest) -> BaseOperator:
    from operators.score import BatchScoreOperator
    from operators.spec.assets import predictions_asset

    spec = request.spec
    extra: dict[str, Any] = {}
    if (spec.labels is not None or spec.approval is not None) and "deploy" in request.stages:
        # Nights before enough outcomes have landed train nothing, and a promotion a person rejected
        # skips `deploy`; the day is still scored with the champion there is, and skipped (not failed)
        # while there is none yet. At least one upstream must have succeeded: a day whose validation
        # was skipped has no features to score.
        extra = {"trigger_rule": "none_failed_min_one_success", "skip_without_champion": True}
    return BatchScoreOperator(model_name=spec.register_.model_name, features_dataset=spec.features_dataset,
                              dataset=spec.predictions_dataset, key=spec.train.key, engine=spec.score.engine,
                              outlets=[predictions_asset(spec)], **extra, task_id="score", pipeline=spec.pipeline)


def _build_monitor(request: BuildRequest) -> BaseOperator:
    """The drift check after scoring, and (with `retrain: true`) the task that triggers the retrain DAG."""
    from operators.monitor import DriftMonitorOperator, RetrainOnDriftOperator

    spec = request.spec
    drift = spec.monitor.drift
    retrain_dag_id = f"{spec.pipeline}_{drift.retrain_dag}" if drift.retrain else None
    monitor = DriftMonitorOperator(
        model_name=spec.register_.model_name, features_dataset=spec.features_dataset,
        predictions_dataset=spec.predictions_dataset, drift=drift.model_dump(), retrain_dag_id=retrain_dag_id,
        task_id="monitor", pipeline=spec.pipeline)
    if retrain_dag_id:
        monitor >> RetrainOnDriftOperator(task_id="retrain_on_drift", monitor_task_id="monitor",
                                          retrain_dag_id=retrain_dag_id)
    return monitor


def _build_evaluate(request: BuildRequest) -> BaseOperator:
    from operators.evaluate import EvaluateOperator
    from operators.spec.assets import evaluations_asset

    spec = request.spec
    labels = spec.labels
    return EvaluateOperator(model_name=spec.register_.model_name, predictions_dataset=spec.predictions_dataset,
                            labels_dataset=spec.label_source.dataset, dataset=spec.evaluations_dataset,
                            label_column=labels.column, key=labels.key, as_of=labels.as_of,
                            delay_days=labels.delay_days, task=spec.train.task, trigger_rule="none_failed",
                            outlets=[evaluations_asset(spec)], task_id="evaluate", pipeline=spec.pipeline)


def label_arguments(spec: PipelineSpec) -> dict[str, Any]:
    """Where train and the gate read outcomes from, with `labels:`; nothing for the shorthand (the
    label is a feature column and the holdout a key hash)."""
    if spec.labels is None:
        return {}
    from include.labels import LabelPlan

    labels = spec.labels
    plan = LabelPlan(column=labels.column, key=tuple(labels.key), as_of=labels.as_of, delay_days=labels.delay_days)
    return {"label_plan": plan, "labels_dataset": spec.label_source.dataset, "holdout_days": spec.train.holdout_days}


# ---- trigger-form parameters ----

def _train_form(request: BuildRequest) -> dict[str, Param]:
    from airflow.sdk import Param

    spec = request.spec
    if spec.train is None:
        return {}
    params = {
        "train_start": Param(None, type=["null", "string"], format="date", title="Train from",
                             description="First features partition to train on. Empty: the spec's window."),
        "train_end": Param(None, type=["null", "string"], format="date", title="Train until",
                           description="Last features partition to train on. Empty: the partition date."),
        "gpu": Param(spec.train.resources.gpu, type="integer", minimum=0, maximum=16, title="GPUs",
                     description="GPUs for the training pod (0: CPU)."),
    }
    for key, param in request.dag_spec.params.items():
        params[key] = hyper_parameter(spec, key, param)
    if request.searches:
        search = spec.train.search
        params["search"] = Param(search.enabled, type="boolean", title="Hyper-parameter search",
                                 description=f"Run {search.parallelism} trials at a time over train.search's ranges "
                                             f"and register the best by {search.metric}. Off: train once.")
        params["search_trials"] = Param(search.trials, type="integer", minimum=1, maximum=1000, title="Trials",
                                        description="How many trials the search runs.")
    return params


def hyper_parameter(spec: PipelineSpec, key: str, param: Any) -> Param:
    """A trigger-form field for one model parameter: the spec's schema, with the model's own bounds
    wherever the spec gives none, so the form refuses what the trainer would refuse."""
    from airflow.sdk import Param

    from include.training import params as model_params

    declared = {k: v for k, v in param.model_dump(exclude={"default"}).items() if v is not None}
    model_bounds = model_params.trigger_schema(spec.train.framework, key)
    bounds = {k: v for k, v in model_bounds.items() if k not in ("type", "items", "maxItems")}
    if "minimum" in declared:
        bounds.pop("exclusiveMinimum", None)
    if "maximum" in declared:
        bounds.pop("exclusiveMaximum", None)
    default = param.default if param.default is not None else spec.train.params.get(key)
    return Param(default, **{**bounds, **declared})


def _deploy_form(request: BuildRequest) -> dict[str, Param]:
    from airflow.sdk import Param

    return {"force_deploy": Param(False, type="boolean", title="Force deploy",
                                  description="Promote the new model even if it does not pass the gate.")}


def _feature_sources(spec: PipelineSpec) -> list[str]:
    return list(spec.feature_inputs)  # own feature sources, then shared ones (`reads:`)


def _label_source(spec: PipelineSpec) -> list[str]:
    return [spec.labels.source] if spec.labels is not None else []


BUILTIN: dict[str, Stage] = {s.name: s for s in (
    Stage("ingest", "source", per_source=True, build=_build_ingest),
    Stage("validate", "validate", follows=("ingest",), per_source=True, build=_build_validate),
    Stage("features", "features", follows=("validate",), needs_sections=("source",),
          waits_for_sources=_feature_sources, build=_build_features),
    Stage("train", "train", follows=("features",), needs_sections=("features",),
          params=("train_start", "train_end", "gpu", "search", "search_trials"), waits_for_sources=_label_source,
          build=_build_train, trigger_form=_train_form),
    Stage("register", "register", follows=("train",), needs_sections=("train", "features"), needs_in_dag="train",
          build=_build_register),
    Stage("deploy", "deploy", follows=("register",), needs_sections=("train", "register", "features"),
          needs_in_dag="register", params=("force_deploy",), build=_build_deploy, trigger_form=_deploy_form),
    Stage("score", "score", follows=("deploy", "features"), needs_sections=("train", "register", "features"),
          build=_build_score),
    Stage("monitor", "monitor", follows=("score",), needs_sections=("register", "features"), needs_in_dag="score",
          build=_build_monitor),
    Stage("evaluate", "labels", follows=("score",), needs_sections=("labels", "train", "register"),
          waits_for_sources=_label_source, build=_build_evaluate),
)}

# Trigger-form parameters the compiler may add to a DAG; a spec's `dags.<name>.params` cannot redefine them.
RESERVED_PARAMS = frozenset(COMMON_PARAMS).union(*(s.params for s in BUILTIN.values()))


def builtin(name: str) -> Stage:
    return BUILTIN[name]
