"""Batch scoring: Skylift's in-process engine against raw `Booster.inplace_predict`, same rows and threads.

    .venv/bin/python -m benchmarks.bench_scoring [--rows 1000000] [--threads 2] [--repeat 5] [--quick]

One XGBoost model (100 trees, depth 6, 20 columns) is logged to MLflow with a signature, as
training does; the same booster is also saved as a plain XGBoost file. Skylift's side is what the
score stage's in-process engine runs: `include.scoring.load(uri)` once (not timed), then
`LoadedModel.predict` (signature check and casts, MLflow's pyfunc, XGBoost). The baseline loads
the file into a `Booster` and calls `inplace_predict` on the same DataFrame. Both set XGBoost's
`nthread` to `--threads` and make one small warm-up call first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import Comparison, Side, emit, interleave, log, python_child, row_of

RAW, SKYLIFT = "raw Booster.inplace_predict", "Skylift in-process engine (scoring.load + predict)"


def make_model(tmp: Path, rows: int) -> tuple[str, str, Path, Path]:
    """(model URI, tracking URI, booster file, features Parquet file)."""
    import mlflow
    import pandas as pd
    import xgboost as xgb
    from mlflow.models import infer_signature

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 20)), columns=[f"f{i}" for i in range(20)])
    label = (frame["f0"] + frame["f1"] * 0.5 + rng.normal(size=rows) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 2},
                        xgb.DMatrix(frame.head(50_000), label=label.head(50_000)), num_boost_round=100)
    tracking = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(tracking)
    # An explicit artifact root: with a sqlite store MLflow would otherwise write ./mlruns into the cwd.
    experiment = mlflow.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(booster, name="model", signature=infer_signature(frame.head(100)),
                                        input_example=frame.head(2))
    booster_file = tmp / "model.ubj"
    booster.save_model(booster_file)
    features = tmp / "features.parquet"
    frame.to_parquet(features)
    return info.model_uri, tracking, booster_file, features


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k rows, 2 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 100_000, 2
    with tempfile.TemporaryDirectory(prefix="skylift-bench-scoring-") as tmp:
        uri, tracking, booster, features = make_model(Path(tmp), args.rows)
        threads = str(args.threads)
        sides = [Side(RAW, python_child("benchmarks.stage_child", "score-booster", str(booster), str(features),
                                        threads)),
                 Side(SKYLIFT, python_child("benchmarks.stage_child", "score-skylift", uri, tracking, str(features),
                                            threads))]
        runs = interleave(sides, args.repeat, progress=log)
    means = {round(r.values["mean"], 5) for rs in runs.values() for r in rs}
    if len(means) != 1:
        raise SystemExit(f"the two sides' scores differ (mean score per run: {sorted(means)})")
    emit([Comparison(
        key="scoring", title=f"Batch scoring: {args.rows:,} rows x 20 columns, XGBoost 100 trees, {threads} threads",
        command=f".venv/bin/python -m benchmarks.bench_scoring --rows {args.rows}", baseline=RAW,
        rows=[row_of(name, r, args.rows) for name, r in runs.items()],
        notes=["Both sides return the same scores (mean checked equal). Model loading is not timed."])])


if __name__ == "__main__":
    main()
