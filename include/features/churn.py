"""Churn features: a customer's activity over the look-back window, as of the run's date."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

PLANS = ("basic", "standard", "premium")


def build(activity: DataFrame, ds: str) -> DataFrame:
    """One row per customer seen on `ds`: usage aggregates, recent trend and plan. No outcome:
    labels arrive later in their own source and are joined at training time."""
    window = activity.groupBy("customer_id").agg(
        F.count("*").alias("days_seen"),
        F.avg("sessions").alias("sessions_mean"),
        F.stddev_pop("sessions").alias("sessions_std"),
        F.avg("minutes_watched").alias("minutes_mean"),
        F.sum("support_tickets").alias("tickets_total"),
        F.sum("payment_failures").alias("payment_failures_total"),
        F.sum(F.when(F.col("sessions") > 0, 1).otherwise(0)).alias("days_active"),
    )
    today = activity.where(F.col("ds") == ds).select(
        "customer_id",
        F.col("sessions").alias("sessions_today"),
        F.col("minutes_watched").alias("minutes_today"),
        "tenure_days",
        "monthly_charges",
        *[(F.col("plan") == plan).cast("int").alias(f"plan_{plan}") for plan in PLANS],
    )
    return (
        today.join(window, "customer_id", "inner")
        .withColumn("sessions_trend", F.col("sessions_today") - F.col("sessions_mean"))
        .withColumn("active_share", F.col("days_active") / F.col("days_seen"))
        .fillna({"sessions_std": 0.0})
        .orderBy("customer_id")
    )
