"""The typed pipeline spec: one model per stage, validated when the YAML is loaded.

Everything here is pure: no Airflow, no I/O beyond checking that referenced files exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from include.feature_engine import DEFAULT_DUCKDB_MAX_ROWS, EngineSetting
from include.training.search import ParamRange

STAGES = ("ingest", "validate", "features", "train", "register", "deploy", "score", "monitor", "evaluate")
NAME = r"^[a-z][a-z0-9_]{0,62}$"
Name = Annotated[str, Field(pattern=NAME)]
# Feature jobs are Python callables; they may only come from these packages (no arbitrary imports).
JOB_PATH = re.compile(r"^(?P<module>[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*):(?P<func>[a-z_][a-z0-9_]*)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaitSpec(Strict):
    timeout_minutes: int = Field(60, ge=1, le=24 * 60, description="how long the sensor waits for the day's drop")
    poke_seconds: int = Field(60, ge=5, le=3600, description="how often it looks")


FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]  # a file in the drop folder


class CompletionSpec(Strict):
    """When a day's drop counts as whole. Both the drop sensor and ingest hold a drop to these
    rules, so a DAG without the sensor (a re-run, a retrain) never ingests half a drop either.
    The defaults check nothing, as before.
    """

    marker: FileName | None = Field(None, description=(
        "a file the uploader writes after the last data file, e.g. `_SUCCESS` (its content is ignored); "
        "the drop is complete only once it exists"))
    manifest: FileName | None = Field(None, description=(
        "a JSON file the uploader writes last, listing the drop's files: "
        '{"files": [{"name": "activity.csv", "size": 123, "sha256": "<optional>"}]}; '
        "the drop must hold exactly those files, with those sizes (and checksums)"))
    expected_files: int | None = Field(None, ge=1, le=100_000, description=(
        "how many data files a whole drop holds (a two-file drop with one file landed is refused)"))
    settle_seconds: int = Field(0, ge=0, le=24 * 3600, description=(
        "the drop's file names and sizes must stay unchanged this long before it is read "
        "(the sensor watches it; ingest checks the files' modification times)"))
    date_column: str | None = Field(None, min_length=1, description=(
        "a column whose every value must equal the partition date (catches yesterday's file in today's folder)"))

    @field_validator("marker", "manifest")
    @classmethod
    def _a_file(cls, name: str | None) -> str | None:
        if name in (".", ".."):
            raise ValueError("must name a file in the drop folder")
        return name

    @model_validator(mode="after")
    def _one_marker(self) -> CompletionSpec:
        if self.marker and self.manifest:
            raise ValueError("set either marker or manifest, not both (a manifest is itself the marker)")
        return self


class SourceSpec(Strict):
    uri: str = Field(description="drop location; `{ds}` is the partition date; relative to the drops root")
    format: Literal["csv", "jsonl", "parquet"] = Field("csv", description="file format of the drop")
    schema_: str = Field(alias="schema", description="path of the schema contract (YAML)")
    dataset: Name | None = Field(None, description=(
        "lake dataset the source is written to (default: the entry's name, or the pipeline's for `source:`)"))
    wait: WaitSpec | None = Field(None, description="wait for the drop with a sensor before ingesting it")
    completion: CompletionSpec = Field(default_factory=CompletionSpec, description=(
        "when the drop counts as whole: marker or manifest, file count, settle time, date column"))

    @field_validator("uri")
    @classmethod
    def _uri_has_date(cls, uri: str) -> str:
        if "{ds}" not in uri and "{ds_nodash}" not in uri:
            raise ValueError("must contain {ds} (or {ds_nodash}) so each run reads its own day's drop")
        if ".." in uri.split("/"):
            raise ValueError("must not contain '..' path segments")
        if "://" in uri or uri.startswith(("/", "~")):
            raise ValueError("must be relative to the drops root (the skylift_drops_root setting), so the same "
                             "spec runs on local files and on S3")
        return uri


class ValidateSpec(Strict):
    suite: str = Field(description="path of the expectation suite (YAML)")
    on_failure: Literal["fail", "warn", "quarantine"] = Field("fail", description=(
        "a failed expectation fails the run, warns, or sets its rows aside (an expectation may override it)"))
    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0, description=(
        "more rows set aside than this share fails the run"))
    on_empty: Literal["fail", "skip"] = Field(
        "fail", description="a date with no row left to validate: fail, or skip it and everything downstream")


class NamedSourceSpec(SourceSpec):
    """One entry of `sources:`: a drop with its own contract and its own validation policy."""

    validate_: ValidateSpec | None = Field(None, alias="validate")


class LabelsSpec(Strict):
    """Outcomes that arrive later than the features they belong to (see include/labels.py)."""

    source: Name = Field(description="the entry of `sources:` that carries the outcomes")
    column: str = Field(description="the label column (the model's target)")
    key: list[str] = Field(min_length=1, description="columns that join a label row to a feature row")
    as_of: str = Field("as_of", description="column of a label row: the feature date the outcome belongs to")
    delay_days: int = Field(0, ge=0, le=366, description="outcomes of feature day D are complete in the label "
                                                         "drop of D + delay_days")
    feeds_features: bool = Field(False, description=(
        "the label source is a feature source too: its rows carry features and, once known, the outcome (empty "
        "until then). The feature job receives it by name like any source and must leave labels.column out; "
        "training still takes each outcome from the drops landed by the run's date, by as_of"))


class SharedWaitSpec(Strict):
    timeout_minutes: int = Field(180, ge=1, le=24 * 60, description=(
        "how long to wait for the owning pipeline to publish the day's validated partition"))
    poke_seconds: int = Field(300, ge=5, le=3600, description=(
        "how often to look (the task gives its worker slot back between looks: reschedule mode)"))
    deferrable: bool = Field(False, description=(
        "wait in Airflow's triggerer instead of rescheduling (needs a running triggerer)"))


class SharedReadSpec(Strict):
    """One entry of `reads:`: a dataset another pipeline ingests and validates, used read-only.

    It is declared once, by its owner's `sources:`; this pipeline's feature job receives its
    validated partitions by the entry's name, next to the pipeline's own sources. Nothing here
    ever writes it (see operators/spec/ownership.py).
    """

    from_pipeline: Name = Field(description="the pipeline whose spec ingests and validates the dataset")
    dataset: Name = Field(description="the lake dataset of one of that pipeline's sources")
    wait: SharedWaitSpec | None = Field(default_factory=SharedWaitSpec, description=(
        "wait for the owner's validated partition of the day before the features run (null: do not wait; "
        "features fail at once, naming the owner, when it is missing)"))


@dataclass(frozen=True)
class SourceBinding:
    """A source as the compiler wires it: its spec, its validation, its dataset and task ids."""

    name: str
    spec: SourceSpec
    validate: ValidateSpec | None
    dataset: str
    task_suffix: str  # "" for the single-source shorthand (tasks `ingest`, `validate`)

    def task_id(self, stage: str) -> str:
        return f"{stage}_{self.task_suffix}" if self.task_suffix else stage


class FeaturesSpec(Strict):
    job: str = Field(description="module:function of a PySpark feature job under an allowed package")
    lookback_days: int = Field(7, ge=1, le=366, description="days of each source the job gets, the run day included")
    dataset: Name | None = Field(None, description="lake dataset of the features (default: `<pipeline>_features`)")
    engine: EngineSetting = Field("auto", description=(
        "where the job runs: spark; duckdb (the same PySpark job through sqlframe, in the task's process); "
        "auto: DuckDB when skylift_spark_master is local and the window holds at most duckdb_max_rows input "
        "rows, else Spark"))
    duckdb_max_rows: int = Field(DEFAULT_DUCKDB_MAX_ROWS, ge=0, description=(
        "auto's threshold: input rows over all sources and days of the window"))

    @field_validator("job")
    @classmethod
    def _job_path(cls, job: str) -> str:
        if not JOB_PATH.match(job):
            raise ValueError("must look like 'include.features.churn:build' (module:function)")
        return job


QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$"
CPU_QUANTITY = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"


class TolerationSpec(Strict):
    """One toleration of the training pod, as Kubernetes' V1Toleration takes it (checked here, so a
    misspelt key is a spec error with its line, not a failed training task)."""

    key: str | None = Field(None, description="the taint's key; none with operator Exists tolerates every taint")
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(None, description="the taint's value (operator Equal)")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="the taint effect it tolerates; none: every effect")
    toleration_seconds: int | None = Field(None, ge=0, description="NoExecute only: how long the pod stays bound")


class KubernetesSpec(Strict):
    namespace: str = "default"
    image: str | None = Field(None, description=(
        "the training image; pin it as repo@sha256:<digest> so that reuse follows the code, not a movable tag"))
    image_pull_secrets: list[str] = Field(default_factory=list, description="Secrets holding registry credentials")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[TolerationSpec] = Field(
        default_factory=lambda: [TolerationSpec(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    )
    service_account: str | None = None
    priority_class: str | None = Field(None, description="the pod's PriorityClass")
    env_from_secret: str | list[str] | None = Field(None, description=(
        "Kubernetes Secret(s) whose keys become env vars (lake credentials)"))
    shm_size: str | None = Field(None, pattern=QUANTITY, description=(
        "size of an in-memory /dev/shm (PyTorch data-loader workers); none: the runtime's 64M default"))
    schedule_timeout: int = Field(600, ge=1, description="seconds the pod may wait for a node before the task fails")
    startup_timeout: int = Field(600, ge=1, description="seconds from scheduled to running (image pull included)")
    deferrable: bool = Field(False, description="wait for the pod in the triggerer, holding no worker slot")


class ResourcesSpec(Strict):
    gpu: int = Field(0, ge=0, le=16)
    gpu_type: str | None = Field(None, description=(
        "GPU model to require, matched against the node label gpu_type_label (e.g. NVIDIA-A100-SXM4-80GB)"))
    gpu_type_label: str = "nvidia.com/gpu.product"
    cpu: str = Field("2", pattern=CPU_QUANTITY, description="CPU request (and limit unless cpu_limit is set)")
    cpu_limit: str | None = Field(None, pattern=CPU_QUANTITY)
    memory: str = Field("4Gi", pattern=QUANTITY, description="memory request (and limit unless memory_limit is set)")
    memory_limit: str | None = Field(None, pattern=QUANTITY)


class SearchSpec(Strict):
    """`train.search`: a hyper-parameter search an on-demand DAG runs when its form switches it on.

    Each trial trains in its own process (or pod) with a point an Optuna study picks from these ranges
    (include/training/search.py); the best trial by `metric` goes on to register and the gate.
    """

    params: dict[str, ParamRange] = Field(min_length=1, description=(
        "the ranges, per parameter of train.framework: {type: int, low, high[, step, log]}, "
        "{type: float, low, high[, step]}, {type: log_float, low, high} or {type: categorical, choices: [...]}"))
    trials: int = Field(20, ge=1, le=1000, description="how many trials (the retrain form can change it)")
    parallelism: int = Field(2, ge=1, le=64, description="trials that run at once in one DAG run")
    metric: str = Field(description="the holdout metric that ranks trials (one the gate knows for train.task)")
    direction: Literal["maximize", "minimize"] | None = Field(None, description=(
        "none: the metric's own (maximize auc and r2, minimize logloss and rmse)"))
    enabled: bool = Field(False, description="the retrain form's default: search, or train once with train.params")
    sampler: Literal["tpe", "random"] = Field("tpe", description="how Optuna picks the next point")
    seed: int | None = Field(None, ge=0, description="the sampler's seed (trial slot i uses seed + i)")


class TrainSpec(Strict):
    framework: Literal["xgboost", "pytorch"]
    task: Literal["classification", "regression"] = "classification"
    target: str = Field(description="the column the model learns (with `labels:`, labels.column)")
    key: list[str] = Field(default_factory=list, description="entity key columns, never used as features")
    exclude: list[str] = Field(default_factory=list, description="feature columns never used for training")
    params: dict[str, Any] = Field(default_factory=dict, description=(
        "hyper-parameters, checked against the framework's (include/training/params.py)"))
    window_days: int = Field(1, ge=1, le=366, description="how many daily feature partitions to train on")
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    holdout_days: int = Field(3, ge=1, le=365, description="with `labels:`: the newest label-complete days "
                                                           "held out for the gate (time-based split)")
    execution: Literal["local", "kubernetes"] = "local"
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    search: SearchSpec | None = Field(None, description=(
        "hyper-parameter search, offered by the on-demand DAGs' trigger form (off unless `enabled`)"))


class RegisterSpec(Strict):
    model_name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$", description="the registered model")


class MustBeatSpec(Strict):
    margin: float = Field(0.0, ge=0.0, description=(
        "how much worse than the champion the challenger may be on this metric (0: at least as good)"))
    relative: bool = Field(False, description="margin is a fraction of the champion's value, not an amount")


class MetricGateSpec(Strict):
    """One metric of `deploy.gate.metrics`: an absolute bound and a must-beat margin on the same rows."""

    metric: str
    min: float | None = None
    max: float | None = None
    must_beat: MustBeatSpec | None = Field(default_factory=MustBeatSpec, description=(
        "compare with the champion on this metric (null: the bounds alone decide it)"))


class GateSpec(Strict):
    metric: str | None = Field(None, description="the single-metric shorthand; or list several under `metrics`")
    metrics: list[MetricGateSpec] | None = Field(None, min_length=1, description=(
        "several metrics at once: the challenger must pass every one"))
    min: float | None = None
    max: float | None = None
    beat_champion: bool = True
    min_delta: float = Field(0.0, ge=0.0, description="how much better than the champion the challenger must be")
    min_holdout_rows: int = Field(50, ge=1, description=(
        "fewer holdout rows than this and the champion stays: too few rows to judge either model"))
    confidence: float = Field(0.95, ge=0.5, lt=1.0, description=(
        "level of the bootstrap confidence intervals reported for the metric and the gain over the champion"))
    require_significant: bool = Field(False, description=(
        "the gain's interval, not just its point estimate, must lie above min_delta to replace the champion"))

    @model_validator(mode="after")
    def _one_form(self) -> GateSpec:
        if (self.metric is None) == (self.metrics is None):
            raise ValueError("give either `metric` (one metric) or `metrics` (a list), exactly one of them")
        if self.metrics is not None and (self.min, self.max, self.min_delta) != (None, None, 0.0):
            raise ValueError("with `metrics`, set min, max and must_beat on each metric, not on the gate")
        names = [m.metric for m in self.metrics or []]
        if len(set(names)) != len(names):
            raise ValueError(f"`metrics` lists a metric twice ({names})")
        return self

    @property
    def metric_names(self) -> list[str]:
        return [self.metric] if self.metric is not None else [m.metric for m in self.metrics]


DNS_LABEL = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


class ProbeSpec(Strict):
    """An HTTP probe on the serving app (its /ping answers 200 once a model is loaded)."""

    path: str = Field("/ping", pattern=r"^/[A-Za-z0-9_./-]*$")
    initial_delay_seconds: int = Field(0, ge=0, le=3600)
    period_seconds: int = Field(5, ge=1, le=3600)
    timeout_seconds: int = Field(2, ge=1, le=600)
    failure_threshold: int = Field(3, ge=1, le=100)


class LivenessSpec(ProbeSpec):
    """The liveness probe: later and less often than readiness, so a slow model load is not a restart."""

    initial_delay_seconds: int = Field(30, ge=0, le=3600)
    period_seconds: int = Field(10, ge=1, le=3600)


class ServingResourcesSpec(Strict):
    cpu: str = Field("500m", pattern=CPU_QUANTITY, description="CPU request (the HPA's utilisation is of this)")
    cpu_limit: str | None = Field(None, pattern=CPU_QUANTITY, description="none: no CPU limit (no throttling)")
    memory: str = Field("1Gi", pattern=QUANTITY, description="memory request (and limit unless memory_limit is set)")
    memory_limit: str | None = Field(None, pattern=QUANTITY)


class ServiceSpec(Strict):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field("LoadBalancer", description=(
        "LoadBalancer: the cloud's load balancer in front of the pods"))
    port: int = Field(80, ge=1, le=65535, description="the Service's port (it forwards to the container's)")


class AutoscalingSpec(Strict):
    min_replicas: int = Field(2, ge=1, le=1000)
    max_replicas: int = Field(10, ge=1, le=1000)
    target_cpu_percent: int = Field(70, ge=1, le=1000, description="average CPU utilisation of the requests")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})")
        return self


class KubernetesServingSpec(Strict):
    """The serving Deployment, Service and HorizontalPodAutoscaler of `deploy.target: kubernetes`."""

    connection_id: str = Field("kubernetes_default", description="the Airflow Kubernetes connection (kubeconfig)")
    namespace: str = Field("default", pattern=DNS_LABEL)
    name: str | None = Field(None, pattern=DNS_LABEL, description=(
        "name of the Deployment, Service and HPA (default: skylift-<pipeline with - for _>)"))
    image: str = Field(description="the serving image (this package installed); pin it as repo@sha256:<digest>")
    command: list[str] | None = Field(None, min_length=1, description=(
        "the container's command; default `python -m include.serving.server MODEL --version V ...` (the "
        "serving app, pinned to the version rolled out)"))
    replicas: int = Field(2, ge=1, le=1000, description="replicas when there is no autoscaling")
    port: int = Field(8080, ge=1024, le=65535, description="the port the serving app listens on in the pod")
    resources: ServingResourcesSpec = Field(default_factory=ServingResourcesSpec)
    readiness: ProbeSpec = Field(default_factory=ProbeSpec)
    liveness: LivenessSpec = Field(default_factory=LivenessSpec)
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    autoscaling: AutoscalingSpec | None = Field(default_factory=AutoscalingSpec, description=(
        "null: a fixed number of replicas and no HorizontalPodAutoscaler"))
    tracking_uri: str | None = Field(None, description=(
        "MLflow tracking URI as the pods reach it (default: the deploy task's own)"))
    env_from_secret: list[str] = Field(default_factory=list, description=(
        "Secrets whose keys become env vars (MLflow and artifact-store credentials)"))
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account: str | None = None
    rollout_timeout: int = Field(300, ge=5, le=3600, description=(
        "seconds the new pods may take to become ready before the deploy is rolled back"))
    endpoint_url: str | None = Field(None, pattern=r"^https?://", description=(
        "where the smoke test sends requests (e.g. the load balancer); default: through the API server's "
        "proxy to the Service"))


class LocalServingSpec(Strict):
    """`deploy.target: local`: a running `skylift serve` (it follows the alias) smoke-tested after the flip."""

    url: str = Field("http://127.0.0.1:5050", pattern=r"^https?://", description="the serving process's base URL")
    wait_seconds: int = Field(60, ge=1, le=3600, description=(
        "how long it may take to serve the new champion (it polls the alias)"))


class DeploySpec(Strict):
    gate: GateSpec
    target: Literal["alias", "local", "kubernetes"] = Field("alias", description=(
        "alias: move the MLflow alias only (batch); local: also smoke-test a running `skylift serve`; "
        "kubernetes: also roll out the serving Deployment, Service and HPA"))
    smoke_rows: int = Field(20, ge=1, le=10_000)
    kubernetes: KubernetesServingSpec | None = None
    local: LocalServingSpec | None = None

    @model_validator(mode="after")
    def _target_block(self) -> DeploySpec:
        if self.target == "kubernetes" and self.kubernetes is None:
            raise ValueError("target: kubernetes needs a `kubernetes:` block (at least `image:`)")
        for block in ("kubernetes", "local"):
            if getattr(self, block) is not None and self.target != block:
                raise ValueError(f"a `{block}:` block is set but target is {self.target!r}: set target: {block} "
                                 "or remove the block")
        return self

    @property
    def local_target(self) -> LocalServingSpec:
        return self.local or LocalServingSpec()


class ApprovalSpec(Strict):
    """A person approves each promotion the gate clears, in Airflow's own human-in-the-loop UI,
    before the champion alias moves (operators/approval.py)."""

    approvers: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1, description=(
        "Airflow user ids who may answer (the user name under the simple auth manager); none: every user "
        "allowed to act on the DAG"))
    timeout_minutes: int = Field(24 * 60, ge=1, le=30 * 24 * 60, description=(
        "how long the request waits for an answer"))
    on_timeout: Literal["reject", "approve"] = Field("reject", description=(
        "what an unanswered request decides: reject (the champion stays) or approve (a veto window)"))


class ScoreSpec(Strict):
    dataset: Name | None = None
    engine: Literal["auto", "pandas", "spark"] = Field(
        "auto", description="auto: Spark when skylift_spark_master is a cluster, else in-process pandas")


class DriftSpec(Strict):
    """`monitor.drift`: compare each scored day with the champion's training data (include/drift.py)."""

    psi_threshold: float = Field(0.25, gt=0.0, le=10.0, description=(
        "a feature drifts when its PSI over the training data's deciles reaches this (0.1: moderate, 0.25: large)"))
    ks_pvalue: float | None = Field(0.001, gt=0.0, lt=1.0, description=(
        "and the two-sample KS test's p-value is below this (null: PSI alone decides)"))
    min_rows: int = Field(100, ge=1, description="a day with fewer scored rows gets no verdict")
    min_drifted_features: int = Field(1, ge=1, description="how many drifted features make the day drift")
    prediction_days: int = Field(7, ge=0, le=366, description=(
        "earlier days whose predictions (same model version) the day's are compared with (0: none)"))
    on_prediction_drift: Literal["report", "flag"] = Field("report", description=(
        "prediction drift is only reported, or flags the day like drifted features"))
    retrain: bool = Field(False, description="a drifted day triggers the retrain DAG for its date")
    retrain_dag: Name = Field("retrain", description="the entry of `dags:` that retrains (run for the drifted date)")
    cooldown_days: int = Field(7, ge=1, le=366, description=(
        "at most one retrain per this many days of partition dates (recorded in the lake, race-free)"))


class MonitorSpec(Strict):
    drift: DriftSpec = Field(default_factory=DriftSpec, description="distribution drift after scoring")


DatasetRef = Annotated[str, Field(pattern=r"^[a-z]+/[a-z][a-z0-9_]{0,62}$")]


class CustomStageSpec(Strict):
    """How a pipeline uses a custom stage: what it reads, what it publishes, its own settings."""

    reads: list[DatasetRef] = Field(min_length=1, description="partitions of the same date it reads, as zone/dataset")
    dataset: Name | None = Field(None, description="the dataset it publishes (default: <pipeline>_<stage>)")
    config: dict[str, Any] = Field(default_factory=dict, description="validated by the stage's own model")

    @property
    def inputs(self) -> list[tuple[str, str]]:
        return [tuple(ref.split("/", 1)) for ref in self.reads]  # type: ignore[misc]


class ParamSpec(Strict):
    """A trigger-form field, in the JSON-schema terms Airflow's `Param` takes."""

    type: Literal["integer", "number", "string", "boolean"]
    default: Any = None
    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = None


class DagSpec(Strict):
    schedule: str | None = Field(None, description=(
        "cron expression or preset (`@daily`), `on_new_features`, or null: on demand"))
    # Runs of different dates touch different partitions, so they may overlap; a scheduled run
    # waiting for a late drop must not block a manual one.
    max_active_runs: int = Field(4, ge=1, le=64)
    # built-in stages, or custom ones registered in Python (operators/spec/custom_stages.py); the
    # loader refuses a name that is neither
    stages: Literal["all"] | list[Name] = "all"
    params: dict[str, ParamSpec] = Field(default_factory=dict, description=(
        "trigger-form hyper-parameters of a DAG that trains (names of train.params)"))
    description: str | None = Field(None, description="the DAG's description (default: the pipeline's and stages)")

    @property
    def stage_list(self) -> list[str]:
        return list(STAGES) if self.stages == "all" else list(self.stages)

    @field_validator("stages")
    @classmethod
    def _unique(cls, stages: Any) -> Any:
        if isinstance(stages, list) and len(set(stages)) != len(stages):
            raise ValueError("lists a stage twice")
        if isinstance(stages, list) and not stages:
            raise ValueError("must name at least one stage")
        return stages


class PipelineSpec(Strict):
    pipeline: Name = Field(description="the pipeline's name; its DAGs are `<pipeline>_<dag name>`")
    description: str = Field(description="what the pipeline predicts (the DAGs' docs)")
    owner: str = Field("skylift", description="the DAGs' owner")
    tags: list[str] = Field(default_factory=list, description="the DAGs' tags")
    start_date: date = date(2026, 1, 1)
    retries: int = Field(1, ge=0, le=10)
    source: SourceSpec | None = None
    validate_: ValidateSpec | None = Field(None, alias="validate")
    sources: dict[Name, NamedSourceSpec] | None = None
    reads: dict[Name, SharedReadSpec] = Field(default_factory=dict, description=(
        "datasets other pipelines own, shared on purpose: handed to the feature job by name, never written"))
    labels: LabelsSpec | None = None
    features: FeaturesSpec | None = None
    train: TrainSpec | None = None
    register_: RegisterSpec | None = Field(None, alias="register")
    deploy: DeploySpec | None = None
    approval: ApprovalSpec | None = Field(None, description=(
        "ask a person to approve each promotion the gate clears before the champion moves"))
    score: ScoreSpec = Field(default_factory=ScoreSpec)
    monitor: MonitorSpec | None = Field(None, description=(
        "drift monitoring after scoring (the `monitor` stage), and the retrain it may trigger"))
    custom: dict[Name, CustomStageSpec] = Field(default_factory=dict, description=(
        "configuration of the custom stages the DAGs name, by stage name"))
    dags: dict[Name, DagSpec]

    @model_validator(mode="after")
    def _retrain_dag_exists(self) -> PipelineSpec:
        drift = self.monitor.drift if self.monitor else None
        if drift is not None and drift.retrain:
            dag = self.dags.get(drift.retrain_dag)
            if dag is None:
                raise ValueError(f"monitor.drift.retrain_dag {drift.retrain_dag!r} must name an entry of `dags:` "
                                 f"(declared: {sorted(self.dags)})")
            if "train" not in self.dag_stages(dag):
                raise ValueError(f"monitor.drift.retrain_dag {drift.retrain_dag!r} must be a DAG with the `train` "
                                 "stage: drift triggers it to train a new model")
        return self

    @model_validator(mode="after")
    def _one_way_to_declare_sources(self) -> PipelineSpec:
        if self.sources is not None:
            if self.source is not None or self.validate_ is not None:
                raise ValueError("declare either `sources:` (several, each with its own `validate:`) or the "
                                 "one-source shorthand `source:` + `validate:`, not both")
            if not self.sources:
                raise ValueError("`sources:` must name at least one source")
            datasets = [b.dataset for b in self.source_bindings]
            if len(set(datasets)) != len(datasets):
                raise ValueError(f"two sources write the same dataset ({datasets}); give each its own `dataset:`")
        if self.approval is not None and self.deploy is None:
            raise ValueError("`approval:` guards the deploy stage's promotion: it needs a `deploy:` section")
        if self.labels is not None:
            if self.sources is None or self.labels.source not in self.sources:
                known = sorted(self.sources or {})
                raise ValueError(f"labels.source {self.labels.source!r} must name an entry of `sources:` "
                                 f"(declared: {known})")
            if len(self.sources) + len(self.reads) < 2 and not self.labels.feeds_features:
                raise ValueError("with `labels:`, `sources:` needs the label source and at least one feature source "
                                 "(or a shared one under `reads:`), unless labels.feeds_features says the label "
                                 "source's rows carry the features too")
            if self.train is not None and self.train.target != self.labels.column:
                raise ValueError(f"train.target {self.train.target!r} must be labels.column "
                                 f"{self.labels.column!r}: the model learns the outcome the labels carry")
        self._check_reads()
        return self

    def _check_reads(self) -> None:
        if not self.reads:
            return
        if self.sources is None:
            raise ValueError("`reads:` hands shared datasets to the feature job by name, next to `sources:`; declare "
                             "this pipeline's own inputs under `sources:` (the one-source shorthand passes its frame "
                             "positionally)")
        if self.features is None:
            raise ValueError("`reads:` feeds the feature job: add a `features:` section or drop `reads:`")
        for name, read in self.reads.items():
            if name in self.sources:
                raise ValueError(f"reads.{name}: {name!r} is also an entry of `sources:`; the feature job receives "
                                 "each input by its name, so give the shared one another name")
            if read.from_pipeline == self.pipeline:
                raise ValueError(f"reads.{name}: a pipeline reads its own datasets through `sources:`, not `reads:`")
            if read.dataset in {b.dataset for b in self.source_bindings}:
                raise ValueError(f"reads.{name}: dataset {read.dataset!r} is written by this pipeline's own "
                                 "`sources:`; a shared dataset is read from its owner, not ingested again")

    # ---- derived names ----
    @property
    def source_bindings(self) -> list[SourceBinding]:
        """Every source in declaration order; the shorthand is the one source with tasks `ingest`/`validate`."""
        if self.sources is None:
            if self.source is None:
                return []
            return [SourceBinding(name=self.raw_dataset, spec=self.source, validate=self.validate_,
                                  dataset=self.raw_dataset, task_suffix="")]
        return [SourceBinding(name=name, spec=src, validate=src.validate_, dataset=src.dataset or name,
                              task_suffix=name) for name, src in self.sources.items()]

    @property
    def feature_sources(self) -> list[SourceBinding]:
        """The sources the feature job reads: all but the label source (outcomes never reach features),
        unless `labels.feeds_features` says its rows carry the features too."""
        label = self.labels.source if self.labels and not self.labels.feeds_features else None
        return [b for b in self.source_bindings if b.name != label]

    @property
    def feature_inputs(self) -> dict[str, str]:
        """What the feature job receives by keyword (name -> validated dataset): the feature sources,
        then the datasets shared by other pipelines (`reads:`)."""
        own = {b.name: b.dataset for b in self.feature_sources}
        return {**own, **{name: read.dataset for name, read in self.reads.items()}}

    @property
    def label_source(self) -> SourceBinding | None:
        if self.labels is None:
            return None
        return next(b for b in self.source_bindings if b.name == self.labels.source)

    @property
    def raw_dataset(self) -> str:
        """The (first) feature source's dataset; the shorthand's `source.dataset` or the pipeline name."""
        if self.sources is not None:
            if not self.feature_sources and self.reads:  # every feature input is shared
                return next(iter(self.reads.values())).dataset
            return self.feature_sources[0].dataset
        return (self.source.dataset if self.source else None) or self.pipeline

    def custom_dataset(self, stage: str) -> str:
        return self.custom[stage].dataset or f"{self.pipeline}_{stage}"

    @property
    def evaluations_dataset(self) -> str:
        return f"{self.pipeline}_evaluations"

    @property
    def features_dataset(self) -> str:
        return (self.features.dataset if self.features else None) or f"{self.pipeline}_features"

    @property
    def predictions_dataset(self) -> str:
        return self.score.dataset or f"{self.pipeline}_predictions"

    def dag_stages(self, dag: DagSpec) -> list[str]:
        """The DAG's stages; `all` includes `evaluate` only when the spec declares `labels:`, and
        `monitor` only with `monitor:`."""
        stages = dag.stage_list
        if dag.stages == "all" and self.labels is None:
            stages = [s for s in stages if s != "evaluate"]
        if dag.stages == "all" and self.monitor is None:
            stages = [s for s in stages if s != "monitor"]
        return stages

    def stage_spec(self, stage: str) -> BaseModel | None:
        if self.sources is not None and stage in ("ingest", "source"):
            return self.sources  # type: ignore[return-value]
        if self.sources is not None and stage == "validate":
            return self.sources if any(b.validate for b in self.source_bindings) else None  # type: ignore[return-value]
        if stage == "evaluate":
            return self.labels
        if stage not in STAGES and stage not in ("source", "labels"):
            return self.custom.get(stage)
        return getattr(self, {"ingest": "source", "validate": "validate_", "register": "register_"}.get(stage, stage))
