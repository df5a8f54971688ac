"""Batch scoring: Skylift's engines against `mlflow.pyfunc.spark_udf`, on the same model and rows.

    .venv/bin/python -m benchmarks.bench_scoring [--rows 500000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import pandas as pd

from benchmarks.common import best_of, table


def make_model(tmp: str, rows: int) -> tuple[str, pd.DataFrame]:
    import mlflow
    import xgboost as xgb
    from mlflow.models import infer_signature

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 20)), columns=[f"f{i}" for i in range(20)])
    label = (frame["f0"] + frame["f1"] * 0.5 + rng.normal(size=rows) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 2},
                        xgb.DMatrix(frame.head(50_000), label=label.head(50_000)), num_boost_round=100)
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    # An explicit artifact root: with a sqlite store MLflow would otherwise write ./mlruns into the cwd.
    experiment = mlflow.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(booster, name="model", signature=infer_signature(frame.head(100)),
                                        input_example=frame.head(2))
    return info.model_uri, frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from include import scoring
    from include.spark_scoring import score_frame

    with tempfile.TemporaryDirectory() as tmp:
        uri, frame = make_model(tmp, args.rows)
        path = f"{tmp}/features.parquet"
        frame.to_parquet(path)
        tracking = f"sqlite:///{tmp}/mlflow.db"
        spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", "8").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        features = spark.read.parquet(path).cache()
        features.count()

        def in_process():
            scoring.load(uri).predict(pd.read_parquet(path))

        def map_in_pandas():
            score_frame(features, uri, tracking, ["f0"], "bench", "1", "2026-11-24").write.mode(
                "overwrite").parquet(f"{tmp}/out1")

        def spark_udf():
            import mlflow.pyfunc

            udf = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")
            features.withColumn("prediction", udf(*features.columns)).write.mode("overwrite").parquet(f"{tmp}/out2")

        rows = []
        for name, func in [("mlflow.pyfunc.spark_udf", spark_udf), ("Skylift Spark engine (mapInPandas)",
                                                                     map_in_pandas),
                           ("Skylift in-process engine", in_process)]:
            seconds = best_of(func, repeat=3)
            rows.append((name, seconds, args.rows / seconds))
        spark.stop()
    print(table(f"Batch scoring, {args.rows:,} rows x 20 features, XGBoost 100 trees, Spark local[2]", rows,
                "mlflow.pyfunc.spark_udf"))


if __name__ == "__main__":
    main()
