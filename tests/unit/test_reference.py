"""The committed JSON Schema and SPEC.md reference are generated from the spec model: stale copies fail here."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from operators.cli import main
from operators.spec.models import PipelineSpec
from operators.spec.reference import REFERENCE_FILE, SCHEMA_FILE, reference_text, schema_text

PIPELINES = SCHEMA_FILE.parent
REGENERATE = "regenerate with `.venv/bin/python -m operators.spec.reference` and commit the result"


def test_the_committed_json_schema_is_the_models():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), f"{SCHEMA_FILE} is stale: {REGENERATE}"


def test_the_committed_reference_is_the_models():
    assert REFERENCE_FILE.read_text(encoding="utf-8") == reference_text(), f"{REFERENCE_FILE} is stale: {REGENERATE}"


def test_skylift_schema_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()


@pytest.mark.parametrize("spec", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_point_editors_at_the_schema_and_satisfy_it(spec: Path):
    first = spec.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE.name}"
    jsonschema.validate(_as_json(yaml.safe_load(spec.read_text())), json.loads(SCHEMA_FILE.read_text()))


def test_the_schema_refuses_what_the_model_refuses():
    body = _as_json(yaml.safe_load((PIPELINES / "churn.yaml").read_text()))
    body["features"]["lookback_dayz"] = 3
    with pytest.raises(jsonschema.ValidationError, match="lookback_dayz"):
        jsonschema.validate(body, json.loads(SCHEMA_FILE.read_text()))


def test_the_reference_lists_every_key_of_every_section():
    text = REFERENCE_FILE.read_text()
    for name, field in PipelineSpec.model_fields.items():
        assert f"| `{field.alias or name}` |" in text
    for key in ("sources.<name>.validate.on_failure", "labels.delay_days", "dags.<name>.params.<name>.maximum",
                "deploy.gate.min_delta", "train.kubernetes.namespace"):
        assert f"| `{key}` |" in text
    assert "## The feature-job contract" in text


def _as_json(value):
    """YAML dates become the strings an editor's schema check sees."""
    return json.loads(json.dumps(value, default=str))
