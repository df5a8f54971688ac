"""The production stack on loopback, started for real: PostgreSQL databases, an S3 server (moto),
the MLflow server, a Spark standalone cluster and the Airflow services.

Every process runs in its own session (so a whole process tree can be stopped), logs to a file
under the stack's folder, and is stopped with SIGTERM, then SIGKILL after a grace period.
A service that does not come up fails the test session with its log tail; nothing is skipped.
"""

from __future__ import annotations

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults import FaultProxy

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
S3_KEY, S3_SECRET = "skylift-test-key", "skylift-test-secret"
BUCKETS = ("skylift-lake", "skylift-landing", "mlflow-artifacts")
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


class ServiceError(RuntimeError):
    pass


def service_environment() -> dict[str, str]:
    """This process's environment without what earlier tests may have set in it (MLflow's
    `set_tracking_uri` writes MLFLOW_TRACKING_URI, Skylift settings as AIRFLOW_VAR_*, ...)."""
    leaked = ("MLFLOW_", "AIRFLOW_VAR_", "AIRFLOW_CONN_", "AIRFLOW__", "AIRFLOW_HOME", "PYSPARK_", "SPARK_")
    return {k: v for k, v in os.environ.items() if not k.startswith(leaked)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode}:\n{tail(log)}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.5)
    raise ServiceError(f"{what} not ready after {timeout:.0f}s:\n{tail(log)}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL built here
        return response.status == 200


def tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Process:
    name: str
    proc: subprocess.Popen
    log: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@dataclass
class Stack:
    home: Path
    processes: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    s3_faults: FaultProxy | None = None  # Airflow reaches S3 through it, so tests can cut S3 off
    env: dict[str, str] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)

    # ---- processes ----
    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log = self.home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        proc = subprocess.Popen(argv, env={**service_environment(), **(env or {})}, stdout=handle,
                                stderr=subprocess.STDOUT, cwd=str(self.home), start_new_session=True)
        process = Process(name, proc, log, argv, env or {})
        self.processes.append(process)
        return process

    def restart(self, name: str) -> Process:
        """Start a stopped service again with the same command line (same port, same data)."""
        old = self.process(name)
        self.processes.remove(old)
        return self.spawn(name, old.argv, old.env)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.s3_faults is not None:
            self.s3_faults.stop()

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def mentions(self, needle: str, lines: int = 60) -> str:
        """The services' log lines that contain `needle` (a run id, a task id), the last `lines` of
        them, each prefixed with its service: what a failed test shows beside the task's own log."""
        found = []
        for log in sorted((self.home / "logs").glob("*.log")):
            found += [f"[{log.stem}] {line}" for line in log.read_text(errors="replace").splitlines() if needle in line]
        return "\n".join(found[-lines:]) or f"(no service log mentions {needle})"

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every try's log file of a task as the worker wrote it (the API serves only the last part
        of a deferred task's log)."""
        folder = self.home / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        tries = sorted(folder.glob("attempt=*.log"))
        shown = [f"--- {t.name}:\n{t.read_text(errors='replace')[-6000:]}" for t in tries]
        return "\n".join(shown) or f"(no log in {folder})"

    # ---- PostgreSQL ----
    def create_databases(self, *names: str) -> None:
        import psycopg2

        try:
            conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        except psycopg2.OperationalError as exc:
            raise ServiceError(f"PostgreSQL is not reachable on 127.0.0.1:5432 (start it: pg_ctlcluster "
                               f"--skip-systemctl-redirect <version> main start): {exc}") from exc
        conn.autocommit = True
        with conn.cursor() as cur:
            for name in names:
                db = f"skylift_it_{name}_{os.getpid()}"
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{db}"')
                self.databases[name] = db
        conn.close()

    def drop_databases(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in self.databases.values():
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()

    # ---- S3 ----
    def start_s3(self) -> None:
        port = self.ports["s3"] = free_port()
        p = self.spawn("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
        wait_for("S3 server (moto)", lambda: http_ok(f"{self.s3_endpoint}/moto-api/"), 30, p.proc, p.log)
        client = self.s3_client()
        for bucket in BUCKETS:
            client.create_bucket(Bucket=bucket)
        self.s3_faults = FaultProxy("127.0.0.1", port).start()

    @property
    def s3_endpoint(self) -> str:
        """The S3 server itself (tests check the lake through it, unaffected by injected faults)."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def airflow_s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_faults.port}"

    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def s3_storage_options(self) -> dict:
        return {"key": S3_KEY, "secret": S3_SECRET, "client_kwargs": {"endpoint_url": self.s3_endpoint,
                                                                      "region_name": "us-east-1"}}

    # ---- MLflow ----
    def start_mlflow(self) -> None:
        port = self.ports["mlflow"] = free_port()
        env = {"MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
               "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        argv = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"{PG}/{self.databases['mlflow']}",
                "--artifacts-destination", "s3://mlflow-artifacts", "--serve-artifacts"]
        p = self.spawn("mlflow", argv, env)
        wait_for("MLflow server", lambda: http_ok(f"{self.mlflow_uri}/health"), 90, p.proc, p.log)

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    # ---- Spark ----
    def start_spark(self) -> None:
        import pyspark

        spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
        port, ui = self.ports["spark"], self.ports["spark_ui"] = free_port(), free_port()
        env = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}
        master = self.spawn("spark-master", [spark_class, "org.apache.spark.deploy.master.Master", "--host",
                                             "127.0.0.1", "--port", str(port), "--webui-port", str(ui)], env)
        wait_for("Spark master", lambda: http_ok(f"http://127.0.0.1:{ui}/json/"), 60, master.proc, master.log)
        worker = self.spawn("spark-worker", [spark_class, "org.apache.spark.deploy.worker.Worker", self.spark_master,
                                             "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
                                             "--webui-port", str(free_port())], env)
        wait_for("Spark worker", lambda: self._spark_workers(ui) >= 1, 60, worker.proc, worker.log)

    def _spark_workers(self, ui: int) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5) as response:  # noqa: S310
            return sum(1 for w in json.load(response).get("workers", []) if w.get("state") == "ALIVE")

    @property
    def spark_master(self) -> str:
        return f"spark://127.0.0.1:{self.ports['spark']}"

    # ---- Airflow ----
    def airflow_env(self) -> dict[str, str]:
        port = self.ports["api"]
        connection = {"conn_type": "aws", "login": S3_KEY, "password": S3_SECRET,
                      "extra": {"endpoint_url": self.airflow_s3_endpoint, "region_name": "us-east-1"}}
        return {
            "AIRFLOW_HOME": str(self.home / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{self.databases['airflow']}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # The project's dags/ plus a folder tests may write pipelines of their own into (test_dags).
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {"name": "skylift-tests", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(self.test_dags)}}]),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "120",
            # Runs only when a test triggers one: the nightly DAGs' cron would otherwise start a run
            # for the latest interval at start-up (and another each time the clock passes 02:00),
            # whose sensors poke for drops that never land, for hours, beside the tests' own runs.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW_VAR_SKYLIFT_LAKE_ROOT": "s3://skylift-lake",
            "AIRFLOW_VAR_SKYLIFT_DROPS_ROOT": "s3://skylift-landing",
            "AIRFLOW_VAR_SKYLIFT_LAKE_CONN_ID": "skylift_s3",
            "AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI": self.mlflow_uri,
            "AIRFLOW_VAR_SKYLIFT_SPARK_MASTER": self.spark_master,
            # Optuna studies of hyper-parameter searches: a database every worker process reaches, as in
            # production (the embedded default, a journal folder, serves only workers on one machine).
            "AIRFLOW_VAR_SKYLIFT_SEARCH_STORAGE": f"{PG}/{self.databases['optuna']}",
            "AIRFLOW_CONN_SKYLIFT_S3": json.dumps(connection),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "GIT_PYTHON_REFRESH": "quiet",
        }

    def start_airflow(self) -> None:
        self.ports["api"] = free_port()
        self.env = self.airflow_env()
        (self.home / "airflow").mkdir(parents=True, exist_ok=True)
        self.test_dags.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env={**service_environment(), **self.env},
                                 capture_output=True, text=True, timeout=300, check=False)
        if migrate.returncode != 0:
            raise ServiceError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
        api = self.spawn("airflow-api-server", [str(BIN / "airflow"), "api-server"], self.env)
        wait_for("Airflow API server", lambda: http_ok(f"{self.api_url}/api/v2/monitor/health"), 120, api.proc, api.log)
        for service in ("scheduler", "dag-processor", "triggerer"):
            self.spawn(f"airflow-{service}", [str(BIN / "airflow"), service], self.env)

    @property
    def test_dags(self) -> Path:
        """A DAG bundle of the stack's own: a test writes a spec and its DAG file here to run it."""
        return self.home / "test_dags"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def admin_password(self) -> str:
        path = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        wait_for("simple auth manager passwords", path.exists, 30)
        return json.loads(path.read_text())["admin"]

    def start(self) -> Stack:
        self.create_databases("airflow", "mlflow", "optuna")
        self.start_s3()
        self.start_mlflow()
        self.start_spark()
        self.start_airflow()
        return self
