"""The shipped `spend` pipeline (PyTorch regression, delayed labels) end to end through Airflow.

Every shipped spec has its DAGs run in the suite. The spend model's MLflow parameters must be
exactly the spec's model parameters (and a retrain's trigger-form overrides): never the DAG's
other trigger-form fields (`ds`, `gpu`, `rebuild`, ...), which Airflow merges into any operator
argument named `params`. A conf key the DAG does not declare fails the run at its first task.

Spend reads the activity that churn ingests and validates (`reads:`): each night, churn's DAG runs
first with only its activity tasks (the rest is marked done, not run), then spend's.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from include.datagen.churn import generate, generate_labels
from include.training import params as hyper_parameters
from tests.conftest import embedded_environment

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "dags" / "pipelines" / "spend.yaml"
START = date(2026, 11, 15)
# labels.delay_days 3 and train.holdout_days 2: night 6 is the first with three label-complete days
DAYS = 6
END = START + timedelta(days=DAYS - 1)
CUSTOMERS = 400


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("spend")
    env = embedded_environment(home)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        generate(home / "drops" / "activity", END, days=DAYS, n_customers=CUSTOMERS)
        generate_labels(home / "drops", END, days=DAYS, n_customers=CUSTOMERS)
        yield home


def run(dag_id: str, day: date, conf=None) -> str:
    from operators.embedded import run_dag

    return run_dag(dag_id, day, conf)


# churn's tasks that publish validated/customer_activity; its other tasks are marked done, not run
CHURN_ACTIVITY = "wait_for_drop_activity|ingest_activity|validate_activity"


def publish_churns_activity(day: date) -> str:
    from datetime import UTC, datetime

    from operators.embedded import load_dag, migrate

    migrate()
    logical = datetime(day.year, day.month, day.day, tzinfo=UTC)
    run = load_dag("churn_nightly").test(logical_date=logical, mark_success_pattern=f"(?!(?:{CHURN_ACTIVITY})$).*")
    return str(run.state)


def registry(home):
    import mlflow

    uri = f"sqlite:///{home}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(client) -> list:
    return sorted(client.search_model_versions("name = 'spend'"), key=lambda v: int(v.version))


def logged_model_params(client, version) -> dict[str, str]:
    logged = client.get_run(version.run_id).data.params
    # nothing of the trigger form but the model's own parameters reached the run
    assert not {"ds", "rebuild", "gpu", "force_deploy", "train_start", "train_end"} & set(logged)
    return {k: v for k, v in logged.items() if k in hyper_parameters.names("pytorch")}


def expected(overrides: dict) -> dict[str, str]:
    """What the trainer logs: its defaults under the spec's params under the run's overrides."""
    import yaml

    from include.training.torch_trainer import DEFAULTS

    spec_params = yaml.safe_load(SPEC.read_text())["train"]["params"]
    merged = {**DEFAULTS, **spec_params, **overrides}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in merged.items()}


def test_spend_nightly_then_retrain_log_exactly_the_model_params(home):
    client = registry(home)
    for n in range(DAYS):
        assert publish_churns_activity(START + timedelta(days=n)) == "success", n
        assert run("spend_nightly", START + timedelta(days=n)) == "success", n
    (first,) = versions(client)
    # spend's features were built from churn's validated partitions; spend wrote none of its own
    from include.lake import Lake
    from operators.settings import Settings

    lake = Lake(Settings.resolve().lake_root)
    inputs = lake.require("features", "spend_features", str(END)).inputs
    assert {(i["zone"], i["dataset"]) for i in inputs} == {("validated", "customer_activity")}
    assert lake.require("validated", "customer_activity", str(END)).extra["pipeline"] == "churn"
    assert "spend_activity" not in lake.datasets("validated")
    assert logged_model_params(client, first) == expected({})

    conf = {"epochs": 3, "lr": 0.01, "force_deploy": True}
    assert run("spend_retrain", END, conf) == "success"
    newest = versions(client)[-1]
    assert int(newest.version) == int(first.version) + 1
    assert logged_model_params(client, newest) == expected({"epochs": 3, "lr": 0.01})
    assert client.get_model_version_by_alias("spend", "champion").version == newest.version  # force_deploy


def test_spend_rollback_returns_the_champion_to_the_nightlys_version(home):
    """spend's third DAG: after the forced retrain above, the rollback DAG returns the champion to the
    nightly's version, named (it may never have been champion: the nightly's gate need not pass it)."""
    client = registry(home)
    first, *_, newest = versions(client)
    assert client.get_model_version_by_alias("spend", "champion").version == newest.version
    conf = {"to_version": str(first.version), "reason": "e2e: back to the nightly's model"}
    assert run("spend_rollback", END, conf) == "success"
    assert client.get_model_version_by_alias("spend", "champion").version == first.version


@pytest.mark.parametrize("dag_id,conf,listed", [
    # `eta`: a parameter of no DAG here; `epochs`: the retrain's, not the nightly's
    ("spend_nightly", {"eta": "fast", "epochs": 2}, "['epochs', 'eta'], which are"),
    ("spend_retrain", {"hiden": [8], "lr": 0.01}, "['hiden'], which is"),
])
def test_a_conf_key_the_dag_does_not_declare_fails_the_run(home, dag_id, conf, listed, capfd):
    client = registry(home)
    before = len(versions(client))
    assert run(dag_id, END, conf) == "failed"
    assert len(versions(client)) == before
    out, err = capfd.readouterr()
    assert f"this run's conf has {listed} not a parameter of DAG {dag_id!r}; its parameters are [" in out + err
