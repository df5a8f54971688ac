"""The audit trail on a local lake: append-only records, the compare-and-set, the previous champion."""

from __future__ import annotations

import threading

import pytest

from include import audit
from include.audit import AuditTrail
from include.errors import ChampionMoved, LakeError
from include.lake import Lake
from include.rollback import previous_champion


@pytest.fixture
def trail(tmp_path):
    return AuditTrail(Lake(f"file://{tmp_path}/lake"))


def _move(trail, to, expect, action=audit.PROMOTE):
    return trail.append("churn", action, version=to, after=to, expect=expect, compare=True, actor="dag/run",
                        reason="gate passed", details={"gate": {"n": 120}})


def test_events_are_one_immutable_file_each_and_read_back_in_order(trail):
    _move(trail, "1", None)
    rejected = trail.append("churn", audit.REJECT, version="2", actor="dag/run2", reason="auc below 0.7")
    _move(trail, "3", "1")
    events = trail.events("churn")
    assert [(e.seq, e.action, e.version, e.before, e.after) for e in events] == [
        (1, "promote", "1", None, "1"), (2, "reject", "2", "1", "1"), (3, "promote", "3", "1", "3")]
    assert rejected.moved is False and events[0].details == {"gate": {"n": 120}}
    folder = trail.folder("churn")
    assert sorted(trail.lake.fs.ls(folder, detail=False)) == [f"{folder}/{n:08d}.json" for n in (1, 2, 3)]
    assert trail.champion("churn") == "3"
    assert "promote v3: v1 -> v3  by dag/run  gate passed" in events[2].line()
    assert "reject v2: stays v1" in events[1].line()


def test_a_move_from_a_champion_that_is_no_longer_there_is_refused_and_writes_nothing(trail):
    _move(trail, "1", None)
    _move(trail, "2", "1")
    with pytest.raises(ChampionMoved, match=r"champion of model 'churn' is version 2 \(audit event 2\), not version 1"):
        _move(trail, "3", "1")
    assert len(trail.events("churn")) == 2 and trail.champion("churn") == "2"


def test_racing_writers_from_one_champion_cannot_both_win(trail):
    _move(trail, "1", None)
    start = threading.Barrier(8)
    results: list[object] = []

    def attempt(version: str) -> None:
        start.wait()
        try:
            results.append(_move(trail, version, "1"))
        except ChampionMoved as exc:
            results.append(exc)

    workers = [threading.Thread(target=attempt, args=(str(v),)) for v in range(2, 10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    winners = [r for r in results if not isinstance(r, ChampionMoved)]
    assert len(results) == 8 and len(winners) == 1
    assert [e.seq for e in trail.events("churn")] == [1, 2] and trail.champion("churn") == winners[0].after


def test_records_that_do_not_move_the_champion_all_land_under_contention(trail):
    start = threading.Barrier(6)

    def reject(i: int) -> None:
        start.wait()
        trail.append("churn", audit.REJECT, version=str(i), actor="t", reason="worse")

    workers = [threading.Thread(target=reject, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    events = trail.events("churn")
    assert [e.seq for e in events] == list(range(1, 7)) and sorted(e.version for e in events) == list("012345")


def test_the_previous_champion_skips_versions_that_were_rolled_back(trail):
    _move(trail, "1", None)
    _move(trail, "2", "1")
    assert previous_champion(trail.events("churn"), "2") == "1"
    _move(trail, "1", "2", action=audit.ROLLBACK)
    assert previous_champion(trail.events("churn"), "1") is None  # v2 was rolled back: not a place to return to
    _move(trail, "3", "1")
    assert previous_champion(trail.events("churn"), "3") == "1"


def test_an_unreadable_record_is_named(trail):
    _move(trail, "1", None)
    path = f"{trail.folder('churn')}/00000001.json"
    trail.lake.fs.pipe_file(path, b"{not json")
    with pytest.raises(LakeError, match=r"audit record file://.*/registry/churn/events/00000001.json is unreadable"):
        trail.champion("churn")


def test_a_model_name_that_could_leave_the_folder_is_refused(trail):
    from include.errors import RegistryError

    with pytest.raises(RegistryError, match="cannot name an audit folder"):
        trail.events("../lake")
