"""Test set-up shared by every suite.

Airflow reads AIRFLOW_HOME when it is first imported, so it is pointed at a fresh temporary
folder here, before any test module imports Airflow. Tests never write into the source tree.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="skylift-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
})

import sys  # noqa: E402

import pytest  # noqa: E402

# pytest-xdist workers run under execnet, whose `__main__` has neither `__spec__` nor `__file__`.
# pyspark takes that for its own doctest runner and exits the process (status 0) as soon as
# `pyspark.sql.connect` is imported, which Great Expectations does. So the worker's `__main__` gets
# a file, and a real one: a `spawn` child process re-runs its parent's main file before anything else.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = str(ROOT / "tests" / "tools" / "xdist_worker_main.py")

# Modules whose tests share the session's production stack (the `stack` fixture). `make test` runs
# two pytest-xdist workers (`--dist loadfile`); these modules all go to one of them, so the stack
# starts once, and every other module runs whole on whichever worker is free.
STACK_MODULES = frozenset({
    "tests/browser/test_approval_ui.py",
    "tests/browser/test_ui.py",
    "tests/integration/test_approval_stack.py",
    "tests/integration/test_production_stack.py",
    "tests/integration/test_s3_lake.py",
    "tests/integration/test_search_stack.py",
    "tests/reliability/test_faults_on_stack.py",
})


def pytest_collection_modifyitems(config, items):
    """A module that needs the stack but is not in STACK_MODULES would start a second stack on the
    other worker: refuse to run rather than silently double the suite's load."""
    strays = sorted({item.nodeid.split("::", 1)[0] for item in items if "stack" in item.fixturenames}
                    - STACK_MODULES)
    if strays:
        raise pytest.UsageError(f"{strays} use the `stack` fixture: add them to STACK_MODULES in tests/conftest.py")


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the STACK_MODULES as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class StackModulesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "stack" if module in STACK_MODULES else module

    return StackModulesTogether(config, log)


@pytest.fixture(autouse=True)
def _restore_environment():
    """Every test starts from the same environment: code under test may set variables for the
    process it runs in (the CLI does), and a later test in the same worker must not inherit them."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


# What a test must never leave in the repository: MLflow's default store and artifacts, and Spark's
# warehouse, created in the working directory when code falls back to a default location.
STRAYS = ("mlflow.db", "mlruns", "spark-warehouse", "metastore_db", "derby.log")


@pytest.fixture(scope="session", autouse=True)
def _no_strays_in_the_repository():
    before = {name for name in STRAYS if (ROOT / name).exists()}
    yield
    left = sorted(name for name in STRAYS if (ROOT / name).exists() and name not in before)
    assert not left, (f"tests left {left} in {ROOT}: some code fell back to a default location "
                      "(e.g. MLflow's process-wide tracking URI unset); find it and give it the test's own")


def embedded_environment(home: Path) -> dict[str, str]:
    """The embedded default's settings (operators.settings) under `home`, with Spark on 2 cores."""
    from operators.settings import as_environment, embedded_values

    return as_environment(embedded_values(home, spark_master="local[2]"))


@pytest.fixture
def skylift_env(tmp_path, monkeypatch):
    """Embedded Skylift settings under a per-test folder; returns the folder."""
    home = tmp_path / "skylift"
    for key, value in embedded_environment(home).items():
        monkeypatch.setenv(key, value)
    home.mkdir(parents=True)
    return home


class FakeTaskInstance:
    """The slice of a task instance that Skylift operators use: identity and XCom."""

    def __init__(self, dag_id="unit", task_id="task", run_id="manual__unit", xcoms=None):
        self.dag_id, self.task_id, self.run_id, self.try_number = dag_id, task_id, run_id, 1
        self.xcoms = xcoms if xcoms is not None else {}

    def xcom_push(self, key, value):
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get((task_ids, key))


def task_context(ds: str, task_id="task", params=None, xcoms=None, run_id="manual__unit"):
    """A task context for calling `operator.execute` directly in unit tests."""
    day = datetime.fromisoformat(ds).replace(tzinfo=UTC)
    ti = FakeTaskInstance(task_id=task_id, run_id=run_id, xcoms=xcoms)
    return {"ti": ti, "params": dict(params or {}), "logical_date": day, "ds": ds}


@pytest.fixture
def context_for():
    return task_context


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The production stack on loopback (see tests/stack.py), shared by integration and browser tests."""
    from tests.stack import Stack

    running = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield running.start()
    finally:
        running.stop()
        running.drop_databases()


STACK_END = date(2026, 11, 24)
STACK_CUSTOMERS = 1200


STACK_DAYS = 7  # churn's outcomes land 3 days late: 7 days give the nights before END enough labelled days
# Nights run before the tests start, each group after the one before: the oldest five build features
# and ingest the outcome drops (too few label-complete days yet to train); then the night before END
# trains on the days whose outcome drops have all landed and makes the first champion.
STACK_HISTORY = ([STACK_END - timedelta(days=n) for n in range(6, 2, -1)], [STACK_END - timedelta(days=2)],
                 [STACK_END - timedelta(days=1)])


@pytest.fixture(scope="session")
def landed(stack, api, tmp_path_factory):
    """Seven days of drops (ending STACK_END) uploaded to the stack's landing bucket, each drop's
    completion marker last, as an uploader does, with the outcome drops landing three days late;
    then the nights of STACK_HISTORY, so the suites start from a lake with history and a champion."""
    from include.datagen.churn import MARKER, generate, generate_labels

    local = tmp_path_factory.mktemp("drops")
    generate(local, STACK_END, days=STACK_DAYS, n_customers=STACK_CUSTOMERS)
    outcomes = tmp_path_factory.mktemp("label-drops")
    generate_labels(outcomes, STACK_END, days=STACK_DAYS, delay_days=3, n_customers=STACK_CUSTOMERS)
    client = stack.s3_client()
    for root, prefix in ((local, "activity/"), (outcomes, "")):
        for path in sorted(root.rglob("*"), key=lambda p: (p.name == MARKER, str(p))):
            if path.is_file():
                key = f"{prefix}{path.parent.name}/{path.name}" if prefix else path.relative_to(root).as_posix()
                client.upload_file(str(path), "skylift-landing", key)
    api.wait_for_dag("churn_nightly")
    for nights in STACK_HISTORY:
        # UI-style triggers (no logical date, the day as `ds`): no suite's logical dates are taken.
        runs = {day: api.trigger("churn_nightly", None, {"ds": day.isoformat()}) for day in nights}
        for day, run_id in runs.items():
            state = api.wait_for_run("churn_nightly", run_id, timeout=600)
            assert state == "success", f"history night {day}: {api.failure_report('churn_nightly', run_id)}"
    return local


@pytest.fixture(scope="session")
def api(stack):
    """A REST client logged in to the stack's Airflow API server as admin."""
    from tests.integration.airflow_api import AirflowApi

    return AirflowApi(stack.api_url, "admin", stack.admin_password())
