"""The `<pipeline>_rollback` DAG every spec with a deploy stage gets: triggered by hand, it returns
the model's champion to an earlier version (see include/rollback.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from operators.base import refuse_undeclared_conf
from operators.spec.models import PipelineSpec

DAG_NAME = "rollback"


def rollback_dag_id(spec: PipelineSpec) -> str | None:
    """The rollback DAG's id, or None when the spec deploys no model."""
    if spec.deploy is None or spec.register_ is None:
        return None
    return f"{spec.pipeline}_{DAG_NAME}"


def build_rollback_dag(spec: PipelineSpec, source: Path) -> DAG:
    from include.errors import SpecError
    from operators.rollback import RollbackModelOperator
    from operators.spec.compiler import DAG_START  # loaded already: the compiler calls this

    if DAG_NAME in spec.dags:
        raise SpecError(f"{source}: dags.{DAG_NAME} is reserved: Skylift adds {spec.pipeline}_{DAG_NAME} to every "
                        "spec with a deploy stage; give that DAG another name")
    model = spec.register_.model_name
    dag = DAG(
        dag_id=rollback_dag_id(spec),
        description=f"return {model}'s champion to an earlier version (smoke-tested, recorded in its audit trail)",
        schedule=None,
        start_date=DAG_START,  # a rollback belongs to no date: any trigger's logical date gets its task
        catchup=False,
        max_active_runs=1,
        tags=sorted({"skylift", spec.pipeline, DAG_NAME, *spec.tags}),
        params={
            "to_version": Param("", type="string", title="Version to return to", description=(
                "empty: the previous champion in the audit trail (`skylift history` lists it)")),
            "reason": Param("", type="string", title="Why", description="recorded in the audit trail"),
        },
        # A retry re-reads the champion: a try that failed before the move starts over; one that moved
        # and was undone by its smoke test tries again.
        default_args={"owner": spec.owner, "retries": spec.retries, "retry_delay": timedelta(seconds=30),
                      "pre_execute": refuse_undeclared_conf},
        doc_md=_doc(spec, source),
    )
    with dag:
        RollbackModelOperator(task_id="rollback", pipeline=spec.pipeline, model_name=model,
                              smoke_rows=spec.deploy.smoke_rows, serving=spec.deploy)
    return dag


def _doc(spec: PipelineSpec, source: Path) -> str:
    model = spec.register_.model_name
    from operators.spec.compiler import spec_yaml  # loaded already: the compiler calls this

    body = spec.model_dump_json(by_alias=True, exclude_none=True, include={"register_", "deploy"})
    return "\n".join([
        f"# {spec.pipeline} · {DAG_NAME}",
        f"Returns `{model}@champion` to an earlier version: the trigger form's version, or by default the previous "
        f"champion in the audit trail. The alias is smoke-tested (scores through it must be finite and the version's "
        f"own) and the change recorded (`skylift history {model}`; `skylift rollback {model}` does the same).",
        "",
        f"**Spec:** `{source.name}` (compiled by Skylift)",
        "",
        "```yaml",
        spec_yaml(body),
        "```",
    ])
