"""A worker killed with SIGKILL in the middle of a write: readers never see a partial partition,
and the retry leaves the lake exactly as a clean run would.

The kill is real: a child process runs the operator and is SIGKILLed at the chosen moment of
the lake's commit protocol (half a part file written; all files written but no manifest yet).
The test harness, not Skylift, decides where the kill happens.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from include.datagen.churn import generate
from include.lake import Lake
from operators.ingest import IngestOperator
from operators.validate import ValidateOperator
from tests.reliability.conftest import skylift_settings

pytestmark = pytest.mark.reliability
ROOT = Path(__file__).resolve().parents[2]
DS = "2026-11-24"
DAYS = ("2026-11-22", "2026-11-23", DS)

CHILD = textwrap.dedent('''
    import os, signal, sys
    from datetime import datetime, timezone
    from include.lake import store

    stage, ds, when = sys.argv[1:4]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "mid-file":          # the first part file is half written when the worker dies
        def put(self, name, physical, data, rows):
            self.lake.fs.pipe_file(f"{self.folder}/{physical}", data[: len(data) // 2])
            die()
        store.PartitionWriter._put = put
        streamed = store.PartitionWriter.write_tables

        def write_tables(self, tables, schema):  # ingest streams its part: die once the file is open
            def first_then_die():
                for table in tables:
                    yield table
                    die()
            return streamed(self, first_then_die(), schema)
        store.PartitionWriter.write_tables = write_tables
    elif when == "before-publish":  # every file is written, the manifest is not
        store.Lake._publish_manifest = lambda self, *args: die()

    class TaskInstance:
        dag_id, task_id, run_id, try_number = "crash", stage, "manual__crash", 1
        def xcom_push(self, key, value):
            pass

    from operators.features import FeaturesOperator
    from operators.ingest import IngestOperator
    operator = {
        "ingest": lambda: IngestOperator(task_id="ingest", pipeline="crash", source_uri="activity/{ds}/",
                                         source_format="csv", schema_file="include/schemas/customer_activity.yaml",
                                         dataset="activity"),
        "features": lambda: FeaturesOperator(task_id="features", pipeline="crash",
                                             job="include.features.churn:build", source_dataset="activity",
                                             dataset="feats", lookback_days=3),
    }[stage]()
    day = datetime.fromisoformat(ds).replace(tzinfo=timezone.utc)
    operator.execute({"ti": TaskInstance(), "params": {"rebuild": True}, "logical_date": day})
    print("finished without being killed")
''')


def lake_at(home: Path) -> Lake:
    return Lake(f"file://{home}/lake")


def prepare(home: Path, context_for) -> None:
    """Drops for three days, ingested and validated, in the lake under `home`."""
    generate(home / "drops" / "activity", date.fromisoformat(DS), days=len(DAYS), n_customers=400)
    for day in DAYS:
        IngestOperator(task_id="ingest", pipeline="crash", source_uri="activity/{ds}/", source_format="csv",
                       schema_file="include/schemas/customer_activity.yaml", dataset="activity",
                       ).execute(context_for(day))
        ValidateOperator(task_id="validate", pipeline="crash", suite_file="include/expectations/customer_activity.yaml",
                         dataset="activity").execute(context_for(day, task_id="validate"))


def run_child(home: Path, stage: str, when: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **skylift_settings(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", CHILD, stage, DS, when], env=env, cwd=str(home),
                          capture_output=True, text=True, timeout=300, check=False)


def folder_state(lake: Lake, zone: str, dataset: str) -> list[tuple[str, str]]:
    """Every file of the partition: (name without the attempt id, content hash)."""
    folder = Path(lake.partition_path(zone, dataset, DS))
    if not folder.exists():
        return []
    return sorted((p.name.split("-")[0] if p.name != "_manifest.json" else p.name,
                   hashlib.sha256(p.read_bytes()).hexdigest() if p.suffix == ".parquet" else "")
                  for p in folder.iterdir())


def content(lake: Lake, zone: str, dataset: str):
    return lake.read_table(zone, dataset, DS).sort_by("customer_id")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The reference: the same stages run without any crash."""
    home = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in skylift_settings(home).items():
            mp.setenv(key, value)
        from tests.conftest import task_context

        prepare(home, task_context)
        assert run_child(home, "features", "none").returncode == 0
    return lake_at(home)


@pytest.fixture
def home(tmp_path, monkeypatch, context_for):
    for key, value in skylift_settings(tmp_path).items():
        monkeypatch.setenv(key, value)
    prepare(tmp_path, context_for)
    return tmp_path


@pytest.mark.parametrize("stage,zone,dataset", [("ingest", "raw", "activity"), ("features", "features", "feats")])
@pytest.mark.parametrize("when", ["mid-file", "before-publish"])
def test_kill_then_retry(home, clean, stage, zone, dataset, when):
    lake = lake_at(home)
    before = content(lake, zone, dataset) if lake.manifest(zone, dataset, DS) else None
    killed = run_child(home, stage, when)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    # Readers see the partition as it was before the attempt: whole, or not there at all.
    if before is None:
        assert lake.manifest(zone, dataset, DS) is None
    else:
        assert content(lake, zone, dataset).equals(before)
    leftovers = [name for name, _ in folder_state(lake, zone, dataset) if name == "part"]
    assert len(leftovers) >= (2 if before is not None else 1)  # the dead attempt's files are there...

    retried = run_child(home, stage, "none")
    assert retried.returncode == 0, retried.stderr[-3000:]
    # ...and the retry leaves exactly what a clean run leaves: one part file and the manifest.
    assert content(lake, zone, dataset).equals(content(clean, zone, dataset))
    assert [name for name, _ in folder_state(lake, zone, dataset)] == ["_manifest.json", "part"]
    assert lake.require(zone, dataset, DS).row_count == clean.require(zone, dataset, DS).row_count
