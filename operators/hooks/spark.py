"""Spark sessions for feature jobs: the master is configuration (`local[*]`, `spark://...`)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pyspark.sql import SparkSession

# Measured on 2 cores: 8 shuffle partitions beat Spark's default of 200 by far for daily data.
DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
}


def driver_address(master: str) -> dict[str, str]:
    """Where executors reach the driver (the Airflow worker running the task).

    Local mode and a cluster on loopback stay on 127.0.0.1; a remote cluster connects back to
    this host's name (override with SPARK_DRIVER_HOST, e.g. a pod IP).
    """
    host = os.environ.get("SPARK_DRIVER_HOST")
    if host is None:
        loopback = master.startswith("local") or any(h in master for h in ("//127.0.0.1:", "//localhost:"))
        host = "127.0.0.1" if loopback else socket.gethostname()
    bind = "127.0.0.1" if host == "127.0.0.1" else "0.0.0.0"  # noqa: S104 - executors must reach us
    return {"spark.driver.host": host, "spark.driver.bindAddress": bind}


class SparkHook(BaseHook):
    hook_name = "Skylift Spark"

    def __init__(self, master: str, app_name: str, conf: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.master = master
        self.app_name = app_name
        self.conf = {**DEFAULT_CONF, **driver_address(master), **(conf or {})}

    @contextmanager
    def session(self) -> Iterator[SparkSession]:
        """A session for the length of the block; stopped afterwards so the JVM is released."""
        # Executors must run the same Python (and so the same pyspark and feature code).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        # py4j logs every connection at INFO, also at interpreter exit after logging shut down.
        logging.getLogger("py4j").setLevel(logging.WARNING)

        builder = SparkSession.builder.master(self.master).appName(self.app_name)
        for key, value in self.conf.items():
            builder = builder.config(key, value)
        self.log.info("starting Spark session on %s", self.master)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        try:
            yield spark
        finally:
            spark.stop()

    def get_conn(self) -> Any:
        return self.session()
