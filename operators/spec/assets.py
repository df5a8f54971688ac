"""The Airflow assets a pipeline's stages publish (a DAG may be scheduled on new features)."""

from __future__ import annotations

from airflow.sdk import Asset

from operators.spec.models import PipelineSpec

# An "x-" scheme is Airflow's mark of a scheme of one's own: it is taken as it is. Any other scheme
# makes the first Asset of a process discover every provider's URI handlers (the amazon provider's
# S3 module included), which was most of a worker's one-DAG build.


def features_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.features.{spec.features_dataset}",
                 uri=f"x-skylift://lake/features/{spec.features_dataset}")


def predictions_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.predictions.{spec.predictions_dataset}",
                 uri=f"x-skylift://lake/predictions/{spec.predictions_dataset}")


def evaluations_asset(spec: PipelineSpec) -> Asset:
    return Asset(name=f"skylift.evaluations.{spec.evaluations_dataset}",
                 uri=f"x-skylift://lake/evaluations/{spec.evaluations_dataset}")
