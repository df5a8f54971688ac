"""One owner per pipeline name, registered model and dataset: clashes between specs of a folder are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from include.errors import SpecError
from operators.spec.loader import load_spec
from operators.spec.ownership import claims

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "dags" / "pipelines" / "churn.yaml"


def other_pipeline() -> dict:
    """The shipped churn spec renamed so that it owns nothing churn owns."""
    body = yaml.safe_load(CHURN.read_text())
    body["pipeline"] = "other"
    for name, source in body["sources"].items():
        source["dataset"] = f"other_{name}"
    body["register"]["model_name"] = "other"
    return body


def folder_with(tmp_path: Path, change=None) -> tuple[Path, Path]:
    body = other_pipeline()
    if change:
        change(body)
    first = tmp_path / "churn.yaml"
    first.write_text(CHURN.read_text())
    second = tmp_path / "other.yaml"
    second.write_text(yaml.safe_dump(body, sort_keys=False))
    return first, second


def line_of(path: Path, text: str) -> int:
    body = path.read_text()
    return body[: body.index(text)].count("\n") + 1


def test_specs_that_own_different_things_load_side_by_side(tmp_path):
    first, second = folder_with(tmp_path)
    assert load_spec(first).pipeline == "churn"
    assert load_spec(second).pipeline == "other"


@pytest.mark.parametrize("change,kind,name,first_at,second_at,keys", [
    (lambda b: b.update(pipeline="churn"), "pipeline name", "churn", "pipeline:", "pipeline:", ("pipeline",) * 2),
    (lambda b: b["register"].update(model_name="churn"), "registered model", "churn", "model_name:", "model_name:",
     ("register.model_name",) * 2),
    (lambda b: b["sources"]["activity"].update(dataset="customer_activity"), "raw/validated dataset",
     "customer_activity", "dataset: customer_activity", "dataset: customer_activity",
     ("sources.activity.dataset",) * 2),
    (lambda b: b["sources"]["churn_labels"].pop("dataset"), "raw/validated dataset", "churn_labels",
     "  churn_labels:", "  churn_labels:", ("sources.churn_labels",) * 2),
    (lambda b: b["features"].update(dataset="churn_features"), "features dataset", "churn_features", "pipeline:",
     "dataset: churn_features", ("pipeline", "features.dataset")),  # the first derives it from its pipeline name
    (lambda b: b.update(score={"dataset": "churn_predictions"}), "predictions dataset", "churn_predictions",
     "pipeline:", "dataset: churn_predictions", ("pipeline", "score.dataset")),
])
def test_a_clash_refuses_both_specs_naming_both_files_and_lines(tmp_path, change, kind, name, first_at, second_at,
                                                                 keys):
    first, second = folder_with(tmp_path, change)
    first_where = f"{first}:{line_of(first, first_at)}"
    second_where = f"{second}:{line_of(second, second_at)}"
    with pytest.raises(SpecError) as one:
        load_spec(first)
    with pytest.raises(SpecError) as two:
        load_spec(second)
    other = yaml.safe_load(second.read_text())["pipeline"]
    assert str(one.value).startswith(f"{first_where}: {keys[0]}: {kind} {name!r} is also written by {second_where} "
                                     f"(pipeline {other!r}); ")
    assert str(two.value).startswith(f"{second_where}: {keys[1]}: {kind} {name!r} is also written by {first_where} "
                                     "(pipeline 'churn'); ")
    assert str(one.value).endswith("each belong to one spec: rename one of them")


def test_reading_another_specs_model_is_not_a_clash(tmp_path):
    """A spec that only scores with a model writes its predictions, not the model."""
    def score_only(body):
        body["register"]["model_name"] = "churn"
        body["dags"] = {"score": {"schedule": None, "stages": ["score"]}}

    first, second = folder_with(tmp_path, score_only)
    load_spec(first)
    load_spec(second)
    model = [c for c in claims(second) if c.kind == "model"]
    assert [(c.name, c.access) for c in model] == [("churn", "reads")]


def test_a_broken_sibling_is_left_to_its_own_dag_file(tmp_path):
    first, second = folder_with(tmp_path)
    second.write_text("pipeline: [unclosed\n")
    assert load_spec(first).pipeline == "churn"


def test_claims_are_cached_until_the_file_changes(tmp_path):
    first, second = folder_with(tmp_path)
    before = claims(second)
    assert claims(second) is before
    second.write_text(second.read_text().replace("model_name: other", "model_name: renamed"))
    stat = second.stat()
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = claims(second)
    assert after is not before
    assert "renamed" in {c.name for c in after if c.kind == "model"}


def test_the_cheap_index_agrees_with_the_typed_spec():
    """The index reads the YAML nodes only; it must name what the spec model derives."""
    for path in sorted((ROOT / "dags" / "pipelines").glob("*.yaml")):
        spec = load_spec(path)
        written = {(c.kind, c.name) for c in claims(path) if c.access == "writes"}
        expected = {("pipeline", spec.pipeline), ("features", spec.features_dataset),
                    ("predictions", spec.predictions_dataset), ("model", spec.register_.model_name),
                    *(("raw", b.dataset) for b in spec.source_bindings)}
        assert written == expected, path.name
