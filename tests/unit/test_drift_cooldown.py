"""The retrain ledger (include/retrain_ledger.py): one retrain per cooldown, race-free, retry-safe."""

from __future__ import annotations

import threading

import pytest

from include.errors import LakeError
from include.lake import Lake
from include.retrain_ledger import RetrainLedger, RetrainRecord, blocking, retrain_run_id


@pytest.fixture
def ledger(tmp_path):
    return RetrainLedger(Lake(f"file://{tmp_path}/lake"), "churn")


def claim(ledger, ds, cooldown=7, actor="churn_nightly/r"):
    return ledger.claim(ds, cooldown, dag_id="churn_retrain", actor=actor, reason="drift: tenure")


def record(ds, seq=1):
    return RetrainRecord(seq=seq, pipeline="churn", ds=ds, dag_id="d", run_id=retrain_run_id(ds), at="t",
                         actor="a", reason="r")


def test_blocking_looks_both_ways_within_the_cooldown():
    records = [record("2026-11-10")]
    assert blocking(records, "2026-11-16", 7) == records[0]
    assert blocking(records, "2026-11-04", 7) == records[0]  # a backfill of an earlier date
    assert blocking(records, "2026-11-17", 7) is None and blocking(records, "2026-11-03", 7) is None
    assert blocking(records, "2026-11-10", 7) is None  # the date itself is not "another" date


def test_the_first_drift_claims_and_the_next_days_within_the_cooldown_do_not(ledger):
    first = claim(ledger, "2026-11-10")
    assert first.granted and not first.repeated
    assert (first.record.seq, first.record.run_id) == (1, "skylift_drift__2026-11-10")
    for day in ("2026-11-11", "2026-11-16", "2026-11-04"):
        refused = claim(ledger, day)
        assert not refused.granted and refused.record is None and refused.blocked_by == first.record
    later = claim(ledger, "2026-11-17")
    assert later.granted and later.record.seq == 2
    assert [r.ds for r in ledger.records()] == ["2026-11-10", "2026-11-17"]


def test_a_retry_of_the_same_date_gets_its_claim_back_and_writes_nothing(ledger):
    first = claim(ledger, "2026-11-10", actor="churn_nightly/r1")
    again = claim(ledger, "2026-11-10", actor="churn_nightly/r2")
    assert again.granted and again.repeated and again.record == first.record
    assert len(ledger.records()) == 1


def test_racing_claims_of_nearby_dates_grant_exactly_one(ledger):
    days = [f"2026-11-{d:02d}" for d in range(10, 16)]
    results, start = {}, threading.Barrier(len(days))

    def race(day):
        start.wait()
        results[day] = claim(RetrainLedger(ledger.lake, "churn"), day)

    threads = [threading.Thread(target=race, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = [day for day, c in results.items() if c.granted]
    assert len(granted) == 1 and [r.ds for r in ledger.records()] == granted
    assert all(c.blocked_by.ds == granted[0] for c in results.values() if not c.granted)


def test_an_unreadable_record_is_named(ledger):
    claim(ledger, "2026-11-10")
    ledger.lake.fs.pipe_file(f"{ledger.folder}/00000002.json", b"{not json")
    with pytest.raises(LakeError, match=r"retrain record file://.*/00000002.json is unreadable"):
        claim(ledger, "2026-11-20")


def test_bad_arguments_are_refused(ledger):
    with pytest.raises(ValueError, match="cooldown_days must be at least 1"):
        claim(ledger, "2026-11-10", cooldown=0)
    with pytest.raises(LakeError, match="cannot name a ledger folder"):
        RetrainLedger(ledger.lake, "../x")
