"""Online serving: Skylift's app against `mlflow models serve`, on the same model and payload.

    .venv/bin/python -m benchmarks.bench_serving [--rounds 5] [--seconds 3] [--rows-per-request 10]

Both servers run as single processes on 127.0.0.1 (free ports) and are stopped at the end. For
each number of concurrent clients (1, 8, 32) the two are measured in turns, the order alternating
every round; each measurement runs `--seconds` of closed-loop requests (each client sends its next
request when the last is answered). Reported: the medians over the rounds of rows/s and of each
round's p50 and p99 latency. The clients are Python threads in this process, so on a small machine
they compete with the servers for the CPU: compare the two servers, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

MODEL = "bench_serving"
CONCURRENCY = (1, 8, 32)
START_TIMEOUT = 120.0


def make_champion(tmp: str) -> tuple[str, pd.DataFrame]:
    """An XGBoost model with 100 trees on 20 columns, registered and aliased champion; returns the tracking URI."""
    import mlflow
    import xgboost as xgb
    from mlflow.models import infer_signature

    from include import registry

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=[f"f{i}" for i in range(20)])
    label = (frame["f0"] + frame["f1"] * 0.5 + rng.normal(size=len(frame)) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "nthread": 2},
                        xgb.DMatrix(frame, label=label), num_boost_round=100)
    tracking = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    experiment = mlflow.create_experiment("bench", artifact_location=f"file://{tmp}/artifacts")
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(booster, name="model", signature=infer_signature(frame.head(100)))
    version = mlflow.register_model(info.model_uri, MODEL).version
    registry.set_alias(registry.client_for(tracking), MODEL, registry.CHAMPION, str(version))
    return tracking, frame


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One server process (and its children) in its own session, so that stopping it stops them all."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=Path(__file__).resolve().parent.parent)

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} did not answer /ping in {START_TIMEOUT:.0f} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_servers(tmp: str, tracking: str) -> list[Server]:
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "GIT_PYTHON_REFRESH": "quiet"}
    mlflow_port, skylift_port = free_port(), free_port()
    baseline = Server("mlflow models serve",
                      [f"{venv_bin}/mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion", "--env-manager",
                       "local", "-h", "127.0.0.1", "-p", str(mlflow_port), "-w", "1"],
                      {**env, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking},
                      mlflow_port, Path(tmp) / "mlflow-serve.log")
    skylift = Server("skylift", [sys.executable, "-m", "include.serving.server", MODEL, "--tracking-uri", tracking,
                                 "--port", str(skylift_port)], env, skylift_port, Path(tmp) / "skylift-serve.log")
    return [baseline, skylift]


def measure(url: str, body: bytes, rows_per_request: int, clients: int, seconds: float) -> dict[str, float]:
    """Closed-loop load from `clients` threads for `seconds`: rows/s, p50 and p99 latency (ms), errors."""
    import httpx

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    ready, go = threading.Barrier(clients + 1), threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30, headers={"Content-Type": "application/json"}) as http:
            http.post("/invocations", content=body)  # the connection, once
            ready.wait()
            go.wait()
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                response = http.post("/invocations", content=body)
                latencies[i].append(time.perf_counter() - began)
                errors[i] += response.status_code != 200

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()  # every client connected: the clock starts now
    began = time.perf_counter()
    deadline.append(began + seconds)
    go.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = np.array([t for per_client in latencies for t in per_client]) * 1000
    return {"rows_per_s": len(every) * rows_per_request / elapsed, "p50_ms": float(np.percentile(every, 50)),
            "p99_ms": float(np.percentile(every, 99)), "errors": float(sum(errors))}


def check_same_answers(servers: list[Server], body: bytes) -> None:
    import httpx

    answers = [httpx.post(f"{s.url}/invocations", content=body, headers={"Content-Type": "application/json"},
                          timeout=30).json()["predictions"] for s in servers]
    if not np.allclose(answers[0], answers[1], rtol=1e-6):
        raise RuntimeError(f"the servers disagree on the same rows: {answers[0][:3]} vs {answers[1][:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measurement")
    parser.add_argument("--rows-per-request", type=int, default=10)
    args = parser.parse_args()
    import json

    with tempfile.TemporaryDirectory(prefix="skylift-bench-serving-") as tmp:
        tracking, frame = make_champion(tmp)
        rows = frame.head(args.rows_per_request)
        body = json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}})
        servers = start_servers(tmp, tracking)
        try:
            for server in servers:
                server.wait_ready()
            check_same_answers(servers, body.encode())
            results: dict[tuple[str, int], list[dict[str, float]]] = {}
            for clients in CONCURRENCY:
                for round_ in range(args.rounds):
                    for server in servers if round_ % 2 == 0 else servers[::-1]:  # interleaved, order alternating
                        result = measure(server.url, body.encode(), args.rows_per_request, clients, args.seconds)
                        results.setdefault((server.name, clients), []).append(result)
        finally:
            for server in servers:
                server.stop()
    print(report(results, args))


def report(results: dict[tuple[str, int], list[dict[str, float]]], args: argparse.Namespace) -> str:
    lines = [f"### Online serving: {args.rows_per_request} rows per request, XGBoost with 100 trees on 20 columns, "
             f"medians of {args.rounds} rounds of {args.seconds:g} s", "",
             "| clients | server | rows/s | p50 ms | p99 ms | failed requests | rows/s vs mlflow |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for clients in CONCURRENCY:
        base = statistics.median(r["rows_per_s"] for r in results[("mlflow models serve", clients)])
        for name in ("mlflow models serve", "skylift"):
            runs = results[(name, clients)]
            rate = statistics.median(r["rows_per_s"] for r in runs)
            lines.append(f"| {clients} | {name} | {rate:,.0f} | {statistics.median(r['p50_ms'] for r in runs):.1f} | "
                         f"{statistics.median(r['p99_ms'] for r in runs):.1f} | {sum(r['errors'] for r in runs):.0f} | "
                         f"{rate / base:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
