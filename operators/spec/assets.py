"""The Airflow assets a pipeline's stages publish (a DAG may be scheduled on new features)."""

from __future__ import annotations

from airflow.sdk import Asset

from operators.spec.models import PipelineSpec


def features_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.features.{spec.features_dataset}", uri=f"skylift://lake/features/{spec.features_dataset}")


def predictions_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.predictions.{spec.predictions_dataset}",
                 uri=f"skylift://lake/predictions/{spec.predictions_dataset}")


def evaluations_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.evaluations.{spec.evaluations_dataset}",
                 uri=f"skylift://lake/evaluations/{spec.evaluations_dataset}")
