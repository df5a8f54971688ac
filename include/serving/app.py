"""The serving app: MLflow's scoring protocol for `models:/<name>@champion`, following the alias.

    POST /invocations   rows as JSON (dataframe_split, dataframe_records, instances, inputs) or CSV
    GET  /ping          200 once a model is loaded, 503 with the reason before
    GET  /version       the model name and version being served
    GET  /metrics       Prometheus metrics

Answers are `{"predictions": [...]}`, the scores batch scoring writes for the same rows and
version; the header `X-Skylift-Model-Version` names the version that computed them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import StringIO

import anyio
import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from include.errors import PayloadError
from include.serving.follower import ChampionFollower, ServingConfig
from include.serving.metrics import ServingMetrics
from include.serving.model import ServedModel
from include.serving.payload import parse_payload

log = logging.getLogger(__name__)
VERSION_HEADER = "X-Skylift-Model-Version"


def create_app(config: ServingConfig, follower: ChampionFollower | None = None) -> Starlette:
    """An ASGI app serving `config.model_name`'s champion; the follower starts and stops with the app."""
    metrics = follower.metrics if follower is not None else ServingMetrics()
    follower = follower or ChampionFollower(config, metrics)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Scoring is CPU work: more of it at once than cores only adds waiting (and oversubscribes XGBoost's threads).
        app.state.scoring = anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
        await run_in_threadpool(follower.start)
        try:
            yield
        finally:
            await run_in_threadpool(follower.stop)

    async def invocations(request: Request) -> Response:
        return await _invocations(follower, metrics, request, request.app.state.scoring)

    async def ping(request: Request) -> Response:
        if follower.current is None:
            return JSONResponse({"status": "not ready", "message": follower.problem}, status_code=503)
        return Response("\n", media_type="application/json")

    async def version(request: Request) -> Response:
        served = follower.current
        if served is None:
            return JSONResponse({"name": config.model_name, "version": None, "message": follower.problem},
                                status_code=503)
        return JSONResponse({"name": served.name, "version": served.version, "uri": served.uri,
                             "loaded_at": served.loaded_at.isoformat(), "columns": served.scorer.columns})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.follower = follower
    return app


async def _invocations(follower: ChampionFollower, metrics: ServingMetrics, request: Request,
                       scoring: anyio.CapacityLimiter) -> Response:
    started = time.perf_counter()
    served = follower.current  # pinned: this request finishes on this version whatever happens meanwhile
    try:
        if served is None:
            return _refuse(metrics, 503, "no_model", "MODEL_NOT_READY", follower.problem or "no model loaded")
        body = await request.body()
        try:
            answer, rows = await anyio.to_thread.run_sync(_score, served, body, request.headers.get("content-type"),
                                                          limiter=scoring)
        except PayloadError as exc:
            return _refuse(metrics, exc.status, exc.kind, "BAD_REQUEST", str(exc))
        except Exception as exc:  # the model itself failed: a server error, logged with its traceback
            log.exception("scoring with %s failed", served.uri)
            return _refuse(metrics, 500, "prediction", "INTERNAL_ERROR", f"{served.uri} failed to score: {exc}")
        metrics.requests.labels(status="200").inc()
        metrics.rows.inc(rows)
        return Response(answer, media_type="application/json", headers={VERSION_HEADER: served.version})
    finally:
        metrics.latency.observe(time.perf_counter() - started)


def _score(served: ServedModel, body: bytes, content_type: str | None) -> tuple[str, int]:
    """The JSON answer for the body's rows and how many rows it held (runs in a worker thread)."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    frame = parse_payload(body, content_type, served.scorer.columns, served.scorer.dtypes)
    predictions = served.scorer.predict(frame)
    out = StringIO()
    predictions_to_json(predictions, out)
    return out.getvalue(), len(frame)


def _refuse(metrics: ServingMetrics, status: int, kind: str, code: str, message: str) -> Response:
    metrics.requests.labels(status=str(status)).inc()
    metrics.errors.labels(kind=kind).inc()
    return Response(json.dumps({"error_code": code, "message": message}), status_code=status,
                    media_type="application/json")
