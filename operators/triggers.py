"""Triggers for deferrable Skylift tasks (run in the triggerer, off the worker slots)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DropTrigger(BaseTrigger):
    """Fires once a source drop has files (or when the timeout passes). Never raises: failures
    become an `error` event that the sensor turns into a clear task failure.
    """

    def __init__(self, uri: str, source_format: str, conn_id: str, poke_interval: float = 60.0,
                 timeout: float = 3600.0, started: float | None = None) -> None:
        super().__init__()
        self.uri = uri
        self.source_format = source_format
        self.conn_id = conn_id
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.started = started if started is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("operators.triggers.DropTrigger", {
            "uri": self.uri, "source_format": self.source_format, "conn_id": self.conn_id,
            "poke_interval": self.poke_interval, "timeout": self.timeout, "started": self.started,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from operators.sensors import find_drop_files

        while True:
            try:
                files = await asyncio.to_thread(find_drop_files, self.uri, self.source_format, self.conn_id)
            except Exception as exc:  # reported as an event: a trigger must not die silently
                yield TriggerEvent({"status": "error", "uri": self.uri, "message": f"{type(exc).__name__}: {exc}"})
                return
            if files:
                yield TriggerEvent({"status": "found", "uri": self.uri, "files": files})
                return
            if time.time() - self.started >= self.timeout:
                yield TriggerEvent({"status": "timeout", "uri": self.uri})
                return
            await asyncio.sleep(self.poke_interval)
