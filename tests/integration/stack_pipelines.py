"""Small pipelines of the stack's own on the churn drops and features the history nights built
(tests/conftest.py `landed`), written into the stack's test DAG bundle (`stack.test_dags`): the
approval and search tests each compile one beside the shipped DAGs."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import STACK_END

DS = (STACK_END - timedelta(days=1)).isoformat()  # a day the history nights built features and trained on

CHURN_INPUTS = """\
sources:
  activity: {uri: "activity/{ds}/", format: csv, schema: include/schemas/customer_activity.yaml,
             dataset: customer_activity}
  churn_labels: {uri: "labels/{ds}/", format: csv, schema: include/schemas/churn_labels.yaml}
labels: {source: churn_labels, column: churned, key: [customer_id], as_of: as_of, delay_days: 3}
features: {job: "include.features.churn:build", lookback_days: 7, dataset: churn_features}
"""
DAG_FILE = '''"""A stack test's pipeline: an Airflow DAG file compiling {spec} beside it."""
from pathlib import Path

from operators.spec.compiler import dags_from_spec_file

globals().update(dags_from_spec_file(Path(__file__).parent / "{spec}"))
'''


def churn_spec(comment: str, pipeline: str, description: str, rest: str) -> str:
    """A spec on the landed churn sources and features; `rest` holds its train, register, deploy,
    approval and dags blocks."""
    header = (f"# {comment}\npipeline: {pipeline}\ndescription: {description}\nowner: ml-platform\n"
              "start_date: 2026-11-01\nretries: 0\n")
    return header + CHURN_INPUTS + rest


def install(stack, api, pipeline: str, spec: str, dag_id: str) -> None:
    """Write `<pipeline>.yaml` and its DAG file into the stack's test bundle (idempotent: an unchanged
    spec is not rewritten) and wait until the DAG processor has `dag_id`."""
    spec_file = stack.test_dags / f"{pipeline}.yaml"
    if not spec_file.exists() or spec_file.read_text() != spec:
        spec_file.write_text(spec)
        (stack.test_dags / f"{pipeline}_pipeline.py").write_text(DAG_FILE.format(spec=spec_file.name))
    api.wait_for_dag(dag_id, timeout=240)
