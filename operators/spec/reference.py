"""The spec's JSON Schema and its key-by-key reference, both generated from the typed model.

    .venv/bin/python -m operators.spec.reference     rewrite both committed files

`dags/pipelines/skylift-spec.schema.json` lets an editor complete and check a spec as it is
typed (the shipped specs point at it with a `yaml-language-server` comment);
`operators/spec/SPEC.md` lists every key with its type, default, bounds and description, then
the feature-job contract. Tests fail when either is older than the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from operators.spec.models import PipelineSpec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "dags" / "pipelines" / "skylift-spec.schema.json"
REFERENCE_FILE = Path(__file__).resolve().parent / "SPEC.md"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"),
          ("minLength", "length >="), ("maxLength", "length <="), ("minItems", "items >="),
          ("maxItems", "items <="), ("pattern", "matches"))

FEATURE_JOB_CONTRACT = """\
## The feature-job contract

`features.job` names a plain PySpark function, `module:function`, in an allowed package
(`include.features`, a project folder's own packages, or `SKYLIFT_FEATURE_PACKAGES`).

- **What it receives.** With `sources:`, each source except the label source (`labels.source`),
  as a keyword argument named after the source, plus `ds`: `build(activity: DataFrame, ds: str)`.
  With the one-source shorthand `source:`, the frame and `ds` positionally. Outcomes never reach
  the job.
- **Each frame** is a Spark DataFrame of the source's validated rows (the contract's columns,
  quarantined rows left out) over the look-back window: the `features.lookback_days` days that
  end with the run's date, the run day included. A `ds` column (string, `YYYY-MM-DD`) says which
  day each row came from. A day missing from the window is skipped and logged; the run day must
  be there, or the stage fails before the job runs.
- **What it returns.** A Spark DataFrame with one row per entity for `ds`, keyed by `train.key`,
  without the label when the spec has `labels:` (outcomes are joined at training time).
- **Columns.** Training uses the numeric and boolean columns except `train.key`, `train.exclude`,
  `ds` and the target; string columns are dropped unless the job encodes them (e.g. one column
  per category).
- **Failures.** Returning `None` or anything but a Spark DataFrame fails the run naming the job
  and the date; so does a result with zero rows (nothing is published). A job whose parameters do
  not match the names above is refused by `skylift lint` (its signature is read without importing
  it) and again before Spark starts.
- **Engines.** The same function runs on Spark or on DuckDB through sqlframe's PySpark API
  (`features.engine`; README "Feature engines"). On DuckDB the frames are sqlframe DataFrames and
  the job's module is imported afresh with `pyspark.sql` resolving to sqlframe, so import PySpark
  the usual way (`from pyspark.sql import functions as F`); a helper module the job imports is
  imported afresh too when it is in the job's own top-level package. The output has Spark's
  column types on both engines; a function sqlframe cannot translate fails the run naming the job
  and `features.engine: spark` as the fix.
"""


def spec_schema() -> dict[str, Any]:
    schema = PipelineSpec.model_json_schema(by_alias=True)
    return {"$schema": DIALECT, "title": "Skylift pipeline spec", **schema}


def schema_text() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=False) + "\n"


def reference_text() -> str:
    schema = spec_schema()
    rows: list[tuple[str, str, str, str]] = []
    _walk(schema, schema, "", rows, set(schema.get("required", ())))
    lines = [
        "# Pipeline spec reference",
        "",
        "<!-- Generated from operators/spec/models.py by `python -m operators.spec.reference`; do not edit. -->",
        "",
        "Every key of a pipeline spec (`dags/pipelines/<name>.yaml`). `<name>` stands for a key you choose.",
        "Unknown keys are errors. Check a spec with `skylift lint`; the same model's JSON Schema is",
        "`dags/pipelines/skylift-spec.schema.json`.",
        "",
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
        *(f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows),
        "",
        FEATURE_JOB_CONTRACT.rstrip(),
        "",
    ]
    return "\n".join(lines)


def _walk(root: dict, node: dict, prefix: str, rows: list, required: set[str]) -> None:
    for name, prop in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        rows.append((key, _type(root, prop), _default(prop, name in required), _describe(root, prop)))
        target = _resolve(root, _single(prop))
        if "properties" in target:
            _walk(root, target, f"{key}.", rows, set(target.get("required", ())))
        values = _values(target)
        items = _resolve(root, _single(values)) if values else {}
        if "properties" in items:
            _walk(root, items, f"{key}.<name>.", rows, set(items.get("required", ())))


def _values(node: dict) -> dict | None:
    """The schema of a mapping's values (a mapping keyed by names: `patternProperties`)."""
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        return values
    patterns = list(node.get("patternProperties", {}).values())
    return patterns[0] if len(patterns) == 1 else None


def _single(prop: dict) -> dict:
    """The non-null branch of an optional field."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    return branches[0] if len(branches) == 1 else prop


def _resolve(root: dict, node: dict) -> dict:
    ref = node.get("$ref", "")
    return root["$defs"][ref.rsplit("/", 1)[-1]] if ref else node


def _type(root: dict, prop: dict) -> str:
    if "anyOf" in prop:
        kinds = [_type(root, b) for b in prop["anyOf"] if b.get("type") != "null"]
        nullable = any(b.get("type") == "null" for b in prop["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "$ref" in prop:
        return "section" if "properties" in _resolve(root, prop) else _type(root, _resolve(root, prop))
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(root, prop.get('items', {}))}"
    if kind == "object":
        values = _values(prop)
        return f"mapping of name to {_type(root, values)}" if values else "mapping"
    return kind


def _default(prop: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _describe(root: dict, prop: dict) -> str:
    target = _resolve(root, _single(prop))
    text = prop.get("description") or target.get("description") or ""
    text = " ".join(text.split())
    bounds = [f"{word} `{target[k]}`" for k, word in BOUNDS if k in target]
    if bounds:
        text = f"{text} ({', '.join(bounds)})" if text else ", ".join(bounds)
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    REFERENCE_FILE.write_text(reference_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE} and {REFERENCE_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
