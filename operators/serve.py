"""`skylift serve PIPELINE`: answer HTTP prediction requests with the pipeline's champion model.

Runs on the embedded default (the MLflow store `skylift run` writes under the home folder) and
follows the `champion` alias: a deploy that moves it is served within a few seconds, without a
restart. See include/serving for the app itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from include.errors import SkyliftError, SpecError
from operators.project import Project
from operators.settings import embedded_values
from operators.ui import Stopped, free_port

DEFAULT_PORT = 5050
POLL_SECONDS = 5.0


def serving_config(project: Project, pipeline: str, poll_seconds: float = POLL_SECONDS) -> Any:
    """What `pipeline` serves: its registered model, from the home folder's MLflow store."""
    from include.serving.follower import ServingConfig
    from operators.spec.loader import load_spec

    spec_file = project.spec_file(pipeline)
    spec = load_spec(spec_file)
    if spec.register_ is None:
        raise SpecError(f"pipeline {pipeline!r} registers no model ({spec_file} has no register: section), so there "
                        "is no champion to serve: add register: {model_name: ...} and deploy a model first")
    tracking = embedded_values(project.state_dir)["skylift_mlflow_tracking_uri"]
    store = Path(tracking.removeprefix("sqlite:///"))
    if not store.is_file():
        raise SpecError(f"no MLflow store at {store} yet: run the pipeline first (skylift run {pipeline} --date D"
                        + (f" --project {project.root}" if project.root != Path.cwd() else "") + ")")
    return ServingConfig(model_name=spec.register_.model_name, tracking_uri=tracking, poll_seconds=poll_seconds)


def curl_example(url: str, columns: list[str]) -> str:
    payload = {"dataframe_split": {"columns": columns, "data": [[0] * len(columns)]}}
    return (f"curl -s {url}/invocations -H 'Content-Type: application/json' "
            f"-d '{json.dumps(payload, separators=(',', ':'))}'")


def command_serve(args: argparse.Namespace) -> int:
    from include.serving.server import run

    try:
        project = Project.locate(args.project, args.home)
        project.activate()  # the spec names the project's own packages (its feature job)
        config = serving_config(project, args.pipeline, args.poll_seconds)
    except SkyliftError as exc:
        print(f"skylift: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SpecError) else 1
    port = args.port or free_port()
    url = f"http://{args.host}:{port}"

    def ready(served: Any, problem: str | None) -> None:
        if served is None:
            print(f"skylift serve: nothing to serve yet ({problem}); /invocations answers 503 until a champion "
                  f"appears (checked every {config.poll_seconds:g} s)", flush=True)
            columns = ["<column>"]
        else:
            print(f"Serving {served.uri} (alias champion, followed every {config.poll_seconds:g} s) at {url}",
                  flush=True)
            columns = served.scorer.columns
        print(f"Try:     {curl_example(url, columns)}", flush=True)
        print(f"Metrics: {url}/metrics   Version: {url}/version   Stop with Ctrl-C.", flush=True)

    # uvicorn finishes requests in flight on SIGTERM/Ctrl-C, then raises the signal again: end with 0, as `skylift ui`
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    try:
        run(config, args.host, port, on_ready=ready)
    except Stopped as why:
        print(f"skylift serve: {why}: stopped", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def add_command(sub: Any) -> None:
    from operators.runner import add_location_options

    cmd = sub.add_parser("serve", help="answer HTTP prediction requests with a pipeline's champion model")
    cmd.add_argument("pipeline", help="the pipeline's name (its spec: <project>/dags/pipelines/<name>.yaml)")
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    cmd.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    cmd.add_argument("--poll-seconds", type=float, default=POLL_SECONDS,
                     help=f"how often to ask the registry whether the champion moved (default {POLL_SECONDS:g})")
    add_location_options(cmd)
    cmd.set_defaults(func=command_serve)
