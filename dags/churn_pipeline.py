"""The Airflow DAGs of the `churn` pipeline, compiled from `pipelines/churn.yaml` (edit the YAML, not this file).

One small file per spec, so that a broken spec shows up as this file's import error while
every other pipeline keeps loading. (Airflow's DAG processor reads only files that name
both "airflow" and "dag".)
"""

from pathlib import Path

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path(__file__).parent / "pipelines" / "churn.yaml"))
