"""MLflow tracking and registry, configured from Skylift settings."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient


class MlflowHook(BaseHook):
    """A client for one tracking server (or SQLite store) and its model registry."""

    hook_name = "Skylift MLflow"

    def __init__(self, tracking_uri: str, artifact_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root

    def environment(self) -> dict[str, str]:
        """What a training process needs to log to the same place."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_REGISTRY_URI": self.tracking_uri}
        if self.artifact_root:
            env["SKYLIFT_ARTIFACT_ROOT"] = self.artifact_root
        return env

    @cached_property
    def client(self) -> MlflowClient:
        import mlflow

        # Registry URI follows the tracking URI; set both process-wide for pyfunc loading too.
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def get_conn(self) -> MlflowClient:
        return self.client

    def ui_base(self) -> str | None:
        """The web UI's address when the tracking URI is a server."""
        return self.tracking_uri.rstrip("/") if self.tracking_uri.startswith("http") else None
