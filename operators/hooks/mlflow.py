"""MLflow tracking and registry, configured from Skylift settings."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from mlflow import MlflowClient


DAG_RUN_TAG = "skylift.dag_run_id"
DS_TAG = "skylift.ds"
STALE_TAG = "skylift.stale_run"


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
        from include.registry import client_for

        return client_for(self.tracking_uri)

    def get_conn(self) -> MlflowClient:
        return self.client

    def fail_stale_runs(self, experiment: str, dag_run_id: str, ds: str) -> list[str]:
        """Mark FAILED the runs an earlier attempt of this DAG run and date left RUNNING.

        A training process that was killed (worker lost, pod evicted, SIGKILL) never ends its
        MLflow run; without this it would show as RUNNING forever. Runs carry the tags
        `skylift.dag_run_id` and `skylift.ds`; only one attempt of a task runs at a time, so a
        RUNNING run of the same DAG run and date found when a new attempt starts is stale.
        """
        from include import registry

        if "'" in dag_run_id or "'" in ds:  # cannot be quoted in a search filter; nothing to match safely
            return []
        client = self.client
        with registry.translated(client, f"looking up experiment {experiment!r}"):
            found = client.get_experiment_by_name(experiment)
            if found is None:
                return []
            stale = client.search_runs(
                [found.experiment_id],
                filter_string=(f"tags.`{DAG_RUN_TAG}` = '{dag_run_id}' and tags.`{DS_TAG}` = '{ds}' "
                               "and attributes.status = 'RUNNING'"),
                max_results=100)
        reason = (f"marked FAILED by a later attempt of DAG run {dag_run_id} (ds={ds}): the process that ran it "
                  "stopped without ending the run (killed or lost)")
        for run in stale:
            with registry.translated(client, f"marking stale MLflow run {run.info.run_id} FAILED"):
                client.set_tag(run.info.run_id, STALE_TAG, reason)
                client.set_terminated(run.info.run_id, status="FAILED")
            self.log.warning("MLflow run %s was left RUNNING by an earlier attempt; %s", run.info.run_id, reason)
        return [run.info.run_id for run in stale]

    def ui_base(self) -> str | None:
        """The web UI's address when the tracking URI is a server."""
        return self.tracking_uri.rstrip("/") if self.tracking_uri.startswith("http") else None
