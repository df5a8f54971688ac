"""Run the serving app under uvicorn: the champion is loaded before the port opens."""

from __future__ import annotations

from collections.abc import Callable

from include.serving.app import create_app
from include.serving.follower import ChampionFollower, ServingConfig
from include.serving.metrics import ServingMetrics
from include.serving.model import ServedModel


def run(config: ServingConfig, host: str, port: int,
        on_ready: Callable[[ServedModel | None, str | None], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then lets requests in flight finish before it exits.

    `on_ready(model, problem)` is called once the first champion check is done (model None and
    the reason when there is no champion yet; the app answers 503 until one appears).
    """
    import uvicorn

    follower = ChampionFollower(config, ServingMetrics())
    follower.start()  # before the port opens, so a ready port serves a model (the app's start is then a no-op)
    try:
        if on_ready is not None:
            on_ready(follower.current, follower.problem)
        server = uvicorn.Server(uvicorn.Config(create_app(config, follower), host=host, port=port,
                                               log_level="info", access_log=False, lifespan="on"))
        server.run()
    finally:
        follower.stop()
