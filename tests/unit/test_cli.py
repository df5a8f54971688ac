"""`skylift check`: every spec error a later stage would hit, with file and line, before anything runs."""

from __future__ import annotations

from pathlib import Path

from operators.cli import main

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "dags" / "pipelines"


def test_check_passes_the_shipped_specs(capsys):
    specs = sorted(PIPELINES.glob("*.yaml"))
    assert main(["check", *map(str, specs)]) == 0
    out = capsys.readouterr().out
    assert f"{PIPELINES / 'spend.yaml'}: ok (spend: spend_nightly, spend_retrain)" in out
    assert out.count(": ok (") == len(specs)


def test_check_reports_each_broken_spec_with_its_line(tmp_path, capsys):
    shipped = (PIPELINES / "churn.yaml").read_text()
    cron = tmp_path / "cron" / "churn.yaml"
    cron.parent.mkdir()
    cron.write_text(shipped.replace('schedule: "0 2 * * *"', 'schedule: "0 2 * *"', 1))
    twins = tmp_path / "twins"
    twins.mkdir()
    for name in ("a.yaml", "b.yaml"):
        (twins / name).write_text(shipped)
    assert main(["check", str(cron), str(twins / "a.yaml"), str(twins / "b.yaml")]) == 1
    err = capsys.readouterr().err.splitlines()
    cron_line = shipped[: shipped.index('schedule: "0 2')].count("\n") + 1
    assert err[0].startswith(f"{cron}:{cron_line}: dags.nightly.schedule: '0 2 * *' is not a cron expression")
    assert err[1].startswith(f"{twins / 'a.yaml'}:2: pipeline name 'churn' is also written by {twins / 'b.yaml'}:2")
    assert err[2].startswith(f"{twins / 'b.yaml'}:2: pipeline name 'churn' is also written by {twins / 'a.yaml'}:2")
