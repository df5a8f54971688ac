"""Triggers for deferrable Skylift tasks (run in the triggerer, off the worker slots)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DropTrigger(BaseTrigger):
    """Fires once a source drop is whole by its completion rules and has settled (or when the
    timeout passes). Never raises: failures become an `error` event that the sensor turns into a
    clear task failure. Yields exactly one event.
    """

    def __init__(self, uri: str, source_format: str, conn_id: str, poke_interval: float = 60.0,
                 timeout: float = 3600.0, started: float | None = None,
                 completion: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.uri = uri
        self.source_format = source_format
        self.conn_id = conn_id
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.started = started if started is not None else time.time()
        self.completion = completion or {}  # CompletionSpec fields (kwargs must serialize as plain data)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("operators.triggers.DropTrigger", {
            "uri": self.uri, "source_format": self.source_format, "conn_id": self.conn_id,
            "poke_interval": self.poke_interval, "timeout": self.timeout, "started": self.started,
            "completion": self.completion,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # reported as an event: a trigger must not die silently
            event = {"status": "error", "uri": self.uri, "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        """Look at the drop every `poke_interval` until it is whole and unchanged for the settle time."""
        from operators.drops import DropWatch
        from operators.sensors import find_drop
        from operators.spec.models import CompletionSpec

        completion = CompletionSpec.model_validate(self.completion)
        watch = DropWatch(completion.settle_seconds)
        while True:
            drop = await asyncio.to_thread(find_drop, self.uri, self.source_format, self.conn_id, completion)
            now = self._now()
            wait = watch.observe(drop, now)
            if wait == 0:
                return {"status": "found", "uri": self.uri, "files": [f.name for f in drop.listing.data]}
            if now - self.started >= self.timeout:
                missing = list(drop.missing) or [watch.unsettled(now)]
                return {"status": "timeout", "uri": self.uri, "empty": drop.empty, "missing": missing}
            # While settling, look again as soon as the settle time could be over.
            await self._pause(self.poke_interval if wait is None else min(self.poke_interval, wait))

    def _now(self) -> float:
        return time.time()

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class SharedPartitionTrigger(BaseTrigger):
    """Fires once the owner of a shared dataset has published the day's partition whole (see
    include/shared_partitions.py), or when the timeout passes. Never raises: a failure (a partition
    another pipeline wrote, an unreachable lake) becomes an `error` event. Yields exactly one event.
    """

    def __init__(self, lake_root: str, conn_id: str, owner: str, dataset: str, ds: str,
                 owner_dags: list[str] | tuple[str, ...] = (), owner_spec: str | None = None,
                 poke_interval: float = 300.0, timeout: float = 3600.0, started: float | None = None) -> None:
        super().__init__()
        self.lake_root = lake_root
        self.conn_id = conn_id
        self.owner = owner
        self.dataset = dataset
        self.ds = ds
        self.owner_dags = list(owner_dags)  # kwargs must serialize as plain data
        self.owner_spec = owner_spec
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.started = started if started is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("operators.triggers.SharedPartitionTrigger", {
            "lake_root": self.lake_root, "conn_id": self.conn_id, "owner": self.owner, "dataset": self.dataset,
            "ds": self.ds, "owner_dags": self.owner_dags, "owner_spec": self.owner_spec,
            "poke_interval": self.poke_interval, "timeout": self.timeout, "started": self.started,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # reported as an event: a trigger must not die silently
            event = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(event)

    async def _wait(self) -> dict[str, Any]:
        from include.shared_partitions import SharedPartition, shared_partition_state
        from operators.hooks.lake import LakeHook

        shared = SharedPartition(owner=self.owner, dataset=self.dataset, owner_dags=tuple(self.owner_dags),
                                 owner_spec=self.owner_spec)
        lake = await asyncio.to_thread(LakeHook(root=self.lake_root, conn_id=self.conn_id).get_lake)
        while True:
            state = await asyncio.to_thread(shared_partition_state, lake, shared, self.ds)
            if state.ready:
                return {"status": "found", "reason": state.reason}
            if self._now() - self.started >= self.timeout:
                return {"status": "timeout", "reason": state.reason}
            await self._pause(self.poke_interval)

    def _now(self) -> float:
        return time.time()

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
