"""Child of bench_parse: load DAG files with Airflow's DagBag in this fresh process and report.

    python -m benchmarks.parse_child bag PATH              time DagBag(PATH) (a folder or one file)
    python -m benchmarks.parse_child structure PATH OUT    write the DAGs' shape (ids, tasks, edges) as JSON
    python -m benchmarks.parse_child profile PATH          DagBag(PATH) under cProfile: where the time goes

`bag` times only the DagBag construction; importing Airflow's DagBag module comes first and is
reported apart (`import_s`). A file that fails to import fails the run: a benchmark of DAGs that
did not load would measure nothing.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, report


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _bag(path: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)
    if bag.import_errors:
        first = next(iter(bag.import_errors.items()))
        raise SystemExit(f"{len(bag.import_errors)} DAG file(s) failed to import; first {first[0]}:\n{first[1]}")
    if not bag.dags:
        raise SystemExit(f"no DAG found in {path}")
    return bag


def bag_command(path: str) -> None:
    t0 = time.perf_counter()
    import airflow.dag_processing.dagbag  # noqa: F401
    import airflow.sdk  # noqa: F401

    t1 = time.perf_counter()
    before = _rss_mib()
    cpu = time.process_time()
    bag = _bag(path)
    t2 = time.perf_counter()
    # CPU seconds too: on a shared, oversubscribed machine the wall time also counts waiting for a core.
    report(seconds=t2 - t1, cpu_s=time.process_time() - cpu, import_s=t1 - t0, dags=len(bag.dags),
           tasks=sum(len(d.tasks) for d in bag.dags.values()), rss_added_mib=_rss_mib() - before)


def structure_command(path: str, out: str) -> None:
    """Per DAG file, its DAGs: id, cron schedule (None if not cron), tags, owner, retries, params'
    defaults and tasks with their upstream ids, in topological order."""
    bag = _bag(path)
    files: dict[str, list[dict]] = {}
    for dag in sorted(bag.dags.values(), key=lambda d: d.dag_id):
        tasks = [{"task_id": t.task_id, "upstream": sorted(t.upstream_task_ids)} for t in dag.topological_sort()]
        files.setdefault(Path(dag.fileloc).stem, []).append({
            "dag_id": dag.dag_id,
            "schedule": getattr(dag.timetable, "expression", None),  # Airflow 3's cron timetables
            "tags": sorted(dag.tags),
            "owner": dag.owner,
            "retries": dag.default_args.get("retries", 0),
            "params": {k: v for k, v in dag.params.dump().items() if isinstance(v, str | int | float | bool)},
            "tasks": tasks,
        })
    Path(out).write_text(json.dumps(files, indent=1))
    report(seconds=0.0, dags=len(bag.dags))


def profile_command(path: str) -> None:
    import cProfile
    import io
    import pstats

    import airflow.dag_processing.dagbag  # noqa: F401
    import airflow.sdk  # noqa: F401

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(_bag, path)
    total = time.perf_counter() - start
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    rows = []
    for (filename, line, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((cumulative, f"{_short(filename)}:{line}({name})"))
    rows.sort(reverse=True)
    report(seconds=total, top=[[round(c, 3), where] for c, where in rows[:60]])


def _short(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/") and ".venv" not in filename:
        return filename[len(str(ROOT)) + 1:]
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main(argv: list[str]) -> None:
    command, *args = argv
    {"bag": bag_command, "structure": structure_command, "profile": profile_command}[command](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
