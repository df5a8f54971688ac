"""The typed pipeline spec: one model per stage, validated when the YAML is loaded.

Everything here is pure: no Airflow, no I/O beyond checking that referenced files exist.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

STAGES = ("ingest", "validate", "features", "train", "register", "deploy", "score")
NAME = r"^[a-z][a-z0-9_]{0,62}$"
Name = Annotated[str, Field(pattern=NAME)]
# Feature jobs are Python callables; they may only come from these packages (no arbitrary imports).
JOB_PATH = re.compile(r"^(?P<module>[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*):(?P<func>[a-z_][a-z0-9_]*)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WaitSpec(Strict):
    timeout_minutes: int = Field(60, ge=1, le=24 * 60)
    poke_seconds: int = Field(60, ge=5, le=3600)


class SourceSpec(Strict):
    uri: str = Field(description="drop location; `{ds}` is the partition date; relative to the drops root")
    format: Literal["csv", "jsonl", "parquet"] = "csv"
    schema_: str = Field(alias="schema", description="path of the schema contract (YAML)")
    dataset: Name | None = None
    wait: WaitSpec | None = None

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
    suite: str
    on_failure: Literal["fail", "warn", "quarantine"] = "fail"
    max_quarantine_share: float = Field(0.05, ge=0.0, le=1.0)


class FeaturesSpec(Strict):
    job: str = Field(description="module:function of a PySpark feature job under an allowed package")
    lookback_days: int = Field(7, ge=1, le=366)
    dataset: Name | None = None

    @field_validator("job")
    @classmethod
    def _job_path(cls, job: str) -> str:
        if not JOB_PATH.match(job):
            raise ValueError("must look like 'include.features.churn:build' (module:function)")
        return job


class KubernetesSpec(Strict):
    namespace: str = "default"
    image: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    service_account: str | None = None
    env_from_secret: str | None = Field(None, description="a Kubernetes Secret whose keys become env vars")


class ResourcesSpec(Strict):
    gpu: int = Field(0, ge=0, le=16)
    cpu: str = "2"
    memory: str = Field("4Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")


class TrainSpec(Strict):
    framework: Literal["xgboost", "pytorch"]
    task: Literal["classification", "regression"] = "classification"
    target: str
    key: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    window_days: int = Field(1, ge=1, le=366, description="how many daily feature partitions to train on")
    holdout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    execution: Literal["local", "kubernetes"] = "local"
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)


class RegisterSpec(Strict):
    model_name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


class GateSpec(Strict):
    metric: str
    min: float | None = None
    max: float | None = None
    beat_champion: bool = True
    min_delta: float = Field(0.0, ge=0.0, description="how much better than the champion the challenger must be")


class DeploySpec(Strict):
    gate: GateSpec
    target: Literal["alias"] = "alias"
    smoke_rows: int = Field(20, ge=1, le=10_000)


class ScoreSpec(Strict):
    dataset: Name | None = None
    engine: Literal["auto", "pandas", "spark"] = Field(
        "auto", description="auto: Spark when skylift_spark_master is a cluster, else in-process pandas")


class ParamSpec(Strict):
    """A trigger-form field, in the JSON-schema terms Airflow's `Param` takes."""

    type: Literal["integer", "number", "string", "boolean"]
    default: Any = None
    description: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = None


class DagSpec(Strict):
    schedule: str | None = None
    # Runs of different dates touch different partitions, so they may overlap; a scheduled run
    # waiting for a late drop must not block a manual one.
    max_active_runs: int = Field(4, ge=1, le=64)
    stages: Literal["all"] | list[Literal[STAGES]] = "all"  # type: ignore[valid-type]
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    description: str | None = None

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
    pipeline: Name
    description: str
    owner: str = "skylift"
    tags: list[str] = Field(default_factory=list)
    start_date: date = date(2026, 1, 1)
    retries: int = Field(1, ge=0, le=10)
    source: SourceSpec | None = None
    validate_: ValidateSpec | None = Field(None, alias="validate")
    features: FeaturesSpec | None = None
    train: TrainSpec | None = None
    register_: RegisterSpec | None = Field(None, alias="register")
    deploy: DeploySpec | None = None
    score: ScoreSpec = Field(default_factory=ScoreSpec)
    dags: dict[Name, DagSpec]

    # ---- derived names ----
    @property
    def raw_dataset(self) -> str:
        return (self.source.dataset if self.source else None) or self.pipeline

    @property
    def features_dataset(self) -> str:
        return (self.features.dataset if self.features else None) or f"{self.pipeline}_features"

    @property
    def predictions_dataset(self) -> str:
        return self.score.dataset or f"{self.pipeline}_predictions"

    def stage_spec(self, stage: str) -> BaseModel | None:
        return getattr(self, {"ingest": "source", "validate": "validate_", "register": "register_"}.get(stage, stage))
