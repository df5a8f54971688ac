"""The NYC flights pipeline end to end on real data: five nights of `flights_nightly` through
`dag.test()`, with outcomes landing a day after the flights and cancelled flights never labelled.

Nights 1-3 ingest, validate and build features; training has too few label-complete days
(three are needed: the newest two are the gate's holdout) and is skipped. Night 4 trains on the
days whose outcomes have landed, deploys and scores every scheduled flight. Night 5 evaluates
night 4's predictions against the outcomes that landed with it, and scores again.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from include.datagen import flights as fl
from include.lake import Lake
from tests.conftest import embedded_environment

pytestmark = pytest.mark.e2e
# Late June 2013: thunderstorms; 94 and 123 flights were cancelled on the two nights that score.
FIRST = date(2013, 6, 24)
NIGHTS = [FIRST + timedelta(days=i) for i in range(5)]
PER_DAY = None  # whole days: about 1,000 flights each


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Drops of the five days, then the five nights in order; yields (home, data, states)."""
    home = tmp_path_factory.mktemp("flights-e2e")
    env = embedded_environment(home)
    from operators.embedded import run_dag

    data = fl.load()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        fl.generate(home / "drops", NIGHTS[0], NIGHTS[-1], per_day=PER_DAY, data=data)
        states = {day: run_dag("flights_nightly", day) for day in NIGHTS}
        yield home, data, states


def client(home):
    import mlflow

    uri = f"sqlite:///{home}/mlflow.db"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_every_night_succeeds(nights):
    _, _, states = nights
    assert states == dict.fromkeys(NIGHTS, "success")


def test_features_exist_for_every_flight_and_never_hold_the_outcome(nights):
    home, data, _ = nights
    lake = Lake(f"file://{home}/lake")
    for day in NIGHTS:
        features = lake.read_table("features", "flights_features", day.isoformat()).to_pandas()
        assert sorted(features["flight_id"]) == sorted(data.scheduled(day, PER_DAY)["flight_id"])
        assert not {"arrived_late", "arr_delay", "dep_delay"} & set(features.columns)


def test_the_model_trains_only_on_days_whose_outcomes_had_landed(nights):
    home, _, _ = nights
    registry = client(home)
    versions = sorted(registry.search_model_versions("name = 'flights'"), key=lambda v: int(v.version))
    assert versions, "no model was trained"
    for version in versions:
        run = registry.get_run(version.run_id).data
        ds = run.tags["skylift.ds"]
        trained_on = run.params["dates"]
        first_night = NIGHTS[3].isoformat()
        assert ds >= first_night  # nights 1-3 had fewer than three label-complete days
        for day in NIGHTS:
            # a feature day is used only once its outcomes landed (the drop of the next day, by ds)
            assert (day.isoformat() in trained_on) == (day < date.fromisoformat(ds)), (ds, day)


def test_every_scheduled_flight_is_scored_cancelled_ones_included(nights):
    home, data, _ = nights
    lake = Lake(f"file://{home}/lake")
    champion = client(home).get_model_version_by_alias("flights", "champion")
    for day in NIGHTS[3:]:
        schedule = data.scheduled(day, PER_DAY)
        predictions = lake.read_table("predictions", "flights_predictions", day.isoformat()).to_pandas()
        assert sorted(predictions["flight_id"]) == sorted(schedule["flight_id"]), day
        assert predictions["prediction"].between(0, 1).all()
        cancelled = set(schedule.loc[schedule["dep_time"].isna(), "flight_id"])
        assert cancelled and cancelled <= set(predictions["flight_id"]), day  # never labelled, still scored
    assert set(predictions["model_version"]) == {str(champion.version)}
    for day in NIGHTS[:3]:
        assert lake.manifest("predictions", "flights_predictions", day.isoformat()) is None  # no model yet


def test_the_live_metric_is_recorded_once_the_outcomes_land(nights):
    home, data, _ = nights
    lake = Lake(f"file://{home}/lake")
    scored = NIGHTS[3]  # scored on night 4, its outcomes landed with night 5's drops
    evaluation = lake.read_table("evaluations", "flights_evaluations", scored.isoformat()).to_pandas()
    (row,) = evaluation.to_dict(orient="records")
    outcomes = fl.outcomes_drop(data, scored + timedelta(days=1), PER_DAY)
    scheduled = len(data.scheduled(scored, PER_DAY))
    assert row["labelled_rows"] == len(outcomes) < row["scored_rows"] == scheduled  # cancelled: scored, unlabelled
    assert row["evaluated_on"] == NIGHTS[4].isoformat()
    assert 0.0 <= row["auc"] <= 1.0
    registry = client(home)
    version = registry.get_model_version("flights", row["model_version"])
    history = registry.get_metric_history(version.run_id, "live_auc")
    assert [m.value for m in history] == pytest.approx([row["auc"]])
    # the last night's predictions wait for tomorrow's outcomes
    assert lake.manifest("evaluations", "flights_evaluations", NIGHTS[4].isoformat()) is None



def test_retrain_score_and_rollback_dags_run_after_the_nights(nights):
    """flights' other DAGs, last (they move the champion): a forced retrain makes a new champion,
    the score DAG scores the last night with it, and the rollback DAG puts the nightly's version back."""
    from operators.embedded import run_dag

    home, data, _ = nights
    registry = client(home)
    before = registry.get_model_version_by_alias("flights", "champion").version
    last = NIGHTS[-1]
    conf = {"max_depth": 3, "num_boost_round": 20, "force_deploy": True}
    assert run_dag("flights_retrain", last, conf) == "success"
    champion = registry.get_model_version_by_alias("flights", "champion").version
    assert int(champion) > int(before)
    assert registry.get_run(registry.get_model_version("flights", champion).run_id).data.params["max_depth"] == "3"

    assert run_dag("flights_score", last, {"rebuild": True}) == "success"
    predictions = Lake(f"file://{home}/lake").read_table("predictions", "flights_predictions",
                                                         last.isoformat()).to_pandas()
    assert set(predictions["model_version"]) == {str(champion)}
    assert sorted(predictions["flight_id"]) == sorted(data.scheduled(last, PER_DAY)["flight_id"])

    assert run_dag("flights_rollback", last, {"to_version": "", "reason": "e2e: back to the nightly's model"}) \
        == "success"
    assert registry.get_model_version_by_alias("flights", "champion").version == before
