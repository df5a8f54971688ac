"""Parcel features: the day's shipments with their distance per kilogram."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def build(shipments: DataFrame, ds: str) -> DataFrame:
    today = shipments.where(F.col("ds") == ds)
    return today.select("shipment_id", "weight_kg", "distance_km", "priority",
                        (F.col("distance_km") / F.col("weight_kg")).alias("km_per_kg"), "late")
