"""`monitor.drift` in the spec: checked at load, compiled into monitor -> retrain_on_drift after score."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.errors import SpecError
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
CHURN = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()


def spec_file(tmp_path, monitor, dags=None) -> Path:
    body = yaml.safe_load(CHURN)
    body.pop("monitor", None)
    if monitor is not None:
        body["monitor"] = monitor
    if dags is not None:
        body["dags"] = dags
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_all_stages_include_monitor_only_with_a_monitor_section(tmp_path):
    without = load_spec(spec_file(tmp_path, None))
    assert "monitor" not in without.dag_stages(without.dags["nightly"])
    monitored = load_spec(spec_file(tmp_path, {"drift": {}}))
    stages = monitored.dag_stages(monitored.dags["nightly"])
    assert stages.index("score") < stages.index("monitor")
    assert monitored.monitor.drift.retrain is False and monitored.monitor.drift.psi_threshold == 0.25


def test_the_retrain_dag_must_exist_and_train(tmp_path):
    with pytest.raises(SpecError, match=r"monitor.drift.retrain_dag 'refit' must name an entry of `dags:` "
                                        r"\(declared: \['nightly', 'retrain', 'score'\]\)"):
        load_spec(spec_file(tmp_path, {"drift": {"retrain": True, "retrain_dag": "refit"}}))
    with pytest.raises(SpecError, match=r"retrain_dag 'score' must be a DAG with the `train` stage"):
        load_spec(spec_file(tmp_path, {"drift": {"retrain": True, "retrain_dag": "score"}}))


def test_a_misspelt_threshold_is_named_with_its_line(tmp_path):
    with pytest.raises(SpecError, match=r"pipe.yaml:\d+: monitor.drift.psi_treshold: .*psi_threshold"):
        load_spec(spec_file(tmp_path, {"drift": {"psi_treshold": 0.3}}))


def test_monitor_needs_score_in_the_same_dag(tmp_path):
    dags = {"nightly": {"schedule": "0 2 * * *", "stages": ["features", "monitor"]},
            "retrain": {"stages": ["features", "train", "register", "deploy"]}}
    with pytest.raises(SpecError, match=r"stage 'monitor' needs 'score' in the same DAG"):
        load_spec(spec_file(tmp_path, {"drift": {}}, dags=dags))


def test_the_nightly_dag_checks_drift_after_scoring_and_triggers_the_retrain_dag(tmp_path):
    from operators.spec.compiler import dags_from_spec_file

    path = spec_file(tmp_path, {"drift": {"retrain": True, "cooldown_days": 5, "psi_threshold": 0.3}})
    dags = dags_from_spec_file(path)
    nightly = dags["churn_nightly"]
    monitor, trigger = nightly.get_task("monitor"), nightly.get_task("retrain_on_drift")
    assert monitor.upstream_task_ids == {"score"} and trigger.upstream_task_ids == {"monitor"}
    assert monitor.drift["cooldown_days"] == 5 and monitor.drift["psi_threshold"] == 0.3
    assert (monitor.retrain_dag_id, trigger.trigger_dag_id) == ("churn_retrain", "churn_retrain")
    assert trigger.skip_when_already_exists and not trigger.wait_for_completion
    assert [link.name for link in monitor.operator_extra_links] == ["Drift report"]
    assert "retrain_on_drift" not in dags["churn_retrain"].task_ids


def test_without_retrain_there_is_no_trigger_task(tmp_path):
    from operators.spec.compiler import dags_from_spec_file

    nightly = dags_from_spec_file(spec_file(tmp_path, {"drift": {}}))["churn_nightly"]
    assert "monitor" in nightly.task_ids and "retrain_on_drift" not in nightly.task_ids
    assert nightly.get_task("monitor").retrain_dag_id is None


def test_skylift_plan_describes_the_drift_check_and_the_trigger(tmp_path, skylift_env):
    from operators.plan import _Planner
    from operators.spec.compiler import dags_from_spec_file

    path = spec_file(tmp_path, {"drift": {"retrain": True, "cooldown_days": 5}})
    nightly = dags_from_spec_file(path)["churn_nightly"]
    planner = _Planner(load_spec(path), nightly, "2026-11-10", {})
    monitor, trigger = planner.task(nightly.get_task("monitor")), planner.task(nightly.get_task("retrain_on_drift"))
    assert monitor.after == ("score",) and monitor.writes[0].endswith(
        "/reports/churn_drift/ds=2026-11-10  [drift.json, drift.html]")
    assert "PSI >= 0.25 and KS p-value < 0.001" in monitor.notes[0]
    assert monitor.notes[1] == "a drifted day claims a run of churn_retrain (at most one per 5 days of dates)"
    assert trigger.writes == ("a run of churn_retrain for 2026-11-10, only if that task claimed one",)
