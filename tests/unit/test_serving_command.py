"""`skylift serve` (operators/serve.py): what it serves, and its refusals before anything starts."""

from __future__ import annotations

import json
import shlex

import pytest

from include.errors import SpecError
from operators.cli import main
from operators.project import Project
from operators.serve import curl_example, serving_config
from tests.conftest import ROOT


def test_serves_the_model_the_spec_registers_from_the_homes_mlflow_store(tmp_path):
    home = tmp_path / "home"
    (home / "skylift").mkdir(parents=True)
    (home / "skylift" / "mlflow.db").touch()
    config = serving_config(Project.at(ROOT, home), "churn", poll_seconds=2)
    assert (config.model_name, config.poll_seconds) == ("churn", 2)
    assert config.tracking_uri == f"sqlite:///{home}/skylift/mlflow.db"


def test_refuses_a_home_without_an_mlflow_store_and_says_what_to_run(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "empty"), "serve", "churn", "--project", str(ROOT)]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {tmp_path}/empty/skylift/mlflow.db yet: run the pipeline first" in err
    assert "skylift run churn --date D" in err


def test_refuses_an_unknown_pipeline(tmp_path):
    with pytest.raises(SpecError, match="no pipeline 'nope' in"):
        serving_config(Project.at(ROOT, tmp_path), "nope")


def test_the_printed_curl_line_is_a_valid_request():
    line = curl_example("http://127.0.0.1:5050", ["tenure", "visits"])
    words = shlex.split(line)
    assert words[:3] == ["curl", "-s", "http://127.0.0.1:5050/invocations"]
    assert json.loads(words[words.index("-d") + 1]) == {"dataframe_split": {"columns": ["tenure", "visits"],
                                                                          "data": [[0, 0]]}}
