"""What a `skylift run` wrote: lake partitions, validation reports, MLflow versions, the log."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from operators.project import Project
from operators.settings import embedded_values

if TYPE_CHECKING:
    from operators.runner import RunOutcome


def pipeline_datasets(spec: Any) -> list[tuple[str, str]]:
    """Every (zone, dataset) a pipeline's stages publish to."""
    pairs = []
    for binding in spec.source_bindings:
        pairs += [("raw", binding.dataset), ("validated", binding.dataset), ("quarantine", binding.dataset),
                  ("reports", binding.dataset)]
    if spec.features:
        pairs.append(("features", spec.features_dataset))
    if spec.score:
        pairs.append(("predictions", spec.predictions_dataset))
    return pairs


def run_summary(project: Project, spec_file: Path, outcomes: list[RunOutcome], log: Path) -> list[str]:
    from include.lake import Lake
    from operators.spec.loader import load_spec

    spec = load_spec(spec_file)
    settings = embedded_values(project.state_dir)
    lake = Lake(settings["skylift_lake_root"])
    lines = ["", f"Done: {outcomes[0].dag_id} for {', '.join(str(o.day) for o in outcomes)}"]
    for outcome in outcomes:
        lines.append(f"{outcome.day} (run {outcome.run_id}):")
        lines += partition_lines(lake, spec, outcome)
    lines += model_lines(settings["skylift_mlflow_tracking_uri"], spec, {o.run_id for o in outcomes})
    lines.append(f"Full Airflow log: {log}")
    return lines


# The stage whose task writes each zone (its task is `<stage>` or `<stage>_<source>`).
WRITTEN_BY = {"raw": "ingest", "validated": "validate", "quarantine": "validate", "reports": "validate",
              "features": "features", "predictions": "score"}


def partition_lines(lake: Any, spec: Any, outcome: RunOutcome) -> list[str]:
    ds = outcome.day.isoformat()
    lines = []
    for zone, dataset in pipeline_datasets(spec):
        manifest = lake.manifest(zone, dataset, ds)
        if manifest is None:
            continue
        stage = WRITTEN_BY[zone]
        ran = any(t.task_id == stage or t.task_id.startswith(f"{stage}_") for t in outcome.tasks)
        how = "written" if manifest.run_id == outcome.run_id else \
            "kept (unchanged inputs)" if ran else f"from run {manifest.run_id} (this DAG has no {stage} task)"
        size = f"{manifest.row_count} rows" if manifest.data_files else f"{len(manifest.files)} files"
        where = lake.partition_uri(zone, dataset, ds)
        if zone == "reports":
            where = lake.file_uri(zone, dataset, ds, "validation.html")
        lines.append(f"  {zone}/{dataset}/ds={ds}: {size}, {how}  {where}")
    return lines or ["  (no lake partition for this date)"]


def model_lines(tracking_uri: str, spec: Any, run_ids: set[str | None]) -> list[str]:
    """Model versions registered by these DAG runs, with their aliases and MLflow run."""
    if not spec.register_ or not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return []
    from operators.hooks.mlflow import MlflowHook

    client = MlflowHook(tracking_uri).client
    model = spec.register_.model_name
    found = [v for v in client.search_model_versions(f"name = '{model}'")
             if v.tags.get("skylift.dag_run_id") in run_ids]
    lines = []
    for version in sorted(found, key=lambda v: int(v.version)):
        full = client.get_model_version(model, version.version)  # search results carry no aliases
        aliases = ",".join(full.aliases) or "-"
        lines.append(f"  MLflow: model {model} v{version.version} [{aliases}] from run {version.run_id} "
                     f"(gate: {_shortened(full.tags.get('skylift.gate', '-'))})")
    if lines:
        lines.append(f"  MLflow UI: .venv/bin/mlflow ui --backend-store-uri {tracking_uri}")
    return lines


def _shortened(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
