"""DAG parsing: 100 Skylift specs against the same pipelines in dag-factory and in plain Python.

    .venv/bin/python -m benchmarks.bench_parse [--specs 100] [--repeat 5] [--quick]

The 100 specs are copies of the shipped `churn.yaml` under their own pipeline, dataset and model
names, in a project folder of their own, with the DAG files `skylift` generates for a project.
From the DAGs they compile, the same DAGs (ids, schedules, tags, owner, retries, params' defaults,
every task id and edge) are written as dag-factory YAML (one loader file per pipeline) and as
plain Python (one file per pipeline). Peer tasks are `EmptyOperator`s: the peers pay for the DAG
structure only, Skylift for its real operators too. dag-factory runs from the peers' environment
(`benchmarks.peers`), never a project dependency.

Each measurement is Airflow's `DagBag` over the folder, in a fresh process (the dag-processor
parses each file in a fresh process too); timed is the DagBag alone, after importing Airflow.
The worker row: a task process builds only the DAG of the task it runs (Airflow's parsing
context), here `DagBag` of one pipeline's file with that context set.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, Comparison, Side, emit, interleave, log, python_child, row_of, run_child
from benchmarks.peers import peer_python, versions

EMPTY = "airflow.providers.standard.operators.empty.EmptyOperator"
SKYLIFT, DAG_FACTORY, PLAIN = "Skylift (100 specs)", "dag-factory 1.1 (YAML)", "plain Python"


def make_specs(project: Path, count: int) -> list[str]:
    """`count` copies of churn.yaml with their own names; the files they name copied beside them."""
    pipelines = project / "dags" / "pipelines"
    pipelines.mkdir(parents=True)
    for folder in ("include/schemas", "include/expectations"):
        shutil.copytree(ROOT / folder, project / folder)
    text = (ROOT / "dags/pipelines/churn.yaml").read_text()
    names = []
    for i in range(count):
        name = f"churn{i:03d}"
        spec = re.sub(r"^pipeline: churn$", f"pipeline: {name}", text, flags=re.M)
        spec = spec.replace("dataset: customer_activity", f"dataset: customer_activity_{i:03d}")
        spec = spec.replace("model_name: churn\n", f"model_name: {name}\n")
        spec = spec.replace("    schema: include/schemas/churn_labels.yaml\n",
                            f"    schema: include/schemas/churn_labels.yaml\n    dataset: churn_labels_{i:03d}\n")
        (pipelines / f"{name}.yaml").write_text(spec)
        names.append(name)
    return names


def dagfactory_files(structure: dict[str, list[dict]], folder: Path) -> None:
    """One YAML config and one loader file per pipeline, the loader as dag-factory's docs show it."""
    import yaml

    folder.mkdir(parents=True)
    for stem, dags in structure.items():
        config = {}
        for dag in dags:
            config[dag["dag_id"]] = {
                "default_args": {"owner": dag["owner"], "retries": dag["retries"], "start_date": "2000-01-01"},
                "schedule": dag["schedule"],
                "catchup": False,
                "tags": dag["tags"],
                "params": dag["params"],
                "tasks": [{"task_id": t["task_id"], "operator": EMPTY,
                           **({"dependencies": t["upstream"]} if t["upstream"] else {})} for t in dag["tasks"]],
            }
        (folder / f"{stem}.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        (folder / f"{stem}.py").write_text(
            '"""Airflow DAGs of one pipeline, built by dag-factory from the YAML file beside this one."""\n'
            "from pathlib import Path\n\nfrom dagfactory import load_yaml_dags\n\n"
            f'load_yaml_dags(globals_dict=globals(), config_filepath=str(Path(__file__).parent / "{stem}.yml"))\n')


def plain_files(structure: dict[str, list[dict]], folder: Path) -> None:
    """The same DAGs written by hand in plain Airflow Python, one file per pipeline."""
    folder.mkdir(parents=True)
    for stem, dags in structure.items():
        lines = ['"""Airflow DAGs of one pipeline, written in plain Python."""',
                 "from datetime import datetime", "",
                 "from airflow.providers.standard.operators.empty import EmptyOperator",
                 "from airflow.sdk import DAG", ""]
        for n, dag in enumerate(dags):
            lines.append(f"with DAG(dag_id={dag['dag_id']!r}, schedule={dag['schedule']!r}, "
                         f"start_date=datetime(2000, 1, 1), catchup=False, tags={dag['tags']!r}, "
                         f"default_args={{'owner': {dag['owner']!r}, 'retries': {dag['retries']!r}}}, "
                         f"params={dag['params']!r}) as dag_{n}:")
            ids = {t["task_id"]: f"t{i}" for i, t in enumerate(dag["tasks"])}
            for task in dag["tasks"]:
                lines.append(f"    {ids[task['task_id']]} = EmptyOperator(task_id={task['task_id']!r})")
            for task in dag["tasks"]:
                for up in task["upstream"]:
                    lines.append(f"    {ids[up]} >> {ids[task['task_id']]}")
            lines.append("")
        (folder / f"{stem}.py").write_text("\n".join(lines))


def causes(profile: dict, top: int = 14) -> list[str]:
    """The functions with the most cumulative time in a profiled DagBag: the project's, PyYAML's and
    pydantic's, and Airflow's own per-DAG and per-operator work (its Params' deep copies and schema checks)."""
    own = [(c, where) for c, where in profile["top"]
           if where.startswith(("operators/", "include/", "yaml/", "pydantic/", "airflow/providers/cncf",
                                "airflow/sdk/", "copy.py:128(deepcopy)", "jsonschema/validators.py:1265"))]
    return [f"{where}: {c:.2f} s cumulative" for c, where in own[:top]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--specs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20 specs, 2 repetitions (development only)")
    args = parser.parse_args()
    if args.quick:
        args.specs, args.repeat = 20, 2
    peers = peer_python()
    with tempfile.TemporaryDirectory(prefix="skylift-bench-parse-") as tmp:
        comparisons = run(Path(tmp), args.specs, args.repeat, peers)
    emit(comparisons)


def run(tmp: Path, specs: int, repeat: int, peers: str) -> list[Comparison]:
    from operators.project import Project

    project = Project(root=tmp / "project", home=tmp / "home")
    names = make_specs(project.root, specs)
    project.write_dag_files()
    env = {**project.environment(), "AIRFLOW__CORE__DAGS_FOLDER": str(project.dags_folder)}
    structure_file = tmp / "structure.json"
    run_child(Side("structure", python_child("benchmarks.parse_child", "structure", str(project.dags_folder),
                                             str(structure_file)), env))
    structure = json.loads(structure_file.read_text())
    dagfactory_files(structure, tmp / "dagfactory")
    plain_files(structure, tmp / "plain")
    dags = sum(len(d) for d in structure.values())
    tasks = sum(len(dag["tasks"]) for d in structure.values() for dag in d)
    label = f"Skylift ({specs} specs)"

    def side(name: str, path: Path, python: str | None = None, extra: dict | None = None) -> Side:
        return Side(name, python_child("benchmarks.parse_child", "bag", str(path), python=python),
                    {**env, **(extra or {})})

    log(f"parse: {specs} pipelines, {dags} DAGs, {tasks} tasks")
    whole = interleave([side(label, project.dags_folder), side(DAG_FACTORY, tmp / "dagfactory", peers),
                        side(PLAIN, tmp / "plain")], repeat, progress=log)
    for name, runs in whole.items():
        found = (runs[0].values["dags"], runs[0].values["tasks"])
        if found != (dags, tasks):
            raise SystemExit(f"{name} loaded {found[0]} DAGs / {found[1]} tasks, not {dags} / {tasks}")
    first, dag_id = names[0], f"{names[0]}_nightly"
    context = {"_AIRFLOW_PARSING_CONTEXT_DAG_ID": dag_id, "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "train"}
    worker = interleave([side("Skylift", project.dag_file(project.pipelines_dir / f"{first}.yaml"), extra=context),
                         side(DAG_FACTORY, tmp / "dagfactory" / f"{first}_pipeline.py", peers, context),
                         side(PLAIN, tmp / "plain" / f"{first}_pipeline.py", extra=context)], repeat, progress=log)
    profile = run_child(Side("profile", python_child("benchmarks.parse_child", "profile", str(project.dags_folder)),
                             env)).values
    peer_versions = versions(peers)
    parse = Comparison(
        key="parse", title=f"DAG parsing: {specs} pipelines, {dags} DAGs, {tasks} tasks (Airflow DagBag)",
        command=f".venv/bin/python -m benchmarks.bench_parse --specs {specs}", baseline=DAG_FACTORY,
        unit="DAGs", rows=[row_of(n, r, dags) for n, r in whole.items()],
        notes=[f"dag-factory {peer_versions['dag-factory']} from the peers' environment; peer tasks are "
               "EmptyOperators with the same ids and edges, Skylift's are its real operators.",
               "Timed: the DagBag construction only, after `import airflow.sdk`; the whole process adds "
               f"~{_median_import(whole[label]):.1f} s of Airflow import to every side.",
               "CPU seconds of the DagBag construction (median): " + _cpu_medians(whole),
               "Where Skylift's parse time goes (cProfile, one extra run): " + "; ".join(causes(profile))])
    worker_rows = [row_of(n, r) for n, r in worker.items()]
    build = Comparison(
        key="worker_build", title=f"A worker's one-DAG build ({dag_id}, parsing context set)",
        command=f".venv/bin/python -m benchmarks.bench_parse --specs {specs}", baseline=PLAIN, unit="builds",
        rows=worker_rows,
        notes=[f"DagBag of one pipeline's file with `_AIRFLOW_PARSING_CONTEXT_DAG_ID={dag_id}`: Skylift builds "
               "only that DAG, the peers' files build all of their pipeline's DAGs (they have no such switch)."]
        + [f"{n}: memory added by the build {statistics_median([r.values['rss_added_mib'] for r in runs]):.0f} MiB"
           for n, runs in worker.items()])
    return [parse, build]


def _cpu_medians(sides: dict) -> str:
    """Each side's median CPU time, and its ratio to dag-factory's (steadier than wall time on a busy machine)."""
    cpu = {name: statistics_median([r.values["cpu_s"] for r in runs]) for name, runs in sides.items()}
    return "; ".join(f"{name} {seconds:.2f} s ({seconds / cpu[DAG_FACTORY]:.2f}x)" for name, seconds in cpu.items())


def _median_import(runs) -> float:
    return statistics_median([r.values["import_s"] for r in runs])


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


if __name__ == "__main__":
    main()
