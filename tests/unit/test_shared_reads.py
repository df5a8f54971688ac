"""A dataset ingested and validated once, read by other pipelines on purpose (`reads:`): the spec,
the ownership index and lint refuse a read that no spec beside it can satisfy, naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.errors import SpecError
from operators.spec.lint import lint_spec
from operators.spec.loader import load_spec
from operators.spec.ownership import claims, shared_reads

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "dags" / "pipelines"
CHURN = PIPELINES / "churn.yaml"
SPEND = PIPELINES / "spend.yaml"


def folder(tmp_path: Path, spend_change=None, churn_change=None, extra: dict | None = None) -> Path:
    """churn.yaml and spend.yaml side by side (each possibly changed); returns spend's path."""
    for path, change in ((CHURN, churn_change), (SPEND, spend_change)):
        body = yaml.safe_load(path.read_text())
        if change:
            change(body)
        (tmp_path / path.name).write_text(yaml.safe_dump(body, sort_keys=False))
    for name, body in (extra or {}).items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return tmp_path / SPEND.name


def line_of(path: Path, text: str) -> int:
    body = path.read_text()
    return body[: body.index(text)].count("\n") + 1


def read(**changes):
    return lambda body: body["reads"]["activity"].update(changes)


# ---- the shipped specs ----

def test_spend_reads_churns_validated_activity_instead_of_ingesting_it_again():
    spend, churn = load_spec(SPEND), load_spec(CHURN)
    assert spend.feature_inputs == {"activity": "customer_activity"}
    assert spend.reads["activity"].from_pipeline == "churn"
    assert "customer_activity" in {b.dataset for b in churn.source_bindings}
    assert "customer_activity" not in {b.dataset for b in spend.source_bindings}  # spend never ingests it
    written = {(c.kind, c.name) for c in claims(SPEND) if c.access == "writes"}
    assert ("raw", "customer_activity") not in written
    (shared,) = [c for c in claims(SPEND) if c.access == "reads" and c.kind == "raw"]
    assert (shared.name, shared.entry, shared.from_pipeline) == ("customer_activity", "activity", "churn")
    assert shared.where == f"{SPEND}:{line_of(SPEND, 'dataset: customer_activity')}"


def test_the_index_resolves_the_owner_and_the_dags_that_publish_it():
    owner = shared_reads(SPEND)["activity"].owner
    assert (owner.pipeline, owner.access, owner.dag_ids) == ("churn", "writes", ["churn_nightly"])
    assert owner.where == f"{CHURN}:{line_of(CHURN, 'dataset: customer_activity')}"


# ---- the spec model ----

@pytest.mark.parametrize("change,message", [
    (lambda b: b["reads"].update(spend_labels=b["reads"].pop("activity")),
     "reads.spend_labels: 'spend_labels' is also an entry of `sources:`"),
    (read(from_pipeline="spend"), "a pipeline reads its own datasets through `sources:`, not `reads:`"),
    (lambda b: b["sources"]["spend_labels"].update(dataset="customer_activity"),
     "dataset 'customer_activity' is written by this pipeline's own `sources:`"),
    (lambda b: b.pop("features") and b.update(dags={"score": {"stages": ["score"]}}),
     "`reads:` feeds the feature job: add a `features:` section"),
    (read(wait={"timeout_minutes": 0}), "reads.activity.wait.timeout_minutes"),
    (read(zone="raw"), "reads.activity.zone: unknown key"),
])
def test_a_read_the_model_refuses_says_why(tmp_path, change, message):
    with pytest.raises(SpecError) as err:
        load_spec(folder(tmp_path, change))
    assert message in str(err.value)


def test_labels_count_a_shared_feature_input_as_the_feature_source(tmp_path):
    with pytest.raises(SpecError, match="needs the label source and at least one feature source"):
        load_spec(folder(tmp_path, lambda b: b.pop("reads")))


# ---- against the specs beside it (loader and lint) ----

def other_owner() -> dict:
    """A third pipeline that owns a dataset of its own."""
    body = yaml.safe_load(CHURN.read_text())
    body["pipeline"] = "billing"
    body["sources"] = {"invoices": {**body["sources"]["activity"], "dataset": "billing_invoices"},
                       "billing_labels": body["sources"]["churn_labels"]}
    body["labels"]["source"] = "billing_labels"
    body["register"]["model_name"] = "billing"
    return body


@pytest.mark.parametrize("change,key,text,message", [
    (read(from_pipeline="chrun"), "from_pipeline", "from_pipeline: chrun",
     "no spec beside this one declares pipeline 'chrun'; did you mean 'churn'?"),
    (read(from_pipeline="marketing"), "from_pipeline", "from_pipeline: marketing",
     "no spec beside this one declares pipeline 'marketing'; pipelines beside it: ['billing', 'churn']"),
    (read(dataset="customer_activty"), "dataset", "dataset: customer_activty",
     "no spec beside this one ingests dataset 'customer_activty', so nothing would ever publish it; pipeline "
     "'churn' ({churn}:1) owns no such dataset: did you mean 'customer_activity'?"),
    (read(dataset="billing_invoices"), "dataset", "dataset: billing_invoices",
     "dataset 'billing_invoices' is owned by pipeline 'billing' ({billing}:{billing_line}), not 'churn'; "
     "set from_pipeline: billing"),
])
def test_a_read_no_spec_beside_it_satisfies_is_refused_at_its_line(tmp_path, change, key, text, message):
    spend = folder(tmp_path, change, extra={"billing": other_owner()})
    billing = tmp_path / "billing.yaml"
    expected = message.format(churn=tmp_path / "churn.yaml", billing=billing,
                              billing_line=line_of(billing, "dataset: billing_invoices"))
    line = line_of(spend, text)
    with pytest.raises(SpecError) as err:
        load_spec(spend)  # the DAG file shows it as its import error
    assert f"{spend}:{line}: reads.activity.{key}: {expected}" in str(err.value).splitlines()
    result = lint_spec(spend)
    lines = [p.lint_line() for p in result.problems]
    assert [entry for entry in lines if "reads.activity" in entry] == [
        f"{spend}:{line}:{line_of_column(spend, text)}: reads.activity.{key}: {expected}"]


def line_of_column(path: Path, text: str) -> int:
    """The column (from 1) of the key that starts `text`."""
    for row in path.read_text().splitlines():
        if text in row:
            return row.index(text) + 1
    raise AssertionError(text)


def test_a_dataset_its_owner_never_validates_is_refused(tmp_path):
    def unvalidated(body):
        body["sources"]["activity"].pop("validate")

    spend = folder(tmp_path, churn_change=unvalidated)
    with pytest.raises(SpecError) as err:
        load_spec(spend)
    assert (f"{spend}:{line_of(spend, 'dataset: customer_activity')}: reads.activity.dataset: pipeline 'churn' "
            f"ingests 'customer_activity' ({tmp_path / 'churn.yaml'}:") in str(err.value)
    assert "none of its DAGs validates it, so validated/customer_activity is never published" in str(err.value)


def test_the_owner_publishing_only_from_another_dag_is_named_in_the_index(tmp_path):
    def land_dag(body):
        body["dags"]["nightly"]["stages"] = ["features", "train", "register", "deploy", "score"]
        body["dags"]["land"] = {"schedule": "0 1 * * *", "stages": ["ingest", "validate"]}

    spend = folder(tmp_path, churn_change=land_dag)
    load_spec(spend)
    assert shared_reads(spend)["activity"].owner.dag_ids == ["churn_land"]


def test_ingesting_a_shared_dataset_a_second_time_is_still_a_clash(tmp_path):
    def ingest_again(body):
        body["sources"]["activity"] = {"uri": "activity/{ds}/", "schema": "include/schemas/customer_activity.yaml",
                                       "dataset": "customer_activity"}
        body.pop("reads")

    spend = folder(tmp_path, ingest_again)
    with pytest.raises(SpecError, match="raw/validated dataset 'customer_activity' is also written by"):
        load_spec(spend)


def test_lint_checks_the_job_signature_against_the_shared_inputs_too(tmp_path):
    spend = folder(tmp_path, lambda b: b["reads"].update(activities=b["reads"].pop("activity")))
    messages = [p.message for p in lint_spec(spend).problems]
    assert any("it is called with the sources ['activities'] and 'ds' as keyword arguments" in m for m in messages)
    assert lint_spec(folder(tmp_path)).problems == ()


def test_lint_checks_train_key_against_the_owners_contract_when_every_feature_input_is_shared(tmp_path):
    spend = folder(tmp_path, lambda b: b["train"].update(key=["customer_idd"]))
    assert shared_reads(spend)["activity"].owner.schema == "include/schemas/customer_activity.yaml"
    problems = [p for p in lint_spec(spend).problems if p.key == "train.key.0"]
    assert [p.message for p in problems] == [
        "column 'customer_idd' is not in the contract of shared dataset 'customer_activity' "
        "(include/schemas/customer_activity.yaml, owned by pipeline 'churn'); did you mean 'customer_id'? (the job's "
        "rows are joined to their outcomes and scored by this key)"]
    assert problems[0].line == line_of(spend, "- customer_idd")
