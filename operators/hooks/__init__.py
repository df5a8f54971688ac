"""One hook per external system: the lake (local or S3), MLflow, Spark."""
