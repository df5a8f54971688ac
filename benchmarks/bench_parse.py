"""DAG parse time: all of `dags/` against Airflow's own import, in a fresh interpreter each time.

    .venv/bin/python -m benchmarks.bench_parse
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, time, runpy, pathlib, sys
t0 = time.perf_counter()
import airflow.sdk
import airflow.providers.cncf.kubernetes.operators.pod
t1 = time.perf_counter()
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.py")):
    runpy.run_path(str(path))
t2 = time.perf_counter()
print(json.dumps({"airflow": t1 - t0, "dags": t2 - t1}))
"""


def main() -> None:
    samples = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "dags")], capture_output=True, text=True,
                             check=True)
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    airflow = statistics.median(s["airflow"] for s in samples)
    dags = statistics.median(s["dags"] for s in samples)
    print("### DAG parsing (median of 5 fresh interpreters)\n")
    print("| step | seconds | vs Airflow's import |\n|---|---:|---:|")
    print(f"| import airflow.sdk + KubernetesPodOperator (baseline) | {airflow:.3f} | 1.00x |")
    print(f"| parse every file in dags/ (5 DAGs from 2 specs) | {dags:.3f} | {dags / airflow:.2f}x |")


if __name__ == "__main__":
    main()
