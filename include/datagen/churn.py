"""Deterministic sample data: daily drops of customer activity for a subscription service.

Every customer has a hidden churn risk. Risky customers use the product less over time, open
more support tickets and miss more payments, so both the churn label (`churned`) and the
spend over the next 30 days (`next_30d_spend`) are learnable from a few days of activity.
The same seed, customer count and date always give byte-identical files.

Outcomes are not in the activity drops: they arrive later, as upstream systems learn them. The
label drop of day L (`labels/<L>/churn_labels.csv`, `spend_labels/<L>/spend_labels.csv`) holds
the outcomes of feature day L - delay_days, named by its `as_of` column.

    python -m include.datagen.churn --out .demo/drops --end 2026-11-24 --days 10 --delay-days 3
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PLANS = np.array(["basic", "standard", "premium"])
PLAN_PRICE = np.array([9.99, 15.99, 22.99])
EPOCH = date(2020, 1, 1)
MARKER = "_SUCCESS"  # what `source.completion.marker` names in the shipped specs


def customers(n: int, seed: int) -> pd.DataFrame:
    """The customer base: stable attributes and the hidden risk that drives behaviour."""
    rng = np.random.default_rng([seed, 0])
    plan = rng.choice(3, size=n, p=[0.5, 0.35, 0.15])
    tenure = rng.gamma(2.0, 220.0, size=n).astype(int) + 1
    engagement = rng.normal(0.0, 1.0, size=n)
    risk = -1.0 - 0.9 * engagement - 0.0025 * tenure + 0.6 * (plan == 0) + rng.normal(0, 0.5, size=n)
    churn_p = 1 / (1 + np.exp(-risk))
    churned = rng.random(n) < churn_p
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "plan_idx": plan,
            "tenure0": tenure,
            "engagement": engagement,
            "churn_p": churn_p,
            "churned": churned,
        }
    )


def day_entropy(day: date) -> int:
    """A day's part of a random seed. numpy refuses negative seeds, so days before EPOCH wrap into
    32 bits; days from EPOCH on keep the numbers (and so the data) they always had."""
    return (day - EPOCH).days % 2**32


def daily_activity(base: pd.DataFrame, day: date, seed: int) -> pd.DataFrame:
    """One day's activity drop for every customer."""
    day_index = (day - EPOCH).days
    rng = np.random.default_rng([seed, 1, day_entropy(day)])
    n = len(base)
    # Churners fade: their usage decays with the day of the week-long cycle they are in.
    fade = np.where(base.churned, 0.55 + 0.35 * np.cos(day_index / 3.0 + base.tenure0 % 7), 1.0)
    base_rate = np.exp(1.2 + 0.45 * base.engagement) * fade
    sessions = rng.poisson(base_rate)
    minutes = np.round(np.minimum(sessions * rng.gamma(4.0, 6.0, size=n), 1440.0), 1)  # a day has 1440
    tickets = rng.poisson(0.05 + 0.5 * base.churn_p)
    failures = rng.poisson(0.02 + 0.25 * base.churn_p * (base.plan_idx == 0))
    price = PLAN_PRICE[base.plan_idx]
    charges = np.round(price * (1 + 0.1 * rng.standard_normal(n).clip(-1, 1)), 2)
    return pd.DataFrame(
        {
            "customer_id": base.customer_id,
            "event_date": day.isoformat(),
            "plan": PLANS[base.plan_idx],
            "tenure_days": np.maximum(base.tenure0 + day_index, 0),  # before EPOCH some had not joined yet
            "monthly_charges": charges,
            "sessions": sessions,
            "minutes_watched": minutes,
            "support_tickets": tickets,
            "payment_failures": failures,
        }
    )


def churn_labels(base: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Whether each customer churned within 30 days of feature day `as_of`."""
    return pd.DataFrame({"customer_id": base.customer_id, "as_of": as_of.isoformat(),
                         "churned": base.churned.map({True: "true", False: "false"})})


def spend_labels(base: pd.DataFrame, as_of: date, seed: int) -> pd.DataFrame:
    """Each customer's spend over the 30 days after feature day `as_of`."""
    rng = np.random.default_rng([seed, 2, day_entropy(as_of)])
    price = PLAN_PRICE[base.plan_idx]
    spend = price * (1 - base.churn_p) * (1.5 + 0.3 * base.engagement) + rng.normal(0, 1.5, size=len(base))
    return pd.DataFrame({"customer_id": base.customer_id, "as_of": as_of.isoformat(),
                         "next_30d_spend": np.round(np.maximum(spend, 0.0), 2)})


def write_drop(frame: pd.DataFrame, folder: Path, fmt: str = "csv", name: str = "activity") -> Path:
    """Write a drop as the upstream system would: one file per day, written whole then renamed,
    then the completion marker (`MARKER`), last, so a reader never takes a half drop for a whole one."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}[fmt]
    target = folder / f"{name}.{suffix}"
    tmp = folder / f".{name}.{suffix}.tmp"
    if fmt == "csv":
        frame.to_csv(tmp, index=False)
    elif fmt == "jsonl":
        frame.to_json(tmp, orient="records", lines=True)
    else:
        frame.to_parquet(tmp, index=False)
    tmp.replace(target)
    (folder / MARKER).write_bytes(b"")
    return target


def generate(out: Path, end: date, days: int, n_customers: int = 5000, seed: int = 7, fmt: str = "csv") -> list[Path]:
    """Write `days` daily drops ending at `end` under `out/<YYYY-MM-DD>/`."""
    base = customers(n_customers, seed)
    written = []
    for offset in range(days - 1, -1, -1):
        day = end - timedelta(days=offset)
        written.append(write_drop(daily_activity(base, day, seed), out / day.isoformat(), fmt))
    return written


def generate_labels(drops: Path, end: date, days: int, delay_days: int = 3, n_customers: int = 5000,
                    seed: int = 7) -> list[Path]:
    """Label drops for the same `days` ending at `end`, under the drops root: the drop of day L
    holds the outcomes of feature day L - delay_days. The label feed is older than the activity
    written here, so the first drops carry outcomes of days before it (which join to nothing)."""
    base = customers(n_customers, seed)
    written = []
    for offset in range(days - 1, -1, -1):
        arrival = end - timedelta(days=offset)
        as_of = arrival - timedelta(days=delay_days)
        written.append(write_drop(churn_labels(base, as_of), drops / "labels" / arrival.isoformat(),
                                  name="churn_labels"))
        written.append(write_drop(spend_labels(base, as_of, seed), drops / "spend_labels" / arrival.isoformat(),
                                  name="spend_labels"))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="drops root: writes activity/<date>/activity.<fmt> and the label drops")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last date (YYYY-MM-DD)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=["csv", "jsonl", "parquet"], default="csv")
    parser.add_argument("--delay-days", type=int, default=3, help="days until a feature day's outcomes land")
    args = parser.parse_args(argv)
    for path in generate(args.out / "activity", args.end, args.days, args.customers, args.seed, args.format):
        print(path)
    for path in generate_labels(args.out, args.end, args.days, args.delay_days, args.customers, args.seed):
        print(path)


if __name__ == "__main__":
    main()
