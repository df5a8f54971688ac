"""The NYC flights feature job on Spark (`local[2]`), over three days of real drops."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from include.contracts import Contract, read_drop
from include.datagen import flights as fl

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2013, 2, 9)  # the blizzard's second day: 393 of 684 flights cancelled
WINDOW = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
PER_DAY = 60
NOT_KNOWN_YET = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "arrived_late", "tailnum"}


@pytest.fixture(scope="module")
def drops(tmp_path_factory):
    out = tmp_path_factory.mktemp("flights-drops")
    data = fl.load(origins=("JFK", "LGA"))
    fl.generate(out, WINDOW[0], WINDOW[-1], origins=("JFK", "LGA"), per_day=PER_DAY, data=data)
    return out, data


def validated(drops_root: Path, source: str, name: str, parquet_root: Path) -> list[Path]:
    """Each day's drop as the validated zone holds it: typed by its contract, one Parquet file a day."""
    contract = Contract.from_file(ROOT / "include" / "schemas" / f"{source}.yaml")
    paths = []
    for day in WINDOW:
        path = drops_root / source / day.isoformat() / name
        target = parquet_root / source / f"{day.isoformat()}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(read_drop([(str(path), path.read_bytes())], "csv", contract).table, target)
        paths.append(target)
    return paths


@pytest.fixture(scope="module")
def features(drops, tmp_path_factory):
    from pyspark.sql import functions as F

    from include.features.flights import build
    from operators.hooks.spark import SparkHook

    root, _ = drops
    parquet = tmp_path_factory.mktemp("validated")
    inputs = {"flights": validated(root, "flights", "flights.csv", parquet),
              "weather": validated(root, "weather", "weather.csv", parquet)}
    with SparkHook("local[2]", app_name="test-flights-features").session() as spark:
        frames = {}
        for source, paths in inputs.items():
            days = [spark.read.parquet(str(p)).withColumn("ds", F.lit(d.isoformat())) for p, d in
                    zip(paths, WINDOW, strict=True)]
            frames[source] = days[0].unionByName(days[1]).unionByName(days[2])
        yield build(**frames, ds=DAY.isoformat()).toPandas()


def test_every_scheduled_flight_of_the_day_gets_one_row_cancelled_or_not(drops, features):
    _, data = drops
    schedule = data.scheduled(DAY, PER_DAY)
    assert sorted(features["flight_id"]) == sorted(schedule["flight_id"])
    assert features["flight_id"].is_unique
    cancelled = schedule.loc[schedule["dep_time"].isna(), "flight_id"]
    assert len(cancelled) > PER_DAY / 3  # the blizzard: these have features but will never have a label


def test_nothing_from_the_day_s_future_and_everything_but_names_is_numeric(features):
    assert not NOT_KNOWN_YET & set(features.columns)
    text = [c for c in features.columns if features[c].dtype.kind not in "biuf"]
    assert sorted(text) == ["carrier", "dest", "flight_id", "origin"]


def test_weather_is_the_origin_s_latest_observation_from_the_day_before(drops, features):
    _, data = drops
    before = data.weather[data.weather["obs_date"] == (DAY - timedelta(days=1)).isoformat()]
    for origin in ("JFK", "LGA"):
        last = before[before["origin"] == origin].sort_values("observed_at").iloc[-1]
        rows = features[features["origin"] == origin]
        assert rows["wx_temp"].eq(float(last["temp"])).all(), origin
        assert rows["wx_visib"].eq(float(last["visib"])).all(), origin
        precip = before.loc[before["origin"] == origin, "precip"].astype(float).sum()
        assert rows["wx_precip_24h"].round(6).eq(round(precip, 6)).all(), origin


def test_schedule_congestion_and_route_history(drops, features):
    _, data = drops
    schedule = data.scheduled(DAY, PER_DAY)
    row = features.iloc[0]
    flight = schedule[schedule["flight_id"] == row["flight_id"]].iloc[0]
    assert row["dep_hour"] == flight["sched_dep_time"] // 100
    assert row["distance"] == flight["distance"]
    assert row[f"origin_{flight['origin'].lower()}"] == 1 and row[f"carrier_{flight['carrier'].lower()}"] == 1
    same_hour = schedule[(schedule["origin"] == flight["origin"])
                         & (schedule["sched_dep_time"] // 100 == flight["sched_dep_time"] // 100)]
    assert row["origin_hour_flights"] == len(same_hour)
    window = [data.scheduled(d, PER_DAY) for d in WINDOW]
    route = sum(((w["origin"] == flight["origin"]) & (w["dest"] == flight["dest"])
                 & (w["carrier"] == flight["carrier"])).sum() for w in window)
    assert row["window_days"] == 3
    assert row["route_flights_per_day"] == pytest.approx(route / 3)
    assert features["weekday"].eq(DAY.isoweekday() % 7 + 1).all()  # Spark counts from Sunday = 1
