"""`skylift check` (an alias of `skylift lint`): every spec error a later stage would hit, with file, line
and column, before anything runs (tests/unit/test_lint.py has the broken contracts, suites and jobs)."""

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
    name_line = shipped[: shipped.index("pipeline: churn")].count("\n") + 1
    assert err[0].startswith(f"{cron}:{cron_line}:5: dags.nightly.schedule: '0 2 * *' is not a cron expression")
    # every clash of each twin, not just the first: the pipeline name, its datasets and its model
    for me, other in (("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")):
        mine = [line for line in err if line.startswith(f"{twins / me}:")]
        assert mine[0].startswith(f"{twins / me}:{name_line}:11: pipeline: pipeline name 'churn' is also written by "
                                  f"{twins / other}:{name_line}")
        assert any(f": register.model_name: registered model 'churn' is also written by {twins / other}:" in line
                   for line in mine)
        assert any(f"raw/validated dataset 'customer_activity' is also written by {twins / other}:" in line
                   for line in mine)
    assert err[-1] == f"{len(err) - 1} error(s) in 3 of 3 spec(s)"
