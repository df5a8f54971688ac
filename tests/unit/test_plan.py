"""`skylift plan` (operators/plan.py): what a run would do, read from the spec, the lake and the
training operator's own preparation; nothing is written."""

from __future__ import annotations

import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from include.errors import SpecError
from include.lake import Lake
from operators.plan import plan_run
from operators.project import Project
from tests.e2e.own_project import write_project

DAY = date(2026, 3, 2)


@pytest.fixture
def project(tmp_path, skylift_env, monkeypatch):
    root = write_project(tmp_path / "project")
    monkeypatch.setenv("SKYLIFT_PROJECT", str(root))
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy of the project
    lake = Lake(f"file://{skylift_env}/lake")
    with lake.publish("raw", "shipments", DAY.isoformat(), run_id="manual__earlier") as writer:
        writer.write_table(pa.table({"shipment_id": ["a"], "late": [0]}))
    with lake.publish("features", "parcels_features", DAY.isoformat(), run_id="manual__earlier") as writer:
        writer.write_table(pa.table({"shipment_id": ["a", "b"], "km_per_kg": [1.0, 2.0], "late": [0, 1]}))
    return Project(root=root, home=tmp_path / "home")


def test_the_daily_plan_says_what_exists_and_what_is_built(project, skylift_env):
    before = sorted(p.relative_to(skylift_env) for p in skylift_env.rglob("*"))
    plan = plan_run(project, "parcels", DAY, None, None)
    assert [t.task_id for t in plan.tasks] == ["ingest", "validate"]
    ingest, validate = plan.tasks
    assert ingest.reads[0] == f"file://{skylift_env}/drops/shipments/{DAY}/"
    # the stage itself is asked whether it would keep its partition: without a drop it cannot run at all
    assert ingest.writes == (f"file://{skylift_env}/lake/raw/shipments/ds={DAY}  [exists, 1 rows, built "
                             f"{ingest.writes[0].split('built ')[1].split(' by')[0]} by manual__earlier: cannot tell "
                             f"before the run: IncompleteDrop: no csv files in the drop at {ingest.reads[0]} for "
                             f"ds={DAY}]",)
    assert validate.after == ("ingest",)
    assert validate.writes == (f"file://{skylift_env}/lake/validated/shipments/ds={DAY}  [not there yet: built]",)
    rebuilt = plan_run(project, "parcels", DAY, None, {"rebuild": True})
    assert rebuilt.tasks[0].writes[0].endswith("[exists: rebuilt (rebuild=true)]")
    assert sorted(p.relative_to(skylift_env) for p in skylift_env.rglob("*")) == before  # nothing written


def test_the_retrain_plan_shows_the_training_partitions_and_the_pod(project, skylift_env):
    plan = plan_run(project, "parcels", DAY, "retrain", {"max_depth": 5})
    train = next(t for t in plan.tasks if t.task_id == "train")
    assert train.after == ("features",)
    assert train.reads == (f"file://{skylift_env}/lake/features/parcels_features/ds={DAY}",)
    notes = "\n".join(train.notes)
    assert "model parameters {'max_depth': 5, 'eta': 0.3, 'num_boost_round': 20}" in notes
    assert "trains a new model (a DAG run only by hand always trains)" in notes
    assert "training pod (not submitted: train.execution is local" in notes and "kind: Pod" in notes
    deploy = next(t for t in plan.tasks if t.task_id == "deploy")
    assert "'metric': 'auc'" in deploy.notes[0]
    text = plan.render()
    assert text.startswith(f"parcels_retrain for {DAY} with conf {{'max_depth': 5}}:\n 1. features\n")
    features = next(t for t in plan.tasks if t.task_id == "features")
    assert features.notes[1] == ("engine duckdb (auto: 0 input rows, at most duckdb_max_rows 20,000,000, and a local "
                                 "Spark master (local[2]); the rows published now)")


def features_task(project: Project) -> Any:
    from operators.spec.compiler import dags_from_spec_file

    return dags_from_spec_file(project.root / "dags" / "pipelines" / "parcels.yaml")["parcels_retrain"].get_task(
        "features")


def publish_features_as_built(lake: Lake, task: Any, ds: str, rows: pa.Table) -> None:
    """The features partition as the features task leaves it: with the build key it computes from its
    inputs, job source and settings (`kept_output` compares the two)."""
    key = task.job_and_inputs(ds)[1].key
    with lake.publish("features", task.dataset, ds, run_id="manual__earlier",
                      extra={"build_key": key, "pipeline": "parcels"}) as writer:
        writer.write_table(rows)


def test_features_are_kept_only_while_their_inputs_and_job_are_unchanged(project, skylift_env):
    lake = Lake(f"file://{skylift_env}/lake")
    rows = pa.table({"shipment_id": ["a"], "km_per_kg": [1.0], "late": [0]})
    with lake.publish("validated", "shipments", DAY.isoformat(), run_id="manual__earlier") as writer:
        writer.write_table(rows)
    publish_features_as_built(lake, features_task(project), DAY.isoformat(), rows)

    def verdict() -> str:
        plan = plan_run(project, "parcels", DAY, "retrain", None)
        return next(t for t in plan.tasks if t.task_id == "features").writes[0]

    assert verdict().endswith("kept: same inputs and settings]")
    job = next(p for p in (project.root / "parcel_jobs").glob("*.py") if "def build" in p.read_text())
    job.write_text(job.read_text() + "\n# an edit\n")
    assert verdict().endswith("rebuilt: its inputs or settings changed]")  # the job's source is in the key


def test_a_date_before_start_date_or_an_unknown_param_is_refused(project):
    with pytest.raises(SpecError, match="is before parcels' start_date 2026-03-01"):
        plan_run(project, "parcels", date(2026, 2, 1), None, None)
    with pytest.raises(SpecError, match=r"--conf has \['depth'\], not parameters of parcels_retrain"):
        plan_run(project, "parcels", DAY, "retrain", {"depth": 5})


def test_the_plan_names_the_deploy_targets_objects(project):
    spec = project.root / "dags" / "pipelines" / "parcels.yaml"
    gate = "  gate: {metric: auc, min: 0.5, beat_champion: false, min_holdout_rows: 10}\n"
    assert gate in spec.read_text()
    spec.write_text(spec.read_text().replace(gate, gate + "  target: kubernetes\n  kubernetes: {image: 'serve@sha256:"
                                             + "b" * 64 + "', namespace: serving, autoscaling: null}\n"))
    plan = plan_run(project, "parcels", DAY, "retrain", None)
    deploy = next(t for t in plan.tasks if t.task_id == "deploy")
    assert deploy.writes[-1] == ("Deployment, Service serving/skylift-parcels serving the champion, smoke-tested "
                                 "through the Service (put back with the alias if that fails)")


README = Path(__file__).resolve().parents[2] / "README.md"
README_COMMAND = ("skylift plan parcels --project /tmp/parcels --dag retrain --date 2026-03-05 "
                  "--conf '{\"max_depth\": 2}'")
# What differs from one real run to the next: when and by which run a partition was built, the
# reuse key and attempt id (hashes of the code and a random id), the pod's random name, Airflow's version.
VOLATILE = ((re.compile(r"built \S+ by \S+:"), "built TIME by RUN:"), (re.compile(r"[0-9a-f]{16,}"), "HEX"),
            (re.compile(r"parcels-train-[a-z0-9]{8}\b"), "parcels-train-NAME"),
            (re.compile(r"airflow_version: \S+"), "airflow_version: VERSION"))


def readme_transcript() -> str:
    """The output block that follows the README's `skylift plan parcels ...` command."""
    text = README.read_text()
    after = text[text.index(README_COMMAND):]
    block = after[after.index("```\n\n```\n") + len("```\n\n```\n"):]
    return block[: block.index("\n```")]


def comparable(text: str) -> list[str]:
    """The transcript's words with the volatile values masked (the pod's arguments are JSON that YAML
    wraps by length, so line breaks depend on the folder's name: words are compared, not lines)."""
    for pattern, mask in VOLATILE:
        text = pattern.sub(mask, text)
    return text.split()


def test_the_readme_shows_what_plan_prints_for_the_tutorial(tmp_path, monkeypatch):
    """The README's plan of the tutorial's retrain, in the lake state the tutorial's commands leave:
    validated shipments of 2026-03-01..05 (60 parcels a day) and the features of 2026-03-05."""
    root = write_project(tmp_path / "parcels")
    project = Project(root=root, home=root / ".skylift")
    for key, value in project.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == "parcel_jobs"]:
        monkeypatch.delitem(sys.modules, name)
    lake = Lake(f"file://{project.home}/skylift/lake")
    rows = {"shipment_id": [f"s{n}" for n in range(60)], "km_per_kg": [float(n) for n in range(60)],
            "late": [n % 2 for n in range(60)]}
    for day in ("2026-03-04", "2026-03-05"):
        with lake.publish("validated", "shipments", day, run_id="scheduled__earlier") as writer:
            writer.write_table(pa.table(rows))
    publish_features_as_built(lake, features_task(project), "2026-03-05", pa.table(rows))

    text = plan_run(project, "parcels", date(2026, 3, 5), "retrain", {"max_depth": 2}).render()
    shown = text.replace(str(root), "/tmp/parcels")
    assert comparable(shown) == comparable(readme_transcript()), (
        "the README's `skylift plan` transcript (section skylift plan) is stale; run the tutorial's commands "
        f"and `{README_COMMAND}`, and paste its output. What plan prints now:\n{shown}")


def test_training_on_the_day_this_run_builds_is_no_failure(project, skylift_env):
    """The tutorial's retrain before any features exist: features builds the day first, so training
    does not fail; training on days nothing builds still does."""
    day = date(2026, 3, 3)  # no features yet
    train = next(t for t in plan_run(project, "parcels", day, "retrain", None).tasks if t.task_id == "train")
    assert train.notes[2] == (f"trains on file://{skylift_env}/lake/features/parcels_features/ds={day}, which task "
                              "features builds first in this run (plan again once it exists for the reuse key and "
                              "the pod's arguments); as the lake is now, training alone would fail: no "
                              f"features/parcels_features partitions between {day} and {day}")
    elsewhere = {"train_start": "2026-02-01", "train_end": "2026-02-02"}
    train = next(t for t in plan_run(project, "parcels", day, "retrain", elsewhere).tasks if t.task_id == "train")
    assert train.notes[2].startswith("fails with PartitionNotFound: ")
