"""Daily CSV drops of shipments for the parcels tutorial (README: "Tutorial: from a drop to a served model").

    python include/examples/parcels/make_drops.py DROPS_ROOT --from 2026-03-01 --days 5

writes `DROPS_ROOT/shipments/<day>/shipments.csv` for each day: one row per parcel with its
weight, distance, priority and whether it arrived late (long trips of light parcels tend to be).
The same day always gives the same rows.
"""

from __future__ import annotations

import argparse
import random
from datetime import date, timedelta
from pathlib import Path

SHIPMENTS = 60


def write_drop(drops: Path, day: date, rows: int = SHIPMENTS) -> Path:
    """One day's shipments under `drops/shipments/<day>/`; returns the CSV's path."""
    rng = random.Random(day.toordinal())
    lines = ["shipment_id,weight_kg,distance_km,priority,late"]
    for n in range(rows):
        weight, distance, priority = round(rng.uniform(0.5, 30), 2), round(rng.uniform(5, 900), 1), rng.randint(0, 1)
        late = int(distance / 900 - 0.3 * priority + rng.uniform(-0.3, 0.3) > 0.4)
        lines.append(f"S{day:%m%d}{n:04d},{weight},{distance},{priority},{late}")
    folder = drops / "shipments" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shipments.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("drops", type=Path, help="the drops root (<home>/skylift/drops for `skylift run`)")
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2026, 3, 1))
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rows", type=int, default=SHIPMENTS)
    args = parser.parse_args(argv)
    for n in range(args.days):
        print(write_drop(args.drops, args.first + timedelta(days=n), args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
