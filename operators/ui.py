"""`skylift ui`: the Airflow UI on the embedded default, for a project's DAGs.

Starts the Airflow API server (which serves the UI), scheduler, DAG processor and triggerer on
loopback, with the same settings, metadata DB, lake and MLflow as `skylift run`. Each service
runs in its own session and logs to `<home>/logs/ui-<service>.log`; Ctrl-C or SIGTERM stops
them all (TERM, then KILL after a grace period), so nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from include.errors import SkyliftError
from operators.project import Project

SERVICES = ("scheduler", "dag-processor", "triggerer")
ADMIN = "admin"
STOP_GRACE_SECONDS = 20.0
START_TIMEOUT_SECONDS = 180.0


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: stop the services."""


class ServiceFailed(SkyliftError):
    """An Airflow service exited or did not come up; the message holds its log's tail."""


@dataclass(frozen=True)
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the scheduler can hang on TERM with an idle worker
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ui_environment(project: Project, port: int) -> dict[str, str]:
    """`skylift run`'s environment plus what the long-running services need."""
    return {
        **os.environ,
        **project.environment(),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",  # each LocalExecutor worker is a forked process
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


class UiStack:
    """The four Airflow services of one project's embedded set-up."""

    def __init__(self, project: Project, port: int) -> None:
        self.project, self.port = project, port
        self.env = ui_environment(project, port)
        self.services: list[Service] = []
        self.airflow = str(Path(sys.executable).parent / "airflow")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str) -> Service:
        log = self.project.logs_dir / f"ui-{name}.log"
        handle = log.open("ab")
        proc = subprocess.Popen([self.airflow, name], env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                cwd=str(self.project.home), start_new_session=True)
        handle.close()
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def start(self) -> None:
        self.project.logs_dir.mkdir(parents=True, exist_ok=True)
        self.project.write_dag_files()
        migrate = subprocess.run([self.airflow, "db", "migrate"], env=self.env, capture_output=True, text=True,
                                 check=False)
        if migrate.returncode != 0:
            raise ServiceFailed(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        api = self.spawn("api-server")
        self._wait_healthy(api)
        for name in SERVICES:
            self.spawn(name)

    def _wait_healthy(self, api: Service) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if api.proc.poll() is not None:
                raise ServiceFailed(f"the Airflow API server exited with code {api.proc.returncode}:\n{api.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise ServiceFailed(f"the Airflow API server did not answer on {self.url} in {START_TIMEOUT_SECONDS:.0f}s:"
                            f"\n{api.tail()}")

    def admin_password(self) -> str:
        path = self.project.airflow_home / "simple_auth_manager_passwords.json.generated"
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        return json.loads(path.read_text())[ADMIN]

    def check_running(self) -> None:
        for service in self.services:
            if service.proc.poll() is not None:
                raise ServiceFailed(f"airflow {service.name} exited with code {service.proc.returncode}:\n"
                                    f"{service.tail()}")

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def serve(project: Project, port: int) -> int:
    stack = UiStack(project, port)
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stack.start()
        print(f"Airflow UI: {stack.url}  (user {ADMIN}, password {stack.admin_password()})", flush=True)
        print(f"DAGs of {project.pipelines_dir}; home {project.home}; service logs in {project.logs_dir}",
              flush=True)
        print("Stop with Ctrl-C.", flush=True)
        while True:
            stack.check_running()
            time.sleep(1)
    except Stopped as why:
        print(f"skylift ui: {why}: stopping the Airflow services", flush=True)
        return 0
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def command_ui(args: argparse.Namespace) -> int:
    try:
        project = Project.locate(args.project, args.home)
        return serve(project, args.port or free_port())
    except SkyliftError as exc:
        print(f"skylift: {exc}", file=sys.stderr)
        return 1


def add_command(sub: Any) -> None:
    from operators.runner import add_location_options

    cmd = sub.add_parser("ui", help="the Airflow UI (API server, scheduler, DAG processor, triggerer) on loopback")
    cmd.add_argument("--port", type=int, default=8080, help="API server port on 127.0.0.1 (0: any free port)")
    add_location_options(cmd)
    cmd.set_defaults(func=command_ui)
