"""`make bench`: every benchmark in turn, then benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run_all [--quick] [--budget-minutes 60] [--out benchmarks/RESULTS.md]

Benchmarks run one after another (never two at once), most important first; each is its own
process and its tables come back as JSON. RESULTS.md is rewritten after every benchmark, so an
interrupted run still leaves what it measured. A benchmark is not started once the budget is
spent; RESULTS.md lists it as not run, with its command. `--quick` runs the small sizes (for
development; RESULTS.md then says so at the top).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import RESULTS_DIR_ENV, ROOT, log
from benchmarks.report import Run, render


@dataclass(frozen=True)
class Bench:
    module: str
    args: tuple[str, ...] = ()


# Most important first: the goals of issue 13, then the rest.
PLAN = (
    Bench("benchmarks.bench_parse"),
    Bench("benchmarks.bench_ingest", ("--big-rows", "0")),
    Bench("benchmarks.bench_scoring"),
    Bench("benchmarks.bench_validation"),
    Bench("benchmarks.bench_features", ("--big-rows", "0")),
    Bench("benchmarks.bench_orchestration", ("--scale", "100000")),
    Bench("benchmarks.bench_orchestration", ("--customers", "0", "--scale", "1000000")),
    Bench("benchmarks.bench_ingest", ("--rows", "10000000", "--big-rows", "0", "--repeat", "1")),
    Bench("benchmarks.bench_features", ("--rows", "10000000", "--big-rows", "0")),
)


def machine() -> dict[str, str]:
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    from importlib.metadata import version

    return {"cores": str(os.cpu_count()), "memory": f"{mem_kib / 2**20:.1f} GiB", "cpu": cpu,
            "python": platform.python_version(), "airflow": version("apache-airflow"),
            "pyspark": version("pyspark"), "commit": commit or "unknown", "os": platform.platform()}


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repetitions (development only)")
    parser.add_argument("--budget-minutes", type=float, default=60.0,
                        help="start no further benchmark after this long (0: no limit)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    started = time.monotonic()
    info = {**machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "load_start": load_average()}
    command = " ".join(["make bench", *([f"BENCH_ARGS='{' '.join(sys.argv[1:])}'"] if sys.argv[1:] else [])])
    runs: list[Run] = []
    seen: set[tuple[str, ...]] = set()
    with tempfile.TemporaryDirectory(prefix="skylift-bench-results-") as results:
        for bench in PLAN:
            argv = (bench.module, *(("--quick",) if args.quick else bench.args))
            if argv in seen:
                continue  # --quick folds several entries into one
            seen.add(argv)
            elapsed = time.monotonic() - started
            shown = " ".join(["python -m", *argv])
            if args.budget_minutes and elapsed > args.budget_minutes * 60:
                runs.append(Run(shown, "not run: the time budget was spent", 0.0))
            else:
                log(f"== {shown} (after {elapsed / 60:.1f} min, load {load_average()})")
                begin = time.monotonic()
                proc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env={
                    **os.environ, RESULTS_DIR_ENV: results}, stdout=subprocess.DEVNULL, check=False)
                status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode}; its output is above)"
                runs.append(Run(shown, status, time.monotonic() - begin))
            info["load_end"] = load_average()
            info["minutes"] = f"{(time.monotonic() - started) / 60:.1f}"
            args.out.write_text(render(Path(results), runs, info, command, quick=args.quick))
    log(f"wrote {args.out}")
    if any(not r.status.startswith(("ok", "not run")) for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
