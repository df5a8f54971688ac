"""Waiting before a stage reads: for a day's source drop (a deferrable sensor, no worker slot is
held while waiting), and for another pipeline's shared partition (reschedule mode, likewise)."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.sensor import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from operators.base import partition_date
from operators.drops import DropState, DropWatch, inspect_drop, render_drop_uri
from operators.settings import Settings
from operators.spec.models import CompletionSpec

if TYPE_CHECKING:
    from include.shared_partitions import SharedPartition


def find_drop(uri: str, source_format: str, conn_id: str, completion: CompletionSpec) -> DropState:
    """The drop at `uri` as it is now, judged by `completion` (empty while nothing has landed)."""
    import fsspec

    from operators.hooks.lake import LakeHook

    options = LakeHook(root=uri, conn_id=conn_id).storage_options()
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return inspect_drop(fs, path, source_format, completion)


class DropSensor(BaseSensorOperator):
    """Waits until the day's drop is whole by the spec's completion rules (marker or manifest,
    file count) and has settled (names and sizes unchanged for `settle_seconds`)."""

    template_fields = ("source_uri",)
    ui_color = "#f0f0f0"

    def __init__(self, *, pipeline: str, source_uri: str, source_format: str, deferrable: bool = True,
                 completion: CompletionSpec | None = None, pipeline_start: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.pipeline_start = pipeline_start  # the spec's start_date (see operators.base.partition_date)
        self.source_uri = source_uri
        self.source_format = source_format
        self.deferrable = deferrable
        self.completion = completion or CompletionSpec()
        self._watch: DropWatch | None = None  # pokes of one attempt share it (settle time)

    def _target(self, context: Any) -> tuple[str, str]:
        settings = Settings.resolve()
        return render_drop_uri(self.source_uri, partition_date(context), settings.drops_root), settings.lake_conn_id

    def poke(self, context: Any) -> bool:
        uri, conn_id = self._target(context)
        drop = find_drop(uri, self.source_format, conn_id, self.completion)
        if self._watch is None:
            self._watch = DropWatch(self.completion.settle_seconds)
        wait = self._watch.observe(drop, time.time())
        self.log.info("drop at %s: %d data file(s); %s", uri, len(drop.listing.data),
                      "; ".join(drop.missing) or ("ready" if wait == 0 else f"settling ({wait:.0f}s to go)"))
        return wait == 0

    def execute(self, context: Any) -> Any:
        if not self.deferrable or self.poke(context):
            return super().execute(context) if not self.deferrable else None
        from operators.triggers import DropTrigger

        uri, conn_id = self._target(context)
        self.defer(
            trigger=DropTrigger(uri=uri, source_format=self.source_format, conn_id=conn_id,
                                poke_interval=self.poke_interval, timeout=self.timeout,
                                completion=self.completion.model_dump()),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + self.poke_interval),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event.get("status") == "found":
            self.log.info("drop at %s is complete: %s", event["uri"], ", ".join(event.get("files", [])))
            return
        if event.get("status") == "timeout":
            if event.get("empty", True):
                raise AirflowSensorTimeout(f"no drop at {event['uri']} after {self.timeout:.0f}s")
            raise AirflowSensorTimeout(f"the drop at {event['uri']} is not complete after {self.timeout:.0f}s: "
                                       f"{'; '.join(event.get('missing', []))}")
        raise AirflowException(f"waiting for the drop at {event.get('uri')} failed: {event.get('message')}")


class SharedPartitionSensor(BaseSensorOperator):
    """Waits until the pipeline that owns a shared dataset (a spec's `reads:`) has published the
    day's validated partition: its manifest exists, names the owner as writer and is not being
    rebuilt. Reschedule mode: between looks the task gives its worker slot back; `deferrable`:
    it waits in the triggerer instead (`SharedPartitionTrigger`). A time-out names the partition,
    the owning pipeline and its DAG, and why it is not there yet.
    """

    ui_color = "#f0f0f0"

    def __init__(self, *, pipeline: str, shared: SharedPartition, pipeline_start: str | None = None,
                 mode: str = "reschedule", deferrable: bool = False, **kwargs: Any) -> None:
        super().__init__(mode="poke" if deferrable else mode, **kwargs)
        self.deferrable = deferrable
        self.pipeline = pipeline  # the reading pipeline
        self.pipeline_start = pipeline_start  # the spec's start_date (see operators.base.partition_date)
        self.shared = shared
        self._last_reason: str | None = None

    @cached_property
    def lake(self):  # -> include.lake.Lake (imported lazily: pyarrow is not needed to parse DAGs)
        from operators.hooks.lake import LakeHook

        settings = Settings.resolve()
        return LakeHook(root=settings.lake_root, conn_id=settings.lake_conn_id).get_lake()

    def poke(self, context: Any) -> bool:
        from include.shared_partitions import shared_partition_state

        state = shared_partition_state(self.lake, self.shared, partition_date(context))
        self._last_reason = state.reason
        self.log.info("%s", state.reason)
        return state.ready

    def execute(self, context: Any) -> Any:
        if self.deferrable:
            return self._defer_unless_ready(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(self.timeout_message(partition_date(context))) from exc

    def _defer_unless_ready(self, context: Any) -> None:
        if self.poke(context):
            return
        from operators.triggers import SharedPartitionTrigger

        settings = Settings.resolve()
        shared = self.shared
        self.defer(
            trigger=SharedPartitionTrigger(lake_root=settings.lake_root, conn_id=settings.lake_conn_id,
                                           owner=shared.owner, dataset=shared.dataset, ds=partition_date(context),
                                           owner_dags=list(shared.owner_dags), owner_spec=shared.owner_spec,
                                           poke_interval=self.poke_interval, timeout=self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + self.poke_interval),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        ds = partition_date(context)
        if event.get("status") == "found":
            self.log.info("%s", event.get("reason"))
            return
        if event.get("status") == "timeout":
            self._last_reason = event.get("reason")
            raise AirflowSensorTimeout(self.timeout_message(ds))
        raise AirflowException(f"waiting for {self.shared.partition(ds)} of pipeline {self.shared.owner!r} failed: "
                               f"{event.get('message')}")

    def timeout_message(self, ds: str) -> str:
        waited = f"{self.timeout / 60:.0f} min" if self.timeout >= 60 else f"{self.timeout:.0f}s"
        reason = self._last_reason or f"{self.shared.partition(ds)} is not published"
        publisher = " or ".join(self.shared.owner_dags) or f"pipeline {self.shared.owner!r}'s validate task"
        return (f"gave up after {waited}: {reason}. Pipeline {self.pipeline!r} only reads this dataset; its owner "
                f"{self.shared.owner!r} publishes it: run or fix {publisher} for {ds}, then clear this task")
