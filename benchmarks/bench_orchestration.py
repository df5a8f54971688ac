"""Orchestration: one churn night under Airflow (`dag.test()`) against its stages called directly;
and the nightly run at scale (wall time and peak memory).

    .venv/bin/python -m benchmarks.bench_orchestration [--customers 2000] [--scale 100000,1000000] [--repeat 5]

Every run is a fresh process with a fresh home (SQLite metadata DB, lake, MLflow store) holding
the day's sample drops (activity and the label drop), on the shipped `churn.yaml`. It is the
pipeline's first night: ingest and validate both sources, build features, then train, register,
deploy and score skip (no label-complete day and no champion yet), as on a new deployment. The
direct side compiles the same DAG and calls each task's `execute` in order (see
`benchmarks.night_child`); both must end with the same task states. The scale rows run the
Airflow side once per size; peak memory is the whole process tree's (Spark's JVM included).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from benchmarks.common import Comparison, Side, emit, interleave, log, python_child, row_of

AIRFLOW, DIRECT = "Skylift nightly under Airflow (dag.test)", "the same stages called directly"
DAY = date(2026, 11, 24)


def make_drops(folder: Path, customers: int) -> Path:
    from include.datagen.churn import generate, generate_labels

    generate(folder / "activity", DAY, days=1, n_customers=customers)
    generate_labels(folder, DAY, days=1, delay_days=3, n_customers=customers)
    return folder


def night(name: str, mode: str, base: Path, drops: Path) -> Side:
    return Side(name, python_child("benchmarks.night_child", mode, str(base), str(drops), DAY.isoformat()))


def compare(tmp: Path, customers: int, repeat: int) -> Comparison:
    drops = make_drops(tmp / f"drops-{customers}", customers)
    runs = interleave([night(AIRFLOW, "airflow", tmp, drops), night(DIRECT, "direct", tmp, drops)], repeat,
                      progress=log)
    states = {name: rs[0].values["states"] for name, rs in runs.items()}
    same = states[AIRFLOW] == states[DIRECT]
    ran = sorted(t for t, s in states[AIRFLOW].items() if s == "success")
    return Comparison(
        key="orchestration", title=f"Orchestration: the churn night, {customers:,} customers",
        command=f".venv/bin/python -m benchmarks.bench_orchestration --customers {customers}", baseline=DIRECT,
        unit="nights", rows=[row_of(name, r) for name, r in runs.items()],
        notes=[f"Tasks that ran: {', '.join(ran)}; the rest skipped (first night: nothing label-complete to "
               "train on, no champion to score with).",
               "Both sides ended with the same task states." if same else
               f"The task states differ: Airflow {states[AIRFLOW]}, direct {states[DIRECT]}.",
               "Airflow's side includes migrating a fresh SQLite metadata DB and its DagBag; the direct side "
               "compiles the DAG from the spec."])


def at_scale(tmp: Path, customers: int) -> Comparison:
    log(f"nightly at {customers:,} customers: making the drops")
    drops = make_drops(tmp / f"drops-{customers}", customers)
    runs = interleave([night(AIRFLOW, "airflow", tmp, drops)], 1, timeout=3600, progress=log)
    states = runs[AIRFLOW][0].values["states"]
    return Comparison(
        key=f"nightly_{customers}", title=f"The nightly run at {customers:,} customers (one run)",
        command=f".venv/bin/python -m benchmarks.bench_orchestration --scale {customers}", baseline=AIRFLOW,
        rows=[row_of(AIRFLOW, runs[AIRFLOW], customers)],
        notes=["One run: wall time and peak memory of the whole process tree, not a ratio.",
               f"Tasks that ran: {', '.join(sorted(t for t, s in states.items() if s == 'success'))}."])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=2000, help="size of the side-by-side night (0: skip)")
    parser.add_argument("--scale", default="100000,1000000", help="sizes of the single nightly runs ('' : none)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 customers, 2 repetitions, no scale runs")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.scale, args.repeat = 500, "", 2
    with tempfile.TemporaryDirectory(prefix="skylift-bench-night-") as tmp:
        if args.customers:
            emit([compare(Path(tmp), args.customers, args.repeat)])
        for size in [int(s) for s in args.scale.split(",") if s.strip()]:
            emit([at_scale(Path(tmp), size)])


if __name__ == "__main__":
    main()
