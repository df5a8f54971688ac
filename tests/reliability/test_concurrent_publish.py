"""Several writers of one partition at once (nightly and retrain on the same date, a manual run over
the scheduled one, a backfill over the scheduler), on local disk and on a real S3 API (moto's server).

After every round the published manifest must match the files (each listed file there, with its
size, SHA-256 and rows) and hold the rows of one writer that reported success; every other writer
must have published too or refused with `PublishConflict` naming the partition.
"""

from __future__ import annotations

import multiprocessing
import random
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from include.errors import PublishConflict
from include.lake import Lake
from tests.conftest import task_context

pytestmark = pytest.mark.reliability

ROUNDS = 200
DATES = ("2026-11-20", "2026-11-21")  # rounds alternate, so each replaces a partition two rounds old


@dataclass(frozen=True)
class Outcome:
    """What one writer reported: the attempt it published, or the refusal it raised."""

    writer: str
    rows: int
    published: str | None = None
    refusal: str | None = None


_lakes: dict[str, Lake] = {}


def publish_once(root: str, options: dict, ds: str, writer: str, rows: int, pauses: tuple[float, ...]) -> Outcome:
    """One writer: two part files, with pauses that shift where the writers interleave."""
    lake = _lakes.setdefault(root, Lake(root, storage_options=options))
    time.sleep(pauses[0])
    half = rows // 2
    try:
        with lake.publish("features", "stress", ds, run_id=writer) as out:
            out.write_table(rows_of(writer, 0, half))
            time.sleep(pauses[1])
            out.write_table(rows_of(writer, half, rows))
            time.sleep(pauses[2])
    except PublishConflict as exc:
        return Outcome(writer, rows, refusal=str(exc))
    return Outcome(writer, rows, published=out.manifest.attempt)


def rows_of(writer: str, start: int, stop: int) -> pa.Table:
    return pa.table({"writer": [writer] * (stop - start), "i": list(range(start, stop))})


def check_round(lake: Lake, ds: str, outcomes: list[Outcome]) -> Outcome:
    """The published partition is whole and is one successful writer's; the others refused clearly."""
    partition = f"features/stress/ds={ds}"
    winners = {o.published: o for o in outcomes if o.published}
    assert winners, f"nobody published {partition}: {outcomes}"
    for outcome in outcomes:
        if outcome.refusal is not None:
            assert f"another writer published {partition} (attempt " in outcome.refusal, outcome.refusal
            assert "nothing was published by this attempt; retry the task" in outcome.refusal
    manifest = lake.require("features", "stress", ds)
    assert manifest.attempt in winners, f"{partition} holds attempt {manifest.attempt}, reported by nobody"
    winner = winners[manifest.attempt]
    # checks every listed file's size, SHA-256 and rows first (DamagedPartition otherwise)
    table = lake.read_table("features", "stress", ds, verify=True)
    assert set(table.column("writer").to_pylist()) == {winner.writer}
    assert sorted(table.column("i").to_pylist()) == list(range(winner.rows))
    return winner


def stress(lake: Lake, options: dict, threads: int, processes: int, max_pause: float) -> dict[str, int]:
    """ROUNDS rounds of concurrent writers, in threads of this process and in other processes; returns
    what they reported in total."""
    rng = random.Random(8)
    totals = {"published": 0, "refused": 0, "rounds with several publishes": 0}
    spawn = multiprocessing.get_context("spawn")  # a fork would copy s3fs' event-loop thread
    with ProcessPoolExecutor(processes, mp_context=spawn) as in_processes, ThreadPoolExecutor(threads) as in_threads:
        for number in range(ROUNDS):
            ds = DATES[number % len(DATES)]
            futures: list[Future[Outcome]] = []
            for index in range(threads + processes):
                pool = in_processes if index < processes else in_threads
                pauses = tuple(rng.uniform(0, max_pause) for _ in range(3))
                args = (lake.root, options, ds, f"r{number}w{index}", rng.randint(2, 40), pauses)
                futures.append(pool.submit(publish_once, *args))
            outcomes = [f.result() for f in futures]
            check_round(lake, ds, outcomes)
            published = sum(1 for o in outcomes if o.published)
            totals["published"] += published
            totals["refused"] += len(outcomes) - published
            totals["rounds with several publishes"] += published > 1
    assert totals["refused"] > ROUNDS // 2  # the writers really raced
    return totals


def test_concurrent_publishers_on_local_disk(tmp_path):
    lake = Lake(f"file://{tmp_path}/lake")
    print(stress(lake, {}, threads=2, processes=2, max_pause=0.01))


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server alone (the stack's launcher, without the other services)."""
    from tests.stack import Stack

    server = Stack(Path(tempfile.mkdtemp(prefix="skylift-s3-")))
    try:
        server.start_s3()
        yield server
    finally:
        server.stop()


def test_concurrent_publishers_on_s3(s3_server):
    options = s3_server.s3_storage_options()
    lake = Lake(f"s3://skylift-lake/stress-{time.time_ns()}", storage_options=options)
    # two writers a round: moto answers a request in ~10 ms, and a writer makes about ten
    print(stress(lake, options, threads=1, processes=1, max_pause=0.02))


# ---- two real ingest runs of one date ------------------------------------------------------------

INGEST_DS = "2026-11-20"


def ingest_once(params: dict, try_number: int = 1, start_at: float = 0.0) -> str:
    """Run the ingest stage the way a worker does, from `start_at` (a time.time()) on; 'published',
    'kept' or the refusal's message."""
    from operators.ingest import IngestOperator

    op = IngestOperator(task_id="ingest", pipeline="churn", source_uri="activity/{ds}/", source_format="csv",
                        schema_file="include/schemas/customer_activity.yaml", dataset="activity")
    context = task_context(INGEST_DS, task_id="ingest", params=params)
    context["ti"].try_number = try_number
    before = op.lake.generation("raw", "activity", INGEST_DS)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        op.execute(context)
    except PublishConflict as exc:
        return str(exc)
    return "kept" if op.lake.generation("raw", "activity", INGEST_DS) == before else "published"


def warm_up(seconds: float) -> None:
    """Import the stage in a worker; held long enough that each worker takes one."""
    import operators.ingest  # noqa: F401

    time.sleep(seconds)


def test_two_ingest_runs_of_one_date_at_once(skylift_env):
    from include.datagen.churn import generate

    generate(skylift_env / "drops" / "activity", date.fromisoformat(INGEST_DS), days=1, n_customers=20000)
    lake = Lake(f"file://{skylift_env}/lake")
    spawn = multiprocessing.get_context("spawn")  # two workers: separate processes, settings from the env
    with ProcessPoolExecutor(2, mp_context=spawn) as workers:
        for started in [workers.submit(warm_up, 1.0) for _ in range(2)]:
            started.result()
        expected, refused = None, 0
        for _ in range(4):
            start_at = time.time() + 1.0  # both workers are ready by then: the runs overlap
            runs = [workers.submit(ingest_once, {"rebuild": True}, 1, start_at) for _ in range(2)]
            results = [run.result() for run in runs]
            assert "published" in results, results
            refused += results.count("published") == 1
            for result in results:
                assert result == "published" or result.startswith(
                    f"another writer published raw/activity/ds={INGEST_DS} (attempt "), result
            manifest = lake.require("raw", "activity", INGEST_DS)
            assert lake.problems(manifest, checksums=True) == []
            table = lake.read_table("raw", "activity", INGEST_DS)
            expected = table if expected is None else expected
            assert table.equals(expected) and table.num_rows == 20000
            # the refused run's retry finds the winner's partition built from the same drop and keeps it
            assert workers.submit(ingest_once, {}, 2).result() == "kept"
    print(f"{refused} of 4 rounds had a refused writer")
