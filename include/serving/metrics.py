"""Prometheus metrics of one serving app, in a registry of its own (two apps in a process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Prediction latency buckets (seconds): sub-millisecond to a few seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    """Requests, errors by kind, latency, rows, reloads and the version being served."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("skylift_serving_requests", "Prediction requests answered, by HTTP status",
                                ["status"], registry=self.registry)
        self.errors = Counter("skylift_serving_errors", "Prediction requests refused or failed, by kind",
                              ["kind"], registry=self.registry)
        self.latency = Histogram("skylift_serving_request_duration_seconds",
                                 "Time from receiving a prediction request to its answer",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.rows = Counter("skylift_serving_rows", "Rows scored", registry=self.registry)
        self.reloads = Counter("skylift_serving_reloads", "Champion versions loaded, or that failed to load",
                               ["outcome"], registry=self.registry)
        self.version = Gauge("skylift_serving_model_version", "The model version being served (0: none yet)",
                             ["model"], registry=self.registry)
        self.info = Gauge("skylift_serving_model_info", "1 for the model and version being served",
                          ["model", "version"], registry=self.registry)
        self._served: tuple[str, str] | None = None

    def serving(self, model: str, version: str) -> None:
        """Record that `version` of `model` now answers requests."""
        if self._served is not None:
            self.info.remove(*self._served)
        self._served = (model, version)
        self.info.labels(model=model, version=version).set(1)
        self.version.labels(model=model).set(float(version) if version.isdigit() else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
