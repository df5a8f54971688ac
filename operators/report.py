"""Human-readable summaries: where a pipeline's outputs are, and a model version's lineage."""

from __future__ import annotations

from pathlib import Path

from operators.settings import Settings


def _lake():
    from include.lake import Lake
    from operators.hooks.lake import LakeHook

    settings = Settings.resolve()
    return LakeHook(settings.lake_root, settings.lake_conn_id).get_lake() if settings.lake_root.startswith("s3") \
        else Lake(settings.lake_root)


def lake_listing(lake, datasets: list[tuple[str, str]]) -> list[str]:
    lines = []
    for zone, dataset in datasets:
        for ds in lake.partitions(zone, dataset):
            manifest = lake.manifest(zone, dataset, ds)
            size = f"{manifest.row_count} rows" if manifest.data_files else f"{len(manifest.files)} files"
            lines.append(f"  {zone}/{dataset}/ds={ds}: {size:>10}  {lake.partition_uri(zone, dataset, ds)}")
    return lines


def demo_report(pipeline: str, ds: str, home: Path) -> str:
    from operators.spec.loader import load_spec, project_root

    spec = load_spec(project_root() / "dags" / "pipelines" / f"{pipeline}.yaml")
    settings = Settings.resolve()
    lake = _lake()
    zones = [("raw", spec.raw_dataset), ("validated", spec.raw_dataset), ("quarantine", spec.raw_dataset),
             ("reports", spec.raw_dataset), ("features", spec.features_dataset),
             ("predictions", spec.predictions_dataset)]
    if spec.labels is not None:
        zones[4:4] = [("validated", spec.label_source.dataset)]
        zones.append(("evaluations", spec.evaluations_dataset))
    model = spec.register_.model_name
    lines = ["", "=" * 78, f"Skylift demo: {pipeline} nightly pipeline done for ds={ds}", "=" * 78,
             "Lake partitions:", *lake_listing(lake, zones), "",
             f"Validation report: {_file_or_why(lake, 'reports', spec.raw_dataset, ds, 'validation.html')}",
             f"Predictions:       "
             f"{_file_or_why(lake, 'predictions', spec.predictions_dataset, ds, 'part-00000.parquet')}",
             *evaluation_summary(lake, spec),
             "", *registry_summary(settings.mlflow_tracking_uri, model), "",
             "Open the MLflow UI on these runs:",
             f"  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} --port 5000",
             "Trace the champion back to its raw files:",
             f"  .venv/bin/skylift --home {home} lineage {model} champion",
             "Serve the champion over HTTP (it prints a curl line to try; README: Serving):",
             f"  .venv/bin/skylift --home {home} serve {pipeline} --port 5050",
             f"Airflow metadata DB: {home / 'airflow' / 'airflow.db'}"]
    return "\n".join(lines)


def _file_or_why(lake, zone: str, dataset: str, ds: str, name: str) -> str:
    """A file's URI, or why there is none yet: the first nights of a pipeline whose outcomes land
    later train nothing, so nothing is scored until a model has passed the gate."""
    if lake.manifest(zone, dataset, ds) is None:
        return f"none for ds={ds} ({zone}/{dataset} has no partition yet: see the run's task states)"
    return lake.file_uri(zone, dataset, ds, name)


def evaluation_summary(lake, spec) -> list[str]:
    """Where the live metrics went: one line per evaluated day and model version."""
    if spec.labels is None:
        return []
    days = lake.partitions("evaluations", spec.evaluations_dataset)
    if not days:
        return [f"Evaluations:       none yet (outcomes land {spec.labels.delay_days} day(s) after a scored day)"]
    metric = spec.deploy.gate.metric if spec.deploy else None
    lines = [f"Evaluations:       {lake.partition_uri('evaluations', spec.evaluations_dataset, days[-1])} "
             f"(live metrics, also in MLflow as live_<metric> on each version's run)"]
    for ds in days:
        for row in lake.read_table("evaluations", spec.evaluations_dataset, ds).to_pylist():
            value = f"{metric}={row[metric]:.4f}" if metric in row and row[metric] is not None else ""
            lines.append(f"  ds={ds} v{row['model_version']}: {row['labelled_rows']} labelled rows {value}")
    return lines


def registry_summary(tracking_uri: str, model: str) -> list[str]:
    from operators.hooks.mlflow import MlflowHook

    client = MlflowHook(tracking_uri).client
    # search results carry no aliases; fetch each version for them
    found = client.search_model_versions(f"name = '{model}'")
    versions = sorted((client.get_model_version(model, v.version) for v in found), key=lambda v: int(v.version))
    lines = [f"MLflow ({tracking_uri}): model {model!r}, {len(versions)} version(s)"]
    for v in versions:
        aliases = ",".join(v.aliases) or "-"
        run = client.get_run(v.run_id)
        metrics = ", ".join(f"{k}={val:.4f}" for k, val in sorted(run.data.metrics.items()) if k in
                            ("auc", "rmse", "r2", "logloss", "f1"))
        lines.append(f"  v{v.version} [{aliases}] run {v.run_id} {metrics}  gate: {v.tags.get('skylift.gate', '-')}")
    return lines


def partition_lineage(zone: str, dataset: str, ds: str) -> list[str]:
    from include.lineage import trace

    return trace(_lake(), zone, dataset, [ds]).lines()


def model_lineage(model: str, version: str) -> list[str]:
    """From a model version (or alias) to its run, feature partitions, validation and raw files."""
    from include.lineage import trace
    from operators.hooks.mlflow import MlflowHook

    settings = Settings.resolve()
    client = MlflowHook(settings.mlflow_tracking_uri).client
    mv = client.get_model_version(model, version) if version.isdigit() else \
        client.get_model_version_by_alias(model, version)
    run = client.get_run(mv.run_id)
    # Registration tags the version with the feature partitions it was trained on: "dataset@date,...".
    pairs = [item.split("@", 1) for item in mv.tags.get("skylift.features", "").split(",") if "@" in item]
    dataset = pairs[0][0] if pairs else None
    dates = [d for _, d in pairs]
    lines = [f"model {model} v{mv.version} (aliases: {', '.join(mv.aliases) or '-'})",
             f"  run {mv.run_id} in experiment {run.info.experiment_id}",
             f"  dag run {mv.tags.get('skylift.dag_run_id', '?')} of {mv.tags.get('skylift.dag_id', '?')}"]
    if dataset and dates:
        lines += ["  built from:"] + [f"    {line}" for line in trace(_lake(), "features", dataset, dates).lines()]
    else:
        lines.append("  (the run records no feature partitions)")
    return lines
