"""The deploy gate and the registry under bad days and faults, through the real operator.

A tiny local lake and a SQLite MLflow store; the models are small pyfunc models whose score is
one feature column, registered as versions of a model of its own per test, as the register stage does.
"""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from include import registry
from include.audit import AuditTrail
from include.errors import RegistryError, RegistryUnavailable
from include.lake import Lake
from include.training.holdout import holdout_mask
from tests.registry_models import column_model_store, features, register_versions

DS = "2026-11-24"
CUSTOMERS = 600


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module, holding two logged models: one scores `weak`, one `good`."""
    return column_model_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def world(skylift_env, monkeypatch, store, request):
    """Settings and a lake of this test's own, and a model of its own in the shared store with
    versions 1 (scores `weak`) and 2 (scores `good`)."""
    monkeypatch.setenv("AIRFLOW_VAR_SKYLIFT_MLFLOW_TRACKING_URI", store["uri"])
    client = store["client"]
    model = "churn_" + request.node.name.removeprefix("test_").replace("[", "_").replace("]", "")
    register_versions(client, store["uri"], model, store["logged"])
    return {"home": store["home"], "client": client, "model": model, "lake": Lake(f"file://{skylift_env}/lake")}


def _publish_day(lake: Lake, churned: np.ndarray, ds: str = DS) -> pd.DataFrame:
    frame = features(churned)
    with lake.publish("features", "churn_features", ds) as writer:
        writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    return frame


def _deploy(context_for, model: str, version: str, force: bool = False, **gate):
    from operators.deploy import DeployModelOperator

    op = DeployModelOperator(task_id="deploy", pipeline="t", model_name=model, register_task_id="register",
                             features_dataset="churn_features", key=["customer_id"], target="churned",
                             task="classification", gate={"metric": "auc", "min": 0.6, **gate})
    context = context_for(DS, task_id="deploy", params={"force_deploy": force},
                          xcoms={("register", "return_value"): {"version": version}})
    return op, context


def _seed(world) -> None:
    """Version 1 is champion, as a first deploy leaves it."""
    registry.promote(world["client"], AuditTrail(world["lake"]), world["model"], "1", expected=None, actor="test",
                     reason="seeded by the test")


def _both_classes() -> np.ndarray:
    return (np.random.default_rng(1).random(CUSTOMERS) < 0.3).astype(int)


@pytest.mark.parametrize("force", [False, True])
def test_a_one_class_holdout_keeps_the_champion_and_returns_json(world, context_for, force):
    client, lake = world["client"], world["lake"]
    _seed(world)
    _publish_day(lake, np.zeros(CUSTOMERS))  # a day on which nobody churned
    op, context = _deploy(context_for, world["model"], "2", force=force)
    result = op.execute(context)
    assert registry.champion_version(client, world["model"]) == "1"
    assert result["promoted"] is False and result["champion"] == "1" and result["gate"]["challenger"]["value"] is None
    assert "AUC needs both classes" in result["gate"]["reasons"][0]
    assert ("force_deploy was set but cannot promote" in " ".join(result["gate"]["reasons"])) is force
    json.dumps(result, allow_nan=False)  # what Airflow pushes to XCom
    json.dumps(list(context["ti"].xcoms.values()), allow_nan=False)
    tags = client.get_model_version(world["model"], "2").tags
    assert tags["skylift.gate"].startswith("keep the champion: n=")
    assert json.loads(tags["skylift.gate_decision"])["challenger"]["value"] is None


def test_a_better_challenger_is_promoted_with_its_statistics(world, context_for):
    client, lake = world["client"], world["lake"]
    _seed(world)
    frame = _publish_day(lake, _both_classes())
    op, context = _deploy(context_for, world["model"], "2")
    result = op.execute(context)
    assert result["promoted"] is True and registry.champion_version(client, world["model"]) == "2"
    gate = result["gate"]
    assert gate["n"] == int(holdout_mask(frame[["customer_id"]], 0.2).sum())
    assert gate["gain"]["low"] > 0 and gate["challenger"]["low"] <= gate["challenger"]["value"]
    assert client.get_model_version(world["model"], "2").tags[registry.STATUS_TAG] == "champion"
    assert client.get_model_version(world["model"], "1").tags[registry.STATUS_TAG] == "retired"


def test_a_holdout_below_the_minimum_keeps_the_champion_and_says_why(world, context_for):
    """A better challenger is not promoted on a holdout too small to judge: the champion stays,
    and the result, the version's tags, the audit trail and the report name the size and the minimum."""
    client, lake = world["client"], world["lake"]
    _seed(world)
    frame = _publish_day(lake, _both_classes())
    n = int(holdout_mask(frame[["customer_id"]], 0.2).sum())
    op, context = _deploy(context_for, world["model"], "2", min_holdout_rows=n + 1)
    result = op.execute(context)
    why = f"the holdout has {n} rows, fewer than min_holdout_rows={n + 1}: too few to judge"
    assert result["promoted"] is False and registry.champion_version(client, world["model"]) == "1"
    gate = result["gate"]
    assert gate["n"] == n and gate["gain"]["low"] > 0  # better, as in the test above, yet not promoted
    assert any(why in reason for reason in gate["reasons"])
    assert why in client.get_model_version(world["model"], "2").tags["skylift.gate"]
    event = AuditTrail(lake).events(world["model"])[-1]
    assert (event.action, event.version, event.before, event.after) == ("reject", "2", "1", "1")
    assert why in event.reason
    report = json.loads(lake.read_bytes("reports", "t_gate", DS, "gate-v2.json"))
    assert report["n"] == n and not report["promoted"]


def test_a_failed_smoke_test_rolls_the_alias_back(world, context_for, monkeypatch):
    from include import scoring

    client, lake = world["client"], world["lake"]
    _seed(world)
    _publish_day(lake, _both_classes())
    real_load = scoring.load

    def load(uri: str):  # the serving side refuses the model once it is reached through the alias
        if uri.endswith(f"@{registry.CHAMPION}"):
            raise RegistryError(f"cannot load model {uri}: endpoint refused")
        return real_load(uri)

    monkeypatch.setattr(scoring, "load", load)
    op, context = _deploy(context_for, world["model"], "2")
    with pytest.raises(RegistryError, match=rf"promoting {world['model']} v2 failed after alias champion moved; the "
                                            r"alias was rolled back to 1 \(audit event 3\): cannot load model "
                                            rf"models:/{world['model']}@champion"):
        op.execute(context)
    assert registry.champion_version(client, world["model"]) == "1"
    assert client.get_registered_model(world["model"]).tags[registry.CHAMPION_RECORD_TAG] == "1"
    events = AuditTrail(lake).events(world["model"])
    assert [(e.action, e.before, e.after) for e in events] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("smoke_test_rollback", "2", "1")]
    assert "smoke test failed: cannot load model" in events[-1].reason
    assert client.get_model_version(world["model"], "2").tags[registry.STATUS_TAG] == "rolled_back"
    assert client.get_model_version(world["model"], "1").tags[registry.STATUS_TAG] == "champion"


def test_an_alias_that_serves_another_version_fails_the_smoke_test(world, context_for, monkeypatch):
    from include import scoring

    client, lake = world["client"], world["lake"]
    _seed(world)
    _publish_day(lake, _both_classes())
    real_load = scoring.load
    model = world["model"]
    # the alias resolves to the old model (a stale cache in front of the registry, say)
    monkeypatch.setattr(scoring, "load", lambda uri: real_load(f"models:/{model}/1" if uri.endswith("@champion")
                                                                 else uri))
    op, context = _deploy(context_for, model, "2")
    with pytest.raises(RegistryError, match=r"rolled back to 1 \(audit event 3\): .*@champion does not score like "
                                            r"version 2: \d+ of 20 smoke-test rows differ"):
        op.execute(context)
    assert registry.champion_version(client, model) == "1"


def test_one_metric_worse_by_more_than_its_margin_blocks_the_challenger(world, context_for):
    """v1 scores a weak column, v2 a good one: v1 as challenger clears an AUC bound but loses on log loss."""
    client, lake = world["client"], world["lake"]
    model = world["model"]
    registry.promote(client, AuditTrail(lake), model, "2", expected=None, actor="test", reason="seed")
    _publish_day(lake, _both_classes())
    metrics = [{"metric": "auc", "min": 0.5, "must_beat": None},
               {"metric": "logloss", "must_beat": {"margin": 0.01, "relative": False}}]
    op, context = _deploy(context_for, model, "1", metric=None, min=None, metrics=metrics)
    result = op.execute(context)
    assert result["promoted"] is False and registry.champion_version(client, model) == "2"
    by_metric = {m["metric"]: m for m in result["gate"]["metrics"]}
    assert by_metric["auc"]["passed"] is True and by_metric["logloss"]["passed"] is False
    assert "logloss: logloss=" in result["gate"]["reasons"][0]
    assert "worse than the champion by more than the margin 0.0100" in result["gate"]["reasons"][0]
    last = AuditTrail(lake).last(model)
    assert (last.action, last.version, last.after) == ("reject", "1", "2")
    assert last.details["gate"]["metrics"][1]["champion"]["value"] is not None
    assert client.get_model_version(model, "1").tags[registry.STATUS_TAG] == "rejected"
    # the report: JSON with both models' numbers per metric, and a page that loads nothing from elsewhere
    report = json.loads(lake.read_bytes("reports", "t_gate", DS, "gate-v1.json"))
    assert report["challenger_version"] == "1" and report["champion_version"] == "2" and report["n"] > 50
    assert [m["metric"] for m in report["metrics"]] == ["auc", "logloss"]
    page = lake.read_bytes("reports", "t_gate", DS, "gate-v1.html").decode()
    assert "logloss" in page and "keep the champion" in page and "http" not in page and "<script" not in page
    assert context["ti"].xcoms[("deploy", "skylift_gate_report")] == result["report"]

    # a relative margin wide enough lets the same challenger through
    loose = [{"metric": "auc", "min": 0.5, "must_beat": None},
             {"metric": "logloss", "must_beat": {"margin": 10.0, "relative": True}}]
    op, context = _deploy(context_for, model, "1", metric=None, min=None, metrics=loose)
    assert op.execute(context)["promoted"] is True and registry.champion_version(client, model) == "1"


def test_every_version_gated_on_one_date_keeps_its_report(world, context_for):
    """The nightly, a retrain and runs awaiting approval gate versions on one date: each report, and
    the link to it in the XCom and the audit trail, outlives the gates that come after it."""
    lake = world["lake"]
    _publish_day(lake, _both_classes())
    links = {}
    for version in ("1", "2"):
        op, context = _deploy(context_for, world["model"], version, beat_champion=False)
        links[version] = op.execute(context)["report"]
    for version, link in links.items():
        page = lake.fs.cat_file(link.removeprefix("file://")).decode()
        assert f"v{version}" in page
        report = json.loads(lake.read_bytes("reports", "t_gate", DS, f"gate-v{version}.json"))
        assert report["challenger_version"] == version


def test_a_first_promotion_that_fails_leaves_no_champion(world, context_for, monkeypatch):
    client, lake = world["client"], world["lake"]
    _publish_day(lake, _both_classes())

    def broken(model, version, rows):
        raise OSError("disk full while writing the smoke-test report")

    monkeypatch.setattr(registry, "smoke_test", broken)
    op, context = _deploy(context_for, world["model"], "2")
    with pytest.raises(RegistryError, match=r"rolled back to none \(audit event 2\): disk full"):
        op.execute(context)
    assert registry.champion_version(client, world["model"]) is None


def test_a_locked_registry_is_unavailable_not_missing(world):
    """SQLite holds writers off for MLflow's busy timeout (20 s), then MLflow reports the lock."""
    client = world["client"]
    _seed(world)
    lock = sqlite3.connect(str(world["home"] / "mlflow.db"), isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    outcome: dict[str, BaseException | str | None] = {}

    def look() -> None:
        try:
            outcome["value"] = registry.champion_version(registry.client_for(f"sqlite:///{world['home']}/mlflow.db"),
                                                         world["model"])
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["value"] = exc

    try:
        worker = threading.Thread(target=look)
        worker.start()
        worker.join(timeout=120)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    error = outcome["value"]
    assert isinstance(error, RegistryUnavailable), error
    assert f"is unavailable while reading model '{world['model']}'" in str(error) and "database is locked" in str(error)
    assert registry.champion_version(client, world["model"]) == "1"  # and it answers again once the lock is gone


def test_a_rollback_whose_smoke_test_fails_is_undone_and_recorded(world, monkeypatch):
    from include import scoring
    from include.rollback import roll_back_champion

    client, lake, model = world["client"], world["lake"], world["model"]
    trail = AuditTrail(lake)
    with pytest.raises(RegistryError, match=rf"audit trail of model '{model}' names no feature partition"):
        _seed(world)
        registry.promote(client, trail, model, "2", expected="1", actor="night2", reason="better")
        roll_back_champion(client, trail, lake, model, actor="user:test", reason="bad")
    _publish_day(lake, _both_classes())
    registry.promote(client, trail, model, "1", expected="2", actor="night3", reason="seed again",
                     details={"smoke": {"dataset": "churn_features", "ds": DS}})
    real_load = scoring.load

    def load(uri: str):
        if uri.endswith("@champion"):
            raise RegistryError(f"cannot load model {uri}: endpoint refused")
        return real_load(uri)

    monkeypatch.setattr(scoring, "load", load)
    with pytest.raises(RegistryError, match=rf"rolling model '{model}' back to version 2 failed its smoke test "
                                            r"\(cannot load model .*\); the champion is version 1 again \(audit "
                                            r"event 5\)"):
        roll_back_champion(client, trail, lake, model, to="2", actor="user:test", reason="try v2 again")
    assert registry.champion_version(client, model) == "1" == trail.champion(model)
    assert [e.action for e in trail.events(model)][-2:] == ["rollback", "smoke_test_rollback"]
    assert client.get_model_version(model, "1").tags[registry.STATUS_TAG] == "champion"
