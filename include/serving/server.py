"""Run the serving app under uvicorn: the champion is loaded before the port opens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from include.serving.app import create_app
from include.serving.follower import ChampionFollower, ServingConfig
from include.serving.metrics import ServingMetrics
from include.serving.model import ServedModel


def run(config: ServingConfig, host: str, port: int,
        on_ready: Callable[[ServedModel | None, str | None], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then lets requests in flight finish before it exits.

    `on_ready(model, problem)` is called once the port accepts requests, after the first champion
    check (model None and the reason when there is no champion yet; the app answers 503 until one
    appears): what it prints can be tried at once.
    """
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and on_ready is not None:  # not started: the port could not be bound
                on_ready(follower.current, follower.problem)

    follower = ChampionFollower(config, ServingMetrics())
    follower.start()  # before the port opens, so a ready port serves a model (the app's start is then a no-op)
    try:
        server = AnnouncingServer(uvicorn.Config(create_app(config, follower), host=host, port=port,
                                                 log_level="info", access_log=False, lifespan="on"))
        server.run()
    finally:
        follower.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m include.serving.server MODEL --tracking-uri URI`: serve any registry's champion (a
    tracking server in production; `skylift serve` covers the embedded default)."""
    import argparse
    import logging

    from include.serving.follower import ServingConfig

    parser = argparse.ArgumentParser(prog="python -m include.serving.server", description=main.__doc__)
    parser.add_argument("model", help="the registered model whose champion alias to serve")
    parser.add_argument("--tracking-uri", required=True, help="MLflow tracking URI (the registry follows it)")
    parser.add_argument("--registry-uri", help="MLflow registry URI, when it differs from the tracking URI")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--version", help="serve this version only instead of following the champion alias")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    run(ServingConfig(args.model, args.tracking_uri, args.registry_uri, args.poll_seconds, args.version), args.host,
        args.port)


if __name__ == "__main__":
    main()
