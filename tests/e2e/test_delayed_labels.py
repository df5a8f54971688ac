"""Labels that arrive later than the features, through `churn_nightly` (`dag.test()`, SQLite).

Ten days of activity drops and of label drops (the drop of day L holds the outcomes of day
L - 3). Every night builds features for every customer; training waits until enough days have
complete outcomes and uses only those; every customer is scored, though none of that day's
outcomes is known; once a scored day's outcomes land, its live metrics are recorded. A label
drop from after the run's date, planted with contradicting outcomes, is never read.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from include.audit import AuditTrail
from include.datagen.churn import generate, generate_labels
from include.lake import Lake
from tests.conftest import embedded_environment

pytestmark = pytest.mark.e2e
START = date(2026, 11, 15)
DAYS = 10
END = START + timedelta(days=DAYS - 1)
CUSTOMERS = 400
DELAY = 3  # labels.delay_days in dags/pipelines/churn.yaml


def day(n: int) -> str:
    """The n-th day of the drops, from 1."""
    return (START + timedelta(days=n - 1)).isoformat()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("labels")
    env = embedded_environment(home)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        generate(home / "drops" / "activity", END, days=DAYS, n_customers=CUSTOMERS)
        generate_labels(home / "drops", END, days=DAYS, delay_days=DELAY, n_customers=CUSTOMERS)
        yield home


def night(n: int, conf=None) -> str:
    from operators.embedded import run_dag

    return run_dag("churn_nightly", date.fromisoformat(day(n)), conf)


def registry(home):
    import mlflow

    uri = f"sqlite:///{home}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(client) -> list:
    return sorted(client.search_model_versions("name = 'churn'"), key=lambda v: int(v.version))


def plant_future_labels(lake: Lake, arrival: str, as_of: list[str]) -> None:
    """A label partition that lands after the run's date, contradicting every outcome it names:
    reading it would give each (customer, day) a second outcome, which training refuses."""
    import pyarrow as pa

    truth = lake.read_table("validated", "churn_labels", day(DELAY + 1)).to_pandas()
    ids = truth["customer_id"].tolist()
    rows = {"customer_id": ids * len(as_of),
            "as_of": [date.fromisoformat(d) for d in as_of for _ in ids],
            "churned": [not v for _ in as_of for v in truth["churned"].tolist()]}
    with lake.publish("validated", "churn_labels", arrival, run_id="planted-by-test", inputs=[],
                      extra={"status": "passed"}) as writer:
        writer.write_table(pa.table(rows))


def test_delayed_labels_train_score_and_evaluate(home):
    lake = Lake(f"file://{home}/lake")
    client = registry(home)

    # Nights 1-5: at most two label-complete days exist (two are held out), so nothing trains,
    # there is no champion to score with, and no scored day has outcomes: clear skips, not failures.
    for n in range(1, 6):
        assert night(n) == "success", n
        features = lake.read_table("features", "churn_features", day(n)).to_pandas()
        assert len(features) == CUSTOMERS and "churned" not in features.columns  # every customer, no outcome
    assert versions(client) == []
    assert lake.partitions("predictions", "churn_predictions") == []

    # Night 6: days 1-3 have complete outcomes (landed on days 4-6): train on day 1, hold out 2-3.
    assert night(6) == "success"
    (first,) = versions(client)
    params = client.get_run(first.run_id).data.params
    assert params["dates"] == ",".join([day(1), day(2), day(3)])
    assert params["holdout_dates"] == ",".join([day(2), day(3)])
    assert params["label_dates"].split(",") == [day(n) for n in range(1, 7)]  # landed by the night, none later
    assert client.get_model_version_by_alias("churn", "champion").version == first.version

    for n in (7, 8):
        assert night(n) == "success", n
    # Every customer is scored each night, though no outcome of that day is known yet.
    for n in (6, 7, 8):
        predictions = lake.read_table("predictions", "churn_predictions", day(n)).to_pandas()
        assert len(predictions) == CUSTOMERS and predictions["prediction"].between(0, 1).all()
        assert predictions["model_version"].notna().all()
        known = lake.read_table("validated", "churn_labels", day(n)).to_pandas()
        assert (known["as_of"].astype(str) < day(n)).all()  # the day's own outcomes had not landed

    # Night 9 lands day 6's outcomes: day 6's predictions are evaluated per model version.
    assert night(9) == "success"
    evaluated = lake.read_table("evaluations", "churn_evaluations", day(6)).to_pandas()
    assert evaluated["labelled_rows"].sum() == CUSTOMERS and (evaluated["scored_rows"] == CUSTOMERS).all()
    assert evaluated["auc"].between(0.6, 1).all()
    assert lake.partitions("evaluations", "churn_evaluations") == [day(6)]

    # A label drop dated after night 10, contradicting the outcomes of the days night 10 trains on.
    plant_future_labels(lake, day(11), [day(n) for n in range(1, 8)])
    before = len(versions(client))
    assert night(10) == "success"  # reading the planted drop would have failed on the second outcomes
    newest = versions(client)[-1]
    assert len(versions(client)) == before + 1
    params = client.get_run(newest.run_id).data.params
    assert day(11) not in params["label_dates"] and params["labels_cutoff"] == day(10)
    assert params["dates"].split(",")[-1] == day(7)  # the newest day whose outcomes are complete on day 10
    assert lake.partitions("evaluations", "churn_evaluations") == [day(6), day(7)]
    day7 = lake.require("evaluations", "churn_evaluations", day(7))
    assert day(11) not in day7.extra["label_partitions"]

    # The live metric is a series on each scoring version's training run, one point per evaluated day.
    steps = {}
    for row in lake.read_table("evaluations", "churn_evaluations", day(7)).to_pylist():
        run_id = client.get_model_version("churn", row["model_version"]).run_id
        history = client.get_metric_history(run_id, "live_auc")
        steps[row["model_version"]] = {m.step for m in history}
        assert any(abs(m.value - row["auc"]) < 1e-9 for m in history)
    day7_step = (date.fromisoformat(day(7)) - date(1970, 1, 1)).days
    assert all(day7_step in s for s in steps.values())

    # Lineage: the champion names its feature partitions and the raw files behind them.
    champion = client.get_model_version_by_alias("churn", "champion")
    assert champion.tags["skylift.features"].startswith("churn_features@")
    assert "activity.csv#" in champion.tags["skylift.raw_sources"]
    # The model has learnt something: day 7's churners scored higher than the others, on average.
    scored = lake.read_table("predictions", "churn_predictions", day(7)).to_pandas()
    outcomes = lake.read_table("validated", "churn_labels", day(10)).to_pandas()
    joined = scored.merge(outcomes, on="customer_id", validate="one_to_one")
    assert joined.groupby("churned")["prediction"].mean().diff().iloc[-1] > 0.1

    # A re-run of the night changes nothing: same partitions and files, training reused, no new version.
    kept = {(zone, dataset, ds): lake.require(zone, dataset, ds) for zone, dataset, ds in [
        ("raw", "customer_activity", day(10)), ("validated", "churn_labels", day(10)),
        ("features", "churn_features", day(10)), ("predictions", "churn_predictions", day(10)),
        ("evaluations", "churn_evaluations", day(7))]}
    assert night(10) == "success"
    for part, manifest in kept.items():
        again = lake.require(*part)
        assert (again.fingerprint, again.attempt) == (manifest.fingerprint, manifest.attempt), part
        assert len(lake.fs.ls(lake.partition_path(*part), detail=False)) == 2, part  # one data file, the manifest
    assert len(versions(client)) == before + 1
    assert client.get_model_version_by_alias("churn", "champion").version == champion.version

    # `rebuild` rewrites every output and trains again, whatever the inputs.
    assert night(10, {"rebuild": True}) == "success"
    assert len(versions(client)) == before + 2
    assert lake.require("features", "churn_features", day(10)).attempt != kept[
        ("features", "churn_features", day(10))].attempt

    # The gate decides on two held-out days (every customer of each) and promotes only a significant
    # gain: most trained versions stay challengers, and each promotion records its sample size and intervals.
    promotions = [e for e in AuditTrail(lake).events("churn") if e.action == "promote"]
    print("promotions:", [e.line() for e in promotions], "of", len(versions(client)), "versions")
    assert promotions[0].version == str(first.version)
    assert 1 <= len(promotions) <= len(versions(client)) // 2
    for event in promotions:
        gate = event.details["gate"]
        assert gate["n"] == 2 * CUSTOMERS
        assert gate["challenger"]["low"] <= gate["challenger"]["value"] <= gate["challenger"]["high"]
        assert event.version == str(first.version) or gate["gain"]["low"] >= 0.005


def test_retrain_with_a_trigger_form_conf(home):
    """A manual retrain over a date range trains on its label-complete days only."""
    client = registry(home)
    conf = {"train_start": day(4), "train_end": day(10), "max_depth": 2, "num_boost_round": 30,
            "force_deploy": True}
    from operators.embedded import run_dag

    assert run_dag("churn_retrain", date.fromisoformat(day(10)), conf) == "success"
    newest = versions(client)[-1]
    params = client.get_run(newest.run_id).data.params
    assert params["max_depth"] == "2"
    assert params["dates"] == ",".join(day(n) for n in (4, 5, 6, 7))  # days 8-10 have no complete outcomes
    assert params["holdout_dates"] == ",".join([day(6), day(7)])
    assert client.get_model_version_by_alias("churn", "champion").version == newest.version
