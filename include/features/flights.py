"""NYC flights features: one row per flight scheduled on the run's date, from what is known then.

Known on day D: the schedules of D and of the look-back window's earlier days, and the weather
observed up to the end of D - 1. Not known: any departure, arrival or delay of D, so nothing
here reads the outcomes (the pipeline never passes them to this job). Every scheduled flight
gets a row, including the ones that will be cancelled: they are scored like the rest.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ORIGINS = ("EWR", "JFK", "LGA")
# The carriers in the 2013 data; a carrier outside the list gets zeros in every carrier column.
CARRIERS = ("9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV")
WEATHER = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
DEST_BUCKETS = 1024  # a stable numeric code per destination (training keeps numeric columns only)


def build(flights: DataFrame, weather: DataFrame, ds: str) -> DataFrame:
    """Schedule, congestion, route history and the origin's latest weather for each flight of `ds`."""
    today = flights.where(F.col("ds") == ds)
    return (
        _schedule(today, ds)
        .join(_congestion(today), "flight_id", "inner")
        .join(_history(flights), ["origin", "dest", "carrier"], "left")
        .join(_latest_weather(weather), "origin", "left")
        .join(_previous_day_weather(weather, ds), "origin", "left")
        .fillna(0, subset=["route_flights_per_day", "carrier_flights_per_day"])
        .orderBy("flight_id")
    )


def _minutes(hhmm: str) -> F.Column:
    return F.floor(F.col(hhmm) / 100) * 60 + F.col(hhmm) % 100


def _schedule(today: DataFrame, ds: str) -> DataFrame:
    day = F.to_date(F.lit(ds))
    span = (_minutes("sched_arr_time") - _minutes("sched_dep_time") + 1440) % 1440
    return today.select(
        "flight_id", "origin", "dest", "carrier",
        F.floor(F.col("sched_dep_time") / 100).cast("int").alias("dep_hour"),
        _minutes("sched_dep_time").cast("int").alias("dep_minute_of_day"),
        F.floor(F.col("sched_arr_time") / 100).cast("int").alias("arr_hour"),
        span.cast("int").alias("scheduled_span_minutes"),  # clock difference, across time zones
        F.col("distance").cast("int").alias("distance"),
        F.dayofweek(day).alias("weekday"),
        F.month(day).alias("month"),
        (F.abs(F.xxhash64("dest")) % DEST_BUCKETS).cast("int").alias("dest_code"),
        *[(F.col("origin") == origin).cast("int").alias(f"origin_{origin.lower()}") for origin in ORIGINS],
        *[(F.col("carrier") == carrier).cast("int").alias(f"carrier_{carrier.lower()}") for carrier in CARRIERS],
    )


def _congestion(today: DataFrame) -> DataFrame:
    """How busy the flight's airport, hour and destination are on the day (from the schedule)."""
    hour = F.floor(F.col("sched_dep_time") / 100)
    return today.select(
        "flight_id",
        F.count("*").over(Window.partitionBy("origin", hour)).cast("int").alias("origin_hour_flights"),
        F.count("*").over(Window.partitionBy("origin")).cast("int").alias("origin_day_flights"),
        F.count("*").over(Window.partitionBy("dest")).cast("int").alias("dest_day_flights"),
    )


def _history(flights: DataFrame) -> DataFrame:
    """Scheduled flights per day over the look-back window, for the route and for the carrier."""
    days = flights.select(F.countDistinct("ds").alias("window_days"))
    route = flights.groupBy("origin", "dest", "carrier").agg(F.count("*").alias("route_flights"))
    carrier = flights.groupBy("carrier").agg(F.count("*").alias("carrier_flights"))
    return (
        route.join(carrier, "carrier").crossJoin(days)
        .select(
            "origin", "dest", "carrier", "window_days",
            (F.col("route_flights") / F.col("window_days")).alias("route_flights_per_day"),
            (F.col("carrier_flights") / F.col("window_days")).alias("carrier_flights_per_day"),
        )
    )


def _latest_weather(weather: DataFrame) -> DataFrame:
    """The newest observation at each origin among the drops that have landed."""
    newest = Window.partitionBy("origin").orderBy(F.col("observed_at").desc())
    return (
        weather.withColumn("_rank", F.row_number().over(newest)).where(F.col("_rank") == 1)
        .select("origin", *[F.col(name).alias(f"wx_{name}") for name in WEATHER])
    )


def _previous_day_weather(weather: DataFrame, ds: str) -> DataFrame:
    """The day before `ds` at each origin: the drop that landed on `ds`."""
    return weather.where(F.col("ds") == ds).groupBy("origin").agg(
        F.sum("precip").alias("wx_precip_24h"),
        F.min("visib").alias("wx_min_visib_24h"),
        F.max("wind_speed").alias("wx_max_wind_24h"),
        F.max("wind_gust").alias("wx_max_gust_24h"),
        F.avg("temp").alias("wx_mean_temp_24h"),
    )
