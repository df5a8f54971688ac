"""Pipeline specs: typed, safe, and errors that say file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from include.errors import SpecError
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
CHURN = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "pipe.yaml"
    path.write_text(text)
    return path


def mutate(tmp_path, change) -> Path:
    body = yaml.safe_load(CHURN)
    change(body)
    return write(tmp_path, yaml.safe_dump(body, sort_keys=False))


@pytest.mark.parametrize("name", ["churn.yaml", "spend.yaml"])
def test_shipped_specs_load(name):
    spec = load_spec(ROOT / "dags" / "pipelines" / name)
    assert spec.dags["nightly"].stage_list[0] == "ingest"


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = write(tmp_path, CHURN.replace("  lookback_days: 7", "  lookback_dayz: 7"))
    line = CHURN.splitlines().index("  lookback_days: 7") + 1
    with pytest.raises(SpecError, match=rf"pipe.yaml:{line}: features.lookback_dayz: unknown key; did you mean "
                                        r"'lookback_days'\?"):
        load_spec(path)


def test_wrong_type_names_the_key(tmp_path):
    path = write(tmp_path, CHURN.replace("lookback_days: 7", "lookback_days: seven"))
    with pytest.raises(SpecError, match=r"pipe.yaml:\d+: features.lookback_days: Input should be a valid integer"):
        load_spec(path)


def test_bad_enum_value(tmp_path):
    path = write(tmp_path, CHURN.replace("on_failure: quarantine", "on_failure: ignore"))
    with pytest.raises(SpecError, match=r"validate.on_failure: Input should be 'fail', 'warn' or 'quarantine'"):
        load_spec(path)


def test_python_object_tags_are_refused(tmp_path):
    path = write(tmp_path, CHURN + "\nextra: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match=r"pipe.yaml:\d+: not valid YAML"):
        load_spec(path)


@pytest.mark.parametrize("patch,needle", [
    (lambda b: b["source"].update(password="hunter22"), "source.password: key 'password' looks like a credential"),
    (lambda b: b["source"].update(uri="s3://AKIAABCDEFGHIJKLMNOP@bucket/{ds}/"), "the value looks like a credential"),
    (lambda b: b["source"].update(uri="s3://user:pw@bucket/{ds}/"), "the value looks like a credential"),
    (lambda b: b["train"]["params"].update(api_key="x"), "train.params.api_key"),
])
def test_secrets_are_refused_without_echoing_them(tmp_path, patch, needle):
    path = mutate(tmp_path, patch)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert needle in str(err.value)
    for secret in ("hunter22", "AKIAABCDEFGHIJKLMNOP", ":pw@"):
        assert secret not in str(err.value)


@pytest.mark.parametrize("patch,needle", [
    (lambda b: b["source"].update(schema="../../etc/passwd"), "escapes the project folder"),
    (lambda b: b["source"].update(uri="../{ds}/"), "must not contain '..'"),
    (lambda b: b["source"].update(uri="activity/"), "must contain {ds}"),
    (lambda b: b["source"].update(dataset="../x"), "source.dataset: String should match pattern"),
    (lambda b: b["features"].update(job="os:system"), "module 'os' is not in an allowed feature package"),
    (lambda b: b["features"].update(job="include.features.churn.build"), "must look like"),
    (lambda b: b["validate"].update(suite="include/expectations/nope.yaml"), "validate.suite: file"),
    (lambda b: b["deploy"]["gate"].update(metric="aucc"), "did you mean 'auc'"),
    (lambda b: b["dags"]["retrain"].update(stages=["deploy"]), "stage 'deploy' needs 'register' in the same DAG"),
    (lambda b: b["dags"]["retrain"]["params"].update(gpu={"type": "integer"}), "'gpu' is a built-in parameter"),
    (lambda b: b.pop("features"), "stage 'features' needs a top-level 'features' section"),
    (lambda b: b["dags"].update(Nightly={"schedule": None}), "dags.Nightly"),
])
def test_spec_errors(tmp_path, patch, needle):
    path = mutate(tmp_path, patch)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_not_a_mapping(tmp_path):
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, "- a\n- b\n"))
