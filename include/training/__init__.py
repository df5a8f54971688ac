"""The training entrypoint: runs inside a Kubernetes pod or as a local subprocess, knows nothing of Airflow.

`python -m include.training.entrypoint --config '<json>'` loads feature partitions from the lake,
splits off a key-hashed holdout, trains an XGBoost or PyTorch model, and records everything in one
MLflow run. See `include.training.entrypoint` for the config and result formats.
"""
