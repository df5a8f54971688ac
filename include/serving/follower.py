"""Follow `models:/<name>@champion`: load each new champion fully, then swap one reference.

A request reads `current` once and scores with that object to the end, so requests in flight
finish on the version they started with while new requests get the new one; nothing restarts
and nothing waits. A background thread asks the registry every `poll_seconds`. A check that
fails (registry unreachable, the new version cannot be loaded) keeps the current model serving,
is logged and counted, and is retried at the next poll.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include import registry
from include.errors import SkyliftError
from include.serving.metrics import ServingMetrics
from include.serving.model import ServedModel, load_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingConfig:
    """What to serve and from which registry (explicit URIs: no process-wide MLflow settings)."""

    model_name: str
    tracking_uri: str
    registry_uri: str | None = None
    poll_seconds: float = 5.0
    # Serve this version only, whatever the alias says: a Kubernetes Deployment pins the version it
    # rolls out, so that its rolling update, readiness and rollback decide what answers (include/deploy).
    version: str | None = None


class ChampionFollower:
    def __init__(self, config: ServingConfig, metrics: ServingMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._current: ServedModel | None = None
        self.problem: str | None = "not started"  # why no model is served yet, or why the last check failed
        self._check_lock = threading.Lock()  # one check at a time (poller, start, tests)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: Path | None = None
        self._client: Any = None

    @property
    def current(self) -> ServedModel | None:
        """The model new requests score with (one attribute read: atomic)."""
        return self._current

    def start(self) -> None:
        """Load the champion now (if there is one) and poll for changes in the background; idempotent."""
        if self._thread is not None:
            return
        self._client = registry.client_for(self.config.tracking_uri, self.config.registry_uri)
        self._files = Path(tempfile.mkdtemp(prefix="skylift-serving-"))
        self._stop.clear()
        self.check_safely()
        self._thread = threading.Thread(target=self._poll, name=f"champion-follower-{self.config.model_name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None

    def check(self) -> bool:
        """Ask the registry for the champion; load and swap when it moved. True when a new version was swapped in."""
        name = self.config.model_name
        with self._check_lock:
            version = self.config.version or registry.champion_version(self._client, name)
            if version is None:
                self.problem = (f"model {name!r} has no champion alias at {registry.where(self._client)}: no version "
                                "has passed the deployment gate yet")
                if self._current is not None:  # the alias was removed: keep answering with what we have
                    log.warning("%s; still serving version %s", self.problem, self._current.version)
                return False
            previous = self._current
            if previous is not None and previous.version == version:
                self.problem = None
                return False
            assert self._files is not None, "start() the follower before checking"
            loaded = load_version(self._client, self.config.tracking_uri, name, version, self._files)
            self._current = loaded  # the swap: requests already running keep `previous`
            self.problem = None
            self.metrics.reloads.labels(outcome="loaded").inc()
            self.metrics.serving(name, version)
            log.info("serving %s version %s (was %s)", name, version, previous.version if previous else "none")
        if previous is not None:
            # Loaded models live in memory; their downloaded files are no longer read.
            shutil.rmtree(previous.files, ignore_errors=True)
        return True

    def check_safely(self) -> None:
        try:
            self.check()
        except SkyliftError as exc:
            self.problem = str(exc)
            self.metrics.reloads.labels(outcome="failed").inc()
            log.warning("champion check for %s failed; still serving %s: %s", self.config.model_name,
                        f"version {self._current.version}" if self._current else "nothing", exc)

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            self.check_safely()
