"""Where Skylift's services are: configuration only, never code.

Each setting is an Airflow Variable (so `AIRFLOW_VAR_<NAME>` in the environment works too),
read at task run time. The defaults are the embedded set-up: everything in local files under
`$AIRFLOW_HOME/skylift/`, Spark on `local[*]`, MLflow on SQLite.

| variable                      | embedded default                         | production example                |
| ----------------------------- | ---------------------------------------- | --------------------------------- |
| skylift_lake_root             | file://$AIRFLOW_HOME/skylift/lake        | s3://skylift-lake                 |
| skylift_lake_conn_id          | aws_default (only used for s3:// roots)  | skylift_s3                        |
| skylift_drops_root            | file://$AIRFLOW_HOME/skylift/drops       | s3://skylift-landing              |
| skylift_mlflow_tracking_uri   | sqlite:///$AIRFLOW_HOME/skylift/mlflow.db| http://mlflow:5000                |
| skylift_mlflow_artifact_root  | file://$AIRFLOW_HOME/skylift/mlartifacts | (unset: the server decides)       |
| skylift_spark_master          | local[*]                                 | spark://spark-master:7077         |
| skylift_training_image        | skylift-training:latest                  | registry.example.com/skylift:1.0  |
| skylift_lake_verify_checksums | false (reads check sizes only)           | true (every read hashes its files)|
| skylift_search_storage        | file://$AIRFLOW_HOME/skylift/optuna      | postgresql+psycopg2://.../optuna  |

`skylift_search_storage` holds the Optuna studies of hyper-parameter searches (include/training/search.py):
a folder of journal files works for workers on one machine; workers on several need a database URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")).resolve()


def _defaults() -> dict[str, str]:
    return embedded_values(_home() / "skylift")


def embedded_values(base: Path, spark_master: str = "local[*]") -> dict[str, str]:
    """Every setting's embedded value, with Skylift's files under `base` (the one home of these)."""
    return {
        "skylift_lake_root": f"file://{base}/lake",
        "skylift_lake_conn_id": "aws_default",
        "skylift_drops_root": f"file://{base}/drops",
        "skylift_mlflow_tracking_uri": f"sqlite:///{base}/mlflow.db",
        "skylift_mlflow_artifact_root": f"file://{base}/mlartifacts",
        "skylift_spark_master": spark_master,
        "skylift_training_image": "skylift-training:latest",
        "skylift_lake_verify_checksums": "false",
        "skylift_search_storage": f"file://{base}/optuna",
    }


def as_environment(values: dict[str, str]) -> dict[str, str]:
    """Settings as the `AIRFLOW_VAR_<NAME>` environment variables Airflow reads them from."""
    return {f"AIRFLOW_VAR_{name.upper()}": value for name, value in values.items()}


def get_setting(name: str) -> str:
    """One setting: the Airflow Variable if set (or AIRFLOW_VAR_<NAME>), else the embedded default."""
    from airflow.sdk import Variable

    defaults = _defaults()
    if name not in defaults:
        raise KeyError(f"unknown Skylift setting {name!r}; known: {sorted(defaults)}")
    value = Variable.get(name, default=None)
    return value if value not in (None, "") else defaults[name]


@dataclass(frozen=True)
class Settings:
    lake_root: str
    lake_conn_id: str
    drops_root: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str | None
    spark_master: str
    training_image: str
    lake_verify_checksums: bool = False
    search_storage: str = ""

    @classmethod
    def resolve(cls) -> Settings:
        tracking = get_setting("skylift_mlflow_tracking_uri")
        # An artifact root only makes sense for a file/database store; a server manages its own.
        artifacts = None if tracking.startswith("http") else get_setting("skylift_mlflow_artifact_root")
        return cls(
            lake_root=get_setting("skylift_lake_root"),
            lake_conn_id=get_setting("skylift_lake_conn_id"),
            drops_root=get_setting("skylift_drops_root"),
            mlflow_tracking_uri=tracking,
            mlflow_artifact_root=artifacts,
            spark_master=get_setting("skylift_spark_master"),
            training_image=get_setting("skylift_training_image"),
            lake_verify_checksums=get_setting("skylift_lake_verify_checksums").strip().lower() in ("true", "1", "yes"),
            search_storage=get_setting("skylift_search_storage"),
        )
