"""Rollback end to end: the `churn_rollback` DAG through Airflow (`dag.test()`), then `skylift
history` and `skylift rollback` against the same lake and MLflow store.

The registry starts as two nightly deploys leave it (v1 promoted, then v2 promoted over it); the
versions are tiny pyfunc models, so no training is needed to get there.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from include import registry
from include.audit import AuditTrail
from include.lake import Lake
from tests.registry_models import features, log_column_models, register_versions
from tests.reliability.conftest import run_dag_once, skylift_settings

DS = "2026-11-24"


def _deployed_twice(home):
    """v1 then v2 promoted by the nightly DAG, with the feature partition they were gated on."""
    uri = f"sqlite:///{home}/mlflow.db"
    client = registry.client_for(uri)
    register_versions(client, uri, "churn", log_column_models(client, uri, f"file://{home}/mlartifacts"),
                      pipeline="churn")
    lake = Lake(f"file://{home}/lake")
    frame = features((np.random.default_rng(3).random(200) < 0.3).astype(int))
    with lake.publish("features", "churn_features", DS) as writer:
        writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    trail = AuditTrail(lake)
    smoke = {"smoke": {"dataset": "churn_features", "ds": DS}}
    for version, previous in (("1", None), ("2", "1")):
        registry.promote(client, trail, "churn", version, expected=previous, actor=f"churn_nightly/night{version}",
                         reason="beats the champion", details=smoke)
    return client, trail


def test_the_rollback_dag_and_the_cli_restore_a_champion_and_record_it(tmp_path, monkeypatch, capsys):
    home = tmp_path / "skylift"
    home.mkdir()
    for key, value in skylift_settings(home).items():
        monkeypatch.setenv(key, value)
    client, trail = _deployed_twice(home)

    run = run_dag_once("churn_rollback", date(2026, 11, 25), conf={"to_version": "", "reason": "v2 pages on-call"})
    assert run.state == "success", run.errors
    assert registry.champion_version(client, "churn") == "1"
    v2 = client.get_model_version("churn", "2").tags
    assert v2[registry.STATUS_TAG] == "rolled_back" and "promoted_at" not in " ".join(v2)
    assert "rollback at " in v2[registry.STATUS_DETAIL_TAG] and f"by churn_rollback/{run.run_id}" in \
        v2[registry.STATUS_DETAIL_TAG]
    assert client.get_model_version("churn", "1").tags[registry.STATUS_TAG] == "champion"

    from operators.cli import main

    # v2 was rolled back, so there is no earlier champion to return to by default
    assert main(["rollback", "churn"]) == 1
    assert "has no earlier champion to return to" in capsys.readouterr().err
    assert main(["rollback", "churn", "--to", "2", "--reason", "the fix is deployed"]) == 0
    assert "churn: champion v1 -> v2 (audit event 4); smoke test passed" in capsys.readouterr().out
    assert registry.champion_version(client, "churn") == "2"
    assert client.get_model_version("churn", "1").tags[registry.STATUS_TAG] == "rolled_back"

    assert main(["history", "churn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["1", "2", "3", "4"]
    assert [" ".join(line.split()[2:7]) for line in lines[1:-1]] == [
        "promote v1: v- -> v1", "promote v2: v1 -> v2", "rollback v1: v2 -> v1", "rollback v2: v1 -> v2"]
    assert "v2 pages on-call" in lines[3] and f"churn_rollback/{run.run_id}" in lines[3]
    assert "user:" in lines[4] and "the fix is deployed" in lines[4]
    assert lines[-1] == "champion now: v2"
    assert [e.after for e in trail.events("churn")] == ["1", "2", "1", "2"]
