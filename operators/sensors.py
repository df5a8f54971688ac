"""Waiting for a day's source drop: a deferrable sensor (no worker slot is held while waiting)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from operators.base import partition_date
from operators.drops import list_drop, render_drop_uri
from operators.settings import Settings


def find_drop_files(uri: str, source_format: str, conn_id: str) -> list[str]:
    """Files of the drop at `uri` (empty while the drop has not landed)."""
    import fsspec

    from operators.hooks.lake import LakeHook

    options = LakeHook(root=uri, conn_id=conn_id).storage_options()
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return list_drop(fs, path, source_format)


class DropSensor(BaseSensorOperator):
    template_fields = ("source_uri",)
    ui_color = "#f0f0f0"

    def __init__(self, *, pipeline: str, source_uri: str, source_format: str, deferrable: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.source_uri = source_uri
        self.source_format = source_format
        self.deferrable = deferrable

    def _target(self, context: Any) -> tuple[str, str]:
        settings = Settings.resolve()
        return render_drop_uri(self.source_uri, partition_date(context), settings.drops_root), settings.lake_conn_id

    def poke(self, context: Any) -> bool:
        uri, conn_id = self._target(context)
        files = find_drop_files(uri, self.source_format, conn_id)
        self.log.info("drop at %s: %d file(s)", uri, len(files))
        return bool(files)

    def execute(self, context: Any) -> Any:
        if not self.deferrable or self.poke(context):
            return super().execute(context) if not self.deferrable else None
        from operators.triggers import DropTrigger

        uri, conn_id = self._target(context)
        self.defer(
            trigger=DropTrigger(uri=uri, source_format=self.source_format, conn_id=conn_id,
                                poke_interval=self.poke_interval, timeout=self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + self.poke_interval),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event.get("status") == "found":
            self.log.info("drop at %s has landed: %s", event["uri"], ", ".join(event.get("files", [])))
            return
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(f"no drop at {event['uri']} after {self.timeout:.0f}s")
        raise AirflowException(f"waiting for the drop at {event.get('uri')} failed: {event.get('message')}")
