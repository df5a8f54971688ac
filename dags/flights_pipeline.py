"""The `flights` pipeline, compiled from `pipelines/flights.yaml` (edit the YAML, not this file).

One small file per spec, so that a broken spec shows up as this file's import error while
every other pipeline keeps loading.
"""

from pathlib import Path

# Imported here so that Airflow's DAG processor pre-imports it once for all parses
# ([dag_processor] parsing_pre_import_modules); the training operator is a KubernetesPodOperator.
import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path(__file__).parent / "pipelines" / "flights.yaml"))
